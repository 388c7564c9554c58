import math

import pytest
import torch

from tvo.ops import (
    effective_sample_size,
    integrand,
    integrand_terms,
    leave_one_out_logsumexp,
    logmeanexp,
    merge,
    weighted_mean,
)


def naive_leave_one_out(a):
    S = a.shape[0]
    return torch.stack([torch.logsumexp(a[[t for t in range(S) if t != s]], 0) for s in range(S)])


def test_logmeanexp_is_log_of_mean_of_exp():
    a = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(logmeanexp(a), a.exp().mean(0).log())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_leave_one_out_logsumexp_matches_naive(dtype):
    g = torch.Generator().manual_seed(1)
    a = (10 * torch.randn(6, 4, generator=g)).to(dtype)
    a[2, 1] = a[4, 1]  # a tie
    torch.testing.assert_close(leave_one_out_logsumexp(a), naive_leave_one_out(a))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_leave_one_out_logsumexp_keeps_precision_when_one_term_dominates(dtype):
    # total − e^{max} would cancel to 0 here; the masked path must give the exact answer.
    a = torch.tensor([[1e4], [1e4 - 1e3], [1e4 - 1e3 - 1.0]], dtype=dtype)
    expected = naive_leave_one_out(a.double()).to(dtype)
    result = leave_one_out_logsumexp(a)
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result, expected)


def test_leave_one_out_needs_two_particles():
    with pytest.raises(ValueError, match="at least 2 particles, got 1"):
        leave_one_out_logsumexp(torch.zeros(1, 3))


def test_effective_sample_size_limits():
    S = 16
    equal = torch.zeros(S, 2)
    torch.testing.assert_close(effective_sample_size(equal), torch.full((2,), float(S)))
    dominant = torch.tensor([[1e4]] + [[0.0]] * (S - 1))
    torch.testing.assert_close(effective_sample_size(dominant), torch.ones(1))
    random = torch.randn(S, 5, generator=torch.Generator().manual_seed(2))
    ess = effective_sample_size(random)
    assert ((ess >= 1) & (ess <= S)).all()
    w = torch.softmax(random, 0)
    torch.testing.assert_close(ess, 1 / (w**2).sum(0))


def test_merged_chunks_equal_one_pass():
    g = torch.Generator().manual_seed(3)
    log_weights = 50 * torch.randn(3, 100, 4, dtype=torch.float64, generator=g)
    values = torch.randn(3, 100, 4, dtype=torch.float64, generator=g)
    whole = weighted_mean(log_weights, values, dim=1)
    state = None
    for start in range(0, 100, 13):
        chunk = weighted_mean(log_weights[:, start : start + 13], values[:, start : start + 13], 1)
        state = chunk if state is None else merge(state, chunk)
    torch.testing.assert_close(state.log_norm, whole.log_norm)
    torch.testing.assert_close(state.mean, whole.mean)
    assert math.isfinite(state.mean.sum().item())


def test_the_integrand_is_the_tilted_mean_and_merges_across_chunks():
    """ĝ(β) = Σ softmax(βℓ) ℓ; at β = 0 the mean of ℓ, at β = 1 the self-normalised mean; two
    chunks merged equal one pass."""
    log_weight = 4 * torch.randn(
        30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    beta = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    g = integrand(log_weight, beta)
    torch.testing.assert_close(g[0], log_weight.mean(0))
    torch.testing.assert_close(g[2], (torch.softmax(log_weight, 0) * log_weight).sum(0))
    torch.testing.assert_close(g[1], (torch.softmax(0.3 * log_weight, 0) * log_weight).sum(0))
    merged = merge(integrand_terms(log_weight[:11], beta), integrand_terms(log_weight[11:], beta))
    torch.testing.assert_close(merged.mean, g)
