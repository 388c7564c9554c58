"""The importance-weighted bound ``L̂ = logmeanexp_s ℓ_s`` (Burda et al., 2016) and its estimators.

``E[L̂] ≤ log p(x)`` and rises with ``S``. Three gradient estimators:

- ``iwae``: pathwise, reparameterised particles;
- ``reinforce``: score function, ``L̂ + sg(L̂) Σ_s log q_s`` (no baseline);
- ``vimco``: score function with per-particle leave-one-out baselines (Mnih & Rezende, 2016),
  ``L̂ + Σ_s sg(L̂ − L̂_{−s}) log q_s``, where ``L̂_{−s}`` is ``L̂`` with ``ℓ_s`` replaced by the
  mean of the other ``ℓ``;
- ``dreg``: doubly reparameterised (Tucker et al., 2019), on the tensors of the
  ``doubly-reparameterized`` sampling mode.

The equations: docs/maths.md, "The importance-weighted bound and its estimators".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tvo.objectives.base import Objective, Terms, check_log_weights
from tvo.ops import leave_one_out_logsumexp, leave_one_out_mean, logmeanexp, normalized_weights


def iwae(log_p: Tensor, log_q: Tensor) -> Terms:
    """Pathwise IWAE: ``surrogate = L̂``, reparameterised particles, ``[S, B] → [B]``.

    Args:
        log_p: ``log p(x, z_s)`` of the particles, ``[S, B]`` (differentiable in θ, and in φ
            through the reparameterised ``z_s``).
        log_q: ``log q(z_s | x)``, ``[S, B]`` (differentiable in φ).
    """
    log_p, log_q = check_log_weights(log_p, log_q)
    bound = logmeanexp(log_p - log_q)
    return Terms(bound, bound.detach())


def reinforce(log_p: Tensor, log_q: Tensor) -> Terms:
    """REINFORCE on ``L̂``: ``surrogate = L̂ + sg(L̂) Σ_s log q_s``, particles detached.

    Args:
        log_p: ``log p(x, z_s)`` of the particles, ``[S, B]`` (differentiable in θ).
        log_q: ``log q(z_s | x)``, ``[S, B]`` (differentiable in φ).
    """
    log_p, log_q = check_log_weights(log_p, log_q)
    bound = logmeanexp(log_p - log_q)
    return Terms(bound + bound.detach() * log_q.sum(0), bound.detach())


def vimco_baselines(log_weight: Tensor) -> Tensor:
    """``L̂_{−s}``, ``[S, B]``: ``L̂`` with ``ℓ_s`` replaced by the mean of the others.

    ``L̂_{−s} = log((Σ_{t≠s} e^{ℓ_t} + e^{mean_{t≠s} ℓ_t}) / S)``, in ``O(S·B)`` memory (no
    ``[S, S, B]`` tensor) through ``tvo.ops.leave_one_out_logsumexp``. Needs ``S ≥ 2``.
    """
    num_particles = log_weight.shape[0]
    mean_others = leave_one_out_mean(log_weight)
    others = leave_one_out_logsumexp(log_weight)
    return torch.logaddexp(others, mean_others) - math.log(num_particles)


def vimco(log_p: Tensor, log_q: Tensor) -> Terms:
    """VIMCO: ``surrogate = L̂ + Σ_s sg(L̂ − L̂_{−s}) log q_s``, particles detached, ``S ≥ 2``.

    Args:
        log_p: ``log p(x, z_s)`` of the particles, ``[S, B]`` (differentiable in θ).
        log_q: ``log q(z_s | x)``, ``[S, B]`` (differentiable in φ).
    """
    log_p, log_q = check_log_weights(log_p, log_q, min_particles=2)
    log_weight = log_p - log_q
    bound = logmeanexp(log_weight)
    ell = log_weight.detach()
    signal = bound.detach() - vimco_baselines(ell)
    return Terms(bound + (signal * log_q).sum(0), bound.detach())


def dreg(log_p_theta: Tensor, log_weight: Tensor) -> Terms:
    """The IWAE bound with the doubly reparameterised gradient (Tucker et al., 2019).

    ``log_p_theta = log p(x, sg(z_s))`` (θ live, particles fixed) and ``log_weight = ℓ_s`` with
    every parameter stopped, so that φ reaches it only through the reparameterised particles
    ``z_s(φ)`` (both ``[S, B]``, from the ``doubly-reparameterized`` sampling mode). Surrogate:

        Σ_s sg(w̄_s) log p(x, sg(z_s)) + Σ_s sg(w̄_s²) ℓ_s|_{θ, φ stopped}

    θ gets the IWAE gradient ``Σ_s w̄_s ∇_θ log p(x, z_s)``; φ gets
    ``Σ_s w̄_s² (∂ℓ_s / ∂z_s)(∂z_s / ∂φ)``: the score term ``∇_φ log q`` (zero in expectation,
    but noisy) is gone. Unbiased for ``∇ E[L̂_S]``. At ``S = 1`` the φ-part is the "sticking the
    landing" ELBO gradient of Roeder et al. (2017). ``estimate`` is ``L̂``.

    Args:
        log_p_theta: ``log p(x, sg(z_s))``, θ live and the particles fixed, ``[S, B]``.
        log_weight: ``ℓ_s`` with every parameter stopped, φ reaching it only through the
            reparameterised particles ``z_s(φ)``, ``[S, B]``.
    """
    log_p_theta, log_weight = check_log_weights(log_p_theta, log_weight)
    weights = normalized_weights(log_weight.detach())
    surrogate = (weights * log_p_theta).sum(0) + (weights**2 * log_weight).sum(0)
    return Terms(surrogate, logmeanexp(log_weight.detach()))


class IWAE(Objective):
    """The IWAE bound with the pathwise estimator: needs reparameterisable latents."""

    name = "iwae"
    sampling = "pathwise"
    function = staticmethod(iwae)


class Reinforce(Objective):
    """The IWAE bound with the plain score-function (REINFORCE) estimator."""

    name = "reinforce"
    function = staticmethod(reinforce)


class VIMCO(Objective):
    """The IWAE bound with VIMCO's leave-one-out score-function estimator; ``S ≥ 2``."""

    name = "vimco"
    min_particles = 2
    function = staticmethod(vimco)


class DReG(Objective):
    """The IWAE bound with the doubly reparameterised gradient (``dreg``); needs
    reparameterisable latents. The model is evaluated twice per particle (θ live on detached
    particles; parameters stopped on live particles)."""

    name = "dreg"
    sampling = "doubly-reparameterized"
    function = staticmethod(dreg)
