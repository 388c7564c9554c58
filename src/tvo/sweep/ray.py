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
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from tvo.config import ConfigError
from tvo.runs import Run
from tvo.sweep.local import interrupt, read_record, record_time
from tvo.sweep.plan import Sweep, prepare, units

CONNECT_TIMEOUT = 10.0  # seconds to open a connection to the head's port
PROBE_TIMEOUT = 60.0  # seconds a Ray driver may take to connect to it
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
    read_record(out)  # a corrupt record stops the sweep here, not after its runs
    started_here = connect(ray, address)  # before any folder is created
    try:
        slots = capacity(ray.cluster_resources(), threads, gpus_per_task)  # one task fits
        jobs = jobs or slots
        states = prepare(sweep, out)
    except BaseException:
        if started_here:
            ray.shutdown()
        raise
    todo = deque(units(sweep, out, [n for n, s in states.items() if s != "done"], group))
    start = time.time()
    failed: list[str] = []
    flight: dict = {}  # an ObjectRef -> the names of its unit
    main = threading.current_thread() is threading.main_thread()  # signals: main thread only
    previous = signal.signal(signal.SIGTERM, interrupt) if main else None  # SIGTERM as Ctrl-C
    bar = None
    try:
        counts = {s: list(states.values()).count(s) for s in ("done", "evaluate", "resume", "new")}
        where = f"Ray at {address}" if address else "Ray"
        if started_here and not address:
            where += (" (started here; should this process be killed with SIGKILL, stop what "
                      "it leaves behind with: ray stop)")  # fmt: skip
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


def connect(ray, address: str | None) -> bool:
    """Connect to the cluster at ``address`` (``None``: start Ray on this machine), unless Ray
    is initialised already; whether it was started here. An address that cannot be a Ray head
    (``check_address``) is a ``ConfigError`` within about ``PROBE_TIMEOUT``
    seconds, never a hang, and is checked even where this process is connected to a Ray already
    (it is the address the user gave)."""
    if address is not None:
        check_address(address)
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, log_to_driver=False, logging_level="warning",
                 **({} if address else {"include_dashboard": False}))  # fmt: skip
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ConfigError(f"--address {address}: could not connect to Ray ({error})") from None
    return True


def check_address(address: str) -> None:
    """A ``ConfigError`` for an ``--address`` that is not ``auto`` nor ``[ray://]HOST:PORT``,
    a host that does not resolve, a port where nothing answers (``CONNECT_TIMEOUT``), and a
    port where Ray does not answer: a Ray driver is started in a child process, which is
    stopped after ``PROBE_TIMEOUT`` seconds (Ray itself retries for minutes)."""
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"--address {address!r}: expected auto or HOST:PORT of the Ray cluster's head "
                "(e.g. 10.0.0.1:6379, ray://10.0.0.1:10001 for Ray Client)"
            )
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
        except socket.gaierror as error:
            raise ConfigError(f"--address {address}: unknown host {host!r} ({error.strerror})"
                              ) from None  # fmt: skip
        except OSError as error:
            raise ConfigError(
                f"--address {address}: nothing answers there ({error.strerror or error}); start "
                "the cluster's head (ray start --head) or give its address"
            ) from None
    probe = ("import json, sys, ray; ray.init(address=sys.argv[1], log_to_driver=False, "
             "logging_level='error'); print(json.dumps(ray.cluster_resources()))")  # fmt: skip
    try:
        done = subprocess.run([sys.executable, "-c", probe, address], capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"--address {address}: Ray did not connect within {PROBE_TIMEOUT:g} s; is it the "
            "address of a running Ray head (its GCS port, 6379 by default)?"
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ConfigError(f"--address {address}: could not connect to Ray "
                          f"({lines[-1] if lines else done.returncode})")  # fmt: skip


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

    from tvo.sweep.worker import work_or_report

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
                code = work_or_report(paths, evaluation)
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
