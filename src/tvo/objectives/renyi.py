"""The variational Rényi (VR) bounds of Li & Turner (NeurIPS 2016), estimated with ``S``
particles:

    L̂_α = 1/(1 − α) · log mean_s w_s^(1−α) = logmeanexp_s((1 − α) ℓ_s) / (1 − α)

On the same particles ``L̂_α`` is non-increasing in ``α`` (a power mean of the weights):
``α = 0`` is the IWAE bound ``L̂`` exactly, ``α → 1`` the ELBO's ``mean_s ℓ_s`` (``α = 1`` is
taken as that limit), ``α → −∞`` the largest ``ℓ_s``. Its expectation ``E[L̂_α]`` rises with
``S`` towards ``L_α = 1/(1 − α) log E_q[w^(1−α)] = log p(x) − D_α(q ‖ p(z|x))`` (the Rényi
divergence of order ``α``), which for ``α ≥ 0`` is a lower bound: ``E[L̂_α] ≤ L_α ≤ log p(x)``.

For ``α < 0``, ``L_α ≥ log p(x)`` (Jensen: ``E[w^(1−α)]^(1/(1−α)) ≥ E[w] = p(x)``): an upper
bound, the χ upper bound of Dieng et al. (2017) at ``α = −1``. But ``log`` is concave, so
``E[L̂_α] ≤ L_α`` and the estimate is biased down: with finite ``S`` it is neither a lower nor
an upper bound of ``log p(x)``, only one in the limit ``S → ∞``. Training with ``α < 0`` is
mass-covering (it penalises a ``q`` that misses posterior mass); read its estimates as
upper-bound-like, never as a certified bound.

Two gradient estimators (``w̃_s = softmax_s((1 − α) ℓ)`` are the tilted weights, so that
``∇ L̂_α = Σ_s w̃_s ∇ ℓ_s`` when the particles are held fixed):

- ``renyi``, score function, particles detached (discrete or continuous latents), with
  VIMCO's leave-one-out baselines on the tilted log-weights ``(1 − α) ℓ``:
  ``L̂_α + Σ_s sg(L̂_α − b_s) log q_s``, ``b_s = L̂_α`` with ``ℓ_s`` replaced by the mean of the
  other ``ℓ`` (it does not depend on ``z_s``: unbiased for ``∇ E[L̂_α]``); ``S ≥ 2``. At
  ``α = 0`` it is ``vimco``; at ``α = 1`` the score-function ELBO with
  its leave-one-out baseline (``elbo``).
- ``renyi_pathwise``, reparameterised particles: ``surrogate = L̂_α`` (Li & Turner's VR
  bound with the reparameterisation trick; Pyro's ``RenyiELBO``).

Both cost ``S`` evaluations of ``log_joint`` and ``log q`` per data point. Shapes ``[S, B]``.

The derivation: docs/maths.md, "The variational Rényi bounds".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor

from tvo.objectives.base import Objective, Terms, check_log_weights
from tvo.objectives.elbo import elbo, vae
from tvo.objectives.iwae import vimco_baselines
from tvo.ops import logmeanexp
from tvo.settings import ConfigError, Setting


def check_alpha(alpha) -> float:
    """``alpha`` as a float; ``ValueError`` unless it is a finite number."""
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not math.isfinite(alpha):
        raise ValueError(f"the Rényi bound needs alpha to be a finite number, got {alpha!r}")
    return float(alpha)


def renyi_bound(log_weight: Tensor, alpha: float) -> Tensor:
    """``L̂_α = logmeanexp_s((1 − α) ℓ_s) / (1 − α)``, ``[S, B] → [B]`` (``mean_s ℓ_s`` at
    ``α = 1``)."""
    if alpha == 1:
        return log_weight.mean(0)
    return logmeanexp((1 - alpha) * log_weight) / (1 - alpha)


def renyi(log_p: Tensor, log_q: Tensor, alpha: float = 0.5) -> Terms:
    """Score-function VR bound with leave-one-out baselines (module docstring):
    ``surrogate = L̂_α + Σ_s sg(L̂_α − b_s) log q_s``, particles detached, ``S ≥ 2``."""
    log_p, log_q = check_log_weights(log_p, log_q, min_particles=2)
    if alpha == 1:
        return elbo(log_p, log_q)
    log_weight = log_p - log_q
    bound = renyi_bound(log_weight, alpha)
    baselines = vimco_baselines((1 - alpha) * log_weight.detach()) / (1 - alpha)
    signal = bound.detach() - baselines
    return Terms(bound + (signal * log_q).sum(0), bound.detach())


def renyi_pathwise(log_p: Tensor, log_q: Tensor, alpha: float = 0.5) -> Terms:
    """Pathwise VR bound: ``surrogate = L̂_α``, reparameterised particles, ``[S, B] → [B]``."""
    log_p, log_q = check_log_weights(log_p, log_q)
    if alpha == 1:
        return vae(log_p, log_q)
    bound = renyi_bound(log_p - log_q, alpha)
    return Terms(bound, bound.detach())


def _finite_alpha(value) -> None:
    """A run's ``alpha``: a finite number."""
    if value is not None and not (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ):
        raise ConfigError(f"alpha must be a finite number, got {value!r}")


class Renyi(Objective):
    """The VR bound ``L̂_α`` with the score-function estimator and leave-one-out baselines
    (``renyi``): discrete and continuous latents, ``S ≥ 2``. ``Renyi(alpha=0.5)``; ``α = 0``
    is VIMCO, ``α = 1`` the score-function ELBO; ``α < 0`` is upper-bound-like (see
    ``tvo.objectives.renyi``)."""

    name = "renyi"
    function = staticmethod(renyi)  # with the objective's alpha (terms)
    min_particles = 2
    settings: ClassVar[dict[str, object]] = {"alpha": 0.5}
    declared: ClassVar[tuple[Setting, ...]] = (
        Setting("alpha", float, help="the Rényi bound's α (0: the IWAE bound, → 1: the ELBO)",
                check=lambda v, values: _finite_alpha(v)),
    )  # fmt: skip

    def __init__(self, alpha: float = 0.5):
        self.alpha = check_alpha(alpha)

    @classmethod
    def applicable(cls, values: Mapping[str, object]) -> tuple[str, ...]:
        return ("alpha",)

    @classmethod
    def from_settings(cls, seed: int = 0, **settings):
        return cls(settings.get("alpha", cls.settings["alpha"]))

    def run_settings(self) -> dict:
        return {"alpha": self.alpha}

    def terms(self, log_p: Tensor, log_q: Tensor, partition=None) -> Terms:
        return renyi(log_p, log_q, self.alpha)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha:g})"


class RenyiPathwise(Renyi):
    """The VR bound ``L̂_α`` with the pathwise estimator (``renyi_pathwise``): needs
    reparameterisable latents; ``S ≥ 1``."""

    name = "renyi-pathwise"
    sampling = "pathwise"
    function = staticmethod(renyi_pathwise)
    min_particles = 1

    def terms(self, log_p: Tensor, log_q: Tensor, partition=None) -> Terms:
        return renyi_pathwise(log_p, log_q, self.alpha)
