"""Both budgets side by side (``benchmarks/two_budgets.py``): the TVO's leads and their change
with training are the paired differences of the runs' own numbers, signed so that a positive
number favours the TVO, and each setting keeps its colour across budgets in the curves."""

import math
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from tvo import plots
from tvo.report import Group

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import two_budgets

TVO, VIMCO = "linear_1 S=10 tvo K=2", "linear_1 S=10 vimco"


def group(label: str, objective: str, log_px: dict, kl: dict, steps: int) -> Group:
    config = SimpleNamespace(model="linear_1", objective=objective, steps=steps, epochs=None)
    seeds = sorted(log_px)
    return Group(label, config, [f"{objective}-seed{s}" for s in seeds],
                 [{"log_px": log_px[s], "kl": kl[s]} for s in seeds],
                 [{"steps": steps, "total_steps": steps} for _ in seeds],
                 [[{"step": steps // 2, "log_px": log_px[s] - 5, "kl": kl[s] + 1},
                   {"step": steps, "log_px": log_px[s], "kl": kl[s]}] for s in seeds],
                 seeds)  # fmt: skip


@pytest.fixture
def budgets():
    short = {TVO: group(TVO, "tvo", {0: -117.0, 1: -116.5, 2: -117.2}, {0: 21.0, 1: 21.5, 2: 20.9},
                        10_000),
             VIMCO: group(VIMCO, "vimco", {0: -118.1, 1: -118.0, 2: -118.9},
                          {0: 22.0, 1: 23.0, 2: 21.5}, 10_000)}  # fmt: skip
    long = {TVO: group(TVO, "tvo", {0: -107.0, 1: -107.1, 2: -106.9}, {0: 15.0, 1: 15.2, 2: 15.1},
                       100_000),
            VIMCO: group(VIMCO, "vimco", {0: -110.0, 1: -110.6, 2: -109.1},
                         {0: 17.0, 1: 16.0, 2: 18.0}, 100_000)}  # fmt: skip
    return (two_budgets.Budget("laptop", None, Path("a"), short),
            two_budgets.Budget("ten times", None, Path("b"), long))  # fmt: skip


def test_the_lead_is_the_paired_difference_signed_for_the_tvo(budgets):
    short, _ = budgets
    tvo, vimco = short.found[TVO], short.found[VIMCO]
    d = [-117.0 + 118.1, -116.5 + 118.0, -117.2 + 118.9]
    lead = two_budgets.gap(tvo, vimco, "log_px")
    assert lead.mean == pytest.approx(statistics.fmean(d))
    assert lead.se == pytest.approx(statistics.stdev(d) / math.sqrt(3))
    t = stats.ttest_rel([-117.0, -116.5, -117.2], [-118.1, -118.0, -118.9])
    assert lead.p == pytest.approx(t.pvalue)
    kl = two_budgets.gap(tvo, vimco, "kl")  # lower is better: vimco − tvo
    assert kl.mean == pytest.approx(statistics.fmean([1.0, 1.5, 0.6]))


def test_the_change_of_the_lead_pairs_each_seed_across_budgets(budgets):
    short, long = budgets
    pairs = [(b.found[TVO], b.found[VIMCO]) for b in (short, long)]
    change = two_budgets.gap_change(*pairs, "log_px")
    d_short = [1.1, 1.5, 1.7]
    d_long = [3.0, 3.5, 2.2]
    c = [b - a for a, b in zip(d_short, d_long)]
    assert change.mean == pytest.approx(statistics.fmean(c))
    assert change.se == pytest.approx(statistics.stdev(c) / math.sqrt(3))
    assert change.sizes == (3,)


def test_verdicts_follow_the_95_percent_interval(budgets):
    short, long = budgets
    lead = two_budgets.gap(short.found[TVO], short.found[VIMCO], "log_px")
    assert lead.low > 0 and two_budgets.verdict(lead) == "TVO clearly better"
    flipped = two_budgets.gap(short.found[VIMCO], short.found[TVO], "log_px")
    assert two_budgets.verdict(flipped) == "TVO clearly worse"
    pairs = [(b.found[TVO], b.found[VIMCO]) for b in (short, long)]
    change = two_budgets.gap_change(*pairs, "log_px")  # +1.47 ± 0.48: its interval holds 0
    assert change.low < 0 < change.high and two_budgets.trend(change) == "no clear change"
    assert two_budgets.verdict(None) == "too few seeds"


def test_tables_carry_both_budgets_numbers(budgets):
    short, long = budgets
    rows = two_budgets.settings_table(short, long, [TVO, VIMCO])
    assert rows[2].startswith(f"| {TVO} | 10,000 steps | {short.found[TVO].cell('log_px')} |")
    assert f"| 100,000 steps | {long.found[TVO].cell('log_px')} |" in rows[2]
    gaps = two_budgets.gap_table(short, long, TVO, [VIMCO], "log_px")
    assert gaps[2].startswith(f"| {VIMCO} | +1.43 ± 0.18 ") and "TVO clearly better" in gaps[2]
    text = "\n".join(two_budgets.summary(short, long, TVO, [VIMCO]))
    assert f"**laptop** (log p̂(x)): TVO clearly better than {VIMCO}." in text


def test_budget_curves_keep_a_setting_s_colour_on_a_log_step_axis(budgets, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    figures = []
    save = plots._save
    monkeypatch.setattr(
        plots,
        "_save",
        lambda fig, path, layout=True: (figures.append(fig), save(fig, path, layout))[1],
    )
    short, _ = budgets
    plots.budget_curves({b.name: {k: g.metrics for k, g in b.found.items()} for b in budgets},
                        tmp_path / "b.png")  # fmt: skip
    ax = figures[0].axes[0]
    assert ax.get_xscale() == "log"
    by_label = {line.get_label(): line for line in ax.get_lines()}
    laptop, longer = by_label[f"{TVO}, laptop (3 seeds)"], by_label[f"{TVO}, ten times (3 seeds)"]
    assert laptop.get_color() == longer.get_color() != by_label[f"{VIMCO}, laptop (3 seeds)"]\
        .get_color()  # fmt: skip
    assert laptop.get_linestyle() != longer.get_linestyle()
    mean = statistics.fmean(short.found[TVO].values("log_px"))
    np.testing.assert_allclose(laptop.get_xydata(), [[5000, mean - 5], [10_000, mean]])
    assert (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG")


def test_a_length_in_epochs_names_its_steps():
    g = group(TVO, "tvo", {0: -1.0}, {0: 1.0}, 10_000)
    assert two_budgets.length(g) == "10,000 steps"
    g.config.epochs, g.config.steps = 20, None
    assert two_budgets.length(g) == "20 epochs (10,000 steps)"


def test_the_trend_is_worded_by_where_the_tvo_stood():
    """A change in the TVO's favour is a lead that grew only when it led: behind at both
    budgets its deficit shrank, and a gap that changed sign says so."""
    from tvo.comparison import paired

    gained = paired({0: 1.0, 1: 1.1, 2: 0.9}, {0: 0.0, 1: 0.0, 2: 0.0})
    lost = paired({0: 0.0, 1: 0.0, 2: 0.0}, {0: 1.0, 1: 1.1, 2: 0.9})
    assert two_budgets.trend(gained, 0.5, 1.5) == "the TVO's lead grew"
    assert two_budgets.trend(gained, -1.5, -0.5) == "the TVO's deficit shrank"
    assert two_budgets.trend(gained, -0.5, 0.5) == "the TVO went from behind to ahead"
    assert two_budgets.trend(lost, 1.5, 0.5) == "the TVO's lead shrank"
    assert two_budgets.trend(lost, -0.5, -1.5) == "the TVO's deficit grew"
    assert two_budgets.trend(lost, 0.5, -0.5) == "the TVO went from ahead to behind"


def test_a_setting_whose_seeds_all_diverged_is_named_not_dropped(budgets):
    short, long = budgets
    del long.found[VIMCO]
    long.diverged.add(VIMCO)
    gaps, words, change, word = two_budgets.leads(short, long, TVO, VIMCO, "log_px")
    assert words == ["TVO clearly better", "every seed diverged"]
    assert gaps[1] is None and change is None and word == "every seed diverged"


def test_a_claim_is_decided_by_its_rule_on_the_rivals_it_names():
    beats = two_budgets.CLAIMS["sbn"]
    better = "TVO clearly better"
    assert two_budgets.decide(beats, {"vimco": better, "ws": better}).startswith("**reproduced")
    partly = two_budgets.decide(beats, {"vimco": better, "ws": "no clear difference"})
    assert partly.startswith("**partly reproduced** (clearly better than vimco;")
    assert "no clear difference from ws" in partly
    assert two_budgets.decide(beats, {"vimco": "not finished"}).startswith("not decided")
    competitive = two_budgets.CLAIMS["continuous"]
    assert two_budgets.decide(competitive, {"vae": "no clear difference"}).startswith(
        "**reproduced"
    )
    assert "clearly worse than vae" in two_budgets.decide(competitive, {"vae": "TVO clearly worse"})


def test_a_label_matched_across_budgets_must_differ_only_in_length(budgets):
    from tvo.config import resolve

    short, _ = budgets
    laptop = resolve(objective="vimco", steps=10_000, eval_every=1000)
    short.found[VIMCO].config = laptop
    two_budgets.check_same(short, {VIMCO: resolve(objective="vimco", steps=100_000)})
    with pytest.raises(ValueError, match=r"differ from the longer sweep's in lr"):
        two_budgets.check_same(short, {VIMCO: resolve(objective="vimco", lr=1e-3)})


def test_only_the_ais_runs_of_the_documented_settings_are_read():
    assert two_budgets.AIS_GLOB == "test-ais-T500-C2-first100-*.json"
    assert two_budgets.IWAE_GLOB == "test-is-S5000-first100-*.json"
