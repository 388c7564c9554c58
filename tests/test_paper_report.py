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


def test_the_ais_section_comes_from_the_ais_benchmark(with_bounds, tmp_path, monkeypatch):
    """``benchmarks/ais_eval.py`` (with its rows cut down, on the tiny sweep's discrete and
    linear-Gaussian runs) writes the JSON whose numbers the AIS table shows; without the file
    the document has no AIS section, and the paper-code differences are there either way."""
    import ais_eval

    from tvo.evaluate.kernels import HMC, FlipMH

    loaded, out = with_bounds
    toy = next(out / n for n in loaded.runs if n.startswith("discrete_toy-tvo-"))
    gauss = next(out / n for n in loaded.runs if n.startswith("linear_gaussian-tvo-"))
    monkeypatch.setattr(ais_eval, "SBN_ROWS", [("flip", FlipMH(1), 5, 3)])
    monkeypatch.setattr(ais_eval, "SBN_BDMC", [("flip", FlipMH(1), 4, 2)])
    monkeypatch.setattr(ais_eval, "VAE_ROWS", [("hmc L=2", HMC(leapfrog_steps=2), 5, 3)])
    monkeypatch.setattr(ais_eval, "VAE_BDMC", [("hmc L=2", HMC(leapfrog_steps=2), 4, 2)])
    file = tmp_path / "ais.json"
    assert ais_eval.main(["--sbn", str(toy), "--vae", str(gauss), "--images", "4",
                          "--bdmc-data", "3", "--out", str(file)]) == 0  # fmt: skip
    record = json.loads(file.read_text())
    toy_rows = record["models"]["sbn"]["rows"]
    assert [r["method"] for r in toy_rows] == ["iwae", "ais"] and toy_rows[1]["evaluations"] == 15
    # HMC: 20 warm-up moves, then 2 moves at each of 4 steps, 2 leapfrog steps a move, 3 chains
    assert record["models"]["vae"]["rows"][1]["gradients"] == 3 + (20 + 4 * 2) * 2 * 3
    text = "\n".join(paper_report.ais_section(file))
    assert f"| iwae | – | – | 5000 | 5000 | 0 | {toy_rows[0]['seconds']:.1f} | " in text
    ais = toy_rows[1]
    assert f"| {ais['log_px']:.2f} ± {ais['stderr']:.2f} | {ais['acceptance']:.2f} |" in text
    gap = record["models"]["vae"]["bdmc"][0]["gap"]
    assert "| linear_gaussian | hmc L=2 | 4 | 2 |" in text and f"| {gap:.2f} |" in text
    assert paper_report.ais_section(tmp_path / "missing.json") == []
    document = paper_report.write(loaded, out, tmp_path / "docs" / "RESULTS.md", None, None)
    text = document.read_text()
    assert "annealed importance sampling" not in text
    assert "## What our defaults change from the paper's code" in text
    assert "7.56 ± 0.16 nats higher (−113.90 against\n−121.47" in text
