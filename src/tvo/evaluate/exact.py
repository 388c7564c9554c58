"""Exact answers by enumeration, for models that implement ``enumerate_latents()``:
``log p(x)``, the integrand ``g(β)`` and the TVO bounds, differentiable by autograd: the ground
truth of the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tvo.partitions import partition as make_partition
from tvo.partitions import riemann_sum


def exact_log_weights(model, x: Tensor) -> tuple[Tensor, Tensor]:
    """``log p(x, z)`` and ``log q(z | x)`` for every latent value, each ``[N, B]``."""
    z = model.enumerate_latents()  # a tensor [N, …] or a tuple of them (layered latents)

    def beside_batch(v: Tensor) -> Tensor:
        return v.unsqueeze(1).expand(v.shape[0], x.shape[0], *v.shape[1:])

    z = tuple(map(beside_batch, z)) if isinstance(z, tuple) else beside_batch(z)
    return model.log_joint(x, z), model.log_guide(x, z)


def exact_log_marginal(model, x: Tensor) -> Tensor:
    """``log p(x) = log Σ_z p(x, z)``, ``[B]``, by enumeration.

    Args:
        model (GenerativeModel): a model with ``enumerate_latents()`` (every value of its
            discrete latent, ``[N, …]``).
        x: the data, ``[B, D]``.
    """
    log_p, _ = exact_log_weights(model, x)
    return torch.logsumexp(log_p, 0)


def exact_integrand(model, x: Tensor, beta) -> Tensor:
    """``g(β) = E_{π_β}[ℓ]`` for each ``β``, ``[len(β), B]``, by enumeration.

    ``π_β(z) = softmax_z(β log p(x, z) + (1 − β) log q(z | x))``; differentiable in θ and φ.

    Args:
        model (GenerativeModel): a model with ``enumerate_latents()``.
        x: the data, ``[B, D]``.
        beta (float | Sequence[float] | Tensor): the points ``β``.
    """
    log_p, log_q = exact_log_weights(model, x)
    beta = torch.as_tensor(beta, dtype=log_p.dtype, device=log_p.device).reshape(-1, 1, 1)
    log_path = beta * log_p + (1 - beta) * log_q  # [K, N, B]
    return (torch.softmax(log_path, dim=1) * (log_p - log_q)).sum(1)


def exact_tvo(model, x: Tensor, partition, integration: str = "left") -> Tensor:
    """The exact Riemann sum ``Σ_k m_k g(β_k)``, ``[B]``: ``TVO_L`` for ``"left"``, ``TVO_U``
    for ``"right"``. Differentiable, so autograd gives the exact gradient of the bound.

    Args:
        model (GenerativeModel): a model with ``enumerate_latents()``.
        x: the data, ``[B, D]``.
        partition (int | Sequence[float] | Tensor): ``K`` (the log schedule's points) or the
            points ``β`` ``[K + 1]`` themselves, as ``tvo.partition`` takes them.
        integration: the Riemann sum: ``"left"``, ``"right"`` or ``"trapz"``.
    """
    beta = make_partition(partition)
    return riemann_sum(exact_integrand(model, x, beta), beta, integration)
