"""Exact answers by enumeration: the bounds sandwich log p(x) and tighten."""

import pytest
import torch

import tvo
from tvo.evaluate import (
    exact_integrand,
    exact_log_marginal,
    exact_log_weights,
    exact_tvo,
)

from tests.helpers import toy_and_data


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
