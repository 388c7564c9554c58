"""Where a training step's time goes: its parts timed alone, interleaved, medians in ms.

``step``: the whole step (as in step_speed.py); ``floor``: its matrix products alone;
``guide``: particles and ``log q`` with backward; ``joint``: ``log p(x, z)`` with backward;
``objective``: the TVO's arithmetic on given log-weights, with backward; ``adam``: the update;
and the elementwise work that no implementation of the exact model avoids: ``uniform`` (one
draw per latent unit per particle), ``softplus`` (every pixel logit of every particle) and
``sigmoid`` (its gradient).

    python benchmarks/step_parts.py -S 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    add_memory_option,
    apply_memory_option,
    matmul_products,
    recorded_products,
    trainer_step,
)

from tvo.build import make_optimiser
from tvo.models import create
from tvo.objectives import TVO


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="linear_1")
    parser.add_argument("-S", "--particles", type=int, default=10)
    parser.add_argument("-K", "--partitions", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=200)
    add_memory_option(parser)
    args = parser.parse_args(argv)
    allocator = apply_memory_option(args)
    S, B = args.particles, args.batch_size
    torch.manual_seed(0)
    data = torch.bernoulli(torch.full((2000, 784), 0.13))
    model = create(args.model, data_mean=data.mean(0))
    objective = TVO(K=args.partitions)
    optimiser = make_optimiser(model.parameters(), 3e-4)  # for the "adam" part alone
    x = data[:B]
    z, log_q = model.sample_guide(x, S)
    log_p = model.log_joint(x, z).detach().requires_grad_()
    log_q = log_q.detach().requires_grad_()
    units = sum(u.shape[-1] for u in (z if isinstance(z, tuple) else (z,)))
    logits = torch.randn(S * B, 784)

    trainer = trainer_step(model, "tvo", S, args.partitions)

    def step():
        trainer(data[torch.randint(2000, (B,))])

    parts = {
        "step": step,
        "floor": matmul_products(recorded_products(step, model), torch.device("cpu")),
        "guide": lambda: model.sample_guide(x, S)[1].sum().backward(),
        "joint": lambda: model.log_joint(x, z).sum().backward(),
        "objective": lambda: (
            objective.terms(log_p, log_q, objective.schedule.partition).surrogate.sum().backward()
        ),
        "adam": optimiser.step,
        "uniform": lambda: torch.rand(S, B, units),
        "softplus": lambda: F.softplus(logits).sum(-1),
        "sigmoid": lambda: torch.sigmoid(logits),
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    for i in range(args.repeats + 20):
        for name, fn in parts.items():
            start = time.perf_counter()
            fn()
            if i >= 20:
                times[name].append(time.perf_counter() - start)
    print(f"{args.model}, S = {S}, K = {args.partitions}, batch {B}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {allocator}; medians of {args.repeats}")  # fmt: skip
    for name, values in times.items():
        print(f"{name:>10} {1e3 * statistics.median(values):7.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
