"""``tvo report``: any sweep's results, each setting's final metrics over its seeds."""

import json
import statistics

from tvo import report
from tvo.cli import main


def test_the_report_of_a_sweep_is_its_runs_own_numbers(finished, capsys):
    loaded, out = finished
    assert main(["report", str(loaded.path), "--runs", str(out)]) == 0
    text = capsys.readouterr().out
    for experiment, names in loaded.experiments.items():
        assert f"## {experiment} ({len(names)} of {len(names)} runs finished)" in text
    finals = [json.loads((out / n / "final.json").read_text())
              for n in loaded.experiments["sbn"] if "-vimco-" in n]  # fmt: skip
    values = [f["log_px"] for f in finals]
    expected = f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"
    assert f"| discrete_toy S=10 vimco | 2 | {expected} |" in text
    assert "| discrete_toy S=10 tvo K=2 log β1=0.1 | 2 |" in text


def test_the_report_is_written_only_where_asked_and_never_over_a_file(finished, tmp_path, capsys):
    loaded, out = finished
    target = tmp_path / "RESULTS.md"
    target.write_text("committed")
    args = ["report", str(loaded.path), "--runs", str(out), "--out", str(target)]
    assert main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert target.read_text() == "committed"
    assert main([*args, "--overwrite"]) == 0
    assert target.read_text() == report.document(loaded, out)


def test_compare_takes_a_sweeps_folder_and_aggregates_its_seeds(finished, capsys):
    loaded, out = finished
    assert main(["compare", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.startswith(str(out))]) == len(loaded.runs)
    finals = [json.loads((out / n / "final.json").read_text())
              for n in loaded.experiments["sbn"] if "-vimco-" in n]  # fmt: skip
    values = [f["log_px"] for f in finals]
    expected = f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"
    row = next(line for line in lines if line.startswith("discrete_toy S=10 vimco "))
    assert "2/2" in row and expected in row
    se = statistics.stdev(values) / 2**0.5
    text = report.document(loaded, out)
    assert f"| discrete_toy S=10 vimco | 2 | {expected} | {se:.2f} |" in text


def test_the_test_result_of_a_run_is_never_another_splits(tiny_data, tmp_path, capsys):
    """A ``tvo eval`` of the validation split or BDMC's simulated points kept after the test
    evaluation is not shown as the run's test result."""
    from tvo.runs import Run

    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--model", "discrete_toy",
                 "--steps", "10", "--batch-size", "8", "--eval-every", "10", "--eval-images",
                 "4", "--eval-particles", "5", "--quiet", "--threads", "1"]) == 0  # fmt: skip
    capsys.readouterr()
    evaluate = ["eval", str(run), "--particles", "5", "--threads", "1", "--json"]
    assert main([*evaluate, "--split", "test"]) == 0
    test = json.loads(capsys.readouterr().out)
    assert main([*evaluate, "--split", "valid"]) == 0
    assert main(["eval", str(run), "--method", "bdmc", "--ais-steps", "3", "--chains", "2",
                 "--limit", "4", "--threads", "1"]) == 0  # fmt: skip
    capsys.readouterr()
    assert report.test_result(Run.open(run))["log_px"] == test["log_px"]
