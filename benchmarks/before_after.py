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
    python benchmarks/before_after.py /tmp/old/src --in-process

Separate processes of the same tree differed by up to 20% in step time on our shared 2-core VM
(the same configuration, back to back). ``--in-process`` imports both trees into one process
(the other tree's modules are set aside in ``sys.modules`` while this one's are imported) and
alternates the two steps call by call on the same data, which cancels that: it reports each
configuration's median over ``--steps`` steps of each, and their ratio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEPS = [("linear_1", 10, 24), ("linear_1", 50, 24), ("gaussian", 10, 100)]
EVALS = ["linear_1", "gaussian"]


def trainer_step(model, particles: int, module=importlib.import_module):
    """``step(x)``: the step the tree's ``tvo train`` runs, TVO K = 5 (log schedule), Adam.
    ``module(name)`` gives the tree's module called ``name``."""
    import torch

    try:
        step_module = module("tvo.step")
    except ImportError:  # a tree from before tvo.step: the body of its training loop
        train = module("tvo.train")
        config = module("tvo.config").TrainConfig(
            objective="tvo", partitions=5, particles=particles
        )
        objective = train.build_objective(config)
        optimiser = train.make_optimiser(model.parameters(), 3e-4)
        parameters = list(model.parameters())
        grads_finite = train.grads_finite

        def old_step(x):
            output = objective(model, x, particles)
            optimiser.zero_grad(set_to_none=True)
            output.loss.backward()
            if torch.isfinite(output.loss) and grads_finite(parameters):
                optimiser.step()
                output.estimate.detach().mean().item()

        return old_step

    objective = module("tvo.objectives").TVO(K=5)
    optimiser = module("tvo.build").make_optimiser(model.parameters(), 3e-4)
    generators = step_module.Generators.of_run(0, "cpu")
    state = step_module.init_state(model, optimiser, objective.schedule, generators)
    step_fn = step_module.Step(objective, particles)

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


TREE_MODULES = ("tvo", "tvo.models", "tvo.objectives", "tvo.config", "tvo.train", "tvo.step",
                "tvo.runs", "tvo.build")  # fmt: skip


def load_tree(src: Path) -> dict:
    """The modules of the ``tvo`` in ``src``, imported, then taken out of ``sys.modules`` (and
    whatever ``tvo`` was there put back), so that another tree's can be imported beside them."""

    def ours(name):
        return name == "tvo" or name.startswith("tvo.")

    saved = {k: v for k, v in sys.modules.items() if ours(k)}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(src))
    try:
        for name in TREE_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # a module that tree does not have
        return {k: v for k, v in sys.modules.items() if ours(k)}
    finally:
        sys.path.remove(str(src))
        for name in [k for k in sys.modules if ours(k)]:
            del sys.modules[name]
        sys.modules.update(saved)


def interleaved(old_src: Path, new_src: Path, steps: int, threads: int | None = None) -> None:
    """Both trees in this process, their steps called alternately on the same batches."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    from tvo.runtime import keep_freed_memory  # this tree's: what the command line applies

    trees = {"before": load_tree(old_src), "after": load_tree(new_src)}
    allocator = "freed memory kept" if keep_freed_memory() else "default malloc"

    def getter(modules):
        def module(name):
            if name not in modules:
                raise ImportError(name)
            return modules[name]

        return module

    torch.manual_seed(0)
    data = torch.bernoulli(torch.full((2000, 784), 0.13))
    print(f"before: {old_src}; after: {new_src}; one process ({allocator}), the steps "
          f"alternating, medians of {steps} steps each, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    for name, S, batch in STEPS:
        steps_of = {}
        for tree, modules in trees.items():
            model = modules["tvo.models"].create(name, data_mean=data.mean(0))
            steps_of[tree] = trainer_step(model, S, getter(modules))
        times: dict[str, list[float]] = {tree: [] for tree in trees}
        for i in range(steps + 20):
            x = data[torch.randint(2000, (batch,))]
            for tree, step in steps_of.items():
                start = time.perf_counter()
                step(x)
                if i >= 20:
                    times[tree].append(time.perf_counter() - start)
        b, a = (1e3 * statistics.median(times[t]) for t in ("before", "after"))
        print(f"step {name} S={S} batch {batch}:  before {b:7.3f} ms  after {a:7.3f} ms  "
              f"after/before {a / b:5.3f}")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src", type=Path, help="the other checkout's src folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--in-process", action="store_true",
                        help="both trees in one process, the steps alternating")  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.steps)))
        return 0
    new_src = Path(__file__).resolve().parent.parent / "src"
    if args.in_process:
        interleaved(args.old_src.resolve(), new_src, args.steps, args.threads)
        return 0
    trees = {"before": args.old_src.resolve(), "after": new_src}
    rows: dict[str, list[dict]] = {tree: [] for tree in trees}
    for _ in range(args.rounds):
        for tree, src in trees.items():
            env = {**os.environ, "PYTHONPATH": str(src)}
            if args.threads is not None:
                env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
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
