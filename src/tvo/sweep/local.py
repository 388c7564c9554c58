"""The local executor of a sweep, the default of ``tvo sweep``: its units of work as processes
of this machine, ``jobs`` at a time, each with ``threads`` torch threads.

A unit is one run, or with ``group > 1`` up to ``group`` runs trained together
(``tvo.sweep.plan.units``); each is a worker process (``tvo.sweep.worker``) whose output
goes to the ``sweep.log`` of each of its runs. A worker whose parent goes away (a sweep killed
with SIGKILL) stops at a checkpoint on its own; one still running when the sweep is started
again holds its runs' folders, so the new worker for them is refused and the run reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tvo.files import write_atomic
from tvo.runs import Run, RunError
from tvo.sweep.plan import Sweep, prepare, units
from tvo.sweep.worker import command


def run(sweep: Sweep, out: str | Path, jobs: int | None = None, threads: int | None = None,
        quiet: bool = False, group: int = 1) -> int:  # fmt: skip
    """Run every unfinished run of ``sweep`` under ``out``, at most ``group`` runs to a worker;
    returns the number of runs that did not finish.

    Args:
        sweep: the sweep.
        out: the runs' folder.
        jobs: units of work at a time (``None``: the CPU cores).
        threads: torch threads per unit (``None``: cores / jobs).
        quiet: no progress bar.
        group: the most runs trained together in one process.
    """
    from tqdm import tqdm

    out = Path(out)
    cores = os.cpu_count() or 1
    jobs = jobs or cores
    threads = threads or max(1, cores // jobs)
    read_record(out)  # a corrupt record stops the sweep here, not after its runs
    states = prepare(sweep, out)
    todo = units(sweep, out, [n for n, s in states.items() if s != "done"], group)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    counts = {s: list(states.values()).count(s) for s in ("done", "evaluate", "resume", "new")}
    grouped = f" in {len(todo)} groups of at most {group}" if group > 1 else ""
    print(f"sweep {sweep.path.name}: {len(states)} runs in {out} ({counts['done']} done, "
          f"{counts['resume'] + counts['evaluate']} to finish, {counts['new']} new){grouped}; "
          f"{jobs} at a time, {threads} thread(s) each", flush=True)  # fmt: skip
    start = time.time()
    failed: list[str] = []
    live: set[subprocess.Popen] = set()
    stopping = threading.Event()

    def one(names: list[str]) -> tuple[list[str], int]:
        if stopping.is_set():
            return names, -1
        logs = [open(Run(out / name).log_file, "a") for name in names]
        try:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for log in logs:
                together = f" (a group: {' '.join(names)})" if len(names) > 1 else ""
                log.write(f"--- {stamp}{together} ---\n")
                log.flush()
            process = subprocess.Popen(command([out / n for n in names], sweep.evaluation),
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       env=env, text=True)  # fmt: skip
            live.add(process)
            for line in process.stdout:
                for log in logs:
                    log.write(line)
                    log.flush()
            code = process.wait()
            live.discard(process)
            if code < 0:  # a signal: the worker could not say so itself
                for log in logs:
                    log.write(f"--- {killed(code)} ---\n")
            return names, code
        finally:
            for log in logs:
                log.close()

    bar = tqdm(total=len(states), initial=counts["done"], desc="runs", disable=quiet)
    pool = ThreadPoolExecutor(max_workers=jobs)
    previous = signal.signal(signal.SIGTERM, interrupt)  # SIGTERM stops a sweep as Ctrl-C does
    try:
        for future in as_completed([pool.submit(one, names) for names in todo]):
            names, code = future.result()
            for name in names:
                bar.update()
                if Run(out / name).status() != "done":
                    failed.append(name)
                    why = killed(code) if code < 0 else f"failed ({code})"
                    bar.write(f"{why}: {name}, see {Run(out / name).log_file}")
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
        record_time(out, time.time() - start, jobs, threads, "local")
    return len(failed)


def killed(code: int) -> str:
    """What a worker's negative exit code means, and what to do."""
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return (
        f"killed by {name} (signal {-code}); its checkpoint is kept: run the same sweep "
        "again to resume it"
    )


def interrupt(signum, frame):
    """A signal handler: SIGTERM stops a sweep as Ctrl-C does."""
    raise KeyboardInterrupt


def read_record(out: Path) -> dict:
    """``OUT/sweep.json`` (``{"invocations": [...]}``; empty before the first); a corrupt one is
    a ``RunError`` saying how to go on (it only records timings)."""
    path = Path(out) / "sweep.json"
    if not path.is_file():
        return {"invocations": []}
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not isinstance(record.get("invocations"), list):
            raise ValueError('expected {"invocations": [...]}')
    except (ValueError, UnicodeDecodeError) as error:
        raise RunError(f"{path} is corrupt ({error}); it only records the sweep's timings: "
                       "delete it or move it away, and run the sweep again") from None  # fmt: skip
    return record


def record_time(out: Path, seconds: float, jobs: int, threads: int, executor: str) -> None:
    """Append this invocation's wall-clock time to ``OUT/sweep.json``."""
    path = out / "sweep.json"
    record = read_record(out)
    ended = time.strftime("%Y-%m-%d %H:%M:%S")
    record["invocations"].append({"seconds": round(seconds, 1), "jobs": jobs, "threads": threads,
                                  "cores": os.cpu_count(), "executor": executor,
                                  "ended": ended})  # fmt: skip
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
