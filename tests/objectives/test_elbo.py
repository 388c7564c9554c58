"""The ELBO's score-function and pathwise estimators: exactly unbiased by enumeration, and
against the closed form of the linear-Gaussian model.
"""

import pytest
import torch

import tvo
from tvo import functional as F
from tvo.evaluate import exact_log_weights
from tvo.models.toy import LinearGaussian

from tests.helpers import (
    assert_biased,
    assert_unbiased,
    data,
    exact_expected_iwae_gradient,
    expected_estimator_gradient,
    flat_grad,
    toy,
)


def test_score_function_elbo_is_exactly_unbiased():
    model, S = toy(), 3
    x = data(model, 2)
    log_p, log_q = exact_log_weights(model, x)
    exact_elbo = (log_q.exp() * (log_p - log_q)).sum(0)  # E_q[ℓ] by enumeration
    exact = flat_grad(-exact_elbo.mean(), list(model.parameters()))
    estimator = expected_estimator_gradient(model, x, S, F.elbo)
    torch.testing.assert_close(estimator, exact, rtol=1e-9, atol=1e-10)
    tvo_k1 = expected_estimator_gradient(model, x, S, lambda p, q: F.tvo(p, q, [0.0, 1.0]))
    torch.testing.assert_close(tvo_k1, exact, rtol=1e-9, atol=1e-10)


def test_dropping_the_score_term_is_exactly_biased():
    # Negative control: differentiating L̂ through detached discrete particles misses ∇_φ.
    model, S = toy(), 3
    x = data(model, 2)
    estimator = expected_estimator_gradient(model, x, S, F.iwae)
    exact = exact_expected_iwae_gradient(model, x, S)
    assert (estimator - exact).abs().max() > 1e-2


def gaussian_gradient_draws(model, x, objective, S, repeats, copies=50):
    """Each draw averages ``copies`` independent estimates (the data point repeated)."""
    params = list(model.parameters())
    x_rep = x.repeat(copies, 1)
    return torch.stack([flat_grad(objective(model, x_rep, S).loss, params) for _ in range(repeats)])


class DetachedVAE(tvo.VAE):
    """A wrong estimator: the pathwise ELBO on particles drawn without reparameterisation."""

    sampling = "score"  # the vae function on particles drawn without reparameterisation


@pytest.mark.parametrize("objective", [tvo.VAE(), tvo.ELBO()], ids=["pathwise", "score"])
def test_elbo_gradients_match_the_closed_form(objective):
    torch.manual_seed(2)
    model = LinearGaussian(latent_dim=2, obs_dim=3, seed=4).double()
    x = data(model, 1)
    exact = flat_grad(-model.exact_elbo(x).mean(), list(model.parameters()))
    atol = 1e-3 * exact.abs().max().item()
    assert_unbiased(gaussian_gradient_draws(model, x, objective, 5, 40), exact, atol)


def test_the_closed_form_check_rejects_a_detached_pathwise_gradient():
    torch.manual_seed(2)
    model = LinearGaussian(latent_dim=2, obs_dim=3, seed=4).double()
    x = data(model, 1)
    exact = flat_grad(-model.exact_elbo(x).mean(), list(model.parameters()))
    atol = 1e-3 * exact.abs().max().item()
    assert_biased(gaussian_gradient_draws(model, x, DetachedVAE(), 5, 40), exact, atol)
