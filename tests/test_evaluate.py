"""Evaluation helpers: the exact bounds by enumeration, and many-particle estimates."""

import pytest
import torch

import tvo
from tvo.evaluate import (
    estimate,
    exact_integrand,
    exact_log_marginal,
    exact_log_weights,
    exact_tvo,
)
from tvo.models.toy import DiscreteToy, LinearGaussian

from conftest import assert_biased, assert_unbiased


def toy_and_data(seed):
    model = DiscreteToy(3, 5, seed=seed).double()
    torch.manual_seed(seed)
    return model, model.sample(6)[1]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("beta", [tvo.partition(1), tvo.partition(5, "log", 0.01)])
def test_exact_tvo_sandwiches_the_log_marginal(seed, beta):
    model, x = toy_and_data(seed)
    lower, upper = exact_tvo(model, x, beta), exact_tvo(model, x, beta, "right")
    log_px = exact_log_marginal(model, x)
    assert (lower < log_px).all() and (log_px < upper).all()


def test_exact_integrand_ends_at_the_elbo_and_the_eubo_and_rises():
    model, x = toy_and_data(0)
    log_p, log_q = exact_log_weights(model, x)
    ell, posterior = log_p - log_q, torch.softmax(log_p, 0)
    g = exact_integrand(model, x, torch.linspace(0, 1, 21, dtype=torch.float64))
    torch.testing.assert_close(g[0], (log_q.exp() * ell).sum(0))  # ELBO = E_q[ℓ]
    torch.testing.assert_close(g[-1], (posterior * ell).sum(0))  # EUBO = E_{p(z|x)}[ℓ]
    assert (g[1:] >= g[:-1]).all()
    # ∫_0^1 g = log p(x): the trapezoid rule on 2001 points is accurate to ~1e-6 here.
    fine = torch.linspace(0, 1, 2001, dtype=torch.float64)
    integral = torch.trapezoid(exact_integrand(model, x, fine), fine, dim=0)
    torch.testing.assert_close(integral, exact_log_marginal(model, x), rtol=0, atol=1e-5)


def test_exact_bounds_tighten_under_refinement():
    model, x = toy_and_data(1)
    coarse = tvo.partition([0, 0.5, 1])
    fine = tvo.partition([0, 0.1, 0.5, 0.9, 1])
    assert (exact_tvo(model, x, fine) > exact_tvo(model, x, coarse)).all()
    assert (exact_tvo(model, x, fine, "right") < exact_tvo(model, x, coarse, "right")).all()


@pytest.mark.parametrize("chunk_size", [1000, 333])
def test_estimate_matches_enumeration(chunk_size):
    torch.manual_seed(0)
    model, x = toy_and_data(2)
    beta = tvo.partition(4, "log", 0.05)
    with torch.no_grad():
        exact_px = exact_log_marginal(model, x)
        exact = torch.cat([exact_px, exact_tvo(model, x, beta), exact_tvo(model, x, beta, "right")])
    draws = []
    for _ in range(20):
        result = estimate(model, x, 5000, partition=beta, chunk_size=chunk_size)
        draws.append(torch.cat([result.log_px, result.tvo_lower, result.tvo_upper]))
        torch.testing.assert_close(result.kl, result.log_px - result.elbo)
    draws = torch.stack(draws)
    # Consistent estimators with O(1/S) bias: 0.005 nats covers it at S = 5000.
    assert_unbiased(draws, exact, atol=0.005)
    assert_biased(draws, exact + 0.1, atol=0.005)


def test_estimate_on_the_linear_gaussian_model():
    torch.manual_seed(1)
    model = LinearGaussian(2, 3, seed=4).double()
    x = model.sample(4)[1]
    with torch.no_grad():
        exact_px = model.marginal().log_prob(x)
        exact_elbo = model.exact_elbo(x)
    draws = torch.stack(
        [torch.cat([(r := estimate(model, x, 5000)).log_px, r.elbo]) for _ in range(20)]
    )
    exact = torch.cat([exact_px, exact_elbo])
    assert_unbiased(draws, exact, atol=0.005)
    assert_biased(draws, exact + 0.1, atol=0.005)


def test_estimate_is_float64_and_bounded_in_memory_by_the_chunk():
    model, x = toy_and_data(0)
    model = model.float()
    seen = []

    class Spy(DiscreteToy):
        def sample_guide(self, x, num_particles, reparameterize=False):
            seen.append(num_particles)
            return super().sample_guide(x, num_particles, reparameterize)

    spy = Spy(3, 5, seed=0)
    result = estimate(spy, x.float(), num_particles=2500, chunk_size=1000)
    assert seen == [1000, 1000, 500]
    assert all(t.dtype == torch.float64 and t.shape == (6,) for t in result)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_particles": 0}, "num_particles must be an integer ≥ 1, got 0"),
        ({"chunk_size": -1}, "chunk_size must be an integer ≥ 1, got -1"),
    ],
)
def test_estimate_rejects_bad_settings(kwargs, message):
    model, x = toy_and_data(0)
    with pytest.raises(ValueError, match=message):
        estimate(model, x, **kwargs)


def test_the_chunk_size_changes_memory_not_the_estimate():
    """The SBN draws its particles particle-major (``u < σ(l)``), so with the same seed chunks
    of 7, 25 (the CPU default for 100 images) or all 300 particles see the same particles; the
    chunked float64 reductions must then agree to rounding (1e-9 nats), while another seed
    differs by far more. (Gaussian draws are not chunk-invariant: torch's normal sampler fills
    blocks of 16 values, so another chunking gives other particles.)"""
    from tvo.evaluate import default_chunk_size
    from tvo.models import create

    assert default_chunk_size(100, torch.device("cpu")) == 25
    assert default_chunk_size(10_000, torch.device("cpu")) == 1
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((100, 784), 0.13))
    model = create("linear_1", data_mean=x.mean(0))
    results = []
    for seed, chunk in ((1, 7), (1, None), (1, 300), (2, None)):
        torch.manual_seed(seed)
        results.append(estimate(model, x, 300, tvo.partition(3, "linear"), chunk_size=chunk))
    for other in results[1:3]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert (results[0].log_px - results[3].log_px).abs().max() > 1e-3
