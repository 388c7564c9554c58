"""The reparameterised TVO gradient against the closed-form TVO on the linear-Gaussian model.

``g(β)`` of the linear-Gaussian model is a closed form (``LinearGaussian.exact_integrand``), so
the exact gradient of ``TVO_L = Σ_k Δ_k g(β_{k−1})`` comes from autograd.
"""

import pytest
import torch

import tvo
from tvo.models.toy import LinearGaussian

from conftest import assert_biased, assert_unbiased, flat_grad

BETA = tvo.partition([0.0, 0.2, 0.5, 1.0])


def model_and_point(seed=0):
    torch.manual_seed(seed)
    model = LinearGaussian(latent_dim=2, obs_dim=3, seed=4).double()
    return model, model.sample(1)[1]


def exact_tvo_gradient(model, x, beta=BETA):
    lower = sum((beta[k + 1] - beta[k]) * model.exact_integrand(x, beta[k]) for k in range(3))
    return flat_grad(-lower.mean(), list(model.parameters()))


def draws(model, x, objective, S, repeats=30, copies=20):
    params = list(model.parameters())
    x_rep = x.repeat(copies, 1)
    return torch.stack([flat_grad(objective(model, x_rep, S).loss, params) for _ in range(repeats)])


class ScoreTermDropped(tvo.TVOReparam):
    """A wrong estimator: the pathwise derivative of ĝ with the score term ∇_φ log q simply
    dropped, so φ gets ``(1 + β(ℓ − g))`` where the right factor is ``1 − 2β + β(1 − β)(ℓ − g)``."""

    @staticmethod
    def phi_factor(beta, centred):
        return 1 + beta * centred


def test_closed_form_integrand_is_the_elbo_at_zero_and_the_eubo_at_one():
    model, x = model_and_point()
    torch.testing.assert_close(model.exact_integrand(x, 0.0), model.exact_elbo(x))
    eubo = model.marginal().log_prob(x) + model.exact_kl_posterior_guide(x)
    torch.testing.assert_close(model.exact_integrand(x, 1.0), eubo)


def test_closed_form_integrand_matches_self_normalised_estimates():
    """At β = 0.3, 10⁵ particles: the estimate must lie within 0.02 nats (its bias and noise are
    below 0.005 there); shifting the closed form by 0.1 must be caught."""
    model, x = model_and_point(1)
    x = model.sample(3)[1]
    exact = model.exact_integrand(x, 0.3).detach()
    with torch.no_grad():
        z, log_q = model.sample_guide(x, 100_000)
        ell = model.log_joint(x, z) - log_q
        estimate = (torch.softmax(0.3 * ell, 0) * ell).sum(0)
    assert (estimate - exact).abs().max() < 0.02
    assert (estimate - exact - 0.1).abs().min() > 0.02


@pytest.mark.parametrize("seed", [0, 1])
def test_tvo_reparam_gradient_matches_the_exact_gradient_of_tvo_lower(seed):
    """S = 1000: the self-normalisation bias is O(1/S), allowed for by 1% of the largest exact
    component (over seeds 0 to 5 the deviation was 0.05 to 0.53 (SE + allowance), limit 4). The
    same check must reject the estimator that drops the score term instead of reparameterising
    it (it scored 32 to 136)."""
    model, x = model_and_point(seed)
    exact = exact_tvo_gradient(model, x)
    atol = 0.01 * exact.abs().max().item()
    assert_unbiased(draws(model, x, tvo.TVOReparam(partition=BETA), 1000), exact, atol)
    assert_biased(draws(model, x, ScoreTermDropped(partition=BETA), 1000), exact, atol)


def test_tvo_reparam_with_one_interval_is_the_sticking_the_landing_elbo():
    """K = 1: unbiased for the closed-form ELBO gradient (at S = 2 the centred term vanishes
    at β = 0, so the estimator has no self-normalisation bias: tolerance is rounding only)."""
    model, x = model_and_point(2)
    exact = flat_grad(-model.exact_elbo(x).mean(), list(model.parameters()))
    atol = 1e-3 * exact.abs().max().item()
    assert_unbiased(draws(model, x, tvo.TVOReparam(K=1), 2, repeats=40, copies=50), exact, atol)


def test_tvo_reparam_has_lower_phi_variance_than_the_covariance_estimator():
    """Both estimate ∇_φ TVO_L at the same S = 10 and partition. The φ-gradient variance over
    200 draws on a batch of 32 points must be below half the covariance estimator's (it was 0.32
    to 0.43 of it over seeds 0 to 5)."""
    torch.manual_seed(0)
    model = LinearGaussian(latent_dim=2, obs_dim=3, seed=4).double()
    x = model.sample(32)[1]
    phi = [model.encoder_weight, model.encoder_bias, model.encoder_log_scale]
    variance = {}
    for objective in (tvo.TVOReparam(partition=BETA), tvo.TVO(partition=BETA)):
        grads = torch.stack([flat_grad(objective(model, x, 10).loss, phi) for _ in range(200)])
        variance[objective.name] = grads.var(0).mean().item()
    assert variance["tvo-reparam"] < 0.5 * variance["tvo"], variance
