"""The functional layer against MATH.md, on random log-weights."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tvo import functional as F
from tvo.objectives.iwae import vimco_baselines
from tvo.partitions import partition


def leaves(S=6, B=3, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    log_p = (scale * torch.randn(S, B, dtype=torch.float64, generator=g)).requires_grad_()
    log_q = (scale * torch.randn(S, B, dtype=torch.float64, generator=g)).requires_grad_()
    return log_p, log_q


def grads(surrogate, *inputs):
    return torch.autograd.grad(surrogate.sum(), inputs)


def reference_tvo(log_p, log_q, beta, integration):
    """MATH.md's TVO surrogate written out literally: a loop over β, centring included."""
    S = log_p.shape[0]
    c = S / (S - 1)
    ell = log_p - log_q
    sg = ell.detach()
    per_beta, integrand = [], []
    for b in beta.tolist():
        w = torch.softmax(b * sg, 0)
        g = (w * sg).sum(0)
        log_pi = b * log_p + (1 - b) * log_q
        centred = log_pi - (w * log_pi).sum(0)
        per_beta.append((w * ell).sum(0) + c * (w * (sg - g) * centred).sum(0))
        integrand.append(g)
    widths = (beta[1:] - beta[:-1]).tolist()
    left = sum(d * s for d, s in zip(widths, per_beta[:-1]))
    right = sum(d * s for d, s in zip(widths, per_beta[1:]))
    left_value = sum(d * g for d, g in zip(widths, integrand[:-1]))
    right_value = sum(d * g for d, g in zip(widths, integrand[1:]))
    return {
        "left": (left, left_value),
        "right": (right, right_value),
        "trapz": ((left + right) / 2, (left_value + right_value) / 2),
    }[integration]


@pytest.mark.parametrize("integration", ["left", "right", "trapz"])
@pytest.mark.parametrize("beta", [partition(1), partition(4, "log", 0.05), partition([0, 0.3, 1])])
def test_tvo_matches_the_literal_formula_of_math_md(integration, beta):
    log_p, log_q = leaves()
    terms = F.tvo(log_p, log_q, beta, integration)
    surrogate, estimate = reference_tvo(log_p, log_q, beta, integration)
    torch.testing.assert_close(terms.estimate, estimate)
    for ours, theirs in zip(grads(terms.surrogate, log_p, log_q), grads(surrogate, log_p, log_q)):
        torch.testing.assert_close(ours, theirs)


def test_tvo_with_one_interval_is_the_score_function_elbo():
    log_p, log_q = leaves(S=5)
    tvo_terms = F.tvo(log_p, log_q, [0.0, 1.0], "left")
    elbo_terms = F.elbo(log_p, log_q)
    torch.testing.assert_close(tvo_terms.estimate, elbo_terms.estimate)
    torch.testing.assert_close(tvo_terms.estimate, (log_p - log_q).detach().mean(0))
    for ours, theirs in zip(
        grads(tvo_terms.surrogate, log_p, log_q), grads(elbo_terms.surrogate, log_p, log_q)
    ):
        torch.testing.assert_close(ours, theirs)


def test_trapezoid_is_the_average_of_left_and_right():
    log_p, log_q = leaves()
    beta = partition(5, "log", 0.02)
    left, right, trapz = (F.tvo(log_p, log_q, beta, i).estimate for i in ("left", "right", "trapz"))
    torch.testing.assert_close(trapz, (left + right) / 2)


def chain(log_weight, beta):
    """The same-particle chain of MATH.md, with ``log_p = ℓ`` and ``log_q = 0``."""
    zeros = torch.zeros_like(log_weight)
    return [
        log_weight.mean(0),
        F.tvo(log_weight, zeros, beta, "left").estimate,
        F.iwae(log_weight, zeros).estimate,
        F.tvo(log_weight, zeros, beta, "right").estimate,
        (torch.softmax(log_weight, 0) * log_weight).sum(0),
    ]


@settings(max_examples=200, deadline=None)
@given(
    log_weight=arrays(
        "float64",
        st.tuples(st.integers(2, 40), st.integers(1, 4)),
        elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
    ),
    inner=st.lists(st.floats(1e-3, 1 - 1e-3), max_size=8, unique=True),
)
def test_same_particle_bound_chain(log_weight, inner):
    """mean ℓ = ĝ(0) ≤ TVÔ_L ≤ L̂ ≤ TVÔ_U ≤ ĝ(1) for any particles and partition."""
    beta = torch.tensor([0.0, *sorted(inner), 1.0], dtype=torch.float64)
    if (beta[1:] - beta[:-1]).min() < 1e-6:
        return
    values = chain(torch.from_numpy(log_weight), beta)
    tolerance = 1e-9 * (1 + abs(log_weight).max())
    for lower, upper in zip(values, values[1:]):
        assert (lower <= upper + tolerance).all(), (lower, upper)


def test_the_chain_is_strict_for_spread_log_weights():
    # The property above must not pass by all terms being equal.
    log_weight = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    values = torch.stack(chain(log_weight, partition(3, "linear")))
    assert (values[1:] - values[:-1]).min() > 1e-3


def test_refining_the_partition_tightens_both_sums():
    log_p, log_q = leaves(S=20, B=4, scale=2.0)
    coarse = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    fine = torch.tensor([0.0, 0.1, 0.5, 0.8, 1.0], dtype=torch.float64)
    assert (F.tvo(log_p, log_q, fine).estimate > F.tvo(log_p, log_q, coarse).estimate).all()
    assert (
        F.tvo(log_p, log_q, fine, "right").estimate < F.tvo(log_p, log_q, coarse, "right").estimate
    ).all()


def naive_vimco_baselines(log_weight):
    S = log_weight.shape[0]
    out = []
    for s in range(S):
        replaced = log_weight.clone()
        replaced[s] = (log_weight.sum(0) - log_weight[s]) / (S - 1)
        out.append(torch.logsumexp(replaced, 0) - math.log(S))
    return torch.stack(out)


@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_vimco_baselines_match_the_quadratic_definition(scale):
    log_weight = scale * torch.randn(
        7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4)
    )
    torch.testing.assert_close(vimco_baselines(log_weight), naive_vimco_baselines(log_weight))


def test_estimates_are_the_objectives_values():
    log_p, log_q = leaves()
    ell = (log_p - log_q).detach()
    bound = torch.logsumexp(ell, 0) - math.log(ell.shape[0])
    torch.testing.assert_close(F.elbo(log_p, log_q).estimate, ell.mean(0))
    torch.testing.assert_close(F.vae(log_p, log_q).estimate, ell.mean(0))
    for fn in (F.iwae, F.reinforce, F.vimco, F.rws):
        torch.testing.assert_close(fn(log_p, log_q).estimate, bound)
        assert not fn(log_p, log_q).estimate.requires_grad


def test_rws_gradients_are_the_self_normalised_wake_terms():
    log_p, log_q = leaves()
    grad_p, grad_q = grads(F.rws(log_p, log_q).surrogate, log_p, log_q)
    w = torch.softmax((log_p - log_q).detach(), 0)
    torch.testing.assert_close(grad_p, w)  # wake-θ: Σ w̄ ∇ log p
    torch.testing.assert_close(grad_q, w)  # wake-φ: Σ w̄ ∇ log q


def test_functional_input_errors():
    log_p, log_q = leaves(S=1)
    with pytest.raises(ValueError, match="at least 2 particles per data point, got S = 1"):
        F.tvo(log_p, log_q, [0, 1])
    with pytest.raises(ValueError, match="at least 2 particles per data point, got S = 1"):
        F.vimco(log_p, log_q)
    with pytest.raises(ValueError, match=r"shape \[S, B\].*\(4, 3\) and \(4, 2\)"):
        F.elbo(torch.zeros(4, 3), torch.zeros(4, 2))
    log_p, log_q = leaves()
    with pytest.raises(ValueError, match="unknown integration 'simpson'"):
        F.tvo(log_p, log_q, [0, 1], "simpson")
