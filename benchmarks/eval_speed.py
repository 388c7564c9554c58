"""Time log p̂(x) with many particles per image against the floor of its matrix products.

The estimate draws ``--particles`` per test image, ``--chunk-size`` at a time, and reduces in
float64 (``tvo.estimate``). The floor is the forward matrix products of one chunk, recorded
from a real one, repeated for every chunk;
``ratio = seconds / floor``. The two are timed alternately, chunk by chunk, in one process.

    python benchmarks/eval_speed.py --model linear_1 --images 10000 --particles 5000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_memory_option,
    apply_memory_option,
    matmul_products,
    peak_memory_mb,
    recorded_products,
    synchronize,
)

from tvo.build import resolve_device
from tvo.evaluate import default_chunk_size, estimate
from tvo.models import create


def measure(model_name, images, particles, chunk, batch, device) -> dict:
    torch.manual_seed(0)
    data = torch.bernoulli(torch.full((images, 784), 0.13, device=device))
    model = create(model_name, data_mean=data.mean(0).cpu()).to(device).eval()
    chunk = chunk or default_chunk_size(batch, device)
    one_chunk = recorded_products(
        lambda: estimate(model, data[:batch], chunk, chunk_size=chunk), model
    )
    floor_fn = matmul_products(one_chunk, device)
    total = floor = 0.0
    for start in range(0, images, batch):
        x = data[start : start + batch]
        synchronize(device)
        t0 = time.perf_counter()
        estimate(model, x, particles, chunk_size=chunk)
        synchronize(device)
        t1 = time.perf_counter()
        for _ in range(-(-particles // chunk)):  # the same number of chunks
            floor_fn()
        synchronize(device)
        total, floor = total + t1 - t0, floor + time.perf_counter() - t1
    return {"model": model_name, "images": images, "particles": particles, "chunk": chunk,
            "batch": batch, "seconds": round(total, 2), "floor_seconds": round(floor, 2),
            "ratio": round(total / floor, 3),
            "peak_mb": round(peak_memory_mb(device), 1)}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="linear_1, gaussian, … (repeatable)")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--particles", type=int, default=5000)
    parser.add_argument(
        "--chunk-size", type=int, help="particles drawn at a time (default: tvo's, for the batch)"
    )
    parser.add_argument("--batch-size", type=int, default=100, help="images at a time")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    add_memory_option(parser)
    args = parser.parse_args(argv)
    allocator = apply_memory_option(args)
    device = resolve_device(args.device)
    for name in args.model or ["linear_1", "gaussian"]:
        row = measure(name, args.images, args.particles, args.chunk_size, args.batch_size, device)
        row["allocator"] = allocator
        print(json.dumps(row) if args.json else
              f"{name}: {row['images']} images x {row['particles']} particles in "
              f"{row['seconds']} s; floor {row['floor_seconds']} s; ratio {row['ratio']}; "
              f"peak {row['peak_mb']} MB (chunk {row['chunk']} x batch {row['batch']}; "
              f"{allocator})",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
