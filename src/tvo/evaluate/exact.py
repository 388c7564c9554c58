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
    """``log p(x, z)`` and ``log q(z | x)`` for every latent value, each ``[N, B]``.

    Args:
        model (GenerativeModel): a model with ``enumerate_latents()`` (every value of its discrete
            latent, ``[N, …]``).
        x: the data, ``[B, D]``.
    """
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


# --- exact transitions: the references that AIS's kernels are measured against ---------------


class EnumeratedPathKernel:
    """The ideal AIS kernel for a model with ``enumerate_latents()``: each step replaces every
    chain by an independent exact draw of ``π_β ∝ π̃_β`` on the target's path (geometric or
    q-path), computed over all ``N`` latent values (``N`` evaluations per chain-free step). AIS
    with it has the smallest variance any kernel can give at that schedule."""

    needs_grad = False

    def init(self, target, point, beta: float = 0.0):
        """The kernel's state for the chains at ``point`` before the walk: ``None`` (it keeps none).

        Args:
            target (Target): the annealing path of the batch, which evaluates (and counts) points.
            point (Point): the chains where the walk starts, ``[C, B]``.
            beta: the inverse temperature where the walk starts: 0 for forward AIS, 1 for BDMC's
                reverse chains.
        """
        return None

    def step(self, state, target, point, beta):
        """One transition at ``beta``: the state (``None``), the new ``Point`` (every chain an
        independent exact draw of ``π_β``) and the fraction of chains accepted, ``[B]`` (all of
        them).

        Args:
            state (None): unused (``init`` returns ``None``).
            target (Target): the annealing path of the batch, which evaluates (and counts) points.
            point (Point): the chains now, ``[C, B]``.
            beta (float | Tensor): the inverse temperature whose ``π_β`` the step leaves invariant:
                a float, or one per data point ``[B]``.
        """
        from tvo.evaluate.kernels import Point

        C, B = point.log_p.shape
        z = target.model.enumerate_latents()  # [N, …] or a tuple
        leaves = z if isinstance(z, tuple) else (z,)
        N = leaves[0].shape[0]
        beside = tuple(v.unsqueeze(1).expand(N, B, *v.shape[1:]) for v in leaves)
        grid = target.evaluate(beside if isinstance(z, tuple) else beside[0])  # [N, B]
        log_density = target.log_density(grid, beta)  # [N, B]
        index = torch.distributions.Categorical(logits=log_density.T).sample((C,))  # [C, B]
        columns = torch.arange(B, device=index.device).expand(C, B)
        pick = tuple(v[index, columns] for v in beside)
        new = Point(pick if isinstance(z, tuple) else pick[0], grid.log_q[index, columns],
                    grid.log_p[index, columns])  # fmt: skip
        return state, new, torch.ones(B, dtype=point.log_p.dtype, device=index.device)

    def __repr__(self) -> str:
        return "EnumeratedPathKernel()"


class GaussianPathKernel:
    """The ideal AIS kernel for ``LinearGaussian`` on the geometric path:
    ``π_β ∝ q^(1−β) p(z | x)^β`` is Gaussian with precision ``Λ_β = (1−β) Λ_q + β Λ_p`` and mean
    ``Λ_β⁻¹ ((1−β) Λ_q μ_q + β Λ_p μ_p)``; each step draws every chain from it afresh."""

    needs_grad = False

    def init(self, target, point, beta: float = 0.0):
        """The kernel's state for the chains at ``point`` before the walk: ``None`` (it keeps none).
        A ``ValueError`` on a q-path.

        Args:
            target (Target): the annealing path of the batch, which evaluates (and counts) points.
            point (Point): the chains where the walk starts, ``[C, B]``.
            beta: the inverse temperature where the walk starts: 0 for forward AIS, 1 for BDMC's
                reverse chains.
        """
        if not target.path.geometric:
            raise ValueError("GaussianPathKernel knows the geometric path only")
        return None

    def step(self, state, target, point, beta):
        """One transition at ``beta``: the state (``None``), the new ``Point`` (every chain an
        independent exact draw of ``π_β``) and the fraction of chains accepted, ``[B]`` (all of
        them).

        Args:
            state (None): unused (``init`` returns ``None``).
            target (Target): the annealing path of the batch, which evaluates (and counts) points.
            point (Point): the chains now, ``[C, B]``.
            beta (float | Tensor): the inverse temperature whose ``π_β`` the step leaves invariant:
                a float, or one per data point ``[B]``.
        """
        model, x = target.model, target.x
        q, post = model.guide(x), model.posterior(x)
        q_precision = torch.diag_embed(q.variance.reciprocal())
        p_precision = post.precision_matrix.expand_as(q_precision)
        beta = torch.as_tensor(beta, dtype=x.dtype).reshape(-1, 1, 1)
        precision = (1 - beta) * q_precision + beta * p_precision
        covariance = torch.linalg.inv(precision)
        shift = (1 - beta) * q_precision @ q.mean[..., None] + beta * (
            p_precision @ post.mean[..., None]
        )
        mean = (covariance @ shift)[..., 0]
        covariance = 0.5 * (covariance + covariance.mT)
        z = torch.distributions.MultivariateNormal(mean, covariance).sample((point.log_p.shape[0],))
        rate = torch.ones_like(point.log_p[0])
        return state, target.evaluate(z), rate

    def __repr__(self) -> str:
        return "GaussianPathKernel()"
