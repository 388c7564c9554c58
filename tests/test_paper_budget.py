"""The paper budget's arithmetic (``benchmarks/paper_budget.py``): the kinds cover every run of
``benchmarks/sweeps/paper.toml`` once, the lengths are tvo's own, and the totals and the
document's numbers are those of hand-computed answers. Nothing here is timed."""

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

from tvo.config import TrainConfig
from tvo.data import from_arrays
from tvo.sweep import load
from tvo.train import total_steps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import paper_budget

ROOT = Path(__file__).resolve().parents[1]

MNIST = {"binarized-mnist": 50_000, "mnist": 50_000}


@pytest.fixture(scope="module")
def paper():
    sweep = load(ROOT / "benchmarks" / "sweeps" / "paper.toml")
    return sweep, *paper_budget.kinds(sweep, MNIST, group=16)


def test_the_kinds_cover_every_run_of_the_paper_sweep_once(paper):
    sweep, rows, alone, grouped = paper
    # 3 seeds of: sbn 3 models × 3 S × 6 objectives (162), sbn-grid 4 K × 6 β1 + 3 K × 2
    # adaptive schedules (90, of which the 6 runs of S10 K2 β1 0.2 and K5 β1 0.05 are sbn's),
    # continuous 3 S × (2 TVOs × 3 β1 + 3 others) (81)
    assert len(sweep.runs) == 327
    assert sum(r["runs"] for r in rows) == 327
    assert sum(m for _, m in alone) == sum(m for _, m in grouped) == 327
    assert len(alone) == 327
    # 54 sbn kinds, 8 more in the grid (K10, K50, 3 K × 2 schedules), 15 continuous ones
    assert len(rows) == 54 + 8 + 15
    for row in rows:
        assert sum(row["group_sizes"]) == row["runs"]
        assert sum(row["experiments"].values()) == row["runs"]
        assert max(row["group_sizes"]) <= 16
    by = paper_budget.by_experiment([dict(r, hours_alone=0, hours_grouped=0, eval_hours=0)
                                     for r in rows])  # fmt: skip
    assert {k: v["runs"] for k, v in by.items()} == {"sbn": 162, "sbn-grid": 84, "continuous": 81}
    # the grid's 18 runs of linear_1 S10 K=2 (6 β1 × 3 seeds) form one group of 16 and one of 2
    k2 = next(r for r in rows if r["kind"] == "linear_1 tvo S=10 K=2 B=24")
    assert sorted(k2["group_sizes"]) == [2, 16]
    # tvo sweep starts the largest S · B · steps first: a Gaussian run at S = 50 (250,000
    # steps at batch 1000: 1.25e10 particle-images), not an SBN one (at most 4.8e9)
    first = rows[alone[0][0]]["settings"]
    assert (first["model"], first["particles"]) == ("gaussian", 50)


def test_recompute_replans_the_units_of_the_measured_kinds(paper):
    """A JSON measured under an earlier plan gets the units of today's, without loading data;
    a sweep whose kinds changed since is refused."""
    _, rows, alone, grouped = paper
    data = {"sweep": "benchmarks/sweeps/paper.toml", "group": 16, "kinds": rows,
            "order_alone": alone[::-1], "order_grouped": grouped[::-1]}  # fmt: skip
    paper_budget.replan(data)
    assert (data["order_alone"], data["order_grouped"]) == (alone, grouped)
    data["kinds"] = rows[1:]
    with pytest.raises(ValueError, match="no longer has the kinds"):
        paper_budget.replan(data)


def test_lengths_and_evaluations_are_tvos_own(paper):
    _, rows, _, _ = paper
    gaussian = [r for r in rows if r["settings"]["model"] == "gaussian"]
    sbn = [r for r in rows if r["settings"]["model"] != "gaussian"]
    # 5000 epochs of the 50,000 training images at batch 1000; evaluations every 5000 steps
    assert {r["steps"] for r in gaussian} == {5000 * 50_000 // 1000}
    assert {r["evaluations"] for r in gaussian} == {50}
    assert {r["steps"] for r in sbn} == {4_000_000}
    assert {r["evaluations"] for r in sbn} == {40}
    # a length that is not a whole number of batches, on a real dataset: ⌈2.5 · 10 / 4⌉ = 7
    config = dataclasses.replace(TrainConfig(), steps=None, epochs=2.5, batch_size=4,
                                 eval_every=3)  # fmt: skip
    data = from_arrays({"train": torch.zeros(10, 3), "valid": torch.zeros(2, 3)})
    assert paper_budget.run_steps(config, len(data.train)) == total_steps(config, data) == 7
    assert paper_budget.evaluations(config, 7) == 3  # after steps 3, 6 and the last, 7


def hand_made() -> tuple[list[dict], list, list]:
    """Two kinds whose budget is worked out by hand in the tests below."""
    a = {"kind": "a", "experiments": {"sbn": 3}, "runs": 3, "steps": 1000, "single_ms": 2.0,
         "group_sizes": [3], "group_ms": {"3": 4.5}, "evaluations": 2, "valid_s": 1.0,
         "test_s": 10.0}  # fmt: skip
    b = {"kind": "b", "experiments": {"sbn": 1, "continuous": 1}, "runs": 2, "steps": 360_000,
         "single_ms": 1000.0, "group_sizes": [2], "group_ms": {"2": 2400.0}, "evaluations": 0,
         "valid_s": 0.0, "test_s": 0.0}  # fmt: skip
    alone = [[1, 1], [1, 1], [0, 1], [0, 1], [0, 1]]  # the longest first, as tvo sweep's plan
    return [a, b], alone, [[1, 2], [0, 3]]


def test_the_totals_are_the_sums_of_runs_steps_and_milliseconds():
    rows, alone, grouped = hand_made()
    totals = paper_budget.budget(rows)
    # a alone: 3 runs × (1000 steps × 2 ms + 2 validations × 1 s + a 10 s test) = 42 s;
    # a grouped: one group of 3, 1000 × 4.5 ms, and the same 3 × 12 s of evaluation = 40.5 s
    # b alone: 2 × 360,000 × 1 s = 200 h; grouped: 360,000 × 2.4 s = 240 h (a group that loses)
    assert totals["hours_alone"] == pytest.approx(200 + 42 / 3600, rel=1e-12)
    assert totals["hours_grouped"] == pytest.approx(240 + 40.5 / 3600, rel=1e-12)
    assert totals["hours_best"] == pytest.approx(200 + 40.5 / 3600, rel=1e-12)  # b alone
    assert totals["eval_hours"] == pytest.approx(36 / 3600, rel=1e-12)
    assert totals["runs"] == 5 and totals["run_steps"] == 3 * 1000 + 2 * 360_000
    # 2 jobs: b's two runs (100 h each) side by side, then a's three (14 s each) on the first
    # job free: 360,000 + 28 s
    assert paper_budget.wall(rows, alone, 2) * 3600 == pytest.approx(360_028, rel=1e-12)
    assert paper_budget.wall(rows, grouped, 2) * 3600 == pytest.approx(864_000, rel=1e-12)
    assert paper_budget.wall(rows, alone, 1) * 3600 == pytest.approx(720_042, rel=1e-12)
    # started shortest first instead, a's three runs (14 s each) end before b's two begin
    shortest = [[0, 1], [0, 1], [0, 1], [1, 1], [1, 1]]
    assert paper_budget.wall(rows, shortest, 2) * 3600 == pytest.approx(360_028, rel=1e-12)
    assert paper_budget.longest_first(rows, shortest) == alone
    by = paper_budget.by_experiment(rows)
    assert by["continuous"]["hours_alone"] == pytest.approx(100, rel=1e-12)  # half of b
    assert by["sbn"]["hours_grouped"] == pytest.approx(120 + 40.5 / 3600, rel=1e-12)


def test_the_document_shows_the_jsons_numbers(tmp_path):
    rows, alone, grouped = hand_made()
    totals = paper_budget.summarise(rows, alone, grouped, 2)
    data = {"group": 16, "jobs": 2, "date": "2026-12-03T12:00:00+00:00", "seconds": 60.0,
            "machine": {"processor": "x86_64", "cpus": 2, "torch": "2.x", "threads": 1},
            "load_before": [2.5, 2, 2], "load_after": [3.0, 2, 2], "totals": totals,
            "experiments": paper_budget.by_experiment(rows), "kinds": rows,
            "running": {"kind": "a", "measured_ms": 2.0, "sweep_ms": [2.25]}}  # fmt: skip
    rows[1]["group_error"] = "this model cannot be trained in a group"
    path = tmp_path / "budget.json"
    path.write_text(json.dumps(data))
    text = "\n".join(paper_budget.report_lines(path))
    # sbn: a's 3 runs and half of b's 2 (1 run): 100 h alone, 120 h grouped
    assert "| sbn | 2 | 4 | 3.63e+05 | 100 | 120 | 0 |" in text
    assert "| continuous | 1 | 1 | 3.60e+05 | 100 | 120 | 0 |" in text
    assert "| **all** | 2 | 5 | 7.23e+05 | **200** | **240** | 0 |" in text
    assert "Every run alone: 200 CPU-hours, 4.2 d of wall clock at 2 jobs" in text
    assert "in groups of up to 16: 240 CPU-hours, 10.0 d" in text  # 864,000 s
    assert "2.00 ms, against 2.25 ms per step" in text
    assert (
        "longest first by their measured times, the same units would take 4.2 d alone and "
        "10.0 d grouped" in text
    )
    assert "whichever is less): 200 CPU-hours" in text
    assert "When this was measured, 1 kind could not be grouped (b)" in text
    assert "benchmarks/gpu_check.sh" in text and "(sizes 2, 3)" in text
