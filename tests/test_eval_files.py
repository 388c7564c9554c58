"""Issue #25, item 2: an evaluation's file is named by every setting that changes its result,
and ``--limit`` records the images actually evaluated."""

import json

import pytest

from tvo.cli import main
from tvo.runs import Run

FAST = ["--steps", "10", "--eval-every", "10", "--eval-images", "4", "--eval-particles", "5",
        "--log-every", "10", "--checkpoint-every", "10", "--batch-size", "8",
        "--quiet"]  # fmt: skip


@pytest.fixture
def trained(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), *FAST]) == 0
    return run


def saved(run) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (run / "evaluations").glob("*.json")}


def test_two_ais_evaluations_that_differ_only_in_kernel_or_schedule_keep_two_files(trained):
    ais = ["eval", str(trained), "--method", "ais", "--limit", "3", "--ais-steps", "5",
           "--chains", "2", "--json", "--threads", "1"]  # fmt: skip
    assert main([*ais, "--kernel", "independent"]) == 0
    assert main([*ais, "--kernel", "flip", "--schedule", "linear"]) == 0
    assert main([*ais, "--kernel", "flip", "--schedule", "linear"]) == 0  # the same: replaces
    files = saved(trained)
    assert len(files) == 2, sorted(files)
    kernels = sorted(report["kernel"] for report in files.values())
    assert kernels[0] != kernels[1] and {r["schedule"] for r in files.values()} == {
        "sigmoid",
        "linear",
    }


def test_the_identity_covers_any_setting_a_method_records_and_no_result():
    from tvo.runs import evaluation_id

    report = {"split": "test", "method": "smc", "steps": 5, "chains": 2, "log_px": -3.0,
              "seconds": 1.0, "step": 10, "num_images": 3, "seed": 0}  # fmt: skip
    same_settings = {**report, "log_px": -4.0, "seconds": 2.0, "step": 20}
    assert evaluation_id(report) == evaluation_id(same_settings)
    assert evaluation_id(report) != evaluation_id({**report, "resample": "systematic"})
    assert evaluation_id(report) != evaluation_id({**report, "leapfrog": 3})


def test_a_limit_above_the_split_is_saved_as_all_of_it(trained, capsys):
    capsys.readouterr()
    args = ["eval", str(trained), "--particles", "5", "--json", "--threads", "1"]
    assert main([*args, "--limit", "100000"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert everything["limit"] is None and everything["num_images"] == 16
    assert main(args) == 0  # the same evaluation without --limit: the same file
    assert main([*args, "--limit", "3"]) == 0
    names = sorted(saved(trained))
    assert len(names) == 2 and sum("-first3-" in n for n in names) == 1, names
    assert not any("first100000" in n for n in names)
    assert Run.open(trained).write_evaluation(everything).name in names
