"""Results of any sweep: per experiment, each setting's final metrics over its seeds.

``tvo report FILE`` reads the sweep file and its runs' ``final.json`` and ``summary.json`` and
prints (or with ``--out`` writes) a Markdown table per experiment: mean ± sample standard
deviation over seeds of the final ``log p̂(x)`` (with its standard error ``sd / √n``),
``KL̂(q‖p)`` and ELBO, the training time and steps. ``tvo compare`` shows runs (or a sweep's
output folder) with their test results and seed aggregates through ``expand``,
``test_result`` and ``by_setting``. The paper's own document (claims and verdicts) is
built on these groups by ``benchmarks/paper_report.py``.

A *setting* is a run's config without its seed and without what cannot change its result
(``NOT_SETTINGS``): runs of one setting are its seeds, and two runs of the same setting and
seed (the same run found in two sweeps' folders) are one run, counted once (``unique``).
With ``--against SETTING`` both commands add each setting's difference from that one in test
``log p̂(x)``, paired over shared seeds or by Welch's test (``tvo.comparison``).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tvo import comparison
from tvo.config import ConfigError, TrainConfig, absolute_paths
from tvo.runs import Run, RunError
from tvo.sweep import Sweep
from tvo.sweep.plan import stale_evaluation


@dataclass
class Group:
    """The finished runs of one setting across seeds."""

    label: str
    config: TrainConfig  # the first seed's
    names: list[str]
    finals: list[dict]
    summaries: list[dict]
    metrics: list[list[dict]]
    seeds: list[int] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)  # runs that diverged: no result

    def by_seed(self, key: str) -> dict[int, float]:
        """``key``'s final value per seed."""
        return {seed: final[key] for seed, final in zip(self.seeds, self.finals)}

    def values(self, key: str) -> list[float]:
        return [f[key] for f in self.finals]

    def mean(self, key: str) -> float:
        return statistics.fmean(self.values(key))

    def sd(self, key: str) -> float:
        values = self.values(key)
        return statistics.stdev(values) if len(values) > 1 else float("nan")

    def se(self, key: str) -> float:
        """The standard error of the mean over seeds, ``sd / sqrt(n)``."""
        return self.sd(key) / len(self.finals) ** 0.5

    def cell(self, key: str) -> str:
        """``mean ± sd`` of ``key`` over the seeds; ``-`` where a result lacks it (a
        ``final.json`` written before it was kept)."""
        if any(f.get(key) is None for f in self.finals):
            return "-"
        return f"{self.mean(key):.2f} ± {self.sd(key):.2f}"


def label(config: TrainConfig) -> str:
    """``linear_1 S=10 tvo K=5 log β1=0.05``…: a setting without its seed (the objective's own
    settings where they apply)."""
    text = f"{config.model} S={config.particles} {config.objective}"
    if config.partitions is not None:
        text += f" K={config.partitions} {config.schedule}"
    if config.beta1 is not None and config.schedule == "log":
        text += f" β1={config.beta1:g}"
    if config.integration not in (None, "left"):
        text += f" {config.integration}"
    if config.alpha is not None:
        text += f" α={config.alpha:g}"
    if config.ovis_form == "mc":
        text += f" MC M={config.auxiliary_particles}"
    elif config.ovis_form is not None:
        text += f" asymptotic γ={config.gamma:g}"
    return text


NOT_SETTINGS = ("seed", "model_source", "preset", "device", "compile", "log_every",
                "checkpoint_every")  # fmt: skip


def setting(config: TrainConfig) -> dict:
    """The config's settings but its seed and ``NOT_SETTINGS`` (data paths absolute)."""
    values = dataclasses.asdict(config)
    values.update(absolute_paths(values))
    return {k: v for k, v in values.items() if k not in NOT_SETTINGS}


def _key(config: TrainConfig) -> str:
    return json.dumps(setting(config), sort_keys=True, default=str)


def labels(configs: list[TrainConfig]) -> list[str]:
    """``label`` of each setting in ``configs`` (one config per setting), with the settings
    that tell apart those whose labels agree (``lr=0.001``) added to them."""
    names = [label(c) for c in configs]
    out = list(names)
    for name in set(names):
        same = [i for i, n in enumerate(names) if n == name]
        if len(same) < 2:
            continue
        values = [setting(configs[i]) for i in same]
        differ = [k for k in values[0] if len({json.dumps(v[k], default=str) for v in values}) > 1]
        for i, v in zip(same, values):
            out[i] = name + "".join(f" {k}={v[k]}" for k in differ)
    return out


def groups(sweep: Sweep, runs_dir: Path, experiment: str) -> dict[str, Group]:
    """The experiment's finished runs grouped by setting, in file order."""
    names = sweep.experiments.get(experiment, [])
    by_key: dict[str, list[str]] = {}
    for name in names:
        by_key.setdefault(_key(sweep.runs[name]), []).append(name)
    titles = labels([sweep.runs[members[0]] for members in by_key.values()])
    found: dict[str, Group] = {}
    for title, members in zip(titles, by_key.values()):
        for name in members:
            run = Run(runs_dir / name)
            final = run.final()
            if final is None or stale_evaluation(final, sweep.evaluation):
                continue  # unfinished, or evaluated with another [evaluation]: tvo sweep redoes it
            group = found.setdefault(title, Group(title, sweep.runs[name], [], [], [], []))
            if final.get("diverged"):
                group.diverged.append(name)  # counted, never averaged as a result
                continue
            group.names.append(name)
            group.seeds.append(sweep.runs[name].seed)
            group.finals.append(final)
            group.summaries.append(run.summary() or {})
            group.metrics.append(run.read_metrics())
    return found


def find_setting(labels: list[str], wanted: str) -> str:
    """The label ``wanted`` names: itself, else the one label that contains it; a
    ``ConfigError`` naming the labels otherwise.

    Args:
        labels: the settings' labels.
        wanted: the label, or a part of it.
    """
    if wanted in labels:
        return wanted
    matches = [text for text in labels if wanted in text]
    if len(matches) == 1:
        return matches[0]
    what = "matches several settings" if matches else "matches no setting"
    choices = "; ".join(matches or labels) or "none"
    raise ConfigError(f"--against {wanted!r} {what}: give one of {choices}")


def difference_rows(values: dict[str, dict[int, float]], against: str) -> list[tuple]:
    """``(label, Difference | None)`` of every setting in ``values`` (label → seed → value)
    but ``against``, against it."""
    base = values[against]
    return [(name, comparison.difference(v, base)) for name, v in values.items()
            if name != against]  # fmt: skip


def difference_cells(d: comparison.Difference | None) -> list[str]:
    """Test, count, Δ, SE, interval and p of a difference (``-`` and why where none)."""
    if d is None:
        return ["-", "too few seeds: 2 shared, or 2 on each side", "-", "-", "-", "-"]
    return [d.test, d.count, f"{d.mean:+.2f}", f"{d.se:.2f}", f"[{d.low:+.2f}, {d.high:+.2f}]",
            f"{d.p:.3g}"]  # fmt: skip


DIFFERENCE_HEADER = ("setting", "test", "n", "Δ log p̂(x)", "SE", "95% interval", "p")
DIFFERENCE_NOTE = ("Δ = setting − {against} in test log p̂(x): paired t-test over the seeds "
                   "both ran (n pairs), Welch's t-test where they share fewer than two seeds; "
                   "two-sided p, 95% t interval.")  # fmt: skip


def difference_table(found: dict[str, Group], against: str) -> list[str]:
    """Markdown: each group's difference from the group ``against`` in ``log_px``."""
    values = {name: g.by_seed("log_px") for name, g in found.items()}
    lines = [
        DIFFERENCE_NOTE.format(against=against),
        "",
        "| " + " | ".join(DIFFERENCE_HEADER) + " |",
        "|---" * len(DIFFERENCE_HEADER) + "|",
    ]
    for name, d in difference_rows(values, against):
        lines.append("| " + " | ".join([name, *difference_cells(d)]) + " |")
    return lines


def table(found: dict[str, Group], standard_errors: bool = False) -> list[str]:
    """A Markdown table: one row per group, mean ± sd over its seeds (and, with
    ``standard_errors``, a column of the standard error of the mean log p̂(x)). ``TVO_L`` and
    ``TVO_U`` are the left and right Riemann sums over each run's own partition (the ELBO and
    the EUBO for an objective without one), from the same particles as log p̂(x)."""
    split = next((g.finals[0].get("split", "test") for g in found.values() if g.finals), "test")
    se = " SE of log p̂(x) |" if standard_errors else ""
    rule = "|---|---|---|" + ("---|" if se else "") + "---|---|---|---|---|---|"
    lines = [f"| setting | seeds | {split} log p̂(x) |{se} {split} KL̂(q‖p) | ELBO | TVO_L | TVO_U "
             "| train time (s) | steps |", rule]  # fmt: skip
    for g in found.values():
        seeds = f"{len(g.finals)}" + (f" ({len(g.diverged)} diverged)" if g.diverged else "")
        if not g.finals:
            lines.append(f"| {g.label} | {seeds} | diverged |" + (" - |" if se else "")
                         + " - | - | - | - | - | - |")  # fmt: skip
            continue
        seconds = statistics.fmean(s.get("seconds", float("nan")) for s in g.summaries)
        steps = g.summaries[0].get("steps", "-")
        error = f" {g.se('log_px'):.2f} |" if standard_errors else ""
        lines.append(f"| {g.label} | {seeds} | {g.cell('log_px')} |{error} "
                     f"{g.cell('kl')} | {g.cell('elbo')} | {g.cell('tvo_lower')} | "
                     f"{g.cell('tvo_upper')} | {seconds:.0f} | {steps} |")  # fmt: skip
    return lines


def document(sweep: Sweep, runs_dir: Path, against: str | None = None) -> str:
    """The Markdown of every experiment's table; with ``against`` (a setting's label, or a
    part of one only it contains), each setting's difference from it as well.

    Args:
        sweep: the sweep file, loaded (``tvo.sweep.load``).
        runs_dir: the folder of its runs.
        against: a setting to difference every other one against, or ``None``.
    """
    found_all = {e: groups(sweep, runs_dir, e) for e in sweep.experiments}
    if against is not None:
        named = [name for found in found_all.values() for name in found]
        find_setting(list(dict.fromkeys(named)), against)  # an error before any output
    lines = [f"# Results of `{sweep.path.as_posix()}`", "",
             f"Runs in `{runs_dir.as_posix()}`; mean ± standard deviation over seeds."]  # fmt: skip
    for experiment, names in sweep.experiments.items():
        found = found_all[experiment]
        done = sum(len(g.finals) for g in found.values())
        lines += ["", f"## {experiment} ({done} of {len(names)} runs finished)", ""]
        lines += table(found, standard_errors=True) if found else ["(no finished runs)"]
        if against is not None and found:
            try:
                base = find_setting(list(found), against)
            except ConfigError:
                lines += ["", f"({against} is not a setting of this experiment)"]
                continue
            lines += ["", *difference_table(found, base)]
    return "\n".join(lines) + "\n"


def expand(paths) -> list[Run]:
    """Runs from paths: a run folder is itself, any other folder stands for the run folders in
    it (a sweep's output), in name order. A folder with no runs is an error naming it.

    Args:
        paths (Iterable[str | Path]): run folders, or folders of run folders.
    """
    runs = []
    for path in map(Path, paths):
        if Run.is_run(path) or not path.is_dir():
            runs.append(Run.open(path))
            continue
        inside = sorted(p for p in path.iterdir() if Run.is_run(p))
        if not inside:
            raise RunError(f"{path} is not a run folder and holds none")
        runs += [Run.open(p) for p in inside]
    return runs


def test_result(run: Run) -> dict | None:
    """A run's test result: its sweep's ``final.json``, else the newest ``tvo eval`` of the test
    split it kept by importance sampling (not a valid split's, nor BDMC's simulated points, nor
    an AIS or SMC estimate, which has no KL̂).

    Args:
        run: the run.
    """
    final = run.final()
    if final is not None:
        return final
    kept = sorted((run.path / "evaluations").glob("test-*.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(kept):  # the newest that measured what the table shows (not AIS/SMC's)
        report = json.loads(path.read_text())
        if report.get("method", "is") == "is":
            return report
    return None


def unique(runs: list[Run]) -> tuple[list[Run], list[tuple[Run, Run]]]:
    """The runs with each setting and seed once (the first found), and the others as
    ``(duplicate, the run it repeats)``: the same run in two sweeps' folders is not two seeds.

    Args:
        runs: the runs, in the order they were given.
    """
    first: dict[tuple[str, int], Run] = {}
    kept, repeats = [], []
    for run in runs:
        key = (_key(run.config), run.config.seed)
        if key in first:
            repeats.append((run, first[key]))
        else:
            first[key] = run
            kept.append(run)
    return kept, repeats


def by_setting(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by their setting (``setting``: the config without the seed), in order,
    under ``labels``. Give ``unique`` runs: a repeated seed is counted as it comes.

    Args:
        runs: the runs (``unique`` ones).
    """
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(_key(run.config), []).append(run)
    titles = labels([members[0].config for members in grouped.values()])
    return dict(zip(titles, grouped.values()))


def mean_sd(values: list[float]) -> str:
    """``mean ± sd`` of ``values`` (``-`` for none, the value alone for one; ``None`` values,
    which a result without that metric gives, are left out)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"
