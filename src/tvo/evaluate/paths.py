"""Annealing paths from ``q(z | x)`` (β = 0) to ``p(x, z)`` (β = 1): the geometric path and the
power-mean family of q-paths (Brekelmans, Masrani et al. 2020, "Annealed importance sampling with
q-paths"; Masrani et al., UAI 2021, "q-paths: generalizing the geometric annealing path using
power means").

With ``q̃ = q(z | x)`` (normalised) and the scaled target ``p̃_s = p(x, z) e^{−s}``::

    geometric (q = 1):   log π̃_β = (1 − β) log q̃ + β log p̃          (s plays no role)
    q-path (0 ≤ q < 1):  π̃_{β,q} = [(1 − β) q̃^{1−q} + β p̃_s^{1−q}]^{1/(1−q)}
                         log π̃_{β,q} = logaddexp(log(1−β) + (1−q) log q̃,
                                                  log β + (1−q)(log p − s)) / (1 − q)

``q → 1`` gives the geometric path and ``q = 0`` the mixture ``(1 − β) q̃ + β p̃_s``. The log form
never exponentiates a log-density, so it is stable for any magnitudes; ``β = 0`` and ``β = 1``
give exactly ``log q̃`` and ``log p − s`` (``log 0 = −∞`` drops the other term). The gradient is
``∇ log π̃ = w_q ∇ log q̃ + w_p ∇ log p`` with ``(w_q, w_p)`` the softmax of the two terms of the
``logaddexp`` (``(1 − β, β)`` on the geometric path), which ``Path.grad_weights`` gives.

**The scale of the target.** The geometric path is invariant to a constant factor in ``p̃``
(it only shifts ``log π̃_β`` by ``β·const``, which AIS's weights carry exactly). A q-path is not:
multiplying ``p̃`` by ``c`` changes the shape of every intermediate density, and with
``p̃ = p(x, z)`` whose integral ``p(x)`` is ``e^{−100}`` or smaller on images, the mixture would
give ``q`` all the mass until ``β`` is within ``e^{−100(1−q)}`` of 1. Both papers note this
sensitivity (their toy experiments anneal between normalised densities). Our choice: divide the
target by an estimate of its normalising constant, ``s = log p̂(x)``, so that both ends of the
path have mass near 1 and the q-path mixes two (nearly) normalised densities, as the power mean
is meant to. ``s`` is the importance-sampling estimate ``logmeanexp_c ℓ(z_c)`` from ``C`` draws
of ``q`` made **for this purpose only**, independent of the chains: conditional on ``s`` the path
is fixed, so AIS along it has ``E[w] = p(x) e^{−s}``, and ``log p̂(x) = s + logmeanexp(log w)``
is as unbiased (for ``p(x)``) as geometric AIS is. The draws cost ``C`` evaluations (counted).
The geometric path skips them, so ``qpath=1`` walks the same random draws as before.

Tensors: ``log_q``, ``log_p`` ``[C, B]``; ``beta`` a float, or a tensor ``[B]`` (one β per data
point, as tempered SMC uses); ``shift`` ``[B]``.

The derivation: docs/maths.md, "Annealing paths beyond the geometric one: q-paths".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def check_qpath(qpath: float) -> float:
    """``qpath`` as a float in ``[0, 1]``, else a ValueError naming it.

    Args:
        qpath: the value to check.
    """
    if isinstance(qpath, bool) or not isinstance(qpath, int | float) or not 0 <= qpath <= 1:
        raise ValueError(
            f"qpath must be a number in [0, 1] (1: the geometric path, 0: the mixture), got "
            f"{qpath!r}"
        )
    return float(qpath)


def per_point(beta: float | Tensor, like: Tensor) -> float | Tensor:
    """``beta`` shaped to broadcast over ``like`` ``[C, B, …]``: a float as it is, a ``[B]``
    tensor as ``[1, B, 1, …]``.

    Args:
        beta: a float, or one ``β`` per data point ``[B]``.
        like: a tensor ``[C, B, …]`` whose dtype and dims ``beta`` is shaped to.
    """
    if not isinstance(beta, Tensor):
        return beta
    return beta.to(like.dtype).reshape(1, -1, *[1] * (like.dim() - 2))


@dataclass(frozen=True)
class Path:
    """The annealing path ``π̃_β``: geometric for ``q = 1``, else the q-path with the target
    scaled by ``e^{−shift}`` (``shift`` ``[B]``, see the module docstring).

    Attributes:
        q: the path's ``q`` in ``[0, 1]``: 1 for the geometric path.
        shift: the target's log-scale ``s`` per data point ``[B]`` (needed for ``q < 1``;
            ``log_scale``).
    """

    q: float = 1.0
    shift: Tensor | None = None

    def __post_init__(self):
        check_qpath(self.q)
        if self.q < 1 and self.shift is None:
            raise ValueError("a q-path (q < 1) needs the shift s of its target, [B]")

    @property
    def geometric(self) -> bool:
        return self.q == 1.0

    @property
    def offset(self) -> Tensor | float:
        """What ``log p̂(x)`` adds to ``logmeanexp`` of the weights: ``s`` (0 on the geometric
        path)."""
        return 0.0 if self.geometric else self.shift.double()

    def _terms(self, log_q: Tensor, log_p: Tensor, beta) -> tuple[Tensor, Tensor]:
        """The two terms of the ``logaddexp``, ``[C, B]`` each, in float64: the division by
        ``1 − q`` magnifies rounding, which float32 would make visible for ``q`` near 1."""
        log_q, log_p = log_q.double(), log_p.double()
        beta = torch.as_tensor(beta, dtype=torch.float64, device=log_q.device)
        r = 1.0 - self.q
        return torch.log1p(-beta) + r * log_q, torch.log(beta) + r * (log_p - self.shift.double())

    def log_density(self, log_q: Tensor, log_p: Tensor, beta) -> Tensor:
        """``log π̃_β`` at points with these ``log q`` and ``log p``, ``[C, B]``, in their dtype
        (computed in float64 on a q-path).

        Args:
            log_q: ``log q(z | x)``, ``[C, B]``.
            log_p: ``log p(x, z)``, ``[C, B]``.
            beta (float | Tensor): the inverse temperature, a float or ``[B]``.
        """
        if self.geometric:
            return log_q + beta * (log_p - log_q)
        first, second = self._terms(log_q, log_p, beta)
        return (torch.logaddexp(first, second) / (1.0 - self.q)).to(log_q.dtype)

    def grad_weights(self, log_q: Tensor, log_p: Tensor, beta) -> tuple:
        """``(w_q, w_p)`` with ``∇ log π̃_β = w_q ∇ log q + w_p ∇ log p``: floats or ``[B]``
        tensors on the geometric path, ``[C, B]`` tensors on a q-path.

        Args:
            log_q: ``log q(z | x)``, ``[C, B]``.
            log_p: ``log p(x, z)``, ``[C, B]``.
            beta (float | Tensor): the inverse temperature, a float or ``[B]``.
        """
        if self.geometric:
            return 1 - beta, beta
        first, second = self._terms(log_q, log_p, beta)
        w_p = torch.sigmoid(second - first).to(log_q.dtype)
        return 1 - w_p, w_p

    def increment(self, log_q: Tensor, log_p: Tensor, old, new) -> Tensor:
        """The AIS log-weight increment ``log π̃_new − log π̃_old`` at the same points, float64
        ``[C, B]``. On the geometric path ``(new − old) ℓ``.

        Args:
            log_q: ``log q(z | x)``, ``[C, B]``.
            log_p: ``log p(x, z)``, ``[C, B]``.
            old (float | Tensor): the inverse temperature the weight had, a float or ``[B]``.
            new (float | Tensor): the inverse temperature it moves to, a float or ``[B]``.
        """
        if self.geometric:
            return (new - old) * (log_p - log_q).double()
        log_q, log_p = log_q.double(), log_p.double()
        return self.log_density(log_q, log_p, new) - self.log_density(log_q, log_p, old)


GEOMETRIC = Path()


def log_scale(target, num_chains: int) -> Tensor:
    """The shift ``s = logmeanexp_c (log p − log q)`` ``[B]`` from ``num_chains`` fresh draws of
    ``q`` (importance sampling, independent of the chains), as ``Path`` needs.

    Args:
        target (Target): the annealing path of the batch (its model and ``x``); its ``evaluations``
            count the draws.
        num_chains: how many draws of ``q`` per data point.
    """
    z, log_q = target.sample_guide(num_chains)
    log_p = target.model.log_joint(target.x, z)
    target.evaluations += num_chains
    log_weight = (log_p - log_q).detach().double()
    return torch.logsumexp(log_weight, 0) - math.log(num_chains)


__all__ = ["GEOMETRIC", "Path", "check_qpath", "log_scale", "per_point"]
