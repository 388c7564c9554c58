"""The run folder: its files behind ``Run``, and runs written by tvo 0.1.0 before the
schedules were explicit state (tests/fixtures/runs-0.1.0, trained by that version on
``tiny.npz``), which still resume, evaluate and plot."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from tvo.cli import main
from tvo.config import TrainConfig, load, save
from tvo.partitions import partition
from tvo.runs import Run, RunError, migrate_config

FIXTURES = Path(__file__).parent / "fixtures" / "runs-0.1.0"
FIXTURES_020 = Path(__file__).parent / "fixtures" / "runs-0.2.0"


@pytest.fixture
def old_runs(tmp_path, monkeypatch):
    """A copy of the 0.1.0 runs, in the working directory their config names ``tiny.npz`` in."""
    copy = tmp_path / "old"
    shutil.copytree(FIXTURES, copy)
    monkeypatch.chdir(copy)
    return copy


def test_a_run_records_its_status_summary_and_final_evaluation(tmp_path, tiny_data):
    from tvo.config import resolve

    run = Run.create(tmp_path / "r", resolve(data=tiny_data, objective="vimco"))
    assert run.status() == "new" and run.summary() is None and run.final() is None
    assert run.label() == "vimco S=10"
    run.save_checkpoint({"step": 3})
    assert run.status() == "resume"
    run.write_summary({"steps": 3})
    assert run.status() == "evaluate" and run.summary() == {"steps": 3}
    final = {"log_px": -1.5, "kl": 0.5, "elbo": -2.0}
    run.write_final(final)
    assert run.status() == "done" and run.final() == final
    (run.path / "final.json").write_text('{"log_px": -1.5}')
    with pytest.raises(RunError, match=r"final.json is not a final evaluation \(it lacks kl, elbo"):
        run.final()
    (run.path / "final.json").write_text("{cut")
    with pytest.raises(RunError, match=r"final.json is corrupt .*it was not changed"):
        run.final()
    assert run.log_file == run.path / "sweep.log"


def test_an_old_vimco_run_that_recorded_a_schedule_evaluates_and_plots(old_runs, capsys):
    """tvo 0.1.0 recorded the TVO's settings for every objective (here schedule = "moments" for
    vimco); its own ``tvo eval`` of this run failed with "unknown schedule 'moments'"."""
    recorded = json.loads((old_runs / "vimco-moments" / "config.json").read_text())
    assert recorded["schedule"] == "moments" and recorded["partitions"] == 5
    config = Run.open("vimco-moments").config
    assert (config.schedule, config.partitions, config.beta1) == (None, None, None)
    assert main(["eval", "vimco-moments", "--json", "--particles", "50", "--limit", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["partition"] is None and result["step"] == 20
    assert result["elbo"] == result["tvo_lower"] <= result["log_px"] <= result["tvo_upper"]
    assert main(["plot", "vimco-moments", "--images", "8", "--particles", "20"]) == 0
    assert (old_runs / "vimco-moments" / "plots" / "integrand.png").stat().st_size > 1000


def test_an_old_moments_run_is_evaluated_at_the_partition_it_trained_with(old_runs, capsys):
    saved = torch.load(
        next((old_runs / "tvo-moments" / "checkpoints").glob("*.pt")), weights_only=False
    )["partition"]
    assert not torch.allclose(saved, partition(3, "log", 0.1))  # it moved during training
    assert main(["eval", "tvo-moments", "--json", "--particles", "50", "--limit", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["partition"] == saved.tolist()
    assert result["elbo"] <= result["tvo_lower"] <= result["log_px"] <= result["tvo_upper"]


@pytest.mark.parametrize(("name", "moves"), [("tvo-moments", 5), ("tvo-gp-bandit", 4)])
def test_old_adaptive_runs_resume_to_their_end(old_runs, name, moves):
    """Stopped by 0.1.0 (moments after step 20, moving every 5 steps; gp-bandit after step 14,
    two steps into a round of 4), resumed here to step 30: the partition keeps moving at the
    steps 0.1.0 moved it at, and the bandit adds one reward per round."""
    run = Run.open(name)
    before = run.load_checkpoint()
    assert main(["train", "--resume", name, "--quiet"]) == 0
    after = run.load_checkpoint()
    assert after["step"] == 30 and run.summary()["steps"] == 30
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == list(range(5, 31, 5))
    logged = {r["step"]: r["partition"] for r in rows}
    if name == "tvo-moments":  # moves at 25 and 30, each log row after a move
        assert logged[25] != logged[20] and logged[30] != logged[25]
    else:  # rounds end at steps 16, 20, 24, 28
        assert len(after["schedule"]["bandit"]["rewards"]) == 30 // moves - 1
        assert len(before["schedule"]["bandit"]["rewards"]) == 14 // moves - 1


def test_a_copy_holds_the_newest_checkpoint_and_every_other_file(tmp_path, tiny_data):
    """``Run.copy_to`` (a Tune checkpoint): the newest of the two checkpoints, the other files
    as they are; the copy opens, loads its step and evaluates like the run."""
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--steps", "40",
                 "--checkpoint-every", "10", "--eval-every", "20", "--eval-images", "8",
                 "--eval-particles", "5", "--quiet", "--threads", "1"]) == 0  # fmt: skip
    original = Run.open(run)
    assert len(original.checkpoints()) == 2
    copy = Run.open(original.copy_to(tmp_path / "copy"))
    assert [p.name for p in copy.checkpoints()] == [original.checkpoints()[-1].name]
    assert copy.load_checkpoint()["step"] == 40 and copy.config == original.config
    assert copy.read_metrics() == original.read_metrics()
    assert (tmp_path / "copy" / "summary.json").read_text() == (run / "summary.json").read_text()
    assert main(["eval", str(tmp_path / "copy"), "--particles", "5", "--limit", "4"]) == 0


# --- runs written by 0.2.0 (tests/fixtures/runs-0.2.0: tvo.fit on data they keep, 1 thread) ----


@pytest.mark.parametrize("name", ["tvo-moments", "vimco", "tvo-gp-bandit"])
def test_a_020_run_resumed_from_its_middle_ends_where_020_ended_it(tmp_path, name):
    """0.2.0 trained these to step 20 with checkpoints at 10 and 20. Without the second, this
    version resumes from step 10 (0.2.0's particle stream, its schedule state, its Adam) and
    ends with 0.2.0's parameters and partition at step 20, bit for bit: the one loop and the
    run's own particle generator left a single run's numbers as they were."""
    shutil.copytree(FIXTURES_020 / name, tmp_path / name)
    run = Run.open(tmp_path / name)
    assert run.config.threads is None  # 0.2.0 recorded none
    expected = torch.load(run.checkpoints()[-1], weights_only=False)
    run.checkpoints()[-1].unlink()
    assert main(["train", "--resume", str(run.path), "--quiet", "--threads", "1"]) == 0
    after = Run.open(run.path).load_checkpoint()
    assert after["step"] == expected["step"] == 20
    for key, tensor in expected["model"].items():
        assert torch.equal(after["model"][key], tensor), key
    if expected["partition"] is not None:
        assert torch.equal(after["partition"], expected["partition"])
    assert after["schedule"] == expected["schedule"]


def test_a_020_run_evaluates(tmp_path, capsys):
    shutil.copytree(FIXTURES_020 / "tvo-moments", tmp_path / "r")
    assert main(["eval", str(tmp_path / "r"), "--json", "--particles", "50", "--limit", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["step"] == 20 and len(result["partition"]) == 4
    assert result["elbo"] <= result["tvo_lower"] <= result["log_px"] <= result["tvo_upper"]


def test_the_migration_fills_in_what_earlier_checkpoints_left_implied(tmp_path, tiny_data):
    """A 0.1.0 checkpoint of the moments schedule had no ``schedule`` state, no ``partition`` and
    no ``skipped`` count: the schedule moved at steps divisible by ``adapt_every``, so the count
    follows from the step (7 mod 3 = 1), the partition is the schedule's start."""
    from tvo.config import resolve
    from tvo.runs import migrate_checkpoint

    config = resolve(data=tiny_data, schedule="moments", partitions=3, adapt_every=3)
    old = {"step": 7, "model": {}, "optimiser": {}, "torch_rng": None, "data_rng": None}
    migrated = migrate_checkpoint(old, config)
    assert migrated["schedule"] == {"count": 1} and migrated["skipped"] == 0
    assert torch.equal(migrated["partition"], partition(3, "log", config.beta1))
    assert "schedule" not in old  # the checkpoint as read is left as it was


def test_an_old_config_json_drops_the_settings_that_had_no_effect():
    old = {**TrainConfig().to_dict(), "objective": "vimco", "partitions": 5, "schedule": "moments",
           "beta1": 0.1, "integration": "left", "adapt_every": 100}  # fmt: skip
    config = load(json.dumps(migrate_config(old)))  # as Run reads a config.json
    assert (config.objective, config.partitions, config.schedule, config.beta1) == (
        "vimco", None, None, None)  # fmt: skip
    assert load(save(config)) == config
