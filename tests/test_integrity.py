"""Runs that cannot be corrupted (issue #15): one writer per run folder, an overwrite that keeps
the old run until the new one has a checkpoint, damaged files detected, leftovers cleaned, and
faults (a diverging run, a full disk, a second Ctrl-C) reported in words with a non-zero exit."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tvo.build import build
from tvo.cli import main
from tvo.config import resolve
from tvo.runs import Run, RunError
from tvo.train import train

from tests.helpers import tree_digest

FAST = ["--batch-size", "8", "--eval-every", "20", "--eval-images", "8", "--eval-particles",
        "20", "--log-every", "10", "--checkpoint-every", "20", "--quiet"]  # fmt: skip


def cli(*args) -> subprocess.Popen:
    command = [sys.executable, "-m", "tvo.cli", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_second_writer_is_refused_naming_the_first(tiny_data, tmp_path):
    """A long run holds its folder: another tvo train into it, a --resume of it, and a library
    Run.create are refused with the holder's PID; the run ends untouched by them."""
    run = tmp_path / "run"
    first = cli("train", "--data", tiny_data, "--out", str(run), "--steps", "1000000", *FAST)
    try:
        wait_for(lambda: list(run.glob("checkpoints/*.pt")))
        second = cli("train", "--data", tiny_data, "--out", str(run), "--steps", "40", *FAST)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and "already holds a run" in err
        resumed = cli("train", "--resume", str(run), "--quiet")
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 2
        assert f"being written by another process (PID {first.pid})" in err
        with pytest.raises(RunError, match=f"PID {first.pid}"):
            train(Run.open(run), quiet=True)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM
    steps = [row["step"] for row in Run.open(run).read_metrics()]
    assert steps == sorted(set(steps))  # no duplicated rows from a second writer


def test_two_runs_started_into_one_folder_at_once_make_one_run(tiny_data, tmp_path):
    """Started together, at most one may create the run: the other is refused (exit 2)."""
    run = tmp_path / "race"
    processes = [cli("train", "--data", tiny_data, "--out", str(run), "--steps", "30", *FAST)
                 for _ in range(2)]  # fmt: skip
    codes = sorted(p.wait(timeout=300) for p in processes)
    assert codes == [0, 2]
    rows = Run.open(run).read_metrics()
    assert [r["step"] for r in rows] == [10, 20, 30]


def test_an_overwrite_gives_the_old_run_back_if_the_new_one_fails(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run_dir), "--steps", "20", *FAST]) == 0
    before = tree_digest(run_dir)
    config = resolve(data=tiny_data, steps=20, batch_size=8, eval_every=20, eval_images=8,
                     eval_particles=20, log_every=10, checkpoint_every=20, lr=0.5)  # fmt: skip
    setup = build(config)
    setup.model.log_joint = lambda x, z: (_ for _ in ()).throw(RuntimeError("broken model"))
    run = Run.create(run_dir, config, overwrite=True)
    assert (run_dir / ".replaced" / "checkpoints").is_dir()
    with pytest.raises(RuntimeError, match="broken model"):
        with pytest.warns(UserWarning, match="is back"):
            train(run, quiet=True, prepared=setup)
    assert tree_digest(run_dir) == before and Run.open(run_dir).config.lr != 0.5


def test_an_overwrite_killed_before_its_first_checkpoint_is_undone(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run_dir), "--steps", "20", *FAST]) == 0
    before = tree_digest(run_dir)
    config = resolve(data=tiny_data, steps=20, batch_size=8, lr=0.5)
    Run.create(run_dir, config, overwrite=True)  # …and the process dies here
    with pytest.warns(UserWarning, match="stopped before its first checkpoint"):
        with Run(run_dir).writer():  # the next writer finds the leftovers
            pass
    assert tree_digest(run_dir) == before


def test_an_overwrite_replaces_the_run_once_the_new_one_checkpoints(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run_dir), "--steps", "20", *FAST]) == 0
    assert main(["train", "--data", tiny_data, "--out", str(run_dir), "--steps", "30", "--lr",
                 "0.01", *FAST, "--overwrite"]) == 0  # fmt: skip
    assert not (run_dir / ".replaced").exists()
    assert Run.open(run_dir).config.lr == 0.01
    assert [r["step"] for r in Run.open(run_dir).read_metrics()] == [10, 20, 30]


def test_settings_of_the_wrong_type_stop_an_overwrite_before_it_starts(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "20", *FAST]) == 0
    before = tree_digest(run)
    for text, message in (("particles = 10.0", "particles (S) must be an integer ≥ 2, got 10.0"),
                          ("batch_size = 24.0", "batch size must be an integer ≥ 1, got 24.0"),
                          ("data_root = 7", "data_root must be text, got 7")):  # fmt: skip
        (tmp_path / "p.toml").write_text(text + "\n")
        args = ["train", "--data", tiny_data, "--out", str(run), "--overwrite", "--config",
                str(tmp_path / "p.toml")]  # fmt: skip
        assert main(args) == 2
        assert message in capsys.readouterr().err
    assert tree_digest(run) == before


def test_unreadable_checkpoints_stop_a_resume_instead_of_starting_over(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "40", *FAST]) == 0
    for path in (run / "checkpoints").glob("*.pt"):
        path.write_bytes(b"damaged")
    (run / "summary.json").unlink()  # as if it had been stopped
    rows = (run / "metrics.csv").read_text()
    with pytest.warns(UserWarning, match="is corrupt"):
        assert main(["train", "--resume", str(run)]) == 2
    assert "none of the checkpoints" in capsys.readouterr().err
    assert (run / "metrics.csv").read_text() == rows


def test_a_checkpoint_without_its_parts_falls_back_to_the_one_before(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "40", *FAST]) == 0
    torch.save({"step": 250}, run / "checkpoints" / "step-000000040.pt")
    with pytest.warns(UserWarning, match=r"step-000000040.pt is corrupt .*it lacks model"):
        assert Run.open(run).load_checkpoint()["step"] == 20


@pytest.mark.parametrize(
    ("edit", "message"),
    [(lambda c: {**c, "particles": -1}, "particles (S) must be an integer ≥ 2, got -1"),
     (lambda c: {**c, "objective": "foo"}, "unknown objective 'foo'")],
)  # fmt: skip
def test_an_edited_config_is_refused_when_the_run_is_opened(
    tiny_data, tmp_path, capsys, edit, message
):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "20", *FAST]) == 0
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(edit(config)))
    assert main(["eval", str(run), "--particles", "10"]) == 2
    error = capsys.readouterr().err
    assert "holds settings that cannot work" in error and message in error


def test_a_metrics_file_cut_short_is_detected(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "40", *FAST]) == 0
    (run / "summary.json").unlink()
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text[:-7])  # cut in the middle of the last row
    assert main(["train", "--resume", str(run), "--steps", "60"]) == 2
    assert "last row is cut short" in capsys.readouterr().err


def test_leftovers_of_interrupted_writes_are_removed_when_next_written(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "20", *FAST]) == 0
    for stale in (run / ".metrics.csv.abc123.tmp", run / "checkpoints" / ".step-1.pt.xyz.tmp"):
        stale.write_bytes(b"half")
    assert main(["train", "--resume", str(run), "--steps", "40", "--quiet"]) == 0
    assert not list(run.rglob("*.tmp"))


def test_a_diverging_run_stops_and_cannot_be_evaluated_into_nan(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", tiny_data, "--out", str(run), "--steps", "300", "--lr", "1e308",
            *FAST]  # fmt: skip
    assert main(args) == 1
    error = capsys.readouterr().err
    # one rule alone and in a group (issue #25): parameters that overflow stop the run at once,
    # where 0.2 went on for 100 non-finite steps and checkpointed them
    assert "step 1: its parameters were no longer finite" in error
    assert "learning rate of 1e+308" in error and "no checkpoint was written yet" in error
    assert main(["eval", str(run), "--particles", "10"]) == 2
    assert "no checkpoint yet" in capsys.readouterr().err
    stop = tmp_path / "stop"
    args = ["train", "--data", tiny_data, "--out", str(stop), "--steps", "300", "--lr", "1e308",
            "--nonfinite", "stop", *FAST]  # fmt: skip
    assert main(args) == 1
    assert "no checkpoint was written yet" in capsys.readouterr().err


def test_a_full_disk_reported_by_torch_in_its_own_words(tiny_data, tmp_path, monkeypatch, capsys):
    """torch.save on a full disk raises "[enforce fail at inline_container.cc:672] . unexpected
    pos", not an OSError: the command still says which file and why."""
    run = tmp_path / "run"

    def full(obj, path, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")

    monkeypatch.setattr("tvo.runs.torch.save", full)
    monkeypatch.setattr("tvo.files.shutil.disk_usage", lambda path: SimpleNamespace(free=0))
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "20", *FAST]) == 1
    error = capsys.readouterr().err
    assert "step-000000020.pt: No space left on device" in error
    assert not list(run.rglob("*.tmp"))


def test_a_full_disk_leaves_no_empty_figure(tiny_data, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "20", *FAST]) == 0

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", full)
    assert main(["plot", str(run), "--images", "4", "--particles", "10"]) == 1
    error = capsys.readouterr().err
    assert "learning_curves.png: No space left on device" in error
    assert not (run / "plots").exists() or not list((run / "plots").iterdir())


def test_a_second_ctrl_c_in_an_evaluation_says_what_state_the_run_is_in(tiny_data, tmp_path):
    run = tmp_path / "run"
    process = cli("train", "--data", tiny_data, "--out", str(run), "--steps", "1000000",
                  "--batch-size", "8", "--checkpoint-every", "10", "--eval-every", "50",
                  "--eval-images", "16", "--eval-particles", "2000000", "--quiet")  # fmt: skip
    wait_for(lambda: (run / "checkpoints" / "step-000000040.pt").exists())
    time.sleep(1.0)  # steps 41 to 50, then the long evaluation
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted; what was written before is intact" in err and "Traceback" not in err
    assert Run.open(run).load_checkpoint()["step"] >= 40


@pytest.mark.parametrize("damage", ["shorter", "unreadable checkpoints"])
def test_a_refused_resume_to_a_new_length_leaves_the_run_as_it_was(tiny_data, tmp_path, damage):
    """``--resume --steps N`` that stops with an error (N below the steps done; no checkpoint
    that loads) keeps config.json and summary.json: the length is written only once training
    can go on."""
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "40", *FAST]) == 0
    steps = "30"
    if damage == "unreadable checkpoints":
        steps = "60"
        for path in (run / "checkpoints").glob("*.pt"):
            path.write_bytes(b"damaged")
    before = tree_digest(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the corrupt checkpoints are reported as warnings
        assert main(["train", "--resume", str(run), "--steps", steps, "--quiet"]) == 2
    assert tree_digest(run) == before


def test_a_resume_to_a_new_length_writes_it(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "20", *FAST]) == 0
    assert main(["train", "--resume", str(run), "--steps", "40", "--quiet"]) == 0
    assert Run.open(run).config.steps == 40 and Run.open(run).summary()["steps"] == 40


@pytest.mark.parametrize("args", ['{"latents": 0}', '{"latents": [0]}', '{"latents": 2.5}'])
def test_model_args_of_a_wrong_value_are_refused_by_name(tiny_data, tmp_path, capsys, args):
    """A built-in model's arguments are checked by building it when the settings are validated
    (so a sweep refuses them before any run starts): one message, exit 2, no run folder."""
    from tvo.models import ModelError, check_arguments

    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--model-args", args]) == 2
    assert "model linear_1 cannot be built with model_args" in capsys.readouterr().err
    assert not run.exists()
    with pytest.raises(ModelError, match="cannot be built"):
        check_arguments("linear_1", json.loads(args))


def test_a_run_whose_checkpoints_were_deleted_is_not_restarted(tiny_data, tmp_path, capsys):
    """metrics.csv up to step 40 and no checkpoint left: ``--resume`` stops (exit 2, the run
    unchanged) instead of training again from step 0 over the metrics; a run stopped before
    its first checkpoint still starts again."""
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "40", *FAST]) == 0
    for path in (run / "checkpoints").glob("*.pt"):
        path.unlink()
    before = tree_digest(run)
    assert main(["train", "--resume", str(run), "--steps", "60", "--quiet"]) == 2
    assert "has metrics up to step 40 but no checkpoint" in capsys.readouterr().err
    assert tree_digest(run) == before
    early = tmp_path / "early"
    assert main(["train", "--data", tiny_data, "--out", str(early), "--steps", "20", *FAST]) == 0
    for path in (early / "checkpoints").glob("*.pt"):
        path.unlink()  # as if killed after the row of step 10, before the checkpoint of step 20
    (early / "summary.json").unlink()
    (early / "metrics.csv").write_text(
        "".join((early / "metrics.csv").read_text().splitlines(True)[:2])
    )
    assert main(["train", "--resume", str(early), "--quiet"]) == 0
    assert Run.open(early).summary()["steps"] == 20
