"""The TVO paper's document (``benchmarks/paper_report.py``): the claim-1 bounds are ordered as
the theory says, and the document's numbers are the runs' own."""

import json
import statistics
import sys
from pathlib import Path

import pytest

from tvo.config import ConfigError
from tvo.sweep import load

from tests.helpers import write_sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import paper_report


@pytest.fixture(scope="module")
def with_bounds(finished):
    """The tiny sweep with its claim-1 evaluation (``bounds.json``) computed."""
    loaded, out = finished
    paper_report.bounds(loaded, out)
    return loaded, out


def test_bounds_are_ordered_as_the_theory_says(with_bounds):
    _, out = with_bounds
    b = json.loads((out / "bounds.json").read_text())
    g = b["integrand"]
    assert all(lo <= hi + 1e-9 for lo, hi in zip(g, g[1:]))  # ĝ rises with β
    assert g[0] <= b["iwae"]["10"] <= b["log_px"] <= g[-1]  # ELBO ≤ IWAE_10 ≤ log p̂ ≤ EUBO


def test_the_report_is_built_from_the_runs(with_bounds, tmp_path):
    loaded, out = with_bounds
    cost = tmp_path / "cost.jsonl"
    rows = [{"model": "linear_2", "objective": "tvo", "S": 2, "K": k, "batch": 24,
             "ms_per_step": ms} for k, ms in ((2, 1.0), (50, 1.2))]  # fmt: skip
    cost.write_text("".join(json.dumps(r) + "\n" for r in rows))
    document = paper_report.write(loaded, out, tmp_path / "docs" / "RESULTS.md", cost)
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


def test_the_bounds_run_must_be_one_of_the_sweep(tmp_path, tiny_data):
    sweep = load(
        write_sweep(
            tmp_path, tiny_data, '[[experiment]]\nname = "a"\n[report.bounds]\nrun = "nope"'
        )
    )
    with pytest.raises(ConfigError, match=r"\[report.bounds\] run must name a run"):
        paper_report.bounds(sweep, tmp_path)
