"""Partitions ``0 = β_0 < β_1 < … < β_K = 1`` of the unit interval for thermodynamic integration.

A partition is a 1-D float64 tensor of ``K + 1`` points. Fixed schedules (MATH.md, "Schedules"):

- ``linear``: ``β_k = k / K``;
- ``log``: ``β_0 = 0`` and ``β_1 … β_K`` log-spaced from ``beta1`` to 1, i.e.
  ``β_k = beta1^((K − k) / (K − 1))``;
- for ``K = 1`` every schedule gives ``[0, 1]``.

Adaptive schedule (Brekelmans et al., ICML 2020): :func:`moments` places ``β_1 … β_{K−1}`` so
that the integrand is evenly spaced, ``g(β_k) = g(0) + (k / K)(g(1) − g(0))``, found by bisection
(``g`` is non-decreasing), from the self-normalised ``ĝ`` of recent log-weights. The
Gaussian-process bandit schedule (Nguyen et al., NeurIPS 2020) has a module of its own,
:mod:`tvo.bandit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from tvo.ops import normalized_weights

SCHEDULES = ("log", "linear")
ADAPTIVE_SCHEDULES = ("moments", "gp-bandit")  # gp-bandit: see tvo.bandit


def partition(
    K: int | Sequence[float] | Tensor,
    schedule: str = "log",
    beta1: float = 0.1,
) -> Tensor:
    """The ``K + 1`` points of a partition, as a float64 tensor ``[K + 1]``.

    ``K`` is either the number of intervals (then ``schedule`` and ``beta1`` say where the points
    go) or a user-given sequence of points, which is validated and returned as it is.

    >>> partition(3, "linear")
    tensor([0.0000, 0.3333, 0.6667, 1.0000], dtype=torch.float64)

    Raises ``ValueError`` naming the problem for ``K < 1``, an unknown schedule, ``beta1`` outside
    ``(0, 1)``, or a sequence that does not rise strictly from 0 to 1.
    """
    if not isinstance(K, int | float) or isinstance(K, bool):
        return validate(K)
    if K != int(K) or K < 1:
        raise ValueError(f"K (the number of intervals) must be an integer ≥ 1, got {K!r}")
    K = int(K)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if not (isinstance(beta1, int | float) and 0.0 < beta1 < 1.0):
        raise ValueError(f"beta1 must lie strictly between 0 and 1, got {beta1!r}")
    if K == 1:
        return torch.tensor([0.0, 1.0], dtype=torch.float64)
    if schedule == "linear":
        return torch.linspace(0.0, 1.0, K + 1, dtype=torch.float64)
    exponents = torch.linspace(math.log10(beta1), 0.0, K, dtype=torch.float64)
    points = torch.cat([torch.zeros(1, dtype=torch.float64), 10.0**exponents])
    points[-1] = 1.0
    return points


def validate(points: Sequence[float] | Tensor) -> Tensor:
    """Check a user-given partition and return it as a float64 tensor ``[K + 1]``.

    Valid: one dimension, at least two points, finite, first point 0, last point 1, strictly
    increasing. Anything else raises ``ValueError`` naming the offending value.
    """
    try:
        beta = torch.as_tensor(points, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"a partition must be a sequence of numbers, got {points!r}") from error
    if beta.dim() != 1 or beta.numel() < 2:
        raise ValueError(
            f"a partition must be a 1-D sequence of at least 2 points, got shape {list(beta.shape)}"
        )
    if not torch.isfinite(beta).all():
        raise ValueError(f"a partition must be finite, got {beta.tolist()}")
    if beta[0] != 0.0:
        raise ValueError(f"a partition must start at 0, got first point {beta[0].item()}")
    if beta[-1] != 1.0:
        raise ValueError(f"a partition must end at 1, got last point {beta[-1].item()}")
    steps = beta[1:] - beta[:-1]
    if (steps <= 0).any():
        k = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(
            "a partition must be strictly increasing, got "
            f"β_{k} = {beta[k].item()} followed by β_{k + 1} = {beta[k + 1].item()}"
        )
    return beta.clone()


def invert_integrand(g: Callable[[Tensor], Tensor], K: int, iterations: int = 60) -> Tensor:
    """The partition whose points split ``[g(0), g(1)]`` evenly: ``β_k = g⁻¹(g(0) + (k/K) Δ)``.

    ``g`` maps a 1-D float64 tensor of ``β`` to the (non-decreasing) integrand at each. All
    ``K − 1`` inner points are bisected at once, ``iterations`` halvings (60: below 1e-18).
    Returns the float64 ``[K + 1]`` partition; if ``g`` is flat (``g(1) − g(0)`` below 1e-12
    of its scale) or the points would not rise strictly, the linear schedule.
    """
    ends = g(torch.tensor([0.0, 1.0], dtype=torch.float64))
    spread = float(ends[1] - ends[0])
    linear = partition(K, "linear")
    if K == 1 or not spread > 1e-12 * max(1.0, float(ends.abs().max())):
        return linear
    targets = ends[0] + spread * torch.arange(1, K, dtype=torch.float64) / K
    low, high = torch.zeros(K - 1, dtype=torch.float64), torch.ones(K - 1, dtype=torch.float64)
    for _ in range(iterations):
        middle = (low + high) / 2
        below = g(middle) < targets
        low, high = torch.where(below, middle, low), torch.where(below, high, middle)
    points = torch.cat([low.new_zeros(1), (low + high) / 2, low.new_ones(1)])
    return points if bool((points[1:] > points[:-1]).all()) else linear


def moments(log_weight: Tensor, K: int) -> Tensor:
    """The moments partition from ``[S, B]`` log-weights: ``ĝ(β)`` is the batch mean of
    ``Σ_s softmax_s(β ℓ) ℓ_s``, evaluated in float64."""
    ell = log_weight.detach().to(torch.float64)

    def integrand(beta: Tensor) -> Tensor:
        beta = beta.to(ell.device)
        weights = normalized_weights(ell, beta[:, None, None])  # [K, S, B]
        return (weights * ell).sum(1).mean(1).cpu()

    return invert_integrand(integrand, K)
