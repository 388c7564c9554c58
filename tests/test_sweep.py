"""``tvo sweep`` and ``tvo report`` on a tiny dataset: every run once, finished runs skipped,
unfinished ones resumed to the same result, bad files refused, and a report whose numbers are
the runs' own."""

import dataclasses
import json
import statistics
import textwrap

import pytest

from tvo import report, sweep
from tvo.cli import main
from tvo.config import ConfigError
from tvo.runs import Run
from tvo.train import train

SETTINGS = """
[evaluation]
particles = 40
[defaults]
data = "{data}"
model = "discrete_toy"
steps = 20
eval_every = 10
eval_particles = 5
log_every = 10
checkpoint_every = 10
batch_size = 8
"""

EXPERIMENTS = """
[[experiment]]
name = "sbn"
seeds = [0, 1]
grid = [{objective = "tvo", partitions = 2}, {objective = ["vimco", "rws"]}]
[[experiment]]
name = "sbn-grid"
seeds = [0, 1]
grid = [{objective = "tvo", partitions = [2, 3]}]
[[experiment]]
name = "continuous"
seeds = [0, 1]
grid = [{model = "linear_gaussian", objective = ["tvo", "vae", "iwae"]}]
[bounds]
run = "discrete_toy-tvo-S10-K2-log-b0.1-tiny-seed0"
partitions = [2, 4]
beta1 = [0.1]
particles = 500
iwae = [10]
"""


def write(tmp_path, data, body, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(SETTINGS.format(data=data) + textwrap.dedent(body))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny sweep, run once for the module: (sweep, runs folder)."""
    import numpy as np

    tmp = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(0)
    images = (rng.random((96, 16)) < 0.4).astype(np.float32)
    data = tmp / "tiny.npz"
    np.savez(data, train=images[:64], valid=images[64:80], test=images[80:])
    loaded = sweep.load(write(tmp, data, EXPERIMENTS))
    out = tmp / "runs"
    assert sweep.run(loaded, out, jobs=2, quiet=True) == 0
    return loaded, out


def test_every_run_is_trained_once_and_evaluated(finished):
    loaded, out = finished
    # sbn's tvo K=2 is also in sbn-grid: 16 grid points, 14 distinct runs
    assert len(loaded.runs) == 14
    assert set(loaded.experiments["sbn"]) & set(loaded.experiments["sbn-grid"])
    for name in loaded.runs:
        final = json.loads((out / name / "final.json").read_text())
        assert final["num_images"] == 16 and final["particles"] == 40 and final["step"] == 20
        assert final["elbo"] <= final["tvo_lower"] <= final["log_px"] <= final["tvo_upper"]


def test_a_second_sweep_skips_finished_runs(finished):
    loaded, out = finished
    before = {n: (out / n / "final.json").stat().st_mtime_ns for n in loaded.runs}
    assert sweep.run(loaded, out, jobs=2, quiet=True) == 0
    assert before == {n: (out / n / "final.json").stat().st_mtime_ns for n in loaded.runs}
    invocations = json.loads((out / "sweep.json").read_text())["invocations"]
    assert len(invocations) == 2 and invocations[1]["seconds"] < invocations[0]["seconds"]


def test_bounds_are_ordered_as_the_theory_says(finished):
    _, out = finished
    b = json.loads((out / "bounds.json").read_text())
    g = b["integrand"]
    assert all(lo <= hi + 1e-9 for lo, hi in zip(g, g[1:]))  # ĝ rises with β
    assert g[0] <= b["iwae"]["10"] <= b["log_px"] <= g[-1]  # ELBO ≤ IWAE_10 ≤ log p̂ ≤ EUBO


def test_an_unfinished_run_is_resumed_to_the_uninterrupted_result(finished, tmp_path):
    loaded, out = finished
    name = "discrete_toy-vimco-S10-tiny-seed1"
    single = sweep.Sweep(loaded.path, loaded.evaluation, {name: loaded.runs[name]}, {"x": [name]})
    sweep.prepare(single, tmp_path)
    assert train(Run.open(tmp_path / name), quiet=True, stop_after=10)["steps"] == 10
    assert sweep.status(tmp_path / name) == "resume"
    assert sweep.run(single, tmp_path, jobs=1, quiet=True) == 0
    resumed = json.loads((tmp_path / name / "final.json").read_text())
    straight = json.loads((out / name / "final.json").read_text())
    assert resumed["log_px"] == straight["log_px"] and resumed["kl"] == straight["kl"]
    assert [r["step"] for r in Run.open(tmp_path / name).read_metrics()] == [10, 20]


def test_a_run_folder_with_other_settings_is_refused_and_left_alone(finished, tmp_path):
    loaded, out = finished
    name = next(iter(loaded.runs))
    other = dataclasses.replace(loaded.runs[name], lr=0.5)
    changed = sweep.Sweep(loaded.path, loaded.evaluation, {name: other}, {"x": [name]})
    before = (out / name / "config.json").read_bytes()
    with pytest.raises(ConfigError, match=r"settings differ from the sweep's \(lr\)"):
        sweep.prepare(changed, out)
    assert (out / name / "config.json").read_bytes() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[experiment]]\nname = "a"\ngrid = [{objectiv = "tvo"}]',
         r"experiment 'a'.*unknown setting 'objectiv'"),
        ('[[experiment]]\nname = "a"\ngrid = [{objective = ["tvo", "foo"]}]',
         r"experiment 'a': unknown objective 'foo'"),
        ('[[experiment]]\nname = "a"\n[bounds]\nrun = "nope"', r"\[bounds\] run must name a run"),
        ('[experimentt]\nname = "a"', r"unknown setting 'experimentt'"),
        ("", r"no \[\[experiment\]\] tables"),
    ],
)  # fmt: skip
def test_bad_sweep_files_are_clear_errors(tmp_path, tiny_data, body, message):
    with pytest.raises(ConfigError, match=message):
        sweep.load(write(tmp_path, tiny_data, body))


def test_the_command_reports_a_bad_file_and_lists_runs(tmp_path, tiny_data, capsys):
    bad = write(tmp_path, tiny_data, '[[experiment]]\nname = "a"\nseeds = [0]\n'
                'grid = [{particles = 0}]')  # fmt: skip
    assert main(["sweep", str(bad)]) == 2
    assert "particles (S) must be an integer ≥ 2, got 0" in capsys.readouterr().err
    good = write(tmp_path, tiny_data, '[[experiment]]\nname = "a"\nseeds = [0, 1]')
    assert main(["sweep", str(good), "--dry-run", "--out", str(tmp_path / "r")]) == 0
    listing = capsys.readouterr().out
    assert listing.count("new  discrete_toy-tvo") == 2 and not (tmp_path / "r").exists()


def test_the_report_is_built_from_the_runs(finished, tmp_path):
    loaded, out = finished
    cost = tmp_path / "cost.jsonl"
    rows = [{"model": "linear_2", "objective": "tvo", "S": 2, "K": k, "batch": 24,
             "ms_per_step": ms} for k, ms in ((2, 1.0), (50, 1.2))]  # fmt: skip
    cost.write_text("".join(json.dumps(r) + "\n" for r in rows))
    document = report.write(loaded, out, tmp_path / "docs" / "RESULTS.md", cost)
    text = document.read_text()
    finals = [json.loads((out / n / "final.json").read_text())
              for n in loaded.experiments["sbn"] if "-vimco-" in n]  # fmt: skip
    values = [f["log_px"] for f in finals]
    expected = f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"
    assert f"| discrete_toy S=10 vimco | 2 | {expected} |" in text
    for heading in ("Claim 1", "Claim 2", "Claim 3", "Claim 4", "β1 × K grid"):
        assert f"## {heading}" in text or heading in text
    assert "1.20 |" in text and "1.20× as much, while K grows 25-fold" in text
    for png in ("bounds", "sbn_curves", "sbn_grid_curves", "continuous_curves", "cost_against_k"):
        assert (tmp_path / "docs" / "images" / "results" / f"{png}.png").stat().st_size > 1000
        assert f"(images/results/{png}.png)" in text
