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
    # the TVO bounds of each run's own partition, after the ELBO: TVO_L ≤ log p̂ ≤ TVO_U
    tvo = [json.loads((out / n / "final.json").read_text())
           for n in loaded.experiments["sbn"]
           if (loaded.runs[n].objective, loaded.runs[n].partitions, loaded.runs[n].beta1)
           == ("tvo", 2, 0.1)]  # fmt: skip
    assert len(tvo) == 2
    bounds = [
        f"{statistics.fmean(f[k] for f in tvo):.2f} ± {statistics.stdev(f[k] for f in tvo):.2f}"
        for k in ("elbo", "tvo_lower", "tvo_upper")
    ]
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| discrete_toy S=10 tvo K=2 log β1=0.1 |")
    )
    assert " | ".join(bounds) in row
    assert all(f["elbo"] <= f["tvo_lower"] <= f["log_px"] <= f["tvo_upper"] for f in tvo)


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


def _vimco_values(loaded, out):
    names = [n for n in loaded.experiments["sbn"] if "-vimco-" in n]
    return {loaded.runs[n].seed: json.loads((out / n / "final.json").read_text())["log_px"]
            for n in names}  # fmt: skip


def test_compare_counts_the_same_runs_in_two_folders_once(finished, tmp_path, capsys):
    """Issue 24, item 2: two sweeps' folders holding the same seeds of a setting are not four
    seeds; the duplicates are named and the aggregate is the one folder's."""
    import shutil

    loaded, out = finished
    copy = tmp_path / "again"
    shutil.copytree(out, copy)
    assert main(["compare", str(out), str(copy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    values = list(_vimco_values(loaded, out).values())
    expected = f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"
    row = next(line for line in lines if line.startswith("discrete_toy S=10 vimco "))
    assert "2/2" in row and expected in row
    repeats = [line for line in lines if "(same settings and seed): counted once" in line]
    assert len(repeats) == len(loaded.runs)
    assert all(line.startswith(str(copy)) for line in repeats)


def test_settings_that_differ_beyond_the_label_are_not_pooled(finished, tmp_path, capsys):
    """Runs whose settings differ in what the short label leaves out (here the learning rate)
    are two settings, each with its own seeds, labelled apart."""
    import shutil

    loaded, out = finished
    other = tmp_path / "other"
    names = [n for n in loaded.experiments["sbn"] if "-vimco-" in n]
    for name in names:
        shutil.copytree(out / name, other / name)
        file = other / name / "config.json"
        changed = json.loads(file.read_text())
        changed["lr"] = 0.5
        file.write_text(json.dumps(changed))
    assert main(["compare", *(str(out / n) for n in names), str(other)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("discrete_toy S=10 vimco lr=0.5 ") and " 2/2 " in line
               for line in lines)  # fmt: skip
    assert any(line.startswith("discrete_toy S=10 vimco lr=0.0003 ") and " 2/2 " in line
               for line in lines)  # fmt: skip


def test_compare_against_a_setting_gives_the_paired_difference(finished, capsys):
    """Issue 24, item 3: the paired difference over shared seeds, as scipy's ttest_rel."""
    from scipy import stats

    from tvo.runs import Run

    loaded, out = finished
    finals = {}
    for name in loaded.experiments["sbn"]:
        run = Run.open(out / name)
        finals.setdefault(report.label(run.config), {})[run.config.seed] = run.final()["log_px"]
    assert main(["compare", str(out), "--against", "S=10 vimco"]) == 0
    text = capsys.readouterr().out
    assert "paired t-test" in text and "Δ = setting − discrete_toy S=10 vimco" in text
    rws, vimco = finals["discrete_toy S=10 rws"], finals["discrete_toy S=10 vimco"]
    expected = stats.ttest_rel([rws[0], rws[1]], [vimco[0], vimco[1]])
    interval = expected.confidence_interval()
    d = [rws[0] - vimco[0], rws[1] - vimco[1]]
    row = [line for line in text.splitlines() if line.startswith("discrete_toy S=10 rws ")][-1]
    assert row.split()[3:] == ["paired", "t", "2", "pairs", f"{statistics.fmean(d):+.2f}",
                               f"{statistics.stdev(d) / 2**0.5:.2f}", f"[{interval.low:+.2f},",
                               f"{interval.high:+.2f}]", f"{expected.pvalue:.3g}"]  # fmt: skip


def test_report_against_a_setting_and_a_bad_setting(finished, capsys):
    loaded, out = finished
    assert main(["report", str(loaded.path), "--runs", str(out), "--against", "S=10 vimco"]) == 0
    text = capsys.readouterr().out
    assert "| discrete_toy S=10 rws | paired t | 2 pairs |" in text
    assert "(S=10 vimco is not a setting of this experiment)" in text  # sbn-grid has none
    assert main(["report", str(loaded.path), "--runs", str(out), "--against", "S=10"]) == 2
    assert "matches several settings" in capsys.readouterr().err


def test_a_runs_test_result_is_its_newest_importance_sampling_evaluation(tmp_path, tiny_data):
    """``tvo compare`` of a run evaluated by ``tvo eval`` (IS) and then by ``--method smc``
    crashed formatting the SMC result's missing KL̂ (found trying issue #24 as a new user): the
    test columns take the newest evaluation that measured them, and a missing value is left out
    of a mean. An SMC file is named by its particles, not ``TNone-CNone``."""
    from tvo.config import resolve
    from tvo.report import mean_sd, test_result
    from tvo.runs import Run

    run = Run.create(tmp_path / "r", resolve(data=tiny_data))
    common = {"split": "test", "limit": None, "seed": 0, "step": 10, "partition": None}
    run.write_evaluation({**common, "method": "is", "particles": 50, "log_px": -5.0, "kl": 0.5,
                          "elbo": -5.5})  # fmt: skip
    smc = run.write_evaluation({**common, "method": "smc", "particles": 20, "log_px": -4.9,
                                "kl": None, "elbo": None})  # fmt: skip
    assert smc.name.startswith("test-smc-N20-seed0")
    assert test_result(run)["kl"] == 0.5
    assert mean_sd([0.5, None]) == "0.50"
