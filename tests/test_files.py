"""Atomic writes (``tvo.files.write_atomic``): a write that fails, or a process killed in the
middle of one, leaves the previous file whole; a finished write is synced before it replaces
the file."""

import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tvo import files
from tvo.files import write_atomic


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_write_creates_folders_and_replaces_the_file_whole(tmp_path):
    path = tmp_path / "a" / "b" / "metrics.csv"
    write_atomic(path, lambda tmp: tmp.write_text("old\n"))
    write_atomic(path, lambda tmp: tmp.write_text("new\n"))
    assert path.read_text() == "new\n" and leftovers(path.parent) == []


def test_a_writer_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("the old settings\n")

    def half(tmp):
        tmp.write_text("the new sett")
        raise OSError(errno.EIO, "device error")

    with pytest.raises(OSError, match="device error") as caught:
        write_atomic(path, half)
    assert caught.value.filename == str(path)  # the message names the file, not the temporary
    assert path.read_text() == "the old settings\n" and leftovers(tmp_path) == []


@pytest.mark.parametrize(("free", "code"), [(0, errno.ENOSPC), (1 << 30, errno.EIO)])
def test_a_serialiser_error_is_an_os_error_saying_whether_the_disk_is_full(
    tmp_path, monkeypatch, free, code
):
    """torch.save reports a full disk as a RuntimeError; it becomes ENOSPC when the disk has
    less than 1 MiB free, EIO otherwise."""
    path = tmp_path / "step-1.pt"
    path.write_bytes(b"old")
    usage = type("Usage", (), {"free": free})
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: usage)

    def fails(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed")

    with pytest.raises(OSError) as caught:
        write_atomic(path, fails)
    assert caught.value.errno == code and caught.value.filename == str(path)
    assert path.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_the_temporary_is_synced_before_it_replaces_the_file(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(files.os, "replace",
                        lambda a, b: (events.append("replace"), real_replace(a, b)))  # fmt: skip
    write_atomic(tmp_path / "summary.json", lambda tmp: tmp.write_text("{}"))
    assert events == ["fsync", "replace"]


def test_a_crash_before_the_rename_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text("old")

    def crash(a, b):
        raise OSError(errno.EIO, "simulated failure at the rename")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(path, lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_a_process_killed_in_the_middle_of_a_write_leaves_the_old_file_whole(tmp_path):
    """SIGKILL while the writer is half way: nothing runs after it, so the temporary stays
    behind (tvo.runs removes such files when the run is next written) and the file is the old
    one, whole."""
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n1,0.5\n")
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from tvo.files import write_atomic

        def killed(tmp):
            with open(tmp, "w") as handle:
                handle.write("step,loss\\n1,0.5\\n2,")
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        write_atomic(Path({str(path)!r}), killed)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert path.read_text() == "step,loss\n1,0.5\n"
    assert len(leftovers(tmp_path)) == 1 and leftovers(tmp_path)[0].startswith(".metrics.csv.")


def test_the_file_gets_the_umask_permissions_not_the_temporary_files(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "config.json", lambda tmp: tmp.write_text("{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o640
