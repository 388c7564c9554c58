"""Results of any sweep: per experiment, each setting's final metrics over its seeds.

``tvo report FILE`` reads the sweep file and its runs' ``final.json`` and ``summary.json`` and
prints (or with ``--out`` writes) a Markdown table per experiment: mean ± sample standard
deviation over seeds of the final ``log p̂(x)`` (with its standard error ``sd / √n``),
``KL̂(q‖p)`` and ELBO, the training time and steps. ``tvo compare`` shows runs (or a sweep's
output folder) with their test results and seed aggregates through :func:`expand`,
:func:`test_result` and :func:`by_setting`. The paper's own document (claims and verdicts) is
built on these groups by ``benchmarks/paper_report.py``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from tvo.config import TrainConfig
from tvo.runs import Run, RunError
from tvo.sweep import Sweep


@dataclass
class Group:
    """The finished runs of one setting across seeds."""

    label: str
    config: TrainConfig  # the first seed's
    names: list[str]
    finals: list[dict]
    summaries: list[dict]
    metrics: list[list[dict]]

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


def groups(sweep: Sweep, runs_dir: Path, experiment: str) -> dict[str, Group]:
    """The experiment's finished runs grouped by setting, in file order."""
    found: dict[str, Group] = {}
    for name in sweep.experiments.get(experiment, []):
        run = Run(runs_dir / name)
        final = run.final()
        if final is None:
            continue
        key = label(sweep.runs[name])
        group = found.setdefault(key, Group(key, sweep.runs[name], [], [], [], []))
        group.names.append(name)
        group.finals.append(final)
        group.summaries.append(run.summary() or {})
        group.metrics.append(run.read_metrics())
    return found


def table(found: dict[str, Group], standard_errors: bool = False) -> list[str]:
    """A Markdown table: one row per group, mean ± sd over its seeds (and, with
    ``standard_errors``, a column of the standard error of the mean log p̂(x))."""
    split = next((g.finals[0].get("split", "test") for g in found.values()), "test")
    se = " SE of log p̂(x) |" if standard_errors else ""
    rule = "|---|---|---|" + ("---|" if se else "") + "---|---|---|---|"
    lines = [f"| setting | seeds | {split} log p̂(x) |{se} {split} KL̂(q‖p) | ELBO | train time "
             "(s) | steps |", rule]  # fmt: skip
    for g in found.values():
        seconds = statistics.fmean(s.get("seconds", float("nan")) for s in g.summaries)
        steps = g.summaries[0].get("steps", "-")
        error = f" {g.se('log_px'):.2f} |" if standard_errors else ""
        lines.append(f"| {g.label} | {len(g.finals)} | {g.cell('log_px')} |{error} "
                     f"{g.cell('kl')} | {g.cell('elbo')} | {seconds:.0f} | {steps} |")  # fmt: skip
    return lines


def document(sweep: Sweep, runs_dir: Path) -> str:
    """The Markdown of every experiment's table."""
    lines = [f"# Results of `{sweep.path.as_posix()}`", "",
             f"Runs in `{runs_dir.as_posix()}`; mean ± standard deviation over seeds."]  # fmt: skip
    for experiment, names in sweep.experiments.items():
        found = groups(sweep, runs_dir, experiment)
        done = sum(len(g.finals) for g in found.values())
        lines += ["", f"## {experiment} ({done} of {len(names)} runs finished)", ""]
        lines += table(found, standard_errors=True) if found else ["(no finished runs)"]
    return "\n".join(lines) + "\n"


def expand(paths) -> list[Run]:
    """Runs from paths: a run folder is itself, any other folder stands for the run folders in
    it (a sweep's output), in name order. A folder with no runs is an error naming it."""
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
    split it kept (not a valid split's, nor BDMC's simulated points)."""
    final = run.final()
    if final is not None:
        return final
    kept = sorted((run.path / "evaluations").glob("test-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(kept[-1].read_text()) if kept else None


def by_setting(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by their settings without the seed (:func:`label`), in order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(label(run.config), []).append(run)
    return groups


def mean_sd(values: list[float]) -> str:
    """``mean ± sd`` of ``values`` (``-`` for none, the value alone for one)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"
