"""Gradient estimators against exact gradients.

- Unbiased score-function estimators (ELBO, REINFORCE, VIMCO) on an enumerable model: the
  expectation of the estimator over every S-tuple of particles is an exact finite sum, so it is
  compared with the exact gradient to float64 precision, no Monte Carlo.
- Consistent estimators (the TVO's covariance estimator, RWS's wake terms) and the Gaussian ones:
  the mean of R seeded draws must fall within 4 standard errors (+ an allowance for the O(1/S) bias
  of self-normalisation) of the exact gradient, and a wrong estimator must fail that same check.
"""

import itertools

import pytest
import torch

import tvo
from tvo import functional as F
from tvo.evaluate import exact_log_marginal, exact_log_weights, exact_tvo
from tvo.models.toy import DiscreteToy, LinearGaussian

from conftest import assert_biased, assert_unbiased, flat_grad


def toy(seed=0, num_latents=3, num_observed=4):
    return DiscreteToy(num_latents, num_observed, seed=seed).double()


def data(model, n, seed=1):
    torch.manual_seed(seed)
    return model.sample(n)[1]


# --- exact expectations over every tuple of particles -------------------------------------------


def tuple_log_weights(model, x, num_particles):
    """``log p`` and ``log q`` at every ``S``-tuple of latent values, each ``[S, N^S, B]``."""
    log_p_all, log_q_all = exact_log_weights(model, x)  # [N, B]
    N = log_p_all.shape[0]
    tuples = torch.tensor(list(itertools.product(range(N), repeat=num_particles))).T  # [S, T]
    return log_p_all[tuples], log_q_all[tuples]


def expected_estimator_gradient(model, x, num_particles, fn):
    """``E_{z_1..z_S ~ q}[∇ surrogate]``, exactly: a sum over all ``N^S`` tuples of latents."""
    log_p, log_q = tuple_log_weights(model, x, num_particles)
    probability = log_q.detach().sum(0).exp()  # q(z_1..z_S | x), [T, B]
    S, T, B = log_p.shape
    surrogate = fn(log_p.reshape(S, T * B), log_q.reshape(S, T * B)).surrogate.reshape(T, B)
    expected_loss = -(probability * surrogate).sum(0).mean()
    return flat_grad(expected_loss, list(model.parameters()))


def exact_expected_iwae_gradient(model, x, num_particles):
    """``∇ E_q[L̂_S]``: autograd through the exact probability-weighted sum over tuples."""
    log_p, log_q = tuple_log_weights(model, x, num_particles)
    bound = (log_q.sum(0).exp() * tvo.ops.logmeanexp(log_p - log_q)).sum(0)
    return flat_grad(-bound.mean(), list(model.parameters()))


@pytest.mark.parametrize("fn", [F.reinforce, F.vimco], ids=["reinforce", "vimco"])
def test_iwae_score_function_estimators_are_exactly_unbiased(fn):
    model, S = toy(), 3
    x = data(model, 2)
    estimator = expected_estimator_gradient(model, x, S, fn)
    exact = exact_expected_iwae_gradient(model, x, S)
    assert exact.abs().max() > 1e-2
    torch.testing.assert_close(estimator, exact, rtol=1e-9, atol=1e-10)


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


# --- the TVO covariance estimator -----------------------------------------------------------------


def tvo_gradient_draws(model, x, S, beta, repeats, fn=F.tvo):
    params = list(model.parameters())
    draws = []
    for _ in range(repeats):
        z, log_q = model.sample_guide(x, S)
        log_p = model.log_joint(x, z)
        draws.append(flat_grad(-fn(log_p, log_q, beta).surrogate.mean(), params))
    return torch.stack(draws)


def without_covariance(log_p, log_q, beta):
    """A wrong estimator: the TVO surrogate with the covariance term dropped (c = 0)."""
    beta = torch.as_tensor(beta, dtype=log_p.dtype)
    ell = log_p - log_q
    weights = torch.softmax(beta[:, None, None] * ell.detach(), 1)
    m = F.integration_weights(beta, "left")
    return F.tvo(log_p, log_q, beta)._replace(surrogate=torch.einsum("k,ksb->b", m, weights * ell))


def test_tvo_covariance_gradient_matches_the_exact_gradient_of_tvo_lower():
    torch.manual_seed(0)
    model = toy(seed=3)
    x = data(model, 3)
    beta = tvo.partition([0.0, 0.2, 0.5, 1.0])
    exact = flat_grad(-exact_tvo(model, x, beta).mean(), list(model.parameters()))
    S, R = 2000, 30
    atol = 0.01 * exact.abs().max().item()  # self-normalisation bias is O(1/S): ~1e-3 relative
    assert_unbiased(tvo_gradient_draws(model, x, S, beta, R), exact, atol)
    assert_biased(tvo_gradient_draws(model, x, S, beta, R, without_covariance), exact, atol)


def test_tvo_estimates_converge_to_the_exact_bounds():
    torch.manual_seed(1)
    model = toy(seed=3)
    x = data(model, 3)
    beta = tvo.partition(3, "log", 0.1)
    exact = torch.cat([exact_tvo(model, x, beta), exact_tvo(model, x, beta, "right")]).detach()
    assert (exact[3:] - exact[:3]).min() > 0.1  # the two bounds are apart
    draws = []
    with torch.no_grad():
        for _ in range(40):
            z, log_q = model.sample_guide(x, 5000)
            log_p = model.log_joint(x, z)
            lower, upper = (F.tvo(log_p, log_q, beta, i).estimate for i in ("left", "right"))
            draws.append(torch.cat([lower, upper]))
    # Self-normalisation bias is O(1/S); 0.005 nats covers it at S = 5000. An error of 0.1
    # nats must be caught.
    assert_unbiased(torch.stack(draws), exact, atol=0.005)
    assert_biased(torch.stack(draws), exact + 0.1, atol=0.005)


# --- the ELBO on the linear-Gaussian model, against its closed form ------------------------------


def gaussian_gradient_draws(model, x, objective, S, repeats, copies=50):
    """Each draw averages ``copies`` independent estimates (the data point repeated)."""
    params = list(model.parameters())
    x_rep = x.repeat(copies, 1)
    return torch.stack([flat_grad(objective(model, x_rep, S).loss, params) for _ in range(repeats)])


class DetachedVAE(tvo.VAE):
    """A wrong estimator: the pathwise ELBO on particles drawn without reparameterisation."""

    reparameterized = False


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


# --- the wake-sleep family descends KL(p(z|x) ‖ q) ---------------------------------------------


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
