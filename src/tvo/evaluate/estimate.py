"""Many-particle importance-sampling estimates (docs/maths.md, "Evaluation by importance
sampling"), all from one set of ``S`` particles per data point:

- ``log p̂(x) = logmeanexp_s ℓ_s`` (``S = 5000`` is the standard test metric);
- ``ELBÔ = mean_s ℓ_s`` and ``KL̂(q ‖ p) = log p̂(x) − ELBÔ``;
- ``TVÔ_L`` and ``TVÔ_U`` at a partition, from ``ĝ(β) = Σ_s softmax_s(β ℓ)_s ℓ_s``.

The model runs in its own dtype over chunks of particles; the reductions are float64 and merged
across chunks exactly (``tvo.ops.merge``), so memory is bounded by ``chunk_size × B``.
By default a chunk on the CPU holds about ``CPU_CHUNK_ROWS`` particles in all (``chunk_size ×
B``): the model's ``[chunk_size × B, D]`` activations then stay in the processor's cache, which
made a 5000-particle evaluation 2.2 to 2.7 times faster than chunks of 500 × 100
(benchmarks/RESULTS.md). On other devices the default is 1000 particles per chunk.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from tvo.models.check import check_data
from tvo.ops import WeightedMean, integrand_terms, merge
from tvo.partitions import partition as make_partition
from tvo.partitions import riemann_sum

CPU_CHUNK_ROWS = 2500
EVALUATION_BYTES = 16.0  # per particle row and value: [rows, D] and a few copies


def default_chunk_size(batch: int, device: torch.device) -> int:
    """Particles per chunk when none is given: ``CPU_CHUNK_ROWS // batch`` on the CPU (at
    least 1), 1000 elsewhere."""
    if torch.device(device).type == "cpu":
        return max(1, CPU_CHUNK_ROWS // max(1, batch))
    return 1000


def evaluation_rows(num_particles: int, num_images: int, device: torch.device,
                    chunk_size: int | None = None, images_per_pass: int = 100) -> int:  # fmt: skip
    """The most particle rows (``[rows, D]``) an evaluation of ``num_particles`` per image on
    ``num_images`` images holds at once, ``images_per_pass`` at a time, ``chunk_size`` particles
    per image at a time (default ``default_chunk_size`` of the pass): what its memory
    scales with."""
    batch = max(1, min(images_per_pass, num_images))
    return min(chunk_size or default_chunk_size(batch, device), num_particles) * batch


class Evaluation(NamedTuple):
    """Per-data-point float64 estimates, each ``[B]``; printed as a summary (the number of data
    points and each estimate's mean), the tensors being its fields."""

    log_px: Tensor
    kl: Tensor
    elbo: Tensor
    tvo_lower: Tensor
    tvo_upper: Tensor

    def __repr__(self) -> str:
        means = ", ".join(f"{name}={value.mean().item():.3f}"
                          for name, value in zip(self._fields, self))  # fmt: skip
        return f"Evaluation(B={self.log_px.numel()} points; means {means})"


@torch.no_grad()
def estimate(
    model,
    x: Tensor,
    num_particles: int = 5000,
    partition=None,
    chunk_size: int | None = None,
    validate: bool = True,
) -> Evaluation:
    """``log p̂(x)``, ``KL̂(q ‖ p)``, ``ELBÔ`` and the TVO bounds at ``partition`` (default
    ``[0, 1]``: the ELBO and the EUBO estimate) with ``num_particles`` per data point.

    Args:
        model (GenerativeModel): the model (the protocol of ``tvo.models.base``).
        x: the data, ``[B, D]``.
        num_particles: importance samples from ``q(z | x)`` per data point.
        partition (Tensor | Sequence[float] | None): the points ``β`` of the TVO bounds,
            ``[K + 1]`` (``None``: ``[0, 1]``).
        chunk_size: particles drawn at a time, which bounds the memory (``None``:
            ``default_chunk_size``); the estimate does not depend on it.
        validate: refuse ``x`` outside the model's observation support
            (``tvo.models.check.check_data``).

    Returns:
        An ``Evaluation`` of float64 tensors ``[B]``.
    """
    if validate:
        check_data(model, x)
    beta = make_partition(1 if partition is None else partition).to(x.device)
    # ĝ at β = 0 is the ELBO and the normaliser at β = 1 gives log p̂(x): always evaluate both.
    points = torch.unique(torch.cat([beta, beta.new_tensor([0.0, 1.0])]))
    integrand, log_px = estimate_integrand(model, x, points, num_particles, chunk_size)
    elbo = integrand[0]
    at_partition = integrand[torch.searchsorted(points, beta)]
    lower = riemann_sum(at_partition, beta, "left")
    upper = riemann_sum(at_partition, beta, "right")
    return Evaluation(log_px, log_px - elbo, elbo, lower, upper)


@torch.no_grad()
def estimate_integrand(
    model, x: Tensor, points: Tensor, num_particles: int = 5000, chunk_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """``ĝ(β)`` at each of the increasing ``points`` (``[P]``, the last one 1) and
    ``log p̂(x)``, float64, ``[P, B]`` and ``[B]``, from ``num_particles`` per data point.

    Args:
        model (GenerativeModel): the model (the protocol of ``tvo.models.base``).
        x: the data, ``[B, D]``.
        points: the increasing ``β`` ``[P]`` at which to estimate the integrand, the last 1.
        num_particles: importance samples from ``q(z | x)`` per data point.
        chunk_size: particles drawn at a time (``None``: ``default_chunk_size``).
    """
    if chunk_size is None:
        chunk_size = default_chunk_size(x.shape[0], x.device)
    for name, value in (("num_particles", num_particles), ("chunk_size", chunk_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    if points[-1] != 1:
        raise ValueError(f"the last point must be β = 1 (it gives log p̂(x)), got {points[-1]}")
    state: WeightedMean | None = None
    remaining = num_particles
    while remaining > 0:
        size = min(chunk_size, remaining)
        remaining -= size
        z, log_q = model.sample_guide(x, size)
        log_weight = (model.log_joint(x, z) - log_q).double()  # [size, B]
        chunk = integrand_terms(log_weight, points)  # [P, B]
        state = chunk if state is None else merge(state, chunk)
    return state.mean, state.log_norm[-1] - math.log(num_particles)
