"""How many torch threads a ``tvo`` command should use: idle, and beside other busy processes.

Each measurement is a fresh ``tvo train`` (training only: the summary's seconds, evaluation
excluded) or ``tvo eval`` (its own seconds), with ``--threads 1``, ``--threads 2`` and the
command's default (``auto``: the cores idle at its start), under three conditions: idle; beside
one busy process (a Python loop that keeps one core busy); beside another ``tvo train`` of the
same settings with two threads.
Settings are interleaved within each round; the table gives the median over ``--rounds``.

    python benchmarks/threads.py --rounds 3
    python benchmarks/threads.py --json > benchmarks/threads.jsonl

The machine must otherwise be idle: check ``uptime`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = {
    "linear_1": ["--model", "linear_1", "--objective", "tvo", "-K", "5", "-S", "10",
                 "--batch-size", "24", "--lr", "3e-4"],
    "gaussian": ["--model", "gaussian", "--data", "mnist", "--objective", "tvo", "-K", "5",
                 "--beta1", "0.02", "-S", "10", "--batch-size", "100", "--lr", "1e-3"],
}  # fmt: skip
THREADS = ("1", "2", "auto")  # auto: no flag, the command's default
# no evaluation but a token one at the last step, and no checkpoint before it
QUIET = ["--eval-every", str(10**9), "--eval-images", "1", "--eval-particles", "2",
         "--checkpoint-every", str(10**9), "--quiet"]  # fmt: skip
CONDITIONS = ("idle", "one busy process", "another tvo train")


def tvo(*args: str) -> list[str]:
    return [sys.executable, "-m", "tvo.cli", *args]


def competitor(condition: str, folder: Path, steps: int):
    """The process that keeps the machine busy during a measurement, or ``None``."""
    if condition == "one busy process":
        return subprocess.Popen([sys.executable, "-c", "while True: pass"])
    if condition == "another tvo train":
        out = folder / f"competitor-{time.monotonic_ns()}"
        command = tvo("train", *TRAIN["linear_1"], "--steps", str(100 * steps), *QUIET,
                      "--out", str(out), "--threads", "2")  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return None


def measure(workload: str, threads: str, folder: Path, steps: int, eval_run: Path | None,
            particles: int = 5000) -> float:  # fmt: skip
    """Seconds of one workload in a fresh process."""
    flags = [] if threads == "auto" else ["--threads", threads]
    if workload == "eval":
        command = tvo("eval", str(eval_run), "--limit", "100", "--particles", str(particles),
                      "--json", *flags)  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])["seconds"]
    run = folder / f"{workload}-{threads}-{time.monotonic_ns()}"
    command = tvo("train", *TRAIN[workload], "--steps", str(steps), *QUIET, "--out", str(run),
                  *flags)  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads((run / "summary.json").read_text())["seconds"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="training steps per measurement")
    parser.add_argument("--particles", type=int, default=5000, help="eval: per image (100 images)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    results: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        eval_run = folder / "eval-run"  # a trained linear_1 to evaluate
        subprocess.run(tvo("train", *TRAIN["linear_1"], "--steps", "200", *QUIET, "--out",
                           str(eval_run)), check=True, capture_output=True)  # fmt: skip
        for _ in range(args.rounds):
            for condition in CONDITIONS:
                busy = competitor(condition, folder, args.steps)
                try:
                    time.sleep(3 if busy else 0)  # let the competitor start working
                    for workload in (*TRAIN, "eval"):
                        for threads in THREADS:
                            seconds = measure(workload, threads, folder, args.steps, eval_run,
                                              args.particles)  # fmt: skip
                            results.setdefault((workload, condition, threads), []).append(seconds)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
    rows = [{"workload": w, "condition": c, "threads": t, "seconds": statistics.median(v),
             "runs": len(v), "steps": None if w == "eval" else args.steps,
             "particles": args.particles if w == "eval" else None,
             "cores": os.cpu_count()} for (w, c, t), v in results.items()]  # fmt: skip
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(
        f"{os.cpu_count()} cores; medians of {args.rounds} rounds; training: {args.steps} "
        f"steps, seconds of training alone; eval: 100 images x {args.particles} particles"
    )
    print(f"{'workload':>9} {'condition':>18} " + " ".join(f"{t:>9}" for t in THREADS))
    for workload in (*TRAIN, "eval"):
        for condition in CONDITIONS:
            cells = [results[(workload, condition, t)] for t in THREADS]
            print(f"{workload:>9} {condition:>18} "
                  + " ".join(f"{statistics.median(c):9.2f}" for c in cells))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
