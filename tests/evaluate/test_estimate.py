"""Evaluation helpers: the exact bounds by enumeration, and many-particle estimates."""

import pytest
import torch

import tvo
from tvo.evaluate import (
    estimate,
    exact_log_marginal,
    exact_tvo,
)
from tvo.models.toy import DiscreteToy, LinearGaussian

from tests.helpers import (
    assert_biased,
    assert_unbiased,
    toy_and_data,
)


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


def test_evaluations_print_as_summaries_not_tensors():
    """Issue 24, item 9: printing an ``Evaluation`` (and AIS's and BDMC's estimates) dumped
    every per-point tensor; each prints its size and means, which are the tensors' own."""
    from tvo.evaluate.ais import ais, bdmc

    torch.manual_seed(0)
    model = DiscreteToy(num_latents=3, num_observed=4)
    x = model.sample(300)[1]
    result = tvo.estimate(model, x, 20)
    text = repr(result)
    assert "tensor" not in text and len(text) < 200 and text.startswith("Evaluation(B=300 points")
    assert f"log_px={result.log_px.mean().item():.3f}" in text
    assert f"tvo_upper={result.tvo_upper.mean().item():.3f}" in text
    forward = ais(model, x[:5], num_steps=3, num_chains=2)
    assert repr(forward).startswith("AISEstimate(B=5 points, C=2 chains, T=3 steps; mean log_px=")
    both = bdmc(model, 4, num_steps=3, num_chains=2)
    gap = both.gap
    assert "tensor" not in repr(both) and f"gap={gap.mean().item():.3f} ± " in repr(both)
