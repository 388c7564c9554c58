"""The model protocol: what an objective needs from a generative model and its inference network.

A model is a ``torch.nn.Module`` holding both ``p_θ(x, z) = p_θ(z) p_θ(x | z)`` and
``q_φ(z | x)``, with four methods. ``x`` is ``[B, D]``; a latent value ``z`` is whatever the
model likes (a tensor, a tuple of tensors for layered latents) with leading dims ``[*, B]``:
``[S, B]`` for particles, ``[N]`` for ``N`` model samples. Log-densities come back with exactly
those leading dims.

- ``sample_guide(x, num_particles, reparameterize=False) → (z, log_q)``: ``S`` particles from
  ``q(z | x)``, ``z`` ``[S, B, …]`` and ``log q(z | x)`` ``[S, B]`` (differentiable in φ); ``z`` is
  detached unless ``reparameterize``.
- ``log_guide(x, z) → log q(z | x)``.
- ``log_joint(x, z) → log p(x, z)`` (differentiable in θ).
- ``sample(num_samples) → (z, x)``: exact joint samples from the model, ``[N, …]`` and ``[N, D]``.
- ``has_rsample``: whether ``reparameterize=True`` is possible (continuous latents).

Optional: ``decode(z) → E[x | z]``, used by ``tvo plot`` to draw reconstructions.

``Model`` implements all four from three ``torch.distributions`` objects, which is the
quickest way to bring your own model.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal


def rsample(q: Distribution, sample_shape: tuple[int, ...]) -> Tensor:
    """``q.rsample(sample_shape)``, drawn out of place where ``q`` is a ``Normal`` (or an
    ``Independent`` of one): ``μ + ε σ`` with ``ε = torch.randn(…)``, the same numbers from the
    same generator as ``Normal.rsample``, which fills a new tensor in place with ``normal_``, a
    draw that ``torch.func.vmap(randomness="different")`` refuses (a group of runs,
    ``tvo.ensemble``); any other distribution's own ``rsample``.

    Args:
        q: the distribution.
        sample_shape: the leading dims of the draw, ``(S,)`` for ``S`` particles.
    """
    base = q.base_dist if isinstance(q, Independent) else q
    if type(base) is not Normal:
        return q.rsample(sample_shape)
    shape = base._extended_shape(torch.Size(sample_shape))
    eps = torch.randn(shape, dtype=base.loc.dtype, device=base.loc.device)
    return base.loc + eps * base.scale


def check_sizes(model: str, **sizes) -> None:
    """Raise ``ValueError`` naming any size that is not a positive integer (or a sequence of them,
    for names ending in ``s``)."""
    for name, value in sizes.items():
        values = list(value) if isinstance(value, list | tuple) else [value]
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)
        if not ok or (isinstance(value, list | tuple) and name == "latents" and not values):
            what = "positive integers" if isinstance(value, list | tuple) else "a positive integer"
            raise ValueError(f"{model}: {name} must be {what}, got {value!r}")


@runtime_checkable
class GenerativeModel(Protocol):
    """The protocol every objective relies on (see the module docstring)."""

    has_rsample: bool

    def sample_guide(
        self, x: Tensor, num_particles: int, reparameterize: bool = False
    ) -> tuple[Any, Tensor]:
        """``(z, log q(z | x))``: ``S`` particles ``[S, B, …]`` and their log-density ``[S, B]``.

        Args:
            x: the data, ``[B, D]``.
            num_particles: ``S``, the particles per data point.
            reparameterize: draw with ``rsample`` (a pathwise gradient through ``z``).
        """

    def log_guide(self, x: Tensor, z: Any) -> Tensor:
        """``log q(z | x)``, ``[S, B]`` (``[N]`` for ``N`` model samples).

        Args:
            x: the data, ``[B, D]`` (``[N, D]``).
            z: latents with leading dims ``[S, B]`` (``[N]``).
        """

    def log_joint(self, x: Tensor, z: Any) -> Tensor:
        """``log p(x, z)``, ``[S, B]``.

        Args:
            x: the data, ``[B, D]``.
            z: latents with leading dims ``[S, B]``.
        """

    def sample(self, num_samples: int) -> tuple[Any, Tensor]:
        """``(z, x)``: exact joint samples from the model, ``[N, …]`` and ``[N, D]``.

        Args:
            num_samples: ``N``.
        """


class Model(nn.Module):
    """A model given by three distributions; subclasses implement:

    - ``prior()``: ``p(z)``, event shape = one latent (e.g. ``Independent(Bernoulli(...), 1)``);
    - ``likelihood(z)``: ``p(x | z)``, batch shape = ``z``'s leading dims, event shape = one ``x``;
    - ``guide(x)``: ``q(z | x)`` with batch shape ``[B]``, event shape = one latent;

    and set ``has_rsample = True`` if ``guide(x).rsample`` exists (continuous latents).
    Optionally ``enumerate_latents()`` returns every value of a discrete latent, ``[N, …]``,
    for the exact answers of ``tvo.evaluate``.
    """

    has_rsample: bool = False

    def prior(self) -> Distribution:
        raise NotImplementedError

    def likelihood(self, z: Tensor) -> Distribution:
        """``p(x | z)``: batch shape ``z``'s leading dims, event shape one data point.

        Args:
            z: latents with leading dims ``[S, B]`` (or ``[N]``).
        """
        raise NotImplementedError

    def guide(self, x: Tensor) -> Distribution:
        """``q(z | x)``: batch shape ``[B]``, event shape one latent.

        Args:
            x: the data, ``[B, D]``.
        """
        raise NotImplementedError

    def enumerate_latents(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} cannot enumerate its latents")

    def sample_guide(
        self, x: Tensor, num_particles: int, reparameterize: bool = False
    ) -> tuple[Tensor, Tensor]:
        """``(z, log q(z | x))`` from ``guide(x)``, ``[S, B, …]`` and ``[S, B]``.

        Args:
            x: the data, ``[B, D]``.
            num_particles: ``S``, the particles per data point.
            reparameterize: draw with ``rsample`` (needs ``has_rsample``).
        """
        q = self.guide(x)
        if reparameterize:
            if not self.has_rsample:
                raise ValueError(
                    f"{type(self).__name__} has no reparameterisable latents (has_rsample=False)"
                )
            z = rsample(q, (num_particles,))
        else:
            z = q.sample((num_particles,))
        return z, q.log_prob(z)

    def log_guide(self, x: Tensor, z: Tensor) -> Tensor:
        """``log q(z | x)``, ``[S, B]``.

        Args:
            x: the data, ``[B, D]``.
            z: latents with leading dims ``[S, B]``.
        """
        return self.guide(x).log_prob(z)

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(z) + log p(x | z)``, ``[S, B]``.

        Args:
            x: the data, ``[B, D]``.
            z: latents with leading dims ``[S, B]``.
        """
        return self.prior().log_prob(z) + self.likelihood(z).log_prob(x)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """``E[x | z]``.

        Args:
            z: latents with leading dims ``[N]``.
        """
        return self.likelihood(z).mean

    @torch.no_grad()
    def sample(self, num_samples: int) -> tuple[Tensor, Tensor]:
        """``(z, x)`` from ``prior()`` and ``likelihood(z)``, ``[N, …]`` and ``[N, D]``.

        Args:
            num_samples: ``N``.
        """
        z = self.prior().sample((num_samples,))
        return z, self.likelihood(z).sample()
