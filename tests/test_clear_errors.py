"""Issue #25's tracebacks and unclear messages: each is now one line (exit 2 for the user's
input) that names the problem and the fix; and tvo's own leftovers never block it (item 7)."""

import errno
import json
import sys

import numpy as np
import pytest

from tvo.cli import main
from tvo.runs import LOCK, Run

from tests.helpers import tree_digest, write_sweep

FAST = ["--steps", "10", "--eval-every", "10", "--eval-images", "4", "--eval-particles", "5",
        "--log-every", "10", "--checkpoint-every", "10", "--batch-size", "8",
        "--quiet"]  # fmt: skip


@pytest.fixture
def trained(tiny_data, tmp_path):
    run = tmp_path / "my run"
    assert main(["train", "--data", tiny_data, "--out", str(run), *FAST]) == 0
    return run


def error_of(args, capsys, code=2) -> str:
    capsys.readouterr()
    assert main([str(a) for a in args]) == code, args
    error = capsys.readouterr().err
    assert "Traceback" not in error, error
    return error


@pytest.mark.parametrize("leftovers", [[LOCK], [LOCK, ".lock.pid", ".config.json.x1.tmp"]])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_folder_holding_only_tvo_s_leftovers_takes_a_new_run(tiny_data, tmp_path, leftovers,
                                                                overwrite):  # fmt: skip
    out = tmp_path / "run"
    out.mkdir()
    for name in leftovers:
        (out / name).write_text("")
    assert main(["train", "--data", tiny_data, "--out", str(out), *FAST, *overwrite]) == 0
    assert Run.open(out).summary()["steps"] == 10


def test_a_folder_with_files_of_its_own_is_still_refused(tiny_data, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    error = error_of(["train", "--data", tiny_data, "--out", tmp_path / "other", *FAST], capsys)
    assert "is not empty and is not a run (it holds notes.txt)" in error


def test_resume_and_eval_messages_name_the_problem(trained, tiny_data, tmp_path, capsys):
    before = tree_digest(trained)
    error = error_of(["train", "--resume", trained, "--overwrite"], capsys)
    assert error.rstrip().endswith("drop --overwrite"), error
    error = error_of(["train", "--data", tiny_data, "--out", trained, *FAST], capsys)
    assert f"pass --resume '{trained}' to continue it" in error  # quoted: the path has a space
    config = trained / "config.json"
    for args in (["train", "--resume", config], ["eval", config]):
        assert "config.json is a file, not a run folder" in error_of(args, capsys)
    assert tree_digest(trained) == before


def test_out_paths_that_cannot_be_run_folders(tiny_data, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    error = error_of(["train", "--data", tiny_data, "--out", link, *FAST], capsys)
    assert "is a link to" in error and "which does not exist" in error
    file = tmp_path / "file"
    file.write_text("x")
    error = error_of(["train", "--data", tiny_data, "--out", file, *FAST], capsys)
    assert "is a file, not a run folder; move it away" in error and "--out" not in error


def test_a_full_disk_at_creation_names_the_file(tiny_data, tmp_path, capsys, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("filelock.UnixFileLock._acquire", full)
    error = error_of(["train", "--data", tiny_data, "--out", tmp_path / "r", *FAST], capsys, 1)
    assert f"could not write {tmp_path / 'r' / LOCK}: No space left on device" in error


def test_data_that_cannot_be_read_say_why(tmp_path, capsys):
    folder = tmp_path / "images.npz"
    folder.mkdir()
    error = error_of(["train", "--data", folder, "--out", tmp_path / "r"], capsys)
    assert "is a folder, not a .npz/.npy file" in error
    empty = tmp_path / "empty.npz"
    np.savez(empty, train=np.zeros((10, 4)), test=np.zeros((0, 4)))
    error = error_of(["train", "--data", empty, "--out", tmp_path / "r"], capsys)
    assert "empty.npz[test] is empty (0 data points" in error


def test_eval_after_a_killed_overwrite_says_where_the_old_run_is(trained, capsys):
    run = Run(trained)
    with run.writer():
        run._move_aside()  # what an --overwrite killed before its first checkpoint leaves
        (trained / "config.json").write_bytes((trained / ".replaced" / "config.json").read_bytes())
    error = error_of(["eval", trained], capsys)
    assert "no checkpoint yet" in error and f"{trained / '.replaced'}" in error


def test_report_and_compare_of_an_empty_final_json(tiny_data, tmp_path, capsys):
    path = write_sweep(tmp_path, tiny_data, '[[experiment]]\nname = "a"\n')
    runs = tmp_path / "runs"
    from tvo import sweep

    loaded = sweep.load(path)
    sweep.prepare(loaded, runs)
    (name,) = loaded.runs
    (runs / name / "final.json").write_text("{}")
    for args in (["report", path, "--runs", runs], ["compare", runs]):
        assert "is not a final evaluation (it lacks log_px" in error_of(args, capsys)
    error = error_of(["report", path, "--runs", runs, "--out", tmp_path, "--overwrite"], capsys)
    assert f"--out {tmp_path} is a folder" in error


def test_a_corrupt_sweep_record_stops_the_sweep_before_its_runs(tiny_data, tmp_path, capsys):
    path = write_sweep(tmp_path, tiny_data, '[[experiment]]\nname = "a"\n')
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "sweep.json").write_text('{"invocations": [')
    error = error_of(["sweep", path, "--out", runs], capsys)
    assert "sweep.json is corrupt" in error and "delete it" in error
    assert [p.name for p in runs.iterdir()] == ["sweep.json"]


def test_a_killed_worker_and_a_second_sweep_at_once_are_told_in_one_line(
    tiny_data, tmp_path, monkeypatch
):
    from tvo import sweep
    from tvo.sweep import local, worker

    loaded = sweep.load(write_sweep(tmp_path, tiny_data, '[[experiment]]\nname = "a"\n'))
    runs = tmp_path / "runs"
    monkeypatch.setattr(
        local,
        "command",
        lambda folders, evaluation: [
            sys.executable,
            "-c",
            "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        ],
    )
    assert local.run(loaded, runs, jobs=1, quiet=True) == 1
    (name,) = loaded.runs
    log = (runs / name / "sweep.log").read_text()
    assert "killed by SIGKILL (signal 9)" in log and "run the same sweep again" in log
    # A second sweep at once: the worker finds the run held, and says so in one line.
    with Run(runs / name).writer():
        monkeypatch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
        printed: list[str] = []
        assert worker.work_or_report([runs / name], loaded.evaluation) == 1
    assert len(printed) == 1 and "is being written by another process (PID" in printed[0]
    assert json.loads((runs / "sweep.json").read_text())["invocations"]
