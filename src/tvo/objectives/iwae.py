"""The importance-weighted bound ``L̂ = logmeanexp_s ℓ_s`` (Burda et al., 2016) and its estimators.

``E[L̂] ≤ log p(x)`` and rises with ``S``. Three gradient estimators:

- :func:`iwae`: pathwise, reparameterised particles;
- :func:`reinforce`: score function, ``L̂ + sg(L̂) Σ_s log q_s`` (no baseline);
- :func:`vimco`: score function with per-particle leave-one-out baselines (Mnih & Rezende, 2016),
  ``L̂ + Σ_s sg(L̂ − L̂_{−s}) log q_s``, where ``L̂_{−s}`` is ``L̂`` with ``ℓ_s`` replaced by the
  mean of the other ``ℓ``;
- :class:`DReG`: doubly reparameterised (Tucker et al., 2019), model level only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from tvo.objectives.base import Objective, Output, Terms, check_log_weights, log_weight_diagnostics
from tvo.ops import leave_one_out_logsumexp, logmeanexp, normalized_weights


def iwae(log_p: Tensor, log_q: Tensor) -> Terms:
    """Pathwise IWAE: ``surrogate = L̂``, reparameterised particles, ``[S, B] → [B]``."""
    check_log_weights(log_p, log_q)
    bound = logmeanexp(log_p - log_q)
    return Terms(bound, bound.detach())


def reinforce(log_p: Tensor, log_q: Tensor) -> Terms:
    """REINFORCE on ``L̂``: ``surrogate = L̂ + sg(L̂) Σ_s log q_s``, particles detached."""
    check_log_weights(log_p, log_q)
    bound = logmeanexp(log_p - log_q)
    return Terms(bound + bound.detach() * log_q.sum(0), bound.detach())


def vimco_baselines(log_weight: Tensor) -> Tensor:
    """``L̂_{−s}``, ``[S, B]``: ``L̂`` with ``ℓ_s`` replaced by the mean of the others.

    ``L̂_{−s} = log((Σ_{t≠s} e^{ℓ_t} + e^{mean_{t≠s} ℓ_t}) / S)``, in ``O(S·B)`` memory (no
    ``[S, S, B]`` tensor) through :func:`tvo.ops.leave_one_out_logsumexp`. Needs ``S ≥ 2``.
    """
    num_particles = log_weight.shape[0]
    mean_others = (log_weight.sum(0) - log_weight) / (num_particles - 1)
    others = leave_one_out_logsumexp(log_weight)
    return torch.logaddexp(others, mean_others) - math.log(num_particles)


def vimco(log_p: Tensor, log_q: Tensor) -> Terms:
    """VIMCO: ``surrogate = L̂ + Σ_s sg(L̂ − L̂_{−s}) log q_s``, particles detached, ``S ≥ 2``."""
    check_log_weights(log_p, log_q, min_particles=2)
    log_weight = log_p - log_q
    bound = logmeanexp(log_weight)
    ell = log_weight.detach()
    signal = bound.detach() - vimco_baselines(ell)
    return Terms(bound + (signal * log_q).sum(0), bound.detach())


class IWAE(Objective):
    """The IWAE bound with the pathwise estimator: needs reparameterisable latents."""

    name = "iwae"
    reparameterized = True

    def terms(self, log_p: Tensor, log_q: Tensor) -> Terms:
        return iwae(log_p, log_q)


class Reinforce(Objective):
    """The IWAE bound with the plain score-function (REINFORCE) estimator."""

    name = "reinforce"

    def terms(self, log_p: Tensor, log_q: Tensor) -> Terms:
        return reinforce(log_p, log_q)


class VIMCO(Objective):
    """The IWAE bound with VIMCO's leave-one-out score-function estimator; ``S ≥ 2``."""

    name = "vimco"
    min_particles = 2

    def terms(self, log_p: Tensor, log_q: Tensor) -> Terms:
        return vimco(log_p, log_q)


class _Method(nn.Module):
    """Calls one method of a model, so that ``functional_call`` can swap its parameters."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *args):
        return getattr(self.model, self.method)(*args)


def with_stopped_parameters(model: nn.Module, method: str, *args):
    """``model.method(*args)`` with every parameter detached: gradients reach the arguments
    (the reparameterised particles) only."""
    stopped = {f"model.{name}": p.detach() for name, p in model.named_parameters()}
    return functional_call(_Method(model, method), stopped, args)


def doubly_reparameterized_terms(model, x: Tensor, num_particles: int, min_particles: int = 1):
    """The two evaluations that doubly reparameterised estimators need, each ``[S, B]``:
    ``log p(x, sg(z_s))`` (θ live, particles fixed) and ``ℓ_s`` with every parameter stopped,
    so that φ reaches it only through the reparameterised particles ``z_s(φ)``."""
    z, _ = model.sample_guide(x, num_particles, reparameterize=True)
    fixed = tuple(v.detach() for v in z) if isinstance(z, tuple) else z.detach()
    log_p_theta = model.log_joint(x, fixed)
    path = with_stopped_parameters(model, "log_joint", x, z) - with_stopped_parameters(
        model, "log_guide", x, z
    )
    check_log_weights(log_p_theta, path, min_particles)
    return log_p_theta, path


class DReG(Objective):
    """The IWAE bound with the doubly reparameterised gradient (Tucker et al., 2019).

    θ gets the IWAE gradient ``Σ_s w̄_s ∇_θ log p(x, z_s)``; φ gets
    ``Σ_s w̄_s² (∂ℓ_s / ∂z_s)(∂z_s / ∂φ)``, where ``ℓ_s`` is evaluated with every parameter
    stopped, so φ reaches it only through the reparameterised particles ``z_s(φ)``: the score
    term ``∇_φ log q`` (zero in expectation, but noisy) is gone. Surrogate per data point:

        Σ_s sg(w̄_s) log p(x, sg(z_s)) + Σ_s sg(w̄_s²) ℓ_s|_{θ, φ stopped}

    Unbiased for ``∇ E[L̂_S]``; needs reparameterisable latents. At ``S = 1`` the φ-part is the
    "sticking the landing" ELBO gradient of Roeder et al. (2017). The model is evaluated twice
    per particle (θ live on detached particles; parameters stopped on live particles).
    """

    name = "dreg"
    reparameterized = True

    def __call__(self, model, x: Tensor, num_particles: int) -> Output:
        self.check(model, num_particles)
        log_p_theta, path = doubly_reparameterized_terms(model, x, num_particles)
        weights = normalized_weights(path.detach())
        surrogate = (weights * log_p_theta).sum(0) + (weights**2 * path).sum(0)
        diagnostics = log_weight_diagnostics(path)
        return Output(-surrogate.mean(), diagnostics["iwae"], diagnostics)
