"""The toy models are what they claim: normalised, and their closed forms agree."""

import math

import torch

import tvo
from tvo.models.toy import DiscreteToy, LinearGaussian


def test_discrete_toy_is_normalised():
    model = DiscreteToy(3, 4, seed=0).double()
    xs = model.enumerate_observations()  # [16, 4]
    log_p, log_q = tvo.evaluate.exact_log_weights(model, xs)  # [8, 16]
    torch.testing.assert_close(torch.logsumexp(log_q, 0), torch.zeros(16, dtype=torch.float64))
    total = torch.logsumexp(log_p.flatten(), 0)
    torch.testing.assert_close(total, torch.zeros((), dtype=torch.float64))


def test_linear_gaussian_marginal_posterior_and_joint_agree():
    model = LinearGaussian(2, 3, seed=1).double()
    torch.manual_seed(0)
    z, x = model.sample(5)
    # log p(x) = log p(x, z) − log p(z | x) for any z.
    log_px = model.log_joint(x, z) - model.posterior(x).log_prob(z)
    torch.testing.assert_close(log_px, model.marginal().log_prob(x))


def test_linear_gaussian_exact_elbo_is_log_marginal_minus_kl():
    model = LinearGaussian(2, 3, seed=2).double()
    x = model.sample(4)[1]
    q = model.guide(x)
    q_full = torch.distributions.MultivariateNormal(q.mean, scale_tril=torch.diag_embed(q.stddev))
    kl_q_p = torch.distributions.kl_divergence(q_full, model.posterior(x))
    torch.testing.assert_close(model.exact_elbo(x), model.marginal().log_prob(x) - kl_q_p)


def test_linear_gaussian_reverse_kl_vanishes_at_the_posterior():
    model = LinearGaussian(2, 2, seed=3).double()
    x = model.sample(3)[1]
    assert (model.exact_kl_posterior_guide(x) > 1e-3).all()
    with torch.no_grad():  # a diagonal posterior: orthogonal columns make Σ diagonal
        model.weight.copy_(torch.tensor([[1.5, 0.0], [0.0, -0.7]]))
        sigma2 = model.log_sigma.exp() ** 2
        cov = model.posterior(x).covariance_matrix[0]  # the same for every x
        model.encoder_weight.copy_(cov @ model.weight.T / sigma2)
        model.encoder_bias.copy_(-model.encoder_weight @ model.bias)
        model.encoder_log_scale.copy_(0.5 * torch.log(torch.diagonal(cov)))
    torch.testing.assert_close(
        model.exact_kl_posterior_guide(x), torch.zeros(3, dtype=torch.float64)
    )
    assert math.isclose(model.exact_elbo(x).sum().item(), model.marginal().log_prob(x).sum().item())
