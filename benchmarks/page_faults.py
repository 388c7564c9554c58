"""Page faults and seconds of an evaluation after some training, with and without
:func:`tvo.runtime.keep_freed_memory`, each in a fresh process, alternately.

Whether glibc's default ``malloc`` hands an evaluation chunk's tensors back to the kernel (and
faults them in again) depends on what the process allocated before: after training steps, as
in the trainer's periodic evaluations, it does; in a fresh ``tvo eval`` process it mostly does
not. This measures the first case.

    python benchmarks/page_faults.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(keep: bool, steps: int, images: int, particles: int) -> dict:
    import torch
    from common import trainer_step

    from tvo.evaluate import estimate
    from tvo.models import create
    from tvo.runtime import keep_freed_memory

    if keep:
        keep_freed_memory()
    torch.manual_seed(0)
    data = torch.bernoulli(torch.full((2000, 784), 0.13))
    model = create("linear_1", data_mean=data.mean(0))
    step = trainer_step(model, "tvo", 10, 5)
    for _ in range(steps):
        step(data[torch.randint(2000, (24,))])
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for i in range(0, images, 100):
        estimate(model, data[i : i + 100], particles)
    seconds = time.perf_counter() - start
    return {"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
            "seconds": round(seconds, 3)}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps first")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = (args.steps, args.images, args.particles)
    if args.measure:
        print(json.dumps(measure(args.measure == "keep", *sizes)))
        return 0
    print(f"linear_1: {args.steps} training steps, then {args.images} images x "
          f"{args.particles} particles")  # fmt: skip
    for _ in range(args.rounds):
        for mode in ("default", "keep"):
            command = [sys.executable, __file__, "--measure", mode, "--steps", str(args.steps),
                       "--images", str(args.images), "--particles",
                       str(args.particles)]  # fmt: skip
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            label = "glibc default malloc" if mode == "default" else "freed memory kept"
            print(f"{label:>21}: {row['faults']:>8} page faults, {row['seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
