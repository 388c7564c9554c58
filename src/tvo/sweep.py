"""Sweeps: a grid of runs from one TOML file, several at once, finished runs skipped and
unfinished ones resumed.

The file (see ``benchmarks/sweeps/*.toml``)::

    out = "results/mine"     # the runs' folder (default: results/FILE_NAME)
    [evaluation]             # the final evaluation of every run (written to RUN/final.json)
    split = "test"
    particles = 5000
    images = 2000            # the first N images of the split; leave out for all of them

    [defaults]               # TrainConfig settings shared by every run (names as config.json)
    data = "binarized-mnist"
    steps = 10000

    [[experiment]]           # a named group of runs; its grids are crossed with its seeds
    name = "sbn"
    seeds = [0, 1, 2]
    grid = [{objective = ["vimco", "rws"]}, {objective = "tvo", partitions = [2, 5]}]

    [bounds]                 # optional: ĝ(β) of one trained run on a fine grid of β (claim 1)
    run = "linear_1-tvo-S10-K5-log-b0.05-seed0"
    partitions = [2, 5, 10, 50]

In a grid a list is crossed with the other lists; a scalar is shared. Every run gets a folder
``OUT/NAME`` named by its settings, so a run that two experiments share is trained once. A run
is done when its ``final.json`` exists; a run with a checkpoint is resumed (``tvo train
--resume``). Each run is its own process with ``threads`` torch threads, ``jobs`` at a time.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tvo import config as config_module
from tvo.config import ConfigError, TrainConfig
from tvo.files import write_atomic
from tvo.objectives import TVO_OBJECTIVES
from tvo.partitions import ADAPTIVE_SCHEDULES
from tvo.runs import Run

EVALUATION_DEFAULTS = {"split": "test", "particles": 5000, "images": None, "chunk_size": None}
BOUNDS_DEFAULTS = {"partitions": [2, 5, 10, 50], "beta1": [0.01, 0.05, 0.2], "images": None,
                   "particles": 5000, "split": "test", "iwae": [10, 100]}  # fmt: skip
TOP_KEYS = {"out", "evaluation", "defaults", "experiment", "bounds", "cost", "budget"}


@dataclass
class Sweep:
    """A parsed sweep file: ``runs`` maps a run name to its config, ``experiments`` an
    experiment name to its run names (in file order)."""

    path: Path
    evaluation: dict
    runs: dict[str, TrainConfig] = field(default_factory=dict)
    experiments: dict[str, list[str]] = field(default_factory=dict)
    bounds: dict | None = None
    extra: dict = field(default_factory=dict)
    out: Path | None = None  # where the runs go unless the command says otherwise


def run_name(config: TrainConfig) -> str:
    """``MODEL-OBJECTIVE-S10[-K5-log-b0.05]-seed0``: the settings a sweep varies."""
    name = f"{config.model}-{config.objective}-S{config.particles}"
    if config.objective in TVO_OBJECTIVES:
        name += f"-K{config.partitions}-{config.schedule}"
        if config.schedule in ("log", *ADAPTIVE_SCHEDULES):  # adaptive ones start from log
            name += f"-b{config.beta1:g}"
    if config.data != "binarized-mnist" and config.model != "gaussian":
        name += f"-{Path(config.data).stem}"
    return f"{name}-seed{config.seed}"


def _crossed(grid: dict) -> list[dict]:
    keys = list(grid)
    values = [v if isinstance(v, list) else [v] for v in grid.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def load(path: str | Path) -> Sweep:
    """Parse and validate a sweep file; every run's settings are checked before any work."""
    path = Path(path)
    settings = config_module.read_toml(path, allowed=TOP_KEYS)
    evaluation = {**EVALUATION_DEFAULTS, **settings.get("evaluation", {})}
    config_module.check_keys(evaluation, EVALUATION_DEFAULTS, f"{path} [evaluation]")
    defaults = settings.get("defaults", {})
    config_module.check_keys(defaults, config_module.FIELDS, f"{path} [defaults]")
    experiments = settings.get("experiment", [])
    if not experiments:
        raise ConfigError(f"{path}: no [[experiment]] tables: nothing to run")
    extra = {k: settings[k] for k in ("cost", "budget") if k in settings}
    out = Path(settings["out"]) if "out" in settings else None
    sweep = Sweep(path, evaluation, extra=extra, out=out)
    for experiment in experiments:
        name = experiment.get("name")
        if not name or name in sweep.experiments:
            raise ConfigError(f"{path}: every [[experiment]] needs a unique name, got {name!r}")
        config_module.check_keys(experiment, ("name", "seeds", "grid"), f"{path} [[experiment]]")
        names = sweep.experiments[name] = []
        for grid in experiment.get("grid", [{}]):
            config_module.check_keys(grid, config_module.FIELDS, f"{path} experiment {name!r}")
            for seed in experiment.get("seeds", [0]):
                for point in _crossed(grid):
                    values = {**defaults, **point, "seed": seed}
                    if "epochs" in point and "steps" not in point:
                        values.pop("steps", None)  # epochs replace the default step count
                    try:
                        config = config_module.resolve(**values)
                    except (ConfigError, TypeError) as error:
                        raise ConfigError(f"{path}, experiment {name!r}: {error}") from error
                    # A preset only fills in values: the same values make the same run.
                    config = dataclasses.replace(config, preset=None)
                    key = run_name(config)
                    if key in sweep.runs and sweep.runs[key] != config:
                        raise ConfigError(f"{path}: two runs named {key} differ in settings")
                    sweep.runs[key] = config
                    if key not in names:
                        names.append(key)
    if "bounds" in settings:
        sweep.bounds = {**BOUNDS_DEFAULTS, **settings["bounds"]}
        config_module.check_keys(sweep.bounds, [*BOUNDS_DEFAULTS, "run"], f"{path} [bounds]")
        if sweep.bounds.get("run") not in sweep.runs:
            raise ConfigError(f"{path}: [bounds] run must name a run of the sweep, got "
                              f"{sweep.bounds.get('run')!r}")  # fmt: skip
    return sweep


def status(folder: Path) -> str:
    """``done`` (evaluated), ``evaluate`` (trained), ``resume`` (a checkpoint) or ``new``."""
    if (folder / "final.json").is_file():
        return "done"
    if (folder / "summary.json").is_file():
        return "evaluate"
    if (folder / "checkpoints").is_dir() and any((folder / "checkpoints").glob("*.pt")):
        return "resume"
    return "new"


def prepare(sweep: Sweep, out: Path) -> dict[str, str]:
    """Create the run folders that do not exist yet; refuse a folder whose settings differ
    from the sweep's (nothing is overwritten). Returns each run's status."""
    states = {}
    for name, config in sweep.runs.items():
        folder = out / name
        if Run.is_run(folder):
            existing = Run.open(folder).config
            if existing != config:
                changed = [f.name for f in dataclasses.fields(TrainConfig)
                           if getattr(existing, f.name) != getattr(config, f.name)]  # fmt: skip
                raise ConfigError(
                    f"{folder} holds a run whose settings differ from the sweep's "
                    f"({', '.join(changed)}); move it away or give the sweep another --out"
                )
        else:
            Run.create(folder, config)
        states[name] = status(folder)
    return states


def worker_command(folder: Path, evaluation: dict) -> list[str]:
    return [sys.executable, "-m", "tvo.sweep", "--worker", str(folder),
            "--evaluation", json.dumps(evaluation)]  # fmt: skip


def run(sweep: Sweep, out: str | Path, jobs: int | None = None, threads: int | None = None,
        quiet: bool = False) -> int:  # fmt: skip
    """Run every unfinished run of ``sweep`` under ``out``; returns the number that failed."""
    from tqdm import tqdm

    out = Path(out)
    cores = os.cpu_count() or 1
    jobs = jobs or cores
    threads = threads or max(1, cores // jobs)
    states = prepare(sweep, out)
    todo = [n for n, s in states.items() if s != "done"]
    # Longest first (by particles × batch × steps), so the last job does not run alone.
    todo.sort(key=lambda n: -_cost(sweep.runs[n]))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    counts = {s: list(states.values()).count(s) for s in ("done", "evaluate", "resume", "new")}
    print(f"sweep {sweep.path.name}: {len(states)} runs in {out} ({counts['done']} done, "
          f"{counts['resume'] + counts['evaluate']} to finish, {counts['new']} new); "
          f"{jobs} at a time, {threads} thread(s) each", flush=True)  # fmt: skip
    start = time.time()
    failed: list[str] = []
    live: set[subprocess.Popen] = set()
    stopping = threading.Event()

    def one(name: str) -> tuple[str, int]:
        if stopping.is_set():
            return name, -1
        with open(out / name / "sweep.log", "a") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
            log.flush()
            cmd = worker_command(out / name, sweep.evaluation)
            process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            live.add(process)
            code = process.wait()
            live.discard(process)
            return name, code

    bar = tqdm(total=len(states), initial=counts["done"], desc="runs", disable=quiet)
    pool = ThreadPoolExecutor(max_workers=jobs)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops a sweep as Ctrl-C does
    try:
        for future in as_completed([pool.submit(one, name) for name in todo]):
            name, code = future.result()
            bar.update()
            if code != 0:
                failed.append(name)
                bar.write(f"failed ({code}): {name}, see {out / name / 'sweep.log'}")
        if sweep.bounds is not None and not failed:
            bounds(sweep, out)
    except KeyboardInterrupt:
        stopping.set()
        for process in list(live):  # training stops at a checkpoint; an evaluation is redone
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.write("interrupted: unfinished runs are saved; run the same command to resume")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.shutdown(wait=True)
        bar.close()
        _record_time(out, time.time() - start, jobs, threads)
    return len(failed)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _cost(config: TrainConfig) -> float:
    return config.particles * config.batch_size * (config.steps or 1)


def _record_time(out: Path, seconds: float, jobs: int, threads: int) -> None:
    """Append this invocation's wall-clock time to ``OUT/sweep.json``."""
    path = out / "sweep.json"
    record = json.loads(path.read_text()) if path.is_file() else {"invocations": []}
    ended = time.strftime("%Y-%m-%d %H:%M:%S")
    record["invocations"].append({"seconds": round(seconds, 1), "jobs": jobs, "threads": threads,
                                  "cores": os.cpu_count(), "ended": ended})  # fmt: skip
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))


def bounds(sweep: Sweep, out: Path) -> Path:
    """Claim 1's evaluation of the ``[bounds]`` run, written to ``OUT/bounds.json`` (skipped
    when it exists): the mean ``ĝ(β)`` at every point of the linear schedule and of the log
    schedule (each β1) for each K, ``log p̂(x)``, and the IWAE bound ``E[L̂_S]`` for
    ``S ∈ iwae`` (from disjoint groups of the same particles)."""
    import torch

    from tvo.ops import logmeanexp, merge, weighted_mean
    from tvo.partitions import partition
    from tvo.train import load_trained

    target = out / "bounds.json"
    if target.is_file():
        return target
    b = sweep.bounds
    schedules = {f"linear K={k}": partition(k, "linear") for k in b["partitions"]}
    for beta1 in b["beta1"]:
        schedules.update({f"log b1={beta1:g} K={k}": partition(k, "log", beta1)
                          for k in b["partitions"]})  # fmt: skip
    points = torch.unique(torch.cat(list(schedules.values())).double())
    prepared, _, step = load_trained(Run.open(out / b["run"]))
    images = prepared.dataset.split(b["split"])[: b["images"]]
    torch.manual_seed(0)
    if prepared.dataset.dynamic:
        images = torch.bernoulli(images)
    points = points.to(images.device)
    start, chunk = time.perf_counter(), 500
    integrand, log_px, iwae = [], [], {s: [] for s in b["iwae"] if chunk % s == 0}
    with torch.no_grad():
        for i in range(0, len(images), 100):
            x, state = images[i : i + 100], None
            for _ in range(0, b["particles"], chunk):
                z, log_q = prepared.model.sample_guide(x, chunk)
                ell = (prepared.model.log_joint(x, z) - log_q).double()  # [chunk, B]
                piece = weighted_mean(points[:, None, None] * ell, ell, dim=1)
                state = piece if state is None else merge(state, piece)
                for size, values in iwae.items():
                    values.append(logmeanexp(ell.reshape(chunk // size, size, -1), 1).mean(0))
            integrand.append(state.mean)
            log_px.append(state.log_norm[-1] - math.log(b["particles"]))
    record = {"run": b["run"], "step": step, "split": b["split"], "num_images": len(images),
              "particles": b["particles"], "points": points.tolist(),
              "integrand": torch.cat(integrand, 1).mean(1).tolist(),
              "log_px": torch.cat(log_px).mean().item(),
              "iwae": {str(s): torch.stack(v).mean().item() for s, v in iwae.items()},
              "schedules": {k: v.tolist() for k, v in schedules.items()},
              "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    write_atomic(target, lambda tmp: tmp.write_text(json.dumps(record) + "\n"))
    return target


def work(folder: Path, evaluation: dict) -> int:
    """One run, in its own process: train (or resume) to the end, then the final evaluation."""
    from tvo.train import evaluate_run, train

    run_folder = Run.open(folder)
    if status(folder) in ("new", "resume"):
        summary = train(run_folder, quiet=True)
        if summary["steps"] < summary["total_steps"]:
            return 1  # interrupted: the checkpoint is saved, the next sweep resumes it
    report = evaluate_run(run_folder, evaluation["split"], evaluation["particles"],
                          evaluation["images"], evaluation["chunk_size"])  # fmt: skip
    text = json.dumps(report, indent=2) + "\n"
    write_atomic(folder / "final.json", lambda tmp: tmp.write_text(text))
    print(f"final: {text}", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker" and sys.argv[3] == "--evaluation":
        sys.exit(work(Path(sys.argv[2]), json.loads(sys.argv[4])))
    sys.exit("usage: python -m tvo.sweep --worker RUN_DIR --evaluation JSON (used by tvo sweep)")
