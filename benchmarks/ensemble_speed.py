"""Time a group of ``M`` runs trained together (``tvo.ensemble``) against ``M`` single runs.

``single_ms``: one run's step (the trainer's :class:`tvo.step.Step`, batch drawn by index);
``group_ms``: one step of a group of ``M`` members (:class:`tvo.ensemble.GroupStep`, each
member's batch drawn by its own generator, its partition stacked, the running mean kept on the
device), as :func:`tvo.ensemble.train_group` makes it. ``speedup = M · single_ms / group_ms``:
how many times faster the group trains ``M`` runs than one process training them one after the
other (above 1: the group wins). Medians over ``--steps`` steps, the two timed alternately in
one process so that both see the same machine; each ``M`` in a fresh process (``peak_mb``: the
process's peak resident memory on the CPU, the peak allocated on a GPU), with freed memory kept
in the process as the ``tvo`` command keeps it (``--return-freed-memory``: glibc's default).

    python benchmarks/ensemble_speed.py --model linear_1 -S 10 -K 5 --members 1 4 16 64
    python benchmarks/ensemble_speed.py --model gaussian --batch-size 100 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_memory_option,
    apply_memory_option,
    paired_median_ms,
    peak_memory_mb,
    trainer_step,
)

from tvo.build import resolve_device
from tvo.ensemble import GroupStep
from tvo.models import create
from tvo.objectives import objective_class


def measure(model_name, objective_name, S, K, batch, members, device, steps,
            data_size=2000) -> dict:  # fmt: skip
    torch.manual_seed(0)
    pixels = 784
    data = torch.bernoulli(torch.full((data_size, pixels), 0.13, device=device))
    mean = data.mean(0).cpu()
    models = [create(model_name, pixels=pixels, data_mean=mean).to(device) for _ in range(members)]
    cls = objective_class(objective_name)
    objective = cls.from_settings(**({"partitions": K} if "partitions" in cls.settings else {}))
    partition = None if objective.schedule is None else objective.schedule.init().partition
    generators = [torch.Generator(device=device).manual_seed(m) for m in range(members)]

    single_step = trainer_step(create(model_name, pixels=pixels, data_mean=mean).to(device),
                               objective_name, S, K)  # fmt: skip

    def single():
        index = torch.randint(data_size, (batch,), generator=generators[0], device=device)
        single_step(data[index])

    group_step = GroupStep(models[0], objective, S, [3e-4] * members)
    state = group_step.init(models)  # the partitions are stacked once, as the loop does
    total = torch.zeros(members, dtype=torch.float64, device=device)

    def group():
        nonlocal state
        x = torch.stack([data[torch.randint(data_size, (batch,), generator=g, device=device)]
                         for g in generators])  # fmt: skip
        state, info = group_step(state, x)
        total.add_(torch.where(info.finite, info.estimate.mean(1).double(), 0.0))

    single_ms, group_ms = paired_median_ms(single, group, device, steps)
    return {"model": model_name, "objective": objective_name, "S": S,
            "K": K if partition is not None else None, "batch": batch, "members": members,
            "device": str(device), "threads": torch.get_num_threads(),
            "single_ms": round(single_ms, 3), "group_ms": round(group_ms, 3),
            "speedup": round(members * single_ms / group_ms, 3),
            "peak_mb": round(peak_memory_mb(device), 1)}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="linear_1")
    parser.add_argument("--objective", default="tvo")
    parser.add_argument("-S", "--particles", type=int, default=10)
    parser.add_argument("-K", "--partitions", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--steps", type=int, default=50, help="timed steps of each (≥ 20)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process
    add_memory_option(parser)
    args = parser.parse_args(argv)
    allocator = apply_memory_option(args)
    if args.steps < 20:
        parser.error(f"--steps must be at least 20, got {args.steps}")
    if any(m < 1 for m in args.members):
        parser.error(f"--members must be ≥ 1, got {args.members}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = (args.model, args.objective, args.particles, args.partitions, args.batch_size)
    if args.one:
        row = measure(*settings, args.members[0], device, args.steps)
        print(json.dumps(row), flush=True)
        return 0
    if not args.json:
        print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
              f"{platform.processor() or platform.machine()}, {allocator}; {args.model} "
              f"{args.objective} S={args.particles} K={args.partitions} "
              f"batch {args.batch_size}")  # fmt: skip
        print(f"{'members':>7} {'single ms':>9} {'group ms':>9} {'speedup':>7} {'peak MB':>8}")
    for members in args.members:
        command = [sys.executable, __file__, "--one", "--members", str(members), "--model",
                   args.model, "--objective", args.objective, "-S", str(args.particles),
                   "-K", str(args.partitions), "--batch-size", str(args.batch_size),
                   "--device", str(device), "--steps", str(args.steps)]  # fmt: skip
        if args.threads:
            command += ["--threads", str(args.threads)]
        if args.return_freed_memory:
            command.append("--return-freed-memory")
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(result.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{members:>7} {row['single_ms']:9.2f} {row['group_ms']:9.2f} "
                  f"{row['speedup']:7.2f} {row['peak_mb']:8.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
