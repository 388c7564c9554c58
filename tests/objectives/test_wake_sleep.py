"""The wake-sleep family descends KL(p(z|x) ‖ q): RWS's wake terms, sleep-φ and inference
compilation against exact gradients.
"""

import pytest
import torch

import tvo
from tvo import functional as F
from tvo.evaluate import (
    exact_log_marginal,
    exact_log_weights,
)
from tvo.models.toy import LinearGaussian

from tests.helpers import (
    assert_biased,
    assert_unbiased,
    data,
    flat_grad,
    grads,
    leaves,
    toy,
    train,
)


def test_rws_gradients_are_the_self_normalised_wake_terms():
    log_p, log_q = leaves()
    grad_p, grad_q = grads(F.rws(log_p, log_q).surrogate, log_p, log_q)
    w = torch.softmax((log_p - log_q).detach(), 0)
    torch.testing.assert_close(grad_p, w)  # wake-θ: Σ w̄ ∇ log p
    torch.testing.assert_close(grad_q, w)  # wake-φ: Σ w̄ ∇ log q


def guide_parameters(model):
    return [model.encoder_weight, model.encoder_bias]


def model_parameters(model):
    return [model.prior_logits, model.decoder_weight, model.decoder_bias]


def exact_kl_posterior_guide(model, x):
    """``KL(p(z|x) ‖ q(z|x))`` by enumeration, ``[B]``; the posterior is held fixed (θ detached)."""
    log_p, log_q = exact_log_weights(model, x)
    log_posterior = torch.log_softmax(log_p.detach(), 0)
    return (log_posterior.exp() * (log_posterior - log_q)).sum(0)


def objective_gradient_draws(model, x, objective, S, repeats, params):
    return torch.stack([flat_grad(objective(model, x, S).loss, params) for _ in range(repeats)])


def test_rws_follows_the_kl_gradient_and_the_log_marginal_gradient():
    torch.manual_seed(3)
    model = toy(seed=5)
    x = data(model, 3)
    phi, theta = guide_parameters(model), model_parameters(model)
    exact_phi = flat_grad(exact_kl_posterior_guide(model, x).mean(), phi)
    exact_theta = flat_grad(-exact_log_marginal(model, x).mean(), theta)
    draws = objective_gradient_draws(model, x, tvo.RWS(), 2000, 20, phi + theta)
    n = exact_phi.numel()
    atol_phi, atol_theta = 0.01 * exact_phi.abs().max(), 0.01 * exact_theta.abs().max()
    assert_unbiased(draws[:, :n], exact_phi, atol_phi.item())
    assert_unbiased(draws[:, n:], exact_theta, atol_theta.item())
    # The ELBO's φ-gradient descends the other KL, KL(q ‖ p): the check must reject it.
    wrong = objective_gradient_draws(model, x, tvo.ELBO(), 2000, 20, phi)
    assert_biased(wrong, exact_phi, atol_phi.item())


def exact_sleep_kl(model):
    """``E_{x ~ p_θ}[KL(p(z|x) ‖ q(z|x))]``, exactly, summing over every binary ``x``."""
    xs = model.enumerate_observations()
    log_px = exact_log_marginal(model, xs).detach()
    return (log_px.exp() * exact_kl_posterior_guide(model, xs)).sum()


@pytest.mark.parametrize("objective", [tvo.InferenceCompilation(), tvo.WakeSleep()])
def test_sleep_phi_follows_the_expected_kl_gradient(objective):
    torch.manual_seed(4)
    model = toy(seed=6)
    x = data(model, 4)
    phi = guide_parameters(model)
    exact = flat_grad(exact_sleep_kl(model), phi)
    draws = objective_gradient_draws(model, x, objective, 100, 40, phi)  # 400 samples a draw
    atol = 1e-3 * exact.abs().max().item()  # unbiased: the allowance is for rounding only
    assert_unbiased(draws, exact, atol)
    # On data, KL(p(z|x) ‖ q) differs from its average over x ~ p_θ: the check must tell.
    assert_biased(draws, flat_grad(exact_kl_posterior_guide(model, x).mean(), phi), atol)


def test_inference_compilation_leaves_the_model_alone_and_wake_sleep_trains_it():
    model = toy(seed=6)
    x = data(model, 4)
    theta = model_parameters(model)
    assert flat_grad(tvo.InferenceCompilation()(model, x, 10).loss, theta).abs().max() == 0
    assert flat_grad(tvo.WakeSleep()(model, x, 10).loss, theta).abs().max() > 0


def test_inference_compilation_fits_the_guide_to_a_fixed_model():
    torch.manual_seed(0)
    model = LinearGaussian(2, 4, seed=10)
    x = model.sample(500)[1]
    theta = [model.weight.clone(), model.bias.clone(), model.log_sigma.clone()]
    with torch.no_grad():
        before = model.exact_kl_posterior_guide(x).mean()
    train(model, tvo.InferenceCompilation(), x)
    with torch.no_grad():
        after = model.exact_kl_posterior_guide(x).mean()
    assert before > 1.0 and after < 0.05 * before
    for old, new in zip(theta, [model.weight, model.bias, model.log_sigma]):
        torch.testing.assert_close(old, new)
