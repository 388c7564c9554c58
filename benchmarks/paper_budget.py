"""What ``benchmarks/sweeps/paper.toml`` would take on this CPU, each run alone and in groups.

The sweep's runs are reduced to *kinds*, the settings that set the cost of a step (``KIND``:
model, data, objective, ``S``, ``K``, schedule and ``adapt_every``, OVIS's auxiliary particles,
batch size); seeds and ``β1`` do not. For each kind, at one torch thread on the CPU:

- ``single_ms``: the median step of one run (``tvo.train.Single``, the loop's own engine: batch
  drawn by the run's generator, ``tvo.step.Step``), and ``group_ms[M]``: the median step of the
  groups of ``M`` runs that ``tvo sweep --group G`` forms (``tvo.sweep.plan.units``;
  ``tvo.train.Group``, ``tvo.ensemble.GroupStep`` under it), the two timed alternately in one
  process (``common.paired_median_ms``) so that both see the same load. A group whose step
  would hold more than ``--group-memory-gb`` (``tvo.build``'s estimate, ``32 · M·S·B · (D +
  K + 2)`` bytes) is timed at the largest ``M' < M`` that fits and scaled by ``M / M'``
  (``group_measured``): such a step (batch 1000) is bound by its arithmetic, not by overhead.
  A kind whose group step fails (``tvo.ensemble.GroupError``, kept as ``group_error``) is
  trained by ``tvo sweep``'s worker one run at a time: its ``group_ms[M]`` is ``M ·
  single_ms`` (``group_measured`` 0).
- ``valid_s`` and ``test_s``: one evaluation during training (``eval_particles`` on
  ``eval_images`` images of ``eval_split``) and the sweep's final one (``[evaluation]``:
  5000 particles on every test image), each timed on the first ``--eval-images`` images with
  ``tvo.evaluate.run.evaluate_model`` and scaled by the image count. A group evaluates each
  member alone, so these are the same with and without groups.

The budget (``budget``), from a run's steps ``N`` (``tvo.config.run_steps``: ``steps``, or
``⌈epochs · N_train / B⌉``) and evaluations ``E = ⌊N / eval_every⌋ + [N mod eval_every ≠ 0]``::

    hours alone   = Σ_kinds runs · (N · single_ms / 1000 + E · valid_s + test_s) / 3600
    hours grouped = Σ_kinds (Σ_units N · group_ms[M_unit] + runs · (E · valid_s + test_s)) / 3600

and the wall-clock time at ``J`` jobs of one thread (``wall``): the units in the order
``tvo sweep`` starts them (``plan.units``), each given to the first job that is free, each job
on a core of its own. Metrics rows, TensorBoard events and checkpoints are not counted.

    python benchmarks/paper_budget.py --json benchmarks/results/paper_budget.json \\
        --compare benchmarks/results/workstation/linear_1-tvo-S10-K2-log-b0.2-seed0/metrics.csv
    python benchmarks/paper_budget.py --recompute    # the sums again, from the JSON's times
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import heapq
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import paired_median_ms

from tvo.build import build
from tvo.config import TrainConfig, run_steps
from tvo.data import load as load_data
from tvo.ensemble import GroupError
from tvo.evaluate.run import evaluate_model
from tvo.step import Generators, init_state
from tvo.sweep import load
from tvo.sweep.plan import units
from tvo.train import Group, Single

ROOT = Path(__file__).resolve().parents[1]
# The settings that set the cost of a step (seed, lr and β1 do not).
KIND = ("model", "data", "objective", "particles", "partitions", "schedule", "adapt_every",
        "auxiliary_particles", "batch_size")  # fmt: skip
CPU = torch.device("cpu")


def evaluations(config: TrainConfig, steps: int) -> int:
    """Evaluations during training: every ``eval_every`` steps and after the last
    (``tvo.train.log_row``)."""
    return steps // config.eval_every + (1 if steps % config.eval_every else 0)


def kind_label(settings: dict) -> str:
    s = settings
    label = f"{s['model']} {s['objective']} S={s['particles']}"
    if s["partitions"] is not None:
        label += f" K={s['partitions']}"
        if s["schedule"] not in (None, "log"):
            label += f" {s['schedule']}/{s['adapt_every']}"
    if s["auxiliary_particles"] is not None:
        label += f" M={s['auxiliary_particles']}"
    return label + f" B={s['batch_size']}"


def kinds(sweep, train_images: dict[str, int], group: int) -> tuple[list[dict], list, list]:
    """The sweep's kinds in file order, each with its runs, steps, evaluations and the sizes
    of the groups ``tvo sweep --group group`` would form; and the order of the units
    (``[kind index, members]``) alone and grouped, as ``tvo sweep`` starts them. A kind's
    ``experiments`` counts its runs by experiment; a run that two experiments list (the same
    name, one run) is counted once, under the first."""
    experiment = {}
    for name, names in sweep.experiments.items():
        for run in names:
            experiment.setdefault(run, name)
    rows: list[dict] = []
    index: dict[tuple, int] = {}
    of_run: dict[str, int] = {}
    for name, config in sweep.runs.items():
        settings = {k: getattr(config, k) for k in KIND}
        key = tuple(settings.items())
        steps = run_steps(config, train_images[config.data])
        if key not in index:
            index[key] = len(rows)
            rows.append({"kind": kind_label(settings),
                         "settings": settings, "runs": 0, "steps": steps,
                         "evaluations": evaluations(config, steps),
                         "eval": [config.eval_split, config.eval_particles, config.eval_images],
                         "experiments": {}, "group_sizes": [], "names": []})  # fmt: skip
        row = rows[index[key]]
        if (steps, evaluations(config, steps)) != (row["steps"], row["evaluations"]):
            raise ValueError(f"{name}: {steps} steps where its kind {row['kind']} has "
                             f"{row['steps']}: a kind must share its length")  # fmt: skip
        row["runs"] += 1
        row["experiments"][experiment[name]] = row["experiments"].get(experiment[name], 0) + 1
        row["names"].append(name)
        of_run[name] = index[key]
    with tempfile.TemporaryDirectory() as empty:  # no run started: every run is new
        order = {}
        for size in (1, group):
            order[size] = [
                [of_run[u[0]], len(u)] for u in units(sweep, Path(empty), list(sweep.runs), size)
            ]
    for k, members in order[group]:
        rows[k]["group_sizes"].append(members)
    return rows, order[1], order[group]


# --- the arithmetic (pure: the tests check it on a hand-made JSON) ---


def group_step_ms(row: dict, members: int) -> float:
    """The step of a unit of ``members`` runs of this kind (one run: ``single_ms``)."""
    return row["single_ms"] if members == 1 else row["group_ms"][str(members)]


def unit_seconds(row: dict, members: int) -> float:
    """A unit's time: its steps, then each member's evaluations (during and after training)."""
    evals = members * (row["evaluations"] * row["valid_s"] + row["test_s"])
    return row["steps"] * group_step_ms(row, members) / 1000 + evals


def budget(rows: list[dict]) -> dict:
    """CPU-hours of every kind, alone and grouped, and their sums (the module docstring);
    ``hours_best``: each kind alone or grouped, whichever is less (groups only where they
    pay)."""
    for row in rows:
        evals = row["runs"] * (row["evaluations"] * row["valid_s"] + row["test_s"])
        row["eval_hours"] = evals / 3600
        row["hours_alone"] = row["runs"] * unit_seconds(row, 1) / 3600
        row["hours_grouped"] = sum(unit_seconds(row, m) for m in row["group_sizes"]) / 3600
        row["hours_best"] = min(row["hours_alone"], row["hours_grouped"])
    total = {key: sum(r[key] for r in rows)
             for key in ("runs", "eval_hours", "hours_alone", "hours_grouped",
                         "hours_best")}  # fmt: skip
    total["run_steps"] = sum(r["runs"] * r["steps"] for r in rows)
    return total


def wall(rows: list[dict], order: list, jobs: int) -> float:
    """Hours until the last unit ends: the units in ``order`` (``[kind, members]``), each to
    the first of ``jobs`` jobs that is free."""
    free = [0.0] * jobs
    for k, members in order:
        heapq.heappush(free, heapq.heappop(free) + unit_seconds(rows[k], members))
    return max(free) / 3600


def longest_first(rows: list[dict], order: list) -> list:
    """``order``'s units, the longest first by their measured seconds (``tvo.sweep.plan``
    sorts by ``S · B · steps``, which does not see that a Gaussian step costs more than an SBN
    step of the same size)."""
    return sorted(order, key=lambda unit: -unit_seconds(rows[unit[0]], unit[1]))


def summarise(rows: list[dict], alone: list, grouped: list, jobs: int) -> dict:
    """``budget``'s totals, with the wall-clock hours at ``jobs`` jobs: in the order ``tvo
    sweep`` starts the units (``wall_alone``, ``wall_grouped``) and the longest first
    (``…_longest_first``)."""
    totals = budget(rows)
    for name, order in (("alone", alone), ("grouped", grouped)):
        totals[f"wall_{name}"] = wall(rows, order, jobs)
        totals[f"wall_{name}_longest_first"] = wall(rows, longest_first(rows, order), jobs)
    return totals


def by_experiment(rows: list[dict]) -> dict[str, dict]:
    """Runs, run-steps and hours by experiment; a kind's hours shared among its experiments in
    proportion to its runs in each (its groups may mix them); ``kinds``: the kinds with runs
    in it."""
    result: dict[str, dict] = {}
    for r in rows:
        for name, runs in r["experiments"].items():
            e = result.setdefault(name, {"kinds": 0, "runs": 0, "run_steps": 0,
                                         "hours_alone": 0.0, "hours_grouped": 0.0,
                                         "eval_hours": 0.0})  # fmt: skip
            e["kinds"] += 1
            e["runs"] += runs
            e["run_steps"] += runs * r["steps"]
            for key in ("hours_alone", "hours_grouped", "eval_hours"):
                e[key] += r[key] * runs / r["runs"]
    return result


# --- the measurement ---


def _setup(config: TrainConfig, data, seed: int):
    s = build(dataclasses.replace(config, seed=seed, device="cpu"), CPU, data=data)
    state = init_state(s.model, s.optimiser, s.schedule,
                       Generators.of_run(seed, CPU, s.particles_state))  # fmt: skip
    return s, state


def step_bytes(config: TrainConfig, pixels: int) -> float:
    """``tvo.build``'s estimate of one run's step memory."""
    return 32.0 * config.particles * config.batch_size * (pixels + (config.partitions or 1) + 1)


def _group_engine(config: TrainConfig, data, members: int):
    """``step()``: one step of a group of ``members`` runs of ``config`` (seeds 0, 1, …), as
    the loop takes it (``tvo.train.Group``: the members' batches drawn, then the step)."""
    setups = [_setup(config, data, m) for m in range(members)]
    group = Group([s for s, _ in setups], config, [config.lr] * members)
    state = group.init([st for _, st in setups])

    def step():
        nonlocal state
        state, _ = group(state, group.batch(state))

    return step


def measure_kind(config: TrainConfig, data, sizes: list[int], seconds: float, max_repeats: int,
                 memory_gb: float) -> dict:  # fmt: skip
    """``single_ms`` and ``group_ms`` (at each size of ``sizes``) of ``config``'s kind; each
    pair timed ``repeats`` times, as many as fit in about ``seconds`` (at least 3)."""
    s, state = _setup(config, data, 0)
    single = Single(s, config)
    state = single.init([state])

    def one():
        nonlocal state
        state, _ = single(state, single.batch(state))

    start = time.perf_counter()
    one()  # warm-up, and a first estimate
    probe = time.perf_counter() - start
    row = {"group_ms": {}, "group_measured": {}, "repeats": {}}
    singles = []
    for members in sorted(set(sizes)) or [1]:
        fits = int(memory_gb * 2**30 // step_bytes(config, data.pixels))
        measured = max(2, min(members, fits)) if members > 1 else 1
        if measured == 1:
            repeats = max(3, min(max_repeats, int(seconds / probe)))
            singles.append(paired_median_ms(one, lambda: None, CPU, repeats, warmup=1)[0])
            row["repeats"]["1"] = repeats
            continue
        together = _group_engine(config, data, measured)
        start = time.perf_counter()
        try:
            together()  # warm-up (vmap's first call checks the model), and a first estimate
        except GroupError as error:  # tvo sweep's worker then trains the runs one at a time
            row["group_error"] = str(error)
            repeats = max(3, min(max_repeats, int(seconds / probe)))
            single_ms = paired_median_ms(one, lambda: None, CPU, repeats, warmup=1)[0]
            singles.append(single_ms)
            row["group_ms"][str(members)] = round(members * single_ms, 3)
            row["group_measured"][str(members)] = 0
            row["repeats"][str(members)] = repeats
            continue
        pair = probe + time.perf_counter() - start
        repeats = max(3, min(max_repeats, int(seconds / pair)))
        warmup = 1 if pair > 0.5 else 5  # the probes were a first warm-up already
        single_ms, group_ms = paired_median_ms(one, together, CPU, repeats, warmup)
        singles.append(single_ms)
        row["group_ms"][str(members)] = round(group_ms * members / measured, 3)
        row["group_measured"][str(members)] = measured
        row["repeats"][str(members)] = repeats
    row["single_ms"] = round(statistics.median(singles), 3)
    return row


def measure_eval(config: TrainConfig, data, split: str, particles: int, images: int) -> float:
    """Seconds per image of ``evaluate_model`` at ``particles``, on the first ``images``."""
    s, _ = _setup(config, data, 0)
    evaluate_model(s.model, s.dataset, split, particles, 2, seed=0)  # warm-up
    seconds = evaluate_model(s.model, s.dataset, split, particles, images, seed=0)["seconds"]
    return seconds / images


def running_ms(paths: list[Path]) -> list[float]:
    """Milliseconds per step of running runs, from their ``metrics.csv`` (columns ``step``,
    ``seconds``): the median over consecutive rows that are not evaluations."""
    result = []
    for path in paths:
        rows = list(csv.DictReader(path.open()))
        rates = [1e3 * (float(b["seconds"]) - float(a["seconds"]))
                 / (int(b["step"]) - int(a["step"]))
                 for a, b in zip(rows, rows[1:]) if not a["split"] and not b["split"]]  # fmt: skip
        if rates:
            result.append(round(statistics.median(rates), 3))
    return result


def machine() -> dict:
    return {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version()}  # fmt: skip


# --- the document ---


def _h(hours: float) -> str:
    return f"{hours / 24:,.1f} d" if hours >= 48 else f"{hours:,.1f} h"


def report_lines(path: str | Path) -> list[str]:
    """Markdown lines for docs/RESULTS.md from the JSON this script writes."""
    data = json.loads(Path(path).read_text())
    t, g, jobs = data["totals"], data["group"], data["jobs"]
    sizes = ", ".join(str(m) for m in sorted({m for r in data["kinds"] for m in r["group_sizes"]}))
    lines = [
        f"Measured {data['date']} on {data['machine']['processor']} "
        f"({data['machine']['cpus']} cores), torch {data['machine']['torch']}, "
        f"{data['machine']['threads']} thread per run, load average "
        f"{data['load_before'][0]:.2f} before and {data['load_after'][0]:.2f} after "
        f"({data['seconds']:.0f} s of measurement): each kind's step alone and in the groups "
        f"that `tvo sweep --group {g}` forms, evaluations timed on a few images and scaled.",
        "",
        "| experiment | kinds (a kind in two experiments counts in each) | runs | run-steps | "
        "CPU-hours alone | CPU-hours grouped | of which evaluation |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in data["experiments"].items():
        lines.append(f"| {name} | {e['kinds']} | {e['runs']} | {e['run_steps']:.2e} | "
                     f"{e['hours_alone']:,.0f} | {e['hours_grouped']:,.0f} | "
                     f"{e['eval_hours']:,.0f} |")  # fmt: skip
    lines.append(f"| **all** | {len(data['kinds'])} | {t['runs']} | {t['run_steps']:.2e} | "
                 f"**{t['hours_alone']:,.0f}** | **{t['hours_grouped']:,.0f}** | "
                 f"{t['eval_hours']:,.0f} |")  # fmt: skip
    lines += [
        "",
        f"Every run alone: {t['hours_alone']:,.0f} CPU-hours, {_h(t['wall_alone'])} of wall "
        f"clock at {jobs} jobs × 1 thread; in groups of up to {g}: {t['hours_grouped']:,.0f} "
        f"CPU-hours, {_h(t['wall_grouped'])} (each job on a core of its own; the units in the "
        f"order `tvo sweep` starts them, the largest S · B · steps first, each to the first "
        "free job). Started longest first by their measured times, the same units would take "
        f"{_h(t['wall_alone_longest_first'])} alone and {_h(t['wall_grouped_longest_first'])} "
        "grouped. Grouping only the kinds where groups pay (each kind alone or grouped, "
        f"whichever is less): {t['hours_best']:,.0f} CPU-hours.",
    ]
    failed = [r["kind"] for r in data["kinds"] if r.get("group_error")]
    if failed:
        lines.append(f"When this was measured, {len(failed)} kind{'s' if len(failed) > 1 else ''} "
                     f"could not be grouped ({', '.join(failed)}): the group step failed under "
                     "`torch.func.vmap` (`tvo.ensemble.GroupError`), and `tvo sweep`'s worker "
                     "then trains the group's runs one at a time, as counted here.")  # fmt: skip
    if data.get("running"):
        r = data["running"]
        lines.append(f"The step of `{r['kind']}` measured here, {r['measured_ms']:.2f} ms, "
                     f"against {', '.join(f'{v:.2f}' for v in r['sweep_ms'])} ms per step "
                     "in the runs of the sweep running beside it (2 jobs × 1 thread).")  # fmt: skip
    lines += [
        "",
        "What must be measured on a GPU to say the same there. `benchmarks/gpu_check.sh` "
        "checks that a group step makes no host synchronisation and times "
        "`benchmarks/ensemble_speed.py` at 1 to 256 members for two settings only (linear_1 "
        "TVO S=10 K=5 at batch 24, gaussian TVO S=10 K=5 at batch 100); it times neither "
        "this sweep's kinds nor its evaluations. To give this table for a GPU, measure there: "
        "(1) each kind's step alone: at batch 24 an SBN step is bound by per-operation "
        "overhead (on a GPU, kernel launches and the single run's read of its finiteness "
        "every step), so the CPU's ratios between kinds do not carry over; "
        f"(2) the steps of the groups `tvo sweep --group {g}` forms (sizes {sizes}), the "
        "speedup `M · single / group` at each size, and the most members that fit: a kind "
        "that leaves the device idle alone gains most; (3) whether the Gaussian kinds at "
        "batch 1000 (S·B = 5000 to 50,000 particle rows of 784 pixels a step) already fill "
        "the device, so that groups gain nothing there; (4) each run's evaluations: the "
        "validation every `eval_every` steps and the final one, 5000 particles on all 10,000 "
        "test images, at the GPU's default chunk (1000 particles per image); (5) how many "
        "jobs share one GPU before each one's step slows, which takes the place of this "
        f"machine's {jobs} jobs × 1 thread in the wall-clock time.",
    ]
    return lines


def print_table(rows: list[dict], data: dict) -> None:
    print(f"{'kind':<44} {'runs':>4} {'steps':>8} {'single ms':>9} {'groups':>8} "
          f"{'group ms':>17} {'h alone':>8} {'h group':>8}")  # fmt: skip
    for r in rows:
        sizes = sorted(set(r["group_sizes"]))
        ms = " ".join(f"{r['group_ms'].get(str(m), r['single_ms']):.1f}" for m in sizes)
        print(f"{r['kind']:<44} {r['runs']:>4} {r['steps']:>8} {r['single_ms']:>9.2f} "
              f"{'/'.join(map(str, sizes)):>8} {ms:>17} {r['hours_alone']:>8.1f} "
              f"{r['hours_grouped']:>8.1f}")  # fmt: skip
    t = data["totals"]
    print(f"total: {t['runs']} runs, {t['run_steps']:.4g} run-steps; CPU-hours alone "
          f"{t['hours_alone']:,.0f} (evaluation {t['eval_hours']:,.0f}), grouped "
          f"{t['hours_grouped']:,.0f}, best of the two by kind {t['hours_best']:,.0f}; wall at "
          f"{data['jobs']} jobs × 1 thread: alone "
          f"{_h(t['wall_alone'])}, grouped {_h(t['wall_grouped'])} (longest first: "
          f"{_h(t['wall_alone_longest_first'])}, "
          f"{_h(t['wall_grouped_longest_first'])})")  # fmt: skip


def replan(data: dict) -> None:
    """The units of ``data``'s sweep in the order ``tvo sweep`` now starts them
    (``order_alone``, ``order_grouped``), for times measured under an earlier plan: the kinds
    must be the JSON's, in its order. The training sets' sizes are the registry's
    (``tvo.data.datasets.TRAIN_IMAGES``), so no data is loaded."""
    from tvo.data.datasets import TRAIN_IMAGES

    sweep = load(ROOT / data["sweep"])
    rows, alone, grouped = kinds(sweep, TRAIN_IMAGES, data["group"])
    labels = [r["kind"] for r in rows]
    if labels != [r["kind"] for r in data["kinds"]]:
        raise ValueError(f"{data['sweep']} no longer has the kinds that were measured")
    data["order_alone"], data["order_grouped"] = alone, grouped


def recompute(path: Path) -> int:
    """``--recompute``: the totals of a measured JSON, summed again over the units as
    ``tvo sweep`` now plans them."""
    data = json.loads(path.read_text())
    replan(data)
    rows = data["kinds"]
    data["totals"] = summarise(rows, data["order_alone"], data["order_grouped"], data["jobs"])
    data["experiments"] = by_experiment(rows)
    print_table(rows, data)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default=str(ROOT / "benchmarks/sweeps/paper.toml"))
    parser.add_argument("--group", type=int, default=16, help="tvo sweep --group G")
    parser.add_argument("--jobs", type=int, default=2, help="jobs of one thread, for the wall")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="about this long timing each pair of a kind")  # fmt: skip
    parser.add_argument("--steps", type=int, default=30, help="at most this many timed pairs")
    parser.add_argument(
        "--group-memory-gb",
        type=float,
        default=3.0,
        help="time a group at fewer members above this (then scaled)",
    )
    parser.add_argument(
        "--eval-images",
        type=int,
        default=20,
        help="images each evaluation is timed on (then scaled)",
    )
    parser.add_argument("--only", help="time only the kinds whose label contains this")
    parser.add_argument(
        "--compare",
        nargs="*",
        default=[],
        type=Path,
        help="metrics.csv of running runs of linear_1 tvo S=10 K=2 B=24",
    )
    parser.add_argument(
        "--json",
        default=str(ROOT / "benchmarks/results/paper_budget.json"),
        help="where the JSON goes (default benchmarks/results/paper_budget.json)",
    )
    parser.add_argument("--recompute", action="store_true",
                        help="measure nothing: redo the sums of the JSON at --json (its kinds' "
                        "times as measured, its units as tvo sweep now plans them) and write "
                        "it back")  # fmt: skip
    args = parser.parse_args(argv)
    if args.recompute:
        return recompute(Path(args.json))
    for name in ("group", "jobs", "threads", "steps", "eval_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(args, name)}")
    for path in args.compare:
        if not path.is_file():
            parser.error(f"--compare: no file {path}")
    torch.set_num_threads(args.threads)
    began, load_before = time.perf_counter(), os.getloadavg()
    sweep = load(Path(args.sweep))
    datasets = {name: load_data(name, None, support=None)
                for name in sorted({c.data for c in sweep.runs.values()})}  # fmt: skip
    rows, alone, grouped = kinds(sweep, {n: len(d.train) for n, d in datasets.items()}, args.group)
    if args.only:
        keep = [i for i, r in enumerate(rows) if args.only in r["kind"]]
        if not keep:
            parser.error(f"--only {args.only!r} names no kind")
        rows = [rows[i] for i in keep]
        alone = [[keep.index(k), m] for k, m in alone if k in keep]
        grouped = [[keep.index(k), m] for k, m in grouped if k in keep]
    evals: dict[tuple, float] = {}
    for i, row in enumerate(rows):
        config = sweep.runs[row["names"][0]]
        data = datasets[config.data]
        row.update(measure_kind(config, data, row["group_sizes"], args.seconds, args.steps,
                                args.group_memory_gb))  # fmt: skip
        for what, split, particles, images in (
            ("valid_s", config.eval_split, config.eval_particles, config.eval_images),
            ("test_s", sweep.evaluation["split"], sweep.evaluation["particles"],
             sweep.evaluation["images"]),
        ):  # fmt: skip
            count = len(data.split(split)[:images])
            key = (config.model, config.data, split, particles)
            if key not in evals:
                evals[key] = measure_eval(config, data, split, particles, args.eval_images)
            row[what] = round(evals[key] * count, 3)
            row[what.replace("_s", "_images")] = count
        print(f"[{i + 1}/{len(rows)}] {row['kind']}: {row['single_ms']:.2f} ms alone, "
              f"{row['group_ms']} in groups, {time.perf_counter() - began:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
    for row in rows:
        del row["names"]
    totals = summarise(rows, alone, grouped, args.jobs)
    data = {"sweep": os.path.relpath(args.sweep, ROOT), "group": args.group, "jobs": args.jobs,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "load_before": load_before, "load_after": os.getloadavg(),
            "eval_images_timed": args.eval_images, "group_memory_gb": args.group_memory_gb,
            "seconds": round(time.perf_counter() - began, 1), "totals": totals,
            "experiments": by_experiment(rows), "order_alone": alone,
            "order_grouped": grouped, "kinds": rows}  # fmt: skip
    reference = next((r for r in rows if r["kind"] == "linear_1 tvo S=10 K=2 B=24"), None)
    if args.compare and reference:
        data["running"] = {"kind": reference["kind"], "measured_ms": reference["single_ms"],
                           "sweep_ms": running_ms(args.compare),
                           "files": [str(p) for p in args.compare]}  # fmt: skip
    print_table(rows, data)
    if data.get("running"):
        print(f"running sweep: {data['running']['sweep_ms']} ms per step against "
              f"{reference['single_ms']:.2f} ms here")  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
