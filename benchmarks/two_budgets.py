"""The same settings trained for two budgets, side by side (issue #28): the sections of
``docs/RESULTS.md`` that ``benchmarks/paper_report.py --longer SWEEP`` adds.

A setting is matched across the two sweeps by its label (``tvo.report.label``: the model, S,
objective and its own settings, not the steps). For each claim, per budget:

- the mean ± standard deviation over seeds of the final test ``log p̂(x)`` and ``KL̂(q‖p)``;
- the TVO's difference from each rival, paired over the seeds both ran
  (``tvo.comparison.difference``: ``d_s = tvo_s − rival_s``, ``SE = sd(d) / √n``), signed so
  that a positive number favours the TVO (``rival − tvo`` for KL̂, where lower is better);
- the change of that gap with training, paired over seeds too:
  ``c_s = d_s(long) − d_s(short)``; a positive change moved the gap in the TVO's favour: its
  lead grew, its deficit shrank, or it went from behind to ahead (read from the signs of the
  two budgets' mean gaps).

A difference is called *clear* when its 95% t interval excludes 0 (with three seeds,
``|Δ| > 4.3 SE``), the rule of the per-budget sections of the document too. A "no clear
change" is not "no change": with three seeds a change must exceed 4.3 times its standard error
to be seen, and with some 40 verdicts in a document a few at the 5% level are expected by
chance. Learning curves put both budgets on one log-step axis; the two budgets are separate
runs from the same seeds, not one run continued.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tvo import comparison, plots
from tvo.report import Group, groups, labels, setting
from tvo.sweep import Sweep

FAR = 20  # nats: a setting this far below the best is left out of the curves (REINFORCE)
METHOD = (__doc__ or "").split("\n\n", 1)[1].strip().replace("``", "`")  # for the document


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, and how a budget's leads decide it.

    Attributes:
        title: the section's title.
        tvo: the TVO setting compared (the paper's choice at S = 10).
        rivals: the settings it is compared with: objectives (their best setting at the TVO's
            model) or labels.
        statement: the claim as the paper makes it.
        named: the rivals' objectives the claim names.
        rule: ``beats`` (the TVO clearly better than each named rival on log p̂(x)) or
            ``competitive`` (clearly worse than none).
    """

    title: str
    tvo: str
    rivals: tuple[str, ...]
    statement: str
    named: tuple[str, ...]
    rule: str


CLAIMS = {
    "sbn": Claim("Claim 2 at two budgets: sigmoid belief networks",
                 "linear_1 S=10 tvo K=2 log β1=0.2",
                 ("linear_1 S=10 tvo K=5 moments", "vimco", "rws", "ws", "reinforce", "ovis",
                  "renyi"),
                 "the TVO learns better models than VIMCO, RWS, wake-sleep and REINFORCE",
                 ("vimco", "rws", "ws", "reinforce"), "beats"),
    "continuous": Claim("Claim 3 at two budgets: the continuous model",
                        "gaussian S=10 tvo K=5 log β1=0.02", ("vae", "iwae", "dreg"),
                        "the TVO is competitive with the VAE: not clearly worse than it; in the "
                        "paper it sits between the VAE and the IWAE", ("vae",), "competitive"),
}  # fmt: skip


@dataclass
class Budget:
    """One sweep's finished runs: ``found`` maps a setting's label to its group, over every
    experiment of the sweep."""

    name: str
    sweep: Sweep
    runs_dir: Path
    found: dict[str, Group]
    diverged: set[str] = field(default_factory=set)  # settings whose every seed diverged


def budget(name: str, sweep: Sweep, runs_dir: Path) -> Budget:
    """The finished runs of ``sweep`` under ``runs_dir``, by label; a setting whose every
    finished seed diverged (no result) is kept apart, in ``diverged``."""
    found: dict[str, Group] = {}
    diverged: set[str] = set()
    for experiment in sweep.experiments:
        for label, group in groups(sweep, runs_dir, experiment).items():
            if group.finals:
                found.setdefault(label, group)
            else:
                diverged.add(label)
    return Budget(name, sweep, runs_dir, found, diverged - set(found))


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
    return {1: "clearly positive", -1: "clearly negative", 0: "within noise"}[d.sign]


def cell(d: comparison.Difference | None) -> str:
    if d is None:
        return "–"
    return f"{d.mean:+.2f} ± {d.se:.2f} [{d.low:+.2f}, {d.high:+.2f}], {d.count}"


def verdict(d: comparison.Difference | None) -> str:
    """The TVO against a rival at one budget."""
    return {"clearly positive": "TVO clearly better", "clearly negative": "TVO clearly worse",
            "within noise": "no clear difference",
            "too few seeds": "too few seeds"}[clear(d)]  # fmt: skip


def trend(d: comparison.Difference | None, before: float = 0.0, after: float = 0.0) -> str:
    """What training longer did to the gap ``d`` (the change of the TVO's lead), worded by the
    signs of the mean gaps ``before`` and ``after`` (positive: the TVO ahead)."""
    word = clear(d)
    if word == "clearly positive":
        if before < 0:
            return "the TVO went from behind to ahead" if after > 0 else "the TVO's deficit shrank"
        return "the TVO's lead grew"
    if word == "clearly negative":
        if before > 0:
            return "the TVO went from ahead to behind" if after < 0 else "the TVO's lead shrank"
        return "the TVO's deficit grew"
    return {"within noise": "no clear change", "too few seeds": "too few seeds"}[word]


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
DIVERGED = "every seed diverged"


def leads(short: Budget, long: Budget, tvo: str, rival: str, key: str):
    """The TVO's lead over ``rival`` at each budget and its change, each a ``Difference``, or
    ``None`` with why: ``(gaps, gap words, change, change word)``."""
    pairs = [(b.found.get(tvo), b.found.get(rival)) for b in (short, long)]
    gaps = [gap(t, r, key) if t and r else None for t, r in pairs]
    missing = [DIVERGED if rival in b.diverged else NOT_FINISHED for b in (short, long)]
    words = [verdict(d) if t and r else m for d, (t, r), m in zip(gaps, pairs, missing)]
    complete = all(t and r for t, r in pairs)
    change = gap_change(*pairs, key) if complete else None
    if not complete:
        return gaps, words, change, next(m for (t, r), m in zip(pairs, missing) if not (t and r))
    means = [d.mean if d else 0.0 for d in gaps]
    return gaps, words, change, trend(change, *means)


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


# How a verdict joins the rivals it names ("against" for the trends of a lead).
JOINS = {"TVO clearly better": "than", "TVO clearly worse": "than", "no clear difference": "from",
         "too few seeds": "for", NOT_FINISHED: "for", DIVERGED: "for"}  # fmt: skip


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
        parts = [f"{word} {JOINS.get(word, 'against')} {', '.join(names)}"
                 for word, names in by.items()]  # fmt: skip
        lines.append(f"- **{title}** (log p̂(x)): " + "; ".join(parts) + ".")
    return lines


def decide(claim: Claim, words: dict[str, str]) -> str:
    """A claim's verdict at one budget from the verdicts on log p̂(x) against the rivals it
    names (``words``: rival → ``verdict``)."""
    waiting = [r for r, w in words.items() if w in (NOT_FINISHED, "too few seeds")]
    if waiting:
        return f"not decided ({', '.join(waiting)}: {words[waiting[0]]})"
    better = [r for r, w in words.items() if w == "TVO clearly better"]
    worse = [r for r, w in words.items() if w == "TVO clearly worse"]
    if claim.rule == "competitive":
        return ("**reproduced** (clearly worse than none)" if not worse else
                f"**not reproduced** (clearly worse than {', '.join(worse)})")  # fmt: skip
    if len(better) == len(words):
        return "**reproduced** (clearly better than each)"
    rest = [r for r in words if r not in better]
    if not better:
        return f"**not reproduced** (clearly better than none; {verdict_list(words, rest)})"
    return (f"**partly reproduced** (clearly better than {', '.join(better)}; "
            f"{verdict_list(words, rest)})")  # fmt: skip


def verdict_list(words: dict[str, str], rivals: list[str]) -> str:
    return "; ".join(f"{words[r]} {JOINS.get(words[r], 'against')} {r}" for r in rivals)


def verdicts(short: Budget, long: Budget, claim: Claim, tvo: str, rivals: list[str],
             settings: dict[str, object]) -> list[str]:  # fmt: skip
    """The claim's verdict at each budget, by its rule, on test log p̂(x)."""
    named = [r for r in rivals if getattr(settings[r], "objective", None) in claim.named]
    if not named:
        return []
    found = {r: leads(short, long, tvo, r, "log_px")[1] for r in named}
    parts = [f"at {b.name}: {decide(claim, {r: w[i] for r, w in found.items()})}"
             for i, b in enumerate((short, long))]  # fmt: skip
    head = f"- **The claim** ({claim.statement}; test log p̂(x) of `{tvo}`): "
    return [head + "; ".join(parts) + "."]


def planned(sweep: Sweep, experiment: str) -> dict[str, object]:
    """Every setting of ``experiment`` in the sweep file, finished or not: label → config (the
    labels ``groups`` gives them)."""
    configs: dict[str, object] = {}
    for name in sweep.experiments.get(experiment, []):
        key = json.dumps(setting(sweep.runs[name]), sort_keys=True, default=str)
        configs.setdefault(key, sweep.runs[name])
    return dict(zip(labels(list(configs.values())), configs.values()))


KEYS = ("log_px", "kl")
# What may differ between a setting's runs at two budgets: their length and its cadences.
LENGTH = ("steps", "epochs", "eval_every", "log_every", "checkpoint_every", "seed")


def check_same(short: Budget, settings: dict[str, object]) -> None:
    """Refuse a setting whose label matches across the budgets but whose runs differ in more
    than their length (``LENGTH``): the label leaves out lr, batch size, data…"""
    from tvo.config import differences

    for label, config in settings.items():
        if label in short.found:
            other = differences(short.found[label].config, config, keep=LENGTH)
            if other:
                raise ValueError(f"{label}: its runs at {short.name} differ from the longer "
                                 f"sweep's in {', '.join(other)}, not only in length")  # fmt: skip


def claim(short: Budget, long: Budget, experiment: str, out_md: Path, figures: Path) -> list[str]:
    """A claim's section: both budgets' tables (every setting of the longer sweep, finished or
    not), the TVO's leads, the curves."""
    the = CLAIMS[experiment]
    title, tvo, objectives = the.title, the.tvo, the.rivals
    settings = planned(long.sweep, experiment)
    if tvo not in settings:  # another sweep than the paper's: its best finished TVO setting
        best = max((long.found[k] for k in settings if k in long.found
                    and long.found[k].config.objective == "tvo"),
                   key=lambda g: g.mean("log_px"), default=None)  # fmt: skip
        if best is None:
            return [f"### {title}", "", f"(no finished TVO runs at {long.name})", ""]
        tvo = best.label
    why = " (the paper's choice at S = 10)" if tvo == the.tvo else " (its best)"
    model = settings[tvo].model

    def rank(label: str) -> float:  # the better mean where finished, longer budget first
        g = long.found.get(label) or short.found.get(label)
        return g.mean("log_px") if g else -math.inf

    rivals = []  # a label as it is; an objective: its best setting at this model
    for o in objectives:
        candidates = [o] if o in settings else [
            k for k, c in settings.items() if (c.objective, c.model) == (o, model)]  # fmt: skip
        if candidates:
            rivals.append(max(candidates, key=rank))
    names = list(settings)
    check_same(short, settings)
    shared = [label for label in names if label in short.found]
    missing = [k for k in names if k not in long.found and k not in long.diverged]
    diverged = [k for k in names if k in long.diverged]
    found = [leads(short, long, tvo, rival, key) for rival in rivals for key in KEYS]
    two = any(d is not None and d.sizes == (2,) for f in found for d in (*f[0], f[2]))
    lines = [f"### {title}", "", *settings_table(short, long, names), "",
             f"The TVO here is `{tvo}`{why}, at both budgets; each rival is its setting in the "
             "longer sweep. Δ ± SE [95% interval], paired over the seeds counted; positive "
             "favours the TVO."
             + (" With two pairs the standard error has one degree of freedom: read such a "
                "verdict as provisional." if two else "")
             + (f" Not finished at {long.name} yet: {', '.join(missing)}." if missing else "")
             + (f" Every seed diverged at {long.name}: {', '.join(diverged)}." if diverged
                else ""),
             "", *gap_table(short, long, tvo, rivals, "log_px"), "",
             *gap_table(short, long, tvo, rivals, "kl"), "",
             *verdicts(short, long, the, tvo, rivals, settings), *summary(short, long, tvo, rivals),
             ""]  # fmt: skip
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


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def ais_lines(long: Budget, experiment: str = "sbn") -> list[str]:
    """AIS beside IWAE-5000 on the first 100 test images for the best seed of each setting of
    ``experiment``, from the evaluations ``tvo eval`` kept in each run's folder (those of
    ``AIS_ARGS`` and ``IWAE_ARGS`` only); the settings without one are named. Nothing when no
    setting has one."""
    rows, waiting = [], []
    for label in groups(long.sweep, long.runs_dir, experiment):
        g = long.found.get(label)
        if g is None:  # every seed diverged
            continue
        _, name = max((f["log_px"], n) for f, n in zip(g.finals, g.names))
        folder = long.runs_dir / name / "evaluations"
        ais, iwae = (sorted(folder.glob(pattern)) for pattern in (AIS_GLOB, IWAE_GLOB))
        if ais and iwae:
            a, i = (json.loads(f.read_text()) for f in (ais[-1], iwae[-1]))
            rows.append((label, name, a, i))
        else:
            waiting.append(label)
    if not rows:
        return []
    tvo = next((a for label, _, a, _ in rows if label == CLAIMS[experiment].tvo), None)
    a = rows[0][2]
    lines = ["#### AIS on the best seed of each setting", "",
             "The run with the highest test log p̂(x) of each setting (chosen on the 2000 test "
             "images that include these), the first 100 test images: AIS with the kernel "
             f"`{a.get('kernel')}`, T = {a['steps']}, {a['chains']} chains and the "
             f"{a.get('schedule', 'sigmoid')} schedule, and IWAE with 5000 particles, by "
             f"`python benchmarks/two_budgets.py {long.sweep.path.as_posix()}`, which runs "
             f"`tvo eval RUN {' '.join(AIS_ARGS)}` and `tvo eval RUN {' '.join(IWAE_ARGS)}` on "
             "each. Both are stochastic lower bounds of log p(x); AIS's is the tighter, and "
             "IWAE's looseness grows with KL̂(q‖p), so AIS compares the models without their "
             "inference networks. ± is AIS's Monte Carlo standard error over its chains with the "
             "images held fixed (the delta method per image); it leaves out which 100 images were "
             "drawn, which the same images for every row cancels in the differences. The "
             "seconds are wall clock on this 2-core machine, some measured beside the running "
             "sweep.",
             "", "| setting | run | IWAE-5000 | AIS | AIS − IWAE | AIS − AIS of the TVO | "
             "seconds (AIS) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for label, name, a, i in rows:
        versus = f"{a['log_px'] - tvo['log_px']:+.2f}" if tvo else "–"
        lines.append(f"| {label} | `{name}` | {i['log_px']:.2f} | {a['log_px']:.2f} ± "
                     f"{a['stderr']:.2f} | {a['log_px'] - i['log_px']:+.2f} | {versus} | "
                     f"{a.get('seconds', float('nan')):.0f} |")  # fmt: skip
    if waiting:
        lines += ["", f"Not evaluated yet: {', '.join(waiting)}."]
    return [*lines, ""]


def section(short: Budget, long: Budget, out_md: Path, figures: Path) -> list[str]:
    """Every claim of ``CLAIMS`` that the longer sweep runs, side by side with the shorter."""
    record = long.runs_dir / "sweep.json"
    invocations = json.loads(record.read_text())["invocations"] if record.is_file() else []
    minutes = sum(i["seconds"] for i in invocations) / 60
    lines = [f"## Two budgets: {short.name} and {long.name}", "",
             f"`{long.sweep.path.as_posix()}` trains the settings of "
             f"`{short.sweep.path.as_posix()}` that the claims compare for longer; its runs are in "
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
AIS_GLOB = (
    f"test-ais-T{_value(AIS_ARGS, '--ais-steps')}-C{_value(AIS_ARGS, '--chains')}"
    f"-first{_value(AIS_ARGS, '--limit')}-*.json"
)  # the evaluations these make
IWAE_GLOB = (
    f"test-is-S{_value(IWAE_ARGS, '--particles')}-first{_value(IWAE_ARGS, '--limit')}-*.json"
)


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
        for pattern, args in ((AIS_GLOB, AIS_ARGS), (IWAE_GLOB, IWAE_ARGS)):
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
