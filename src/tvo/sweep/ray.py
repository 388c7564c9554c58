"""The Ray executor of a sweep (``tvo sweep FILE --executor ray``): each unit of work (a run, or
a group of runs: ``tvo.sweep.plan.units``) is a Ray task that calls
``tvo.sweep.worker.work``, so a sweep runs on every machine of a Ray cluster.

Resources: a task asks for ``threads`` CPUs (its torch threads) and ``gpus_per_task`` GPUs (a
fraction shares one GPU), so Ray packs tasks onto the nodes by what they have. At most ``jobs``
units are handed to Ray at a time (default: as many as the cluster's CPUs and GPUs hold when the
sweep starts), so the progress bar's ``running`` is what runs.

The guarantees of the local executor (``tvo.sweep.local``) hold: finished runs are skipped,
unfinished ones resume from their checkpoints, and every file goes to the run folders under
``out``, which must be one storage path that every node sees (a network file system mounted at
the same path everywhere); each unit's output goes to its runs' ``sweep.log``. A task whose
worker process or node dies is run again by Ray (``MAX_RETRIES`` times), and the run
resumes from its last checkpoint to the result of an uninterrupted run (the run folder's lock
is an OS lock, released when its process dies). Ctrl-C (or SIGTERM) of the driver cancels the
tasks: one that waits never starts, one that trains gets the interrupt Ray sends a cancelled
task (a SIGINT in Python's main thread), so ``tvo.train.StopRequest`` stops it after its
step with a checkpoint, and the driver waits for that before it returns.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections import deque
from pathlib import Path

from tvo.config import ConfigError
from tvo.runs import Run
from tvo.sweep.local import interrupt, record_time
from tvo.sweep.plan import Sweep, prepare, units

MAX_RETRIES = 3  # a task whose worker process or node dies is run again this many times
TAIL = 10  # lines of a failed unit's output printed on the driver
STOP_WAIT = 600.0  # seconds Ctrl-C waits for running units to reach their checkpoint
EXTRA = "pip install 'tvo[ray]'"


def require_ray():
    """The ``ray`` module, or a ``ConfigError`` naming the extra to install."""
    try:
        import ray
    except ImportError as error:
        raise ConfigError(
            f"--executor ray needs Ray, which is not installed ({error}); install it with: "
            f"{EXTRA}, or use --executor local"
        ) from None
    return ray


def run(sweep: Sweep, out: str | Path, jobs: int | None = None, threads: int | None = None,
        quiet: bool = False, group: int = 1, address: str | None = None,
        gpus_per_task: float = 0.0) -> int:  # fmt: skip
    """Run every unfinished run of ``sweep`` under ``out`` as Ray tasks; returns the number of
    runs that did not finish.

    ``address``: the cluster (``auto``, ``HOST:PORT``; ``None`` connects to an already
    initialised Ray, else starts one on this machine). ``threads``: CPUs and torch threads per
    task (default 1); ``gpus_per_task``: GPUs per task (0: CPU only; needed for runs whose
    ``device`` is ``cuda``); ``jobs``: units in flight at once (default: what the cluster holds).

    Args:
        sweep: the sweep.
        out: the runs' folder, one every node sees.
        jobs: units in flight at once (``None``: what the cluster holds).
        threads: CPUs and torch threads per task (``None``: 1).
        quiet: no progress bar.
        group: the most runs trained together in one task.
        address: the cluster (``auto``, ``HOST:PORT``, or ``None``).
        gpus_per_task: GPUs per task.
    """
    ray = require_ray()
    from tqdm import tqdm

    out = Path(out).resolve()  # the same absolute path on every node
    threads = threads or 1
    if gpus_per_task < 0:
        raise ConfigError(f"--gpus-per-task must be ≥ 0, got {gpus_per_task}")
    on_cuda = [name for name, config in sweep.runs.items() if config.device == "cuda"]
    if on_cuda and not gpus_per_task:
        raise ConfigError(
            f"{on_cuda[0]} has device = 'cuda', but the tasks ask for no GPU: give "
            "--gpus-per-task (e.g. 0.25 for four runs on a GPU) or device = 'auto'"
        )
    states = prepare(sweep, out)
    todo = deque(units(sweep, out, [n for n, s in states.items() if s != "done"], group))
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=False, logging_level="warning",
                 **({} if address else {"include_dashboard": False}))  # fmt: skip
    try:
        jobs = jobs or capacity(ray.cluster_resources(), threads, gpus_per_task)
    except ConfigError:
        if started_here:
            ray.shutdown()
        raise
    start = time.time()
    failed: list[str] = []
    flight: dict = {}  # an ObjectRef -> the names of its unit
    main = threading.current_thread() is threading.main_thread()  # signals: main thread only
    previous = signal.signal(signal.SIGTERM, interrupt) if main else None  # SIGTERM as Ctrl-C
    bar = None
    try:
        counts = {s: list(states.values()).count(s) for s in ("done", "evaluate", "resume", "new")}
        where = f"Ray at {address}" if address else "Ray"
        print(f"sweep {sweep.path.name}: {len(states)} runs in {out} ({counts['done']} done, "
              f"{counts['resume'] + counts['evaluate']} to finish, {counts['new']} new), "
              f"{len(todo)} tasks on {where}; {jobs} at a time, {threads} CPU(s) and thread(s)"
              f"{f' and {gpus_per_task:g} GPU' if gpus_per_task else ''} each",
              flush=True)  # fmt: skip
        task = ray.remote(unit).options(num_cpus=threads, num_gpus=gpus_per_task,
                                        max_retries=MAX_RETRIES, retry_exceptions=False,
                                        name="tvo-sweep-unit")  # fmt: skip
        bar = tqdm(total=len(states), initial=counts["done"], desc="runs", disable=quiet)
        while todo or flight:
            while todo and len(flight) < jobs:
                names = todo.popleft()
                folders = [str(out / name) for name in names]
                flight[task.remote(folders, sweep.evaluation, threads)] = names
            bar.set_postfix(running=sum(map(len, flight.values())), failed=len(failed))
            ready, _ = ray.wait(list(flight), num_returns=1, timeout=1.0)
            for ref in ready:
                names = flight.pop(ref)
                result = _result(ray, ref, [out / name for name in names])
                for name in names:
                    bar.update()
                    if Run(out / name).status() != "done":
                        failed.append(name)
                        bar.write(failure(name, result, Run(out / name).log_file))
        bar.set_postfix(running=0, failed=len(failed))
    except KeyboardInterrupt:
        if flight:
            write = bar.write if bar else print
            write(f"interrupted: stopping {len(flight)} running task(s) at a checkpoint")
            for ref in flight:  # a waiting task never starts; a running one stops after its step
                ray.cancel(ref)
            ray.wait(list(flight), num_returns=len(flight), timeout=STOP_WAIT)
            write("interrupted: unfinished runs are saved; run the same command to resume")
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
        record_time(out, time.time() - start, jobs, threads, "ray")
        if started_here:
            ray.shutdown()
    return len(failed)


def capacity(resources: dict, threads: int, gpus_per_task: float) -> int:
    """How many tasks of ``threads`` CPUs and ``gpus_per_task`` GPUs the cluster's
    ``resources`` (``ray.cluster_resources()``) hold at once; an error when not one fits.

    Args:
        resources: ``ray.cluster_resources()``.
        threads: CPUs per task.
        gpus_per_task: GPUs per task.
    """
    slots = int(resources.get("CPU", 0) // threads)
    if gpus_per_task:
        slots = min(slots, int(resources.get("GPU", 0) // gpus_per_task))
    if slots < 1:
        raise ConfigError(
            f"a task asks for {threads} CPU(s) and {gpus_per_task:g} GPU(s), more than the Ray "
            f"cluster has ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs); "
            "lower --threads or --gpus-per-task, or add nodes"
        )
    return slots


def unit(folders: list[str], evaluation: dict, threads: int) -> dict:
    """One unit of work in a Ray worker: ``tvo.sweep.worker.work`` on ``folders`` with
    ``threads`` torch threads, its output appended to each run's ``sweep.log``. Returns
    ``{"code", "host", "lines"}``: the exit code of a worker (0: every run done), the node, and
    the last lines of the output.

    Args:
        folders: the run folders of the unit.
        evaluation: the sweep's ``[evaluation]`` table.
        threads: torch threads.
    """
    import torch

    from tvo.sweep.worker import work

    host = socket.gethostname()
    paths = [Path(folder) for folder in folders]
    missing = [path for path in paths if not Run.is_run(path)]
    if missing:
        return {"code": 2, "host": host, "lines": [
            f"{missing[0]} is not a run folder on node {host}: --out must be a folder that "
            "every node of the cluster sees at the same path (a shared file system)"]}  # fmt: skip
    torch.set_num_threads(threads)
    logs = [open(Run(path).log_file, "a") for path in paths]
    output = Tee(logs)
    try:
        together = f" (a group: {' '.join(p.name for p in paths)})" if len(paths) > 1 else ""
        output.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} on {host} (ray){together} ---\n")
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                code = work(paths, evaluation)
            except Exception:  # reported as a worker process reports it: its traceback
                import traceback

                traceback.print_exc()
                code = 1
    finally:
        for log in logs:
            log.close()
    return {"code": code, "host": host, "lines": list(output.tail)}


class Tee:
    """A text stream that writes to each of ``files`` (flushed at each line) and keeps the last
    ``TAIL`` lines."""

    def __init__(self, files):
        self.files = files
        self.tail: deque[str] = deque(maxlen=TAIL)
        self._line = ""

    def write(self, text: str) -> int:
        for file in self.files:
            file.write(text)
        *lines, self._line = (self._line + text).split("\n")
        self.tail.extend(lines)
        if lines:
            self.flush()
        return len(text)

    def flush(self) -> None:
        for file in self.files:
            file.flush()

    def isatty(self) -> bool:
        return False


def _result(ray, ref, folders: list[Path]) -> dict:
    """A task's result; for a task that failed in Ray (its worker died more than
    ``MAX_RETRIES`` times, or it was cancelled), Ray's message and the runs' last log
    lines."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:
        message = str(error).strip().splitlines() or [type(error).__name__]
        lines = []
        for folder in folders:
            log = Run(folder).log_file
            if log.is_file():
                lines = log.read_text(errors="replace").splitlines()[-TAIL:]
        return {"code": type(error).__name__, "host": "?", "lines": [message[0], *lines]}


def failure(name: str, result: dict, log: Path) -> str:
    """The driver's report of a run that did not finish: where, why, its last output lines."""
    lines = "".join(f"\n  | {line}" for line in result["lines"])
    return f"failed ({result['code']}) on {result['host']}: {name}, see {log}{lines}"
