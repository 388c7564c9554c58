"""Time the same workloads with another checkout's ``tvo`` and with this one, alternately.

Each round runs one process per tree (``PYTHONPATH`` set to that tree's ``src``), and each
process times the training step that tree's ``tvo train`` runs (median of ``--steps`` after a
warm-up; ``tvo.step.Step`` where the tree has it, else the body of its training loop: objective,
backward, finiteness check, Adam, the running mean) in the target configurations, and
``tvo.estimate`` of 100 images × 5000 particles, with the library's default chunks. A tree that
has ``tvo.runtime`` gets what the command line applies at start. Prints the median over rounds
per tree and their ratio.

    git worktree add /tmp/old 118ba56
    python benchmarks/before_after.py /tmp/old/src --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEPS = [("linear_1", 10, 24), ("linear_1", 50, 24), ("gaussian", 10, 100)]
EVALS = ["linear_1", "gaussian"]


def trainer_step(model, particles: int):
    """``step(x)``: the step the tree's ``tvo train`` runs, TVO K = 5 (log schedule), Adam."""
    import torch

    try:
        from tvo.step import Generators, Step, init_state
    except ImportError:  # a tree from before tvo.step: the body of its training loop
        from tvo.config import TrainConfig
        from tvo.train import build_objective, grads_finite, make_optimiser

        objective = build_objective(TrainConfig(objective="tvo", partitions=5, particles=particles))
        optimiser = make_optimiser(model.parameters(), 3e-4)
        parameters = list(model.parameters())

        def old_step(x):
            output = objective(model, x, particles)
            optimiser.zero_grad(set_to_none=True)
            output.loss.backward()
            if torch.isfinite(output.loss) and grads_finite(parameters):
                optimiser.step()
                output.estimate.detach().mean().item()

        return old_step

    from tvo.build import make_optimiser
    from tvo.objectives import TVO

    objective = TVO(K=5)
    optimiser = make_optimiser(model.parameters(), 3e-4)
    state = init_state(model, optimiser, objective.schedule, Generators.of_run(0, "cpu"))
    step_fn = Step(objective, particles)

    def new_step(x):
        nonlocal state
        state, info = step_fn(state, x)
        if info.finite:
            info.estimate.mean().item()

    return new_step


def measure(steps: int) -> dict:
    import torch

    try:
        from tvo.runtime import configure_from_environment
    except ImportError:
        allocator = "glibc default"
    else:
        allocator = "freed memory kept" if configure_from_environment() else "glibc default"
    from tvo.evaluate import estimate
    from tvo.models import create

    results = {"allocator": allocator}
    torch.manual_seed(0)
    data = torch.bernoulli(torch.full((2000, 784), 0.13))
    for name, S, batch in STEPS:
        model = create(name, data_mean=data.mean(0))
        step = trainer_step(model, S)
        times = []
        for i in range(steps + 20):
            start = time.perf_counter()
            step(data[torch.randint(2000, (batch,))])
            if i >= 20:
                times.append(time.perf_counter() - start)
        results[f"step {name} S={S} ms"] = 1e3 * statistics.median(times)
    for name in EVALS:
        model = create(name, data_mean=data.mean(0)).eval()
        estimate(model, data[:100], 250)  # warm-up
        start = time.perf_counter()
        estimate(model, data[:100], 5000)
        results[f"estimate {name} 100x5000 s"] = time.perf_counter() - start
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src", type=Path, help="the other checkout's src folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.steps)))
        return 0
    new_src = Path(__file__).resolve().parent.parent / "src"
    trees = {"before": args.old_src.resolve(), "after": new_src}
    rows: dict[str, list[dict]] = {tree: [] for tree in trees}
    for _ in range(args.rounds):
        for tree, src in trees.items():
            env = {**os.environ, "PYTHONPATH": str(src)}
            command = [sys.executable, __file__, str(src), "--measure", "--steps", str(args.steps)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            rows[tree].append(json.loads(out.stdout.strip().splitlines()[-1]))
    before, after = rows["before"], rows["after"]
    print(f"before: {trees['before']} ({before[0]['allocator']}); after: {trees['after']} "
          f"({after[0]['allocator']}); medians of {args.rounds} alternating rounds")  # fmt: skip
    for key in before[0]:
        if key == "allocator":
            continue
        b = statistics.median(r[key] for r in before)
        a = statistics.median(r[key] for r in after)
        print(f"{key:>28}  before {b:8.3f}  after {a:8.3f}  speed-up {b / a:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
