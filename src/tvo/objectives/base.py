"""What every objective returns, and the model-level wrapper shared by the families.

Functional layer: a pure function of ``log_p = log p(x, z_s)`` and ``log_q = log q(z_s | x)``,
both ``[S, B]``, returning :class:`Terms`: a ``surrogate`` ``[B]`` whose gradient is the
estimator (for θ and φ at once) and the objective's value ``estimate`` ``[B]`` (detached).

Model level: an :class:`Objective` draws the particles from a model, calls its function and
returns :class:`Output`: the scalar ``loss = −mean_b surrogate_b`` to minimise, the estimate and
diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, NamedTuple

from torch import Tensor

from tvo.ops import effective_sample_size, logmeanexp


class Terms(NamedTuple):
    """A functional objective's result: ``surrogate`` ``[B]`` (differentiate it) and
    ``estimate`` ``[B]`` (the objective's value, detached)."""

    surrogate: Tensor
    estimate: Tensor


class Output(NamedTuple):
    """A model-level objective's result: ``loss`` (scalar, minimise it), ``estimate`` ``[B]``
    and ``diagnostics``: detached ``[B]`` tensors (``ess``, ``elbo``, ``iwae``, and
    objective-specific ones such as the TVO's ``integrand`` ``[K + 1, B]``)."""

    loss: Tensor
    estimate: Tensor
    diagnostics: Mapping[str, Tensor]


def check_log_weights(log_p: Tensor, log_q: Tensor, min_particles: int = 1) -> None:
    """Validate the ``[S, B]`` shapes of ``log_p`` and ``log_q`` at the functional boundary."""
    if log_p.shape != log_q.shape or log_p.dim() != 2:
        raise ValueError(
            "log_p and log_q must both have shape [S, B] (particles first), got "
            f"{tuple(log_p.shape)} and {tuple(log_q.shape)}"
        )
    if log_p.shape[0] < min_particles:
        raise ValueError(
            f"this objective needs at least {min_particles} particles per data point, "
            f"got S = {log_p.shape[0]}"
        )


class Diagnostics(Mapping):
    """Detached per-data-point diagnostics, computed when first read (a training loop that reads
    none pays nothing): ``ess`` (effective sample size), ``elbo`` (``mean_s ℓ``) and ``iwae``
    (``logmeanexp_s ℓ``) of the ``[S, B]`` log-weights ``log_weight``, plus any ``extra``."""

    _computed: ClassVar[dict] = {
        "log_weight": lambda log_weight: log_weight,
        "ess": effective_sample_size,
        "elbo": lambda log_weight: log_weight.mean(0),
        "iwae": logmeanexp,
    }

    def __init__(self, log_weight: Tensor, **extra: Tensor):
        self._log_weight = log_weight.detach()
        self._values: dict[str, Tensor] = dict(extra)

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._values:
            if key not in self._computed:
                raise KeyError(key)
            self._values[key] = self._computed[key](self._log_weight)
        return self._values[key]

    def __iter__(self):
        return iter({**self._computed, **self._values})

    def __len__(self) -> int:
        return len({**self._computed, **self._values})

    def __repr__(self) -> str:
        return f"Diagnostics({', '.join(self)})"


def log_weight_diagnostics(log_weight: Tensor, **extra: Tensor) -> Diagnostics:
    """The :class:`Diagnostics` of ``[S, B]`` log-weights."""
    return Diagnostics(log_weight, **extra)


class Objective:
    """Base class of the model-level objectives: ``objective(model, x, num_particles)``.

    Subclasses set ``name``, ``reparameterized`` (draw particles with ``rsample``: needs a model
    with ``has_rsample``), ``min_particles`` and implement :meth:`terms`.
    """

    name: str = "objective"
    reparameterized: bool = False
    min_particles: int = 1

    def terms(self, log_p: Tensor, log_q: Tensor) -> Terms:
        raise NotImplementedError

    def check(self, model, num_particles: int) -> None:
        """Reject settings that cannot work, before any sampling."""
        if not isinstance(num_particles, int) or num_particles < self.min_particles:
            raise ValueError(
                f"{self.name} needs num_particles to be an integer ≥ {self.min_particles}, "
                f"got {num_particles!r}"
            )
        if self.reparameterized and not getattr(model, "has_rsample", False):
            raise ValueError(
                f"{self.name} is a pathwise (reparameterised) objective, but "
                f"{type(model).__name__} has no reparameterisable latents (has_rsample is "
                "False, e.g. discrete latents); use a score-function objective instead: "
                "tvo, elbo, reinforce, vimco, rws or wake-sleep"
            )

    def __call__(self, model, x: Tensor, num_particles: int) -> Output:
        self.check(model, num_particles)
        z, log_q = model.sample_guide(x, num_particles, reparameterize=self.reparameterized)
        log_p = model.log_joint(x, z)
        terms = self.terms(log_p, log_q)
        diagnostics = log_weight_diagnostics(log_p - log_q, **self.extra_diagnostics(terms))
        return Output(-terms.surrogate.mean(), terms.estimate, diagnostics)

    def extra_diagnostics(self, terms: Terms) -> dict[str, Tensor]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
