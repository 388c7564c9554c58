"""Time the TVO's arithmetic alone: ``TVO.terms`` on given ``[S, B]`` log-weights, with its
backward, at K = 2 and K = 1000 for S in {2, 10, 50, 500}, batch 24 (medians, ms).

    python benchmarks/objective_speed.py
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from tvo.objectives.tvo import TVO


def median_ms(objective: TVO, log_p, log_q, repeats: int = 100, warmup: int = 20) -> float:
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        objective.terms(log_p, log_q).surrogate.sum().backward()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> int:
    torch.manual_seed(0)
    batch = 24
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms, medians of 100")
    print(f"{'S':>4} {'K = 2':>8} {'K = 1000':>9}")
    for S in (2, 10, 50, 500):
        log_p = (5 * torch.randn(S, batch) - 100).requires_grad_()
        log_q = (5 * torch.randn(S, batch) - 20).requires_grad_()
        row = []
        for K in (2, 1000):
            row.append(median_ms(TVO(K), log_p, log_q))
        print(f"{S:>4} {row[0]:8.3f} {row[1]:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
