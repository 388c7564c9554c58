"""Log-space reductions over particles: the one home of these in the library.

Every function here reduces over the particle axis, which is dimension 0 of a ``[S, B]``
tensor (``S`` particles for each of ``B`` data points). Nothing is ever reduced across the
batch, and no raw log-weight is exponentiated.

The TVO integrand ``ĝ(β) = Σ_s softmax_s(β ℓ)_s ℓ_s`` lives here too (``integrand``, and
``integrand_terms`` for chunks of particles that are merged later); the TVO's training
estimator computes the same ``ĝ`` inside its fused arithmetic (``tvo.objectives.tvo``), which a
test holds equal to this one.

The equations: docs/maths.md, "Estimating the integrand from one set of particles".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


def logmeanexp(a: Tensor, dim: int = 0) -> Tensor:
    """``log (1/S) Σ_s exp(a_s)`` along ``dim``: the importance-weighted bound ``L̂`` for
    ``a = ℓ``. ``[S, B] → [B]``.

    Args:
        a: the values, e.g. log-weights ``ℓ`` ``[S, B]``.
        dim: the dimension to reduce (the particles').
    """
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def normalized_weights(log_weight: Tensor, beta: float | Tensor = 1.0) -> Tensor:
    """Self-normalised weights ``w̄_s(β) = softmax_s(β ℓ_s)``.

    ``log_weight`` is ``[S, B]``; ``beta`` a scalar or a ``[K, 1, 1]`` tensor, giving ``[S, B]``
    or ``[K, S, B]``. The softmax is over the particle axis (``-2``).

    Args:
        log_weight: the log-weights ``ℓ = log p(x, z) − log q(z | x)``, ``[S, B]``.
        beta: the power ``β``: a number, or ``[K, 1, 1]`` for several at once.
    """
    return torch.softmax(beta * log_weight, dim=-2)


def effective_sample_size(log_weight: Tensor) -> Tensor:
    """Kish's effective sample size ``1 / Σ_s w̄_s²`` of the importance weights, ``[S, B] → [B]``.

    Computed as ``exp(2 logsumexp ℓ − logsumexp 2ℓ)``, which never exponentiates a raw ``ℓ``.

    Args:
        log_weight: the log-weights ``ℓ``, ``[S, B]``.
    """
    return torch.exp(2 * torch.logsumexp(log_weight, 0) - torch.logsumexp(2 * log_weight, 0))


def leave_one_out_logsumexp(a: Tensor) -> Tensor:
    """``log Σ_{t≠s} exp(a_t)`` for every ``s``, ``[S, B] → [S, B]``, in ``O(S·B)`` memory.

    For ``s`` other than the arg-max ``m`` the sum contains ``exp(a_m − a_m) = 1``, so
    ``Σ_t exp(a_t − a_m) − exp(a_s − a_m) ≥ 1`` loses no precision. For ``s = m`` that subtraction
    could cancel catastrophically, so that one entry is a log-sum-exp with ``a_m`` masked out.
    Needs ``S ≥ 2``.
    """
    if a.shape[0] < 2:
        raise ValueError(f"a leave-one-out sum needs at least 2 particles, got {a.shape[0]}")
    a_max, arg_max = a.max(dim=0, keepdim=True)
    shifted = torch.exp(a - a_max)
    others = torch.log(shifted.sum(0, keepdim=True) - shifted) + a_max
    is_max = torch.arange(a.shape[0], device=a.device)[:, None] == arg_max  # one per column
    without_max = torch.logsumexp(a.masked_fill(is_max, -math.inf), dim=0, keepdim=True)
    return torch.where(is_max, without_max.expand_as(a), others)


def leave_one_out_mean(a: Tensor) -> Tensor:
    """``mean_{t≠s} a_t`` for every ``s``, ``[S, B] → [S, B]`` (``S ≥ 2``). An ``a_t = −∞`` makes
    the mean of every set that holds it ``−∞`` (never ``−∞ − (−∞)``, which would be NaN)."""
    num = a.shape[0]
    lost = torch.isneginf(a)
    finite = a.masked_fill(lost, 0.0)
    mean = (finite.sum(0) - finite) / (num - 1)
    return mean.masked_fill((lost.sum(0) - lost.int()) > 0, -math.inf)


class WeightedMean(NamedTuple):
    """A self-normalised mean ``Σ_s softmax(a)_s v_s`` kept with its normaliser ``log Σ_s e^{a_s}``,
    so that partial results over chunks of particles can be merged exactly (see ``merge``)."""

    log_norm: Tensor
    mean: Tensor


def weighted_mean(log_unnormalized: Tensor, values: Tensor, dim: int = 0) -> WeightedMean:
    """``(logsumexp a, Σ softmax(a) v)`` along ``dim`` for log-weights ``a`` and values ``v``."""
    log_norm = torch.logsumexp(log_unnormalized, dim=dim)
    weights = torch.exp(log_unnormalized - log_norm.unsqueeze(dim))
    return WeightedMean(log_norm, (weights * values).sum(dim))


def merge(a: WeightedMean, b: WeightedMean) -> WeightedMean:
    """Combine two chunks' ``WeightedMean`` into that of their union, exactly."""
    log_norm = torch.logaddexp(a.log_norm, b.log_norm)
    mean = a.mean * torch.exp(a.log_norm - log_norm) + b.mean * torch.exp(b.log_norm - log_norm)
    return WeightedMean(log_norm, mean)


def integrand_terms(log_weight: Tensor, beta: Tensor) -> WeightedMean:
    """The TVO integrand at each ``β`` with its normalisers, mergeable across chunks of particles
    (``merge``): ``log Σ_s e^{β ℓ_s}`` and ``ĝ(β) = Σ_s softmax_s(β ℓ)_s ℓ_s``.

    ``log_weight`` ``ℓ`` is ``[S, B]``, ``beta`` ``[K]``; both fields come back ``[K, B]``.
    At ``β = 1`` the normaliser minus ``log S`` is ``log p̂(x)``.

    Args:
        log_weight: the log-weights ``ℓ``, ``[S, B]``.
        beta: the points ``β``, ``[K]``.
    """
    beta = beta.to(log_weight)
    return weighted_mean(beta[:, None, None] * log_weight, log_weight, dim=1)


def integrand(log_weight: Tensor, beta: Tensor) -> Tensor:
    """The self-normalised TVO integrand ``ĝ(β_k) = Σ_s softmax_s(β_k ℓ)_s ℓ_s``, ``[K, B]``, from
    ``[S, B]`` log-weights at the ``[K]`` points ``beta``. Non-decreasing in ``β`` (it is the mean
    of ``ℓ`` under the tilted weights, whose derivative in ``β`` is their variance).

    Args:
        log_weight: the log-weights ``ℓ``, ``[S, B]``.
        beta: the points ``β``, ``[K]``.
    """
    return integrand_terms(log_weight, beta).mean
