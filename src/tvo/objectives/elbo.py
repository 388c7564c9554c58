"""The evidence lower bound ``ELBO = E_q[ℓ]``, ``ℓ = log p(x, z) − log q(z | x)``.

Its place in the TVO family: ``ELBO = g(0) = TVO_L`` with ``K = 1``. Two gradient estimators:

- score function (``elbo``), particles detached, for any latents (Williams, 1992; with the
  leave-one-out baseline of Kool et al., 2019);
- pathwise (``vae``), particles reparameterised, the VAE of Kingma & Welling (2014).

The equations: docs/maths.md, "The ELBO".
"""

from __future__ import annotations

from torch import Tensor

from tvo.objectives.base import Objective, Terms, check_log_weights
from tvo.ops import leave_one_out_mean


def elbo(log_p: Tensor, log_q: Tensor) -> Terms:
    """Score-function ELBO: ``surrogate = mean_s ℓ_s + mean_s sg(ℓ_s − b_s) log q_s``.

    ``b_s`` is the mean of the other particles' ``ℓ`` (independent of ``z_s``, so the estimator
    stays unbiased); with ``S = 1`` there is no other particle and ``b = 0``. Shapes ``[S, B]``;
    particles detached. Its gradient equals that of ``tvo.objectives.tvo.tvo`` with
    ``K = 1``, left.

    Args:
        log_p: ``log p(x, z_s)`` of the particles, ``[S, B]`` (differentiable in θ).
        log_q: ``log q(z_s | x)``, ``[S, B]`` (differentiable in φ).
    """
    log_p, log_q = check_log_weights(log_p, log_q)
    num_particles = log_p.shape[0]
    log_weight = log_p - log_q
    ell = log_weight.detach()
    if num_particles > 1:
        baseline = leave_one_out_mean(ell)
    else:
        baseline = ell.new_zeros(())
    surrogate = log_weight.mean(0) + ((ell - baseline) * log_q).mean(0)
    return Terms(surrogate, ell.mean(0))


def vae(log_p: Tensor, log_q: Tensor) -> Terms:
    """Pathwise ELBO: ``surrogate = mean_s ℓ_s``, reparameterised particles, ``[S, B] → [B]``.

    Args:
        log_p: ``log p(x, z_s)`` of the particles, ``[S, B]`` (differentiable in θ, and in φ
            through the reparameterised ``z_s``).
        log_q: ``log q(z_s | x)``, ``[S, B]`` (differentiable in φ).
    """
    log_p, log_q = check_log_weights(log_p, log_q)
    log_weight = log_p - log_q
    return Terms(log_weight.mean(0), log_weight.detach().mean(0))


class ELBO(Objective):
    """The ELBO with the score-function estimator: works for discrete and continuous latents."""

    name = "elbo"
    function = staticmethod(elbo)


class VAE(Objective):
    """The ELBO with the pathwise estimator (the VAE): needs reparameterisable latents."""

    name = "vae"
    sampling = "pathwise"
    function = staticmethod(vae)
