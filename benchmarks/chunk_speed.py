"""Time ``tvo.estimate`` (log p̂(x), 5000 particles per image) at several chunk sizes.

Chunk sizes are timed in interleaved rounds in one process, so they see the same machine;
each printed number is the median over rounds, in seconds, for ``--images`` images evaluated
together (``B = --images``). ``auto`` is the library's default for that batch.

    python benchmarks/chunk_speed.py --images 100 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_memory_option, apply_memory_option

import tvo
from tvo.build import resolve_device
from tvo.evaluate import default_chunk_size
from tvo.models import create


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="linear_1, gaussian, … (repeatable)")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--particles", type=int, default=5000)
    parser.add_argument("--chunks", type=int, nargs="+", default=[10, 25, 50, 100, 500])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    add_memory_option(parser)
    args = parser.parse_args(argv)
    allocator = apply_memory_option(args)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((args.images, 784), 0.13, device=device))
    auto = default_chunk_size(args.images, device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, {allocator}; "
          f"{args.images} images x {args.particles} particles; auto chunk = {auto}")  # fmt: skip
    for name in args.model or ["linear_1", "gaussian"]:
        model = create(name, data_mean=x.mean(0).cpu()).to(device).eval()
        times: dict[int, list[float]] = {c: [] for c in dict.fromkeys([*args.chunks, auto])}
        for _ in range(args.rounds):
            for chunk, seconds in times.items():
                start = time.perf_counter()
                tvo.estimate(model, x, args.particles, chunk_size=chunk)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds.append(time.perf_counter() - start)
        medians = {c: round(statistics.median(v), 3) for c, v in times.items()}
        print(json.dumps({"model": name, "auto": auto, "seconds_by_chunk": medians}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
