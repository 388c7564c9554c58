"""Time a full training step against the floor of its matrix products.

A step is: batch by index, then the trainer's own step (``tvo.step.Step``: particles, objective,
backward, the finiteness check, Adam, the schedule's update). The floor is the same step's
matrix products alone, recorded from a real step: every ``nn.Linear`` call at its shape, forward,
and in backward the products the step makes (the weight's gradient; the input's only where the
input carries a gradient, so not for the data or detached particles), with the same torch on the
same device; ``ratio = ms_per_step / floor_ms``. Medians over ``--steps`` steps
after a warm-up, in one process, so the two are measured under the same conditions.

    python benchmarks/step_speed.py --model linear_1 -S 10 -K 5 --objective tvo --batch-size 24
    python benchmarks/step_speed.py --grid --json      # the paper's efficiency grid
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_memory_option,
    apply_memory_option,
    matmul_products,
    paired_median_ms,
    peak_memory_mb,
    recorded_products,
    trainer_step,
)

from tvo.build import resolve_device
from tvo.models import create


def measure(model_name, objective_name, S, K, batch, device, steps, compile=False,
            data_size=2000) -> dict:  # fmt: skip
    torch.manual_seed(0)
    pixels = 784
    data = torch.bernoulli(torch.full((data_size, pixels), 0.13, device=device))
    model = create(model_name, pixels=pixels, data_mean=data.mean(0).cpu()).to(device)
    generator = torch.Generator(device=device).manual_seed(0)

    def with_batches(step_fn):
        def step():
            index = torch.randint(data_size, (batch,), generator=generator, device=device)
            step_fn(data[index])

        return step

    eager = with_batches(trainer_step(model, objective_name, S, K))
    floor_fn = matmul_products(recorded_products(eager, model), device)
    step = (
        with_batches(trainer_step(model, objective_name, S, K, compile=True)) if compile else eager
    )
    ms, floor = paired_median_ms(step, floor_fn, device, steps)
    return {"model": model_name, "objective": objective_name, "S": S,
            "K": K if objective_name == "tvo" else None, "batch": batch,
            "compile": compile, "ms_per_step": round(ms, 3), "floor_ms": round(floor, 3),
            "ratio": round(ms / floor, 3)}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="linear_1")
    parser.add_argument("--objective", default="tvo")
    parser.add_argument("-S", "--particles", type=int, default=10)
    parser.add_argument("-K", "--partitions", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--steps", type=int, default=100, help="timed steps (≥ 50)")
    parser.add_argument("--grid", action="store_true",
                        help="S in {2,10,50,500} x K in {2,10,50,1000}, linear_2, batch 24, "
                        "tvo, vimco, reinforce, with peak memory")  # fmt: skip
    parser.add_argument("--targets", action="store_true",
                        help="the target configurations, interleaved over --rounds")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --targets (median)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--compile", action="store_true",
                        help="trace the step with torch.compile (tvo train --compile)")  # fmt: skip
    parser.add_argument("--peak", action="store_true", help="add the peak memory of the process")
    add_memory_option(parser)
    args = parser.parse_args(argv)
    allocator = apply_memory_option(args)
    if args.steps < 50:
        parser.error(f"--steps must be at least 50, got {args.steps}")
    device = resolve_device(args.device)
    if args.targets:
        return targets(device, args.steps, args.rounds, args.json, allocator, args.compile)
    if args.grid:
        ks = {"tvo": (2, 10, 50, 1000), "vimco": (2,), "reinforce": (2,)}
        configs = [("linear_2", obj, S, K, 24) for obj in ks for S in (2, 10, 50, 500)
                   for K in ks[obj]]  # fmt: skip
    else:
        configs = [(args.model, args.objective, args.particles, args.partitions, args.batch_size)]
    if not args.json:
        print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
              f"{platform.processor() or platform.machine()}, {allocator}")  # fmt: skip
        print(f"{'model':>10} {'objective':>9} {'S':>4} {'K':>5} {'batch':>5} "
              f"{'ms/step':>8} {'floor':>8} {'ratio':>6} {'peak MB':>8}")  # fmt: skip
    for model, objective, S, K, batch in configs:
        if args.grid:  # each configuration in a fresh process: the CPU's peak RSS only grows
            command = [sys.executable, __file__, "--model", model, "--objective", objective,
                       "-S", str(S), "-K", str(K), "--batch-size", str(batch), "--device",
                       str(device), "--steps", str(args.steps), "--json", "--peak"]  # fmt: skip
            if args.return_freed_memory:
                command.append("--return-freed-memory")
            if args.compile:
                command.append("--compile")
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(result.stdout.strip().splitlines()[-1])
        else:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            row = measure(model, objective, S, K, batch, device, args.steps, args.compile)
            if args.peak:
                row["peak_mb"] = round(peak_memory_mb(device), 1)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            k = "-" if row["K"] is None else row["K"]
            print(f"{model:>10} {objective:>9} {S:>4} {k:>5} {batch:>5} {row['ms_per_step']:8.2f} "
                  f"{row['floor_ms']:8.2f} {row['ratio']:6.2f} {row.get('peak_mb', ''):>8}",
                  flush=True)  # fmt: skip
    return 0


TARGETS = [  # (model, objective, S, K, batch, the target ratio)
    ("linear_1", "tvo", 10, 5, 24, 1.5),
    ("linear_1", "tvo", 50, 5, 24, 1.3),
    ("gaussian", "tvo", 10, 5, 100, 1.5),
    ("linear_1", "tvo", 10, 2, 24, None),
    ("linear_1", "tvo", 10, 1000, 24, None),
]


def targets(device, steps: int, rounds: int, as_json: bool, allocator: str, compile: bool) -> int:
    """Each target configuration ``rounds`` times, interleaved; the median of each."""
    results: dict[int, list[dict]] = {i: [] for i in range(len(TARGETS))}
    for _ in range(rounds):
        for i, (model, objective, S, K, batch, _) in enumerate(TARGETS):
            results[i].append(measure(model, objective, S, K, batch, device, steps, compile))
    rows = []
    for i, (*_, target) in enumerate(TARGETS):
        runs = results[i]
        row = dict(runs[0])
        for key in ("ms_per_step", "floor_ms", "ratio"):
            row[key] = round(statistics.median(r[key] for r in runs), 3)
        row["target"] = target
        rows.append(row)
    k2, k1000 = rows[3]["ms_per_step"], rows[4]["ms_per_step"]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        print(json.dumps({"K1000_over_K2": round(k1000 / k2, 3), "target": 1.2}))
        return 0
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, {allocator}; "
          f"medians of {rounds} interleaved rounds of {steps} steps"
          f"{', compiled' if compile else ''}")  # fmt: skip
    print(f"{'model':>9} {'S':>3} {'K':>5} {'batch':>5} {'ms/step':>8} {'floor ms':>8} "
          f"{'ratio':>6} {'target':>6}")  # fmt: skip
    for row in rows:
        target = "-" if row["target"] is None else f"≤ {row['target']}"
        print(f"{row['model']:>9} {row['S']:>3} {row['K']:>5} {row['batch']:>5} "
              f"{row['ms_per_step']:8.2f} {row['floor_ms']:8.2f} {row['ratio']:6.2f} "
              f"{target:>6}")  # fmt: skip
    print(f"K = 1000 step / K = 2 step: {k1000 / k2:.3f} (target ≤ 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
