"""The same settings trained for two budgets, side by side (issue #28): the sections of
``docs/RESULTS.md`` that ``benchmarks/paper_report.py --longer SWEEP`` adds.

A setting is matched across the two sweeps by its label (``tvo.report.label``: the model, S,
objective and its own settings, not the steps). For each claim, per budget:

- the mean ± standard deviation over seeds of the final test ``log p̂(x)`` and ``KL̂(q‖p)``;
- the TVO's difference from each rival, paired over the seeds both ran
  (``tvo.comparison.difference``: ``d_s = tvo_s − rival_s``, ``SE = sd(d) / √n``), signed so
  that a positive number favours the TVO (``rival − tvo`` for KL̂, where lower is better);
- the change of that gap with training, paired over seeds too:
  ``c_s = d_s(long) − d_s(short)``; a positive change means the TVO's lead grew (or its
  deficit shrank).

A difference is called *clear* when its 95% t interval excludes 0 (with three seeds, ``|Δ| >
4.3 SE``; the per-budget sections of the laptop document use the looser ``|Δ| > 2 SE`` of
unpaired seeds). Learning curves put both budgets on one log-step axis.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from tvo import comparison, plots
from tvo.report import Group, groups, labels, setting
from tvo.sweep import Sweep

FAR = 20  # nats: a setting this far below the best is left out of the curves (REINFORCE)
METHOD = (__doc__ or "").split("\n\n", 1)[1].strip().replace("``", "`")  # for the document
CLAIMS = {  # experiment → (title, the TVO setting compared, the rivals' objectives)
    "sbn": ("Claim 2 at two budgets: sigmoid belief networks",
            "linear_1 S=10 tvo K=2 log β1=0.2",
            ("vimco", "rws", "ws", "reinforce", "ovis", "renyi")),
    "continuous": ("Claim 3 at two budgets: the continuous model",
                   "gaussian S=10 tvo K=5 log β1=0.02", ("vae", "iwae", "dreg")),
}  # fmt: skip


@dataclass
class Budget:
    """One sweep's finished runs: ``found`` maps a setting's label to its group, over every
    experiment of the sweep."""

    name: str
    sweep: Sweep
    runs_dir: Path
    found: dict[str, Group]


def budget(name: str, sweep: Sweep, runs_dir: Path) -> Budget:
    """The finished runs of ``sweep`` under ``runs_dir``, by label."""
    found: dict[str, Group] = {}
    for experiment in sweep.experiments:
        for label, group in groups(sweep, runs_dir, experiment).items():
            found.setdefault(label, group)
    return Budget(name, sweep, runs_dir, found)


def length(group: Group) -> str:
    """``10,000 steps`` or ``20 epochs (10,000 steps)``."""
    steps = (group.summaries[0].get("total_steps") if group.summaries else None) \
        or group.config.steps  # fmt: skip
    if group.config.epochs is not None:
        return f"{group.config.epochs:g} epochs" + (f" ({steps:,} steps)" if steps else "")
    return f"{steps:,} steps"


def gap(tvo: Group, other: Group, key: str) -> comparison.Difference | None:
    """The TVO's lead over ``other`` in ``key`` (``log_px``: tvo − other; ``kl``: other − tvo),
    paired over shared seeds, Welch's otherwise."""
    a, b = tvo.by_seed(key), other.by_seed(key)
    return comparison.difference(a, b) if key == "log_px" else comparison.difference(b, a)


def per_seed_gap(tvo: Group, other: Group, key: str) -> dict[int, float]:
    """``d_s``, the TVO's lead over ``other`` for each seed both ran."""
    a, b = tvo.by_seed(key), other.by_seed(key)
    sign = 1 if key == "log_px" else -1
    return {s: sign * (a[s] - b[s]) for s in a if s in b}


def gap_change(short: tuple[Group, Group], long: tuple[Group, Group],
               key: str) -> comparison.Difference | None:  # fmt: skip
    """How the TVO's lead changed from the short budget to the long one, ``c_s = d_s(long) −
    d_s(short)``, paired over the seeds present in all four groups (``None`` under two)."""
    d_short, d_long = per_seed_gap(*short, key), per_seed_gap(*long, key)
    if sum(s in d_short for s in d_long) < 2:
        return None
    return comparison.paired(d_long, d_short)


def clear(d: comparison.Difference | None) -> str:
    """``clearly positive`` / ``clearly negative`` / ``within noise`` by the 95% interval."""
    if d is None:
        return "too few seeds"
    if d.low > 0:
        return "clearly positive"
    if d.high < 0:
        return "clearly negative"
    return "within noise"


def cell(d: comparison.Difference | None) -> str:
    if d is None:
        return "–"
    return f"{d.mean:+.2f} ± {d.se:.2f} [{d.low:+.2f}, {d.high:+.2f}], {d.count}"


def verdict(d: comparison.Difference | None) -> str:
    """The TVO against a rival at one budget."""
    return {"clearly positive": "TVO clearly better", "clearly negative": "TVO clearly worse",
            "within noise": "no clear difference",
            "too few seeds": "too few seeds"}[clear(d)]  # fmt: skip


def trend(d: comparison.Difference | None) -> str:
    """What training longer did to the TVO's lead."""
    return {"clearly positive": "the TVO's lead grew", "clearly negative": "the TVO's lead shrank",
            "within noise": "no clear change",
            "too few seeds": "too few seeds"}[clear(d)]  # fmt: skip


def settings_table(short: Budget, long: Budget, labels: list[str]) -> list[str]:
    """Each setting's results at both budgets, and the change (long − short, paired)."""
    lines = [f"| setting | {short.name}: length | log p̂(x) | KL̂ | {long.name}: length | "
             "log p̂(x) | KL̂ | change of log p̂(x) |", "|---" * 8 + "|"]  # fmt: skip
    for label in labels:
        a, b = short.found.get(label), long.found.get(label)
        change = comparison.difference(b.by_seed("log_px"), a.by_seed("log_px")) \
            if a and b else None  # fmt: skip
        cells = [label]
        for g in (a, b):
            cells += [length(g), g.cell("log_px"), g.cell("kl")] if g else ["–", "–", "–"]
        cells.append(f"{change.mean:+.2f} ± {change.se:.2f}" if change else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


NOT_FINISHED = "not finished"


def leads(short: Budget, long: Budget, tvo: str, rival: str, key: str):
    """The TVO's lead over ``rival`` at each budget and its change, each a ``Difference``, or
    ``None`` with why: ``(gaps, gap words, change, change word)``."""
    pairs = [(b.found.get(tvo), b.found.get(rival)) for b in (short, long)]
    gaps = [gap(t, r, key) if t and r else None for t, r in pairs]
    words = [verdict(d) if t and r else NOT_FINISHED for d, (t, r) in zip(gaps, pairs)]
    complete = all(t and r for t, r in pairs)
    change = gap_change(*pairs, key) if complete else None
    return gaps, words, change, trend(change) if complete else NOT_FINISHED


def gap_table(short: Budget, long: Budget, tvo: str, rivals: list[str], key: str) -> list[str]:
    """The TVO's lead over each rival at both budgets, and its change."""
    what = "log p̂(x)" if key == "log_px" else "KL̂ (rival − TVO)"
    lines = [f"| {what}: TVO against | {short.name} | verdict | {long.name} | verdict | "
             "change of the lead | with training |", "|---" * 7 + "|"]  # fmt: skip
    for rival in rivals:
        gaps, words, change, word = leads(short, long, tvo, rival, key)
        lines.append(f"| {rival} | {cell(gaps[0])} | {words[0]} | {cell(gaps[1])} | "
                     f"{words[1]} | {cell(change)} | {word} |")  # fmt: skip
    return lines


JOINS = {"TVO clearly better": "than", "TVO clearly worse": "than", "no clear difference": "from",
         "too few seeds": "for", NOT_FINISHED: "for", "the TVO's lead grew": "over",
         "the TVO's lead shrank": "over", "no clear change": "over"}  # fmt: skip


def summary(short: Budget, long: Budget, tvo: str, rivals: list[str]) -> list[str]:
    """One sentence per budget: whom the TVO beats, ties and loses to on log p̂(x), and one on
    what training longer did to its leads."""
    if not rivals:
        return []
    found = [leads(short, long, tvo, rival, "log_px") for rival in rivals]
    lines = []
    for title, words in ((short.name, [f[1][0] for f in found]),
                         (long.name, [f[1][1] for f in found]),
                         ("with training", [f[3] for f in found])):  # fmt: skip
        by: dict[str, list[str]] = {}
        for word, rival in zip(words, rivals):
            by.setdefault(word, []).append(rival)
        parts = [f"{word} {JOINS[word]} {', '.join(names)}" for word, names in by.items()]
        lines.append(f"- **{title}** (log p̂(x)): " + "; ".join(parts) + ".")
    return lines


def planned(sweep: Sweep, experiment: str) -> dict[str, object]:
    """Every setting of ``experiment`` in the sweep file, finished or not: label → config (the
    labels ``groups`` gives them)."""
    configs: dict[str, object] = {}
    for name in sweep.experiments.get(experiment, []):
        key = json.dumps(setting(sweep.runs[name]), sort_keys=True, default=str)
        configs.setdefault(key, sweep.runs[name])
    return dict(zip(labels(list(configs.values())), configs.values()))


def claim(short: Budget, long: Budget, experiment: str, out_md: Path, figures: Path) -> list[str]:
    """A claim's section: both budgets' tables (every setting of the longer sweep, finished or
    not), the TVO's leads, the curves."""
    title, tvo, objectives = CLAIMS[experiment]
    settings = planned(long.sweep, experiment)
    if tvo not in settings:  # another sweep than the paper's: its best finished TVO setting
        best = max((long.found[k] for k in settings if k in long.found
                    and long.found[k].config.objective == "tvo"),
                   key=lambda g: g.mean("log_px"), default=None)  # fmt: skip
        if best is None:
            return [f"### {title}", "", f"(no finished TVO runs at {long.name})", ""]
        tvo = best.label
    why = " (the paper's choice at S = 10)" if tvo == CLAIMS[experiment][1] else " (its best)"
    model = settings[tvo].model

    def rank(label: str) -> float:  # the better mean where finished, longer budget first
        g = long.found.get(label) or short.found.get(label)
        return g.mean("log_px") if g else -math.inf

    rivals = [max(candidates, key=rank) for o in objectives
              if (candidates := [k for k, c in settings.items()
                                 if (c.objective, c.model) == (o, model)])]  # fmt: skip
    names = list(settings)
    shared = [label for label in names if label in short.found]
    missing = [k for k in names if k not in long.found]
    lines = [f"### {title}", "", *settings_table(short, long, names), "",
             f"The TVO here is `{tvo}`{why}, at both budgets; each rival is its setting in the "
             "longer sweep. Δ ± SE [95% interval], paired over the seeds counted; positive "
             "favours the TVO. With two pairs the standard error has one degree of freedom: "
             "read such a verdict as provisional."
             + (f" Not finished at {long.name} yet: {', '.join(missing)}." if missing else ""),
             "", *gap_table(short, long, tvo, rivals, "log_px"), "",
             *gap_table(short, long, tvo, rivals, "kl"), "",
             *summary(short, long, tvo, rivals), ""]  # fmt: skip
    top = max(short.found[label].mean("log_px") for label in shared) if shared else 0.0
    far = [label for label in shared if short.found[label].mean("log_px") < top - FAR]
    drawn = [label for label in shared if label not in far]
    chart = plots.budget_curves(
        {b.name: {label: b.found[label].metrics for label in drawn if label in b.found}
         for b in (short, long)},
        figures / f"budgets_{experiment}.png", title=experiment)  # fmt: skip
    left_out = (f"Left out of the curves, more than {FAR} nats below the best at "
                f"{short.name}, so that the others can be told apart: {', '.join(far)}."
                if far else "")  # fmt: skip
    return [*lines, f"![budgets_{experiment}]({chart.relative_to(out_md.parent).as_posix()})", "",
            *([left_out, ""] if far else [])]  # fmt: skip


def ais_lines(long: Budget, experiment: str = "sbn") -> list[str]:
    """AIS beside IWAE-5000 on the first 100 test images for the best seed of each setting of
    ``experiment``, from the evaluations ``tvo eval`` kept in each run's folder; nothing when
    none has one."""
    rows = []
    for label in groups(long.sweep, long.runs_dir, experiment):
        g = long.found[label]
        _, name = max((f["log_px"], n) for f, n in zip(g.finals, g.names))
        folder = long.runs_dir / name / "evaluations"
        ais = sorted(folder.glob("test-ais-*-first100-*.json"))
        iwae = sorted(folder.glob("test-is-S5000-first100-*.json"))
        if ais and iwae:
            a, i = (json.loads(f.read_text()) for f in (ais[-1], iwae[-1]))
            rows.append((label, name, a, i))
    if not rows:
        return []
    a = rows[0][2]
    lines = ["#### AIS on the best seed of each setting", "",
             "The run with the highest test log p̂(x) of each setting, the first 100 test "
             f"images: AIS with the kernel `{a.get('kernel')}`, T = {a['steps']}, "
             f"{a['chains']} chains and the {a.get('schedule', 'sigmoid')} schedule, and IWAE "
             "with 5000 particles, by `python benchmarks/two_budgets.py "
             f"{long.sweep.path.as_posix()}`, which runs `tvo eval RUN {' '.join(AIS_ARGS)}` and "
             f"`tvo eval RUN {' '.join(IWAE_ARGS)}` on each. Both are stochastic lower bounds of "
             "log p(x); ± is the Monte Carlo standard error of AIS's mean over the images; the "
             "seconds are those of a machine shared with the sweep.",
             "", "| setting | run | IWAE-5000 | AIS | AIS − IWAE | seconds (AIS) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for label, name, a, i in rows:
        lines.append(f"| {label} | `{name}` | {i['log_px']:.2f} | {a['log_px']:.2f} ± "
                     f"{a['stderr']:.2f} | {a['log_px'] - i['log_px']:+.2f} | "
                     f"{a.get('seconds', float('nan')):.0f} |")  # fmt: skip
    return [*lines, ""]


def section(short: Budget, long: Budget, out_md: Path, figures: Path) -> list[str]:
    """Every claim of ``CLAIMS`` that the longer sweep runs, side by side with the shorter."""
    record = long.runs_dir / "sweep.json"
    invocations = json.loads(record.read_text())["invocations"] if record.is_file() else []
    minutes = sum(i["seconds"] for i in invocations) / 60
    lines = [f"## Two budgets: {short.name} and {long.name}", "",
             f"`{long.sweep.path.as_posix()}` trains the same settings as "
             f"`{short.sweep.path.as_posix()}` for longer; its runs are in "
             f"`{long.runs_dir.as_posix()}` ({len(long.sweep.runs)} runs, "
             f"{sum(len(g.finals) for g in long.found.values())} finished, "
             f"{minutes:.0f} minutes of wall-clock time over {len(invocations)} "
             f"invocation{'s' * (len(invocations) != 1)} of `tvo sweep`). " + METHOD,
             ""]  # fmt: skip
    for experiment in CLAIMS:
        if experiment in long.sweep.experiments:
            lines += claim(short, long, experiment, out_md, figures)
            if experiment == "sbn":
                lines += ais_lines(long, experiment)
    return lines


AIS_ARGS = ["--method", "ais", "--limit", "100", "--ais-steps", "500", "--chains", "2",
            "--kernel", "sbn-sweep", "--threads", "1"]  # fmt: skip
IWAE_ARGS = ["--limit", "100", "--particles", "5000", "--threads", "1"]


def evaluate_best(sweep: Sweep, runs_dir: Path, experiment: str = "sbn") -> list[Path]:
    """Run ``tvo eval`` with AIS (``AIS_ARGS``: the SBN's sweep kernel, T = 500, 2 chains, the
    first 100 test images; ``benchmarks/results/ais/ais.json``'s longest SBN row) and with
    IWAE-5000 on the same images, on the best seed of each setting of ``experiment`` whose
    seeds have all finished; an evaluation already kept is not redone. Returns the runs
    evaluated."""
    import subprocess

    evaluated = []
    for label, g in groups(sweep, runs_dir, experiment).items():
        expected = [n for n in sweep.experiments[experiment]
                    if setting(sweep.runs[n]) == setting(g.config)]  # fmt: skip
        if len(g.names) + len(g.diverged) < len(expected):
            print(f"{label}: {len(g.names)} of {len(expected)} seeds finished; later")
            continue
        _, name = max((f["log_px"], n) for f, n in zip(g.finals, g.names))
        folder = runs_dir / name
        for pattern, args in (("test-ais-*-first100-*.json", AIS_ARGS),
                              ("test-is-S5000-first100-*.json", IWAE_ARGS)):  # fmt: skip
            if not list((folder / "evaluations").glob(pattern)):
                command = [sys.executable, "-m", "tvo", "eval", str(folder), *args]
                print(" ".join(command[1:]), flush=True)
                subprocess.run(command, check=True)
        evaluated.append(folder)
    return evaluated


def main(argv=None) -> int:
    import argparse

    from tvo.sweep import load

    parser = argparse.ArgumentParser(description="AIS and IWAE-5000 on the first 100 test "
                                     "images for the best seed of each SBN setting")  # fmt: skip
    parser.add_argument("config", type=Path, help="the longer sweep (TOML)")
    args = parser.parse_args(argv)
    sweep = load(args.config)
    runs = sweep.out or Path("results") / args.config.stem
    for folder in evaluate_best(sweep, runs):
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
