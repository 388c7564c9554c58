"""Annealed importance sampling and BDMC against exact answers: enumeration on the discrete toy
(and a tiny SBN), closed forms on the linear-Gaussian model.

Each statistical test is seeded and says its tolerance and what was measured over other seeds.
Repeats are batched: the same data points repeated ``R`` times are ``R`` independent AIS runs.
"""

import math

import pytest
import torch
from scipy.stats import chisquare

import tvo
from tvo.evaluate import exact_log_marginal, exact_log_weights
from tvo.evaluate.ais import annealing_schedule, log_mean_stderr
from tvo.evaluate.exact import GaussianPathKernel
from tvo.evaluate.kernels import (
    HMC,
    Cycle,
    FlipMH,
    IndependentMH,
    SBNSweep,
    Target,
    default_kernel,
    kernel_for,
)
from tvo.models import SBN
from tvo.models.toy import DiscreteToy, LinearGaussian
from tvo.ops import logmeanexp
from tvo.partitions import partition

from tests.helpers import assert_biased, assert_unbiased

R = 20  # independent AIS runs per data point, as repeated columns


def old_hmc(step_size: float, leapfrog_steps: int, **kwargs) -> HMC:
    """The HMC these tests were measured with before issue #27 (identity mass, one move a step,
    no jitter, no warm-up): the same random draws, so their measured numbers still hold."""
    return HMC(step_size=step_size, leapfrog_steps=leapfrog_steps, moves=1, jitter=0.0,
               warmup=0, scale="none", max_step_size=0.5, **kwargs)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")  # small operations: see conftest.py


def repeated_ais(model, x, num_steps, num_chains, **kwargs):
    """``R`` AIS runs on each of ``x``'s ``B`` points: ``log p̂`` ``[R, B]`` and the result."""
    result = tvo.ais(model, x.repeat(R, 1), num_steps, num_chains, **kwargs)
    return result.log_px.reshape(R, len(x)), result


# --- AIS converges to the exact log p(x), from below ----------------------------------------


def test_ais_on_the_discrete_toy_converges_to_the_exact_log_marginal():
    """DiscreteToy (6 latents, 10 pixels), 8 points, 10 chains, single-site flips, sigmoid
    schedule; ``R = 20`` runs per point. Tolerance: the mean of the runs within 4 standard
    errors (of the runs' spread) + 0.01 nats of ``log p(x)`` at T = 200; at T = 1 (importance
    sampling with 10 particles) and T = 10 the check must fail, and from below.

    Measured over model seeds 0–4 (deviation in SE units, T = 1 / 10 / 200): 22.2 / 9.6 / 2.5,
    7.4 / 5.9 / 1.8, 5.8 / 5.9 / 1.7, 13.0 / 5.4 / 1.7, 12.4 / 6.3 / 2.3; the mean shortfall at
    T = 1 / 10 / 200, 5.2 / 2.3 / 0.09 nats for seed 0.
    """
    torch.manual_seed(0)
    model = DiscreteToy(6, 10, seed=0).double()
    x = model.sample(8)[1]
    exact = exact_log_marginal(model, x)
    shortfall = []
    for num_steps in (1, 10, 200):
        draws, result = repeated_ais(model, x, num_steps, 10)
        assert result.log_px.dtype == torch.float64 and result.log_weight.shape == (10, 8 * R)
        shortfall.append((exact - draws.mean(0)).mean().item())
        if num_steps < 200:
            assert_biased(draws, exact, atol=0.01)
            assert (draws.mean(0) < exact).all()
        else:
            assert_unbiased(draws, exact, atol=0.01)
    assert shortfall[0] > shortfall[1] > shortfall[2]


def test_the_standard_error_matches_the_spread_of_repeated_runs():
    """At T = 200 (converged) the delta-method standard error AIS returns agrees with the
    spread of ``R = 20`` independent runs: the ratio of the root mean square of the two over
    8 points lies in [0.7, 1.5] (measured 1.01 to 1.23 over seeds 0–4)."""
    torch.manual_seed(1)
    model = DiscreteToy(6, 10, seed=1).double()
    x = model.sample(8)[1]
    draws, result = repeated_ais(model, x, 200, 10)
    empirical = draws.std(0).pow(2).mean().sqrt()
    returned = result.stderr.reshape(R, 8).pow(2).mean().sqrt()
    assert 0.7 < (empirical / returned).item() < 1.5


def test_ais_with_hmc_on_the_linear_gaussian_model_converges_to_the_closed_form():
    """LinearGaussian (2 latents, 3 observed), 4 points, 10 chains, HMC (5 leapfrog steps,
    adapted step size). Tolerance: within 4 SE + 0.01 nats of ``log N(x; b, WWᵀ + σ²I)`` at
    T = 100; outside it, from below, at T = 1.

    Measured over model seeds 0–4 (SE units, T = 1 / 10 / 100): 7.3 / 2.5 / 1.4,
    4.2 / 1.4 / 0.7, 4.7 / 2.0 / 0.7, 6.5 / 1.1 / 1.0, 6.7 / 1.3 / 1.0.
    """
    torch.manual_seed(0)
    model = LinearGaussian(2, 3, seed=0).double()
    x = model.sample(4)[1]
    exact = model.marginal().log_prob(x)
    kernel = old_hmc(0.2, 5)
    few, _ = repeated_ais(model, x, 1, 10, kernel=kernel)
    assert_biased(few, exact, atol=0.01)
    assert (few.mean(0) < exact).all()
    many, result = repeated_ais(model, x, 100, 10, kernel=kernel)
    assert_unbiased(many, exact, atol=0.01)
    assert 0.3 < result.acceptance[-20:].mean() < 0.95  # adapted towards 0.65
    assert result.gradients == result.evaluations == 10 + 99 * 5 * 10


def test_ais_on_a_two_layer_sbn_with_tuple_latents():
    """A tiny two-layer SBN (latents (3, 2), 6 pixels, weights N(0, 1.5²); z a tuple):
    single-site flips across both layers, 8 points, 10 chains. Within 4 SE + 0.01 nats of the
    enumerated ``log p(x)`` at T = 400, outside at T = 1. Measured over seeds 0–4 (SE units,
    T = 1 / 400): 24.2 / 1.4, 12.1 / 0.9, 15.7 / 2.4, 13.7 / 2.6, 19.3 / 2.4."""
    torch.manual_seed(0)
    model = SBN((3, 2), pixels=6).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=1.5)
    x = model.sample(8)[1]
    exact = exact_log_marginal(model, x)
    assert isinstance(default_kernel(model), FlipMH)
    assert_biased(repeated_ais(model, x, 1, 10)[0], exact, atol=0.01)
    assert_unbiased(repeated_ais(model, x, 400, 10)[0], exact, atol=0.01)


def test_the_sbn_sweep_converges_to_the_exact_log_marginal():
    """The one-layer SBN's incremental sweep (8 latents, 12 pixels, weights N(0, 1.5²)), 8
    points, 10 chains: within 4 SE + 0.01 nats of the enumerated ``log p(x)`` at T = 100
    sweeps, outside at T = 2. Measured over seeds 0–4 (SE units, T = 2 / 100): 19.6 / 1.5,
    22.9 / 1.3, 15.6 / 2.0, 16.9 / 1.3, 27.5 / 2.1 (at T = 30: 3.9, 2.2, 2.8 for seeds 0–2)."""
    torch.manual_seed(0)
    model = SBN((8,), pixels=12).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=1.5)
    x = model.sample(8)[1]
    exact = exact_log_marginal(model, x)
    assert isinstance(default_kernel(model), SBNSweep)
    assert_biased(repeated_ais(model, x, 2, 10)[0], exact, atol=0.01)
    assert_unbiased(repeated_ais(model, x, 100, 10)[0], exact, atol=0.01)


# --- one step is importance sampling -----------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: DiscreteToy(3, 4, seed=2).double(),
                                  lambda: LinearGaussian(2, 3, seed=1).double()],
                         ids=["discrete_toy", "linear_gaussian"])  # fmt: skip
def test_one_step_and_one_chain_is_importance_sampling_from_q(make):
    """T = 1 walks no kernel: the chain's log-weight is ``log p(x, z) − log q(z | x)`` of the
    same draw from ``q`` (same seed), and with C chains ``log p̂`` is the IWAE estimate of those
    C draws."""
    model = make()
    torch.manual_seed(3)
    x = model.sample(5)[1]
    for chains in (1, 7):
        torch.manual_seed(4)
        z, log_q = model.sample_guide(x, chains)
        log_weight = (model.log_joint(x, z) - log_q).detach()
        torch.manual_seed(4)
        result = tvo.ais(model, x, num_steps=1, num_chains=chains)
        torch.testing.assert_close(result.log_weight, log_weight.double())
        torch.testing.assert_close(result.log_px, logmeanexp(log_weight.double()))
        assert result.acceptance.shape == (0, 5) and result.evaluations == chains
    assert torch.isnan(tvo.ais(model, x, 1, 1).stderr).all()  # one chain: no standard error


# --- BDMC sandwiches the exact value ---------------------------------------------------------


def _check_sandwich(bdmc_few, bdmc_many, exact_few, exact_many):
    lower = bdmc_many.lower - exact_many
    upper = bdmc_many.upper - exact_many
    se = lambda v: (v.std() / len(v) ** 0.5).item()  # noqa: E731
    # contain: the mean lower bound is not above the exact mean, the upper not below
    assert lower.mean() < 3 * se(lower) and upper.mean() > -3 * se(upper)
    # few steps: both bounds clearly away from the exact value, on their own side
    assert (bdmc_few.lower - exact_few).mean() < -4 * se(bdmc_few.lower - exact_few)
    assert (bdmc_few.upper - exact_few).mean() > 4 * se(bdmc_few.upper - exact_few)


def test_bdmc_brackets_the_exact_log_marginal_of_the_discrete_toy():
    """100 simulated points, 10 chains, T = 1 / 10 / 200. The mean lower bound lies below the
    mean exact ``log p(x)`` (within 3 SE over points) and the upper above; at T = 1 both are more
    than 4 SE away on their own side; the gap narrows as T grows, below 0.2 nats at T = 200.

    Measured over seeds 0–4, mean gap at T = 1 / 10 / 200: 11.8 / 4.7 / 0.09,
    9.5 / 3.1 / 0.06, 3.5 / 1.0 / 0.01, 7.2 / 2.6 / 0.08, 9.5 / 3.8 / 0.14.
    """
    model = DiscreteToy(6, 10, seed=0).double()
    runs = {}
    for num_steps in (1, 10, 200):
        torch.manual_seed(0)
        runs[num_steps] = tvo.bdmc(model, 100, num_steps, 10)
    exact = {t: exact_log_marginal(model, b.x) for t, b in runs.items()}
    gaps = [b.gap.mean().item() for b in runs.values()]
    _check_sandwich(runs[1], runs[200], exact[1], exact[200])
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.2
    # the backward chains start at the simulated (exact posterior) sample
    assert runs[200].backward.beta[0] == 1 and runs[200].backward.beta[-1] == 0
    assert runs[200].z.shape == (100, 6) and runs[200].x.shape == (100, 10)


def test_bdmc_with_hmc_brackets_the_linear_gaussian_closed_form():
    """50 simulated points, 10 chains, HMC (5 leapfrog steps), T = 1 / 10 / 100: as for the
    toy; the gap at T = 100 below 0.15 nats. Measured over seeds 0–4, mean gap at
    T = 1 / 10 / 100: 4.41 / 0.23 / 0.08, 5.26 / 0.11 / 0.02, 2.19 / 0.09 / 0.02,
    6.54 / 0.19 / 0.10, 2.70 / 0.16 / −0.02."""
    model = LinearGaussian(2, 3, seed=1).double()
    kernel = old_hmc(0.2, 5)
    runs = {}
    for num_steps in (1, 10, 100):
        torch.manual_seed(1)
        runs[num_steps] = tvo.bdmc(model, 50, num_steps, 10, kernel=kernel)
    exact = {t: model.marginal().log_prob(b.x) for t, b in runs.items()}
    gaps = [b.gap.mean().item() for b in runs.values()]
    _check_sandwich(runs[1], runs[100], exact[1], exact[100])
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.15


# --- every kernel leaves π_β invariant -----------------------------------------------------------


def exact_path_samples(model, x, beta, num):
    """``num`` exact draws from ``π_β(z) ∝ q^(1−β) p^β`` per point of ``x`` (by enumeration),
    as chains ``[num, B, …]``, with the enumerated probabilities ``[N, B]`` and each draw's
    index ``[num, B]``."""
    with torch.no_grad():
        log_p, log_q = exact_log_weights(model, x)  # [N, B]
    probs = torch.softmax(log_q + beta * (log_p - log_q), 0)
    index = torch.multinomial(probs.T, num, replacement=True).T  # [num, B]
    grid = model.enumerate_latents()
    if isinstance(grid, tuple):
        z = tuple(g[index] for g in grid)
    else:
        z = grid[index]
    return z, probs, index


def state_index(model, z) -> torch.Tensor:
    """The enumeration index of each chain's latent value (binary digits, first unit most
    significant, as :func:`binary_grid` and ``SBN.enumerate_latents`` order them)."""
    flat = torch.cat(z, -1) if isinstance(z, tuple) else z
    n = flat.shape[-1]
    return (flat.long() * (2 ** torch.arange(n - 1, -1, -1))).sum(-1)


def kernel_p_value(model, kernel, beta, step_beta=None, num=4000, seed=0) -> float:
    """The smallest chi-square p-value, over 3 data points, of the hypothesis that one kernel
    step at ``step_beta`` (default ``beta``) from exact draws of ``π_β`` leaves them ``π_β``."""
    torch.manual_seed(seed)
    x = model.sample(3)[1]
    z, probs, _ = exact_path_samples(model, x, beta, num)
    target = Target(model, x, grad=kernel.needs_grad)
    point = target.evaluate(z)
    state = kernel.init(target, point)
    _, moved, _ = kernel.step(state, target, point, beta if step_beta is None else step_beta)
    index = state_index(model, moved.z)
    p_values = []
    for b in range(3):
        observed = torch.bincount(index[:, b], minlength=probs.shape[0]).double()
        expected = probs[:, b] * num
        keep = expected > 5  # the chi-square approximation; merge the rare states into one
        obs = torch.cat([observed[keep], observed[~keep].sum(0, keepdim=True)])
        exp = torch.cat([expected[keep], expected[~keep].sum(0, keepdim=True)])
        p_values.append(chisquare(obs[exp > 0].numpy(), exp[exp > 0].numpy()).pvalue)
    return min(p_values)


BINARY_KERNELS = {
    "flip-1": (FlipMH(1), lambda: DiscreteToy(4, 5, seed=1).double()),
    "flip-2": (FlipMH(2), lambda: DiscreteToy(4, 5, seed=1).double()),
    "independent": (IndependentMH(), lambda: DiscreteToy(4, 5, seed=1).double()),
    "cycle": (Cycle(IndependentMH(), FlipMH(1)), lambda: DiscreteToy(4, 5, seed=1).double()),
    "sbn-sweep": (SBNSweep(), lambda: _tiny_sbn()),
}


def _tiny_sbn():
    torch.manual_seed(5)
    model = SBN((4,), pixels=5).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=1.5)
    return model


@pytest.mark.parametrize("name", BINARY_KERNELS)
def test_binary_kernels_leave_the_annealed_distribution_invariant(name):
    """From 4000 exact draws of ``π_β`` (β = 0.6, 16 latent states, 3 data points), one kernel
    step; the states' counts against ``π_β``: chi-square p-value above 1e-3 (measured over
    seeds 0–2, the smallest of the 3 points: from 0.033 (flip-1) to 0.65). The negative
    control, the same step at the wrong β = 0.1, must give p below 1e-6 (measured below
    1e-200 for every kernel)."""
    kernel, make = BINARY_KERNELS[name]
    model = make()
    assert kernel_p_value(model, kernel, 0.6) > 1e-3
    assert kernel_p_value(model, kernel, 0.6, step_beta=0.1) < 1e-6


def gaussian_path(model, x, beta):
    """Mean ``[B, d]`` and covariance ``[B, d, d]`` of ``π_β`` for the linear-Gaussian model:
    precision ``(1−β) Λ_q + β Λ_p``."""
    q, post = model.guide(x), model.posterior(x)
    q_precision = torch.diag_embed(q.variance.reciprocal())
    p_precision = post.precision_matrix.expand_as(q_precision)
    covariance = torch.linalg.inv((1 - beta) * q_precision + beta * p_precision)
    shift = (1 - beta) * q_precision @ q.mean[..., None] + beta * p_precision @ post.mean[..., None]
    return (covariance @ shift)[..., 0], covariance


@pytest.mark.parametrize(
    "kernel",
    [old_hmc(0.8, 5, adapt=False), HMC(step_size=1.3, adapt=False, warmup=0)],
    ids=["fixed", "default"],
)
def test_hmc_leaves_the_annealed_gaussian_invariant(kernel, monkeypatch):
    """From 4000 exact draws of the Gaussian ``π_β`` (β = 0.5) per point, 3 HMC steps (fixed
    step size 0.8, 5 leapfrog steps: about 55% accepted): the sample mean and second central
    moment of each coordinate within 4 SE of the exact ones (measured at most 1.8 and 2.6 SE
    over seeds 0–2). Negative controls, from the same draws: steps at the wrong β = 0 move the
    mean by more than 4 SE (measured 54 SE or more), and leapfrog without the Metropolis test
    (every proposal accepted) misses the second moment by more than 4 SE (measured 32 SE).
    The default kernel (step 1.3 times the guide's scale, jitter, 2 moves a step, adaptation
    off) passes the same checks; the numbers above are the fixed kernel's."""
    torch.manual_seed(0)
    model = LinearGaussian(2, 3, seed=2).double()
    x = model.sample(3)[1]
    mean, covariance = gaussian_path(model, x, 0.5)
    variance = torch.diagonal(covariance, dim1=-2, dim2=-1)  # [B, d]
    num = 4000
    start = torch.distributions.MultivariateNormal(mean, covariance).sample((num,))  # [N, B, d]

    def scores(step_beta):
        """|mean − μ| and |E(z − μ)² − σ²| in standard errors, each the largest over [B, d]."""
        target = Target(model, x, grad=True)
        point = target.evaluate(start)
        state = kernel.init(target, point)
        for _ in range(3):
            state, point, _ = kernel.step(state, target, point, step_beta)
        z = point.z
        mean_score = (z.mean(0) - mean).abs() / (variance / num).sqrt()
        squares = (z - mean) ** 2
        second_score = (squares.mean(0) - variance).abs() / (squares.var(0) / num).sqrt()
        return mean_score.max().item(), second_score.max().item()

    assert max(scores(0.5)) < 4
    assert scores(0.0)[0] > 4
    monkeypatch.setattr("tvo.evaluate.kernels.metropolis", lambda log_ratio: log_ratio == log_ratio)
    assert scores(0.5)[1] > 4


# --- schedules, settings, errors ------------------------------------------------------------


def test_schedules():
    sigmoid = annealing_schedule(100)
    assert sigmoid[0] == 0 and sigmoid[-1] == 1 and (sigmoid.diff() > 0).all()
    torch.testing.assert_close(sigmoid + sigmoid.flip(0), torch.ones(101, dtype=torch.float64))
    s = lambda u: 1 / (1 + math.exp(-4 * u))  # noqa: E731  (δ = 4, as Grosse et al. 2015)
    assert sigmoid[1].item() == pytest.approx((s(2 / 100 - 1) - s(-1)) / (s(1) - s(-1)))
    torch.testing.assert_close(annealing_schedule(10, "linear"),
                               torch.linspace(0, 1, 11, dtype=torch.float64))  # fmt: skip
    torch.testing.assert_close(annealing_schedule(10, "log", 0.01), partition(10, "log", 0.01))
    assert annealing_schedule(1).tolist() == [0.0, 1.0]
    run = partition(5, "log", 0.02)  # a run's partition: kept, each interval split evenly
    shaped = annealing_schedule(50, run)
    torch.testing.assert_close(shaped[::10], run)
    torch.testing.assert_close(shaped[1], run[1] / 10)
    assert (shaped.diff() > 0).all() and len(annealing_schedule(7, run)) == 8


def gaussian_and_data():
    model = LinearGaussian()
    return model, model.sample(2)[1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x: tvo.ais(m, x, 0, 5), "num_steps must be an integer ≥ 1, got 0"),
        (lambda m, x: tvo.ais(m, x, 5, 0), "num_chains must be an integer ≥ 1, got 0"),
        (lambda m, x: tvo.ais(m, x, 5, 2, "cosine"), "unknown AIS schedule 'cosine'"),
        (lambda m, x: tvo.ais(m, x, 5, 2, [0.0, 0.5, 0.4, 1.0]), "strictly increasing"),
        (lambda m, x: tvo.ais(m, x, 5, 2, kernel=HMC()), "HMC needs continuous latents"),
        (lambda m, x: tvo.ais(m, x, 5, 2, kernel=FlipMH(9)), "block 9 is more than the 3"),
        (lambda m, x: tvo.ais(m, x, 5, 2, kernel=SBNSweep()), "SBNSweep needs a one-layer"),
        (lambda m, x: HMC(leapfrog_steps=0), "leapfrog_steps must be an integer ≥ 1"),
        (lambda m, x: tvo.bdmc(m, 0, 5, 2), "num_data must be an integer ≥ 1, got 0"),
        (lambda m, x: kernel_for(m, "nuts"), "unknown kernel 'nuts'"),
        (lambda m, x: kernel_for(m, "hmc"), "'hmc' needs continuous latents, and DiscreteToy"),
        (lambda m, x: kernel_for(m, "sbn-sweep"), "'sbn-sweep' needs a one-layer linear SBN"),
        (lambda m, x: kernel_for(LinearGaussian(), "flip"), "'flip' needs binary latents"),
        (
            lambda m, x: tvo.ais(*gaussian_and_data(), 5, 2, kernel=FlipMH()),
            "FlipMH needs binary latents",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_value(call, message):
    model = DiscreteToy(3, 4)
    x = model.sample(2)[1]
    with pytest.raises(ValueError, match=message):
        call(model, x)


def test_log_mean_stderr_is_the_delta_method():
    log_weight = torch.log(torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]], dtype=torch.float64))
    se = log_mean_stderr(log_weight + 700)  # shift-invariant, no overflow
    torch.testing.assert_close(se, torch.tensor([2.0 / (3**0.5 * 3.0), 0.0], dtype=torch.float64))


def test_kernel_for_names_and_the_defaults():
    assert isinstance(kernel_for(LinearGaussian(), "auto", 3), HMC)
    assert kernel_for(LinearGaussian(), "auto", 3).leapfrog_steps == 3
    assert isinstance(kernel_for(SBN((4,), 5)), SBNSweep)
    assert isinstance(kernel_for(SBN((4, 2), 5)), FlipMH)
    assert isinstance(kernel_for(DiscreteToy(), "independent"), IndependentMH)


def test_ais_follows_the_model_dtype_and_keeps_weights_in_float64():
    model = DiscreteToy(3, 4, seed=0)  # float32
    x = model.sample(3)[1]
    result = tvo.ais(model, x, 5, 4)
    assert result.log_weight.dtype == torch.float64 and result.acceptance.shape == (4, 3)


# --- the HMC kernel against exact transitions -------------------------------------------------


def test_hmc_ais_is_within_twice_the_error_of_exact_transitions():
    """LinearGaussian(3, 5) with its untrained guide, 8 points, 16 chains, T = 200: the mean
    standard error over chains of AIS with the default HMC (2 moves of 5 leapfrog steps, jitter,
    warm-up) within 1.5 times that of AIS with exact transitions (:class:`GaussianPathKernel`,
    each step a fresh draw of the Gaussian ``π_β``); issue #27 asks for about 2. Measured over
    seeds 0–2: 1.29, 1.33, 1.34 (the old kernel, ε₀ = 0.05, identity mass, 10 leapfrog steps:
    1.48, 1.71, 1.67 here, and 2.3 at T = 1000 with 32 chains, where the default gives 1.2–1.3;
    ``benchmarks/ais_eval.py --hmc-study`` prints the full comparison). Negative control: a kernel
    that barely moves (one leapfrog step of 0.05, not adapted) is above 1.5."""
    model = LinearGaussian(3, 5, seed=0).double()
    torch.manual_seed(0)
    x = model.sample(8)[1]

    def stderr(kernel):
        torch.manual_seed(1)
        return tvo.ais(model, x, 200, 16, kernel=kernel).stderr.mean().item()

    exact = stderr(GaussianPathKernel())
    assert stderr(HMC()) < 1.5 * exact
    still = HMC(step_size=0.05, leapfrog_steps=1, moves=1, warmup=0, adapt=False, jitter=0.0)
    assert stderr(still) > 1.5 * exact


# --- the adaptive schedule: evenly spaced in thermodynamic length ----------------------------


def thermodynamic_length(model, x, grid):
    """``L(β) / L(1)``, ``L(β) = ∫_0^β √v``, ``v(β) = Var_{π_β}[ℓ]`` from 20000 exact draws of
    the Gaussian ``π_β`` at each point of ``grid`` (trapezoid rule), for one data point."""
    kernel = GaussianPathKernel()
    target = Target(model, x)
    point = target.evaluate(*target.sample_guide(20000))
    v = []
    for beta in grid.tolist():
        _, drawn, _ = kernel.step(None, target, point, beta)
        v.append((drawn.log_p - drawn.log_q).double().var(0)[0])
    root = torch.stack(v).detach().sqrt()
    pieces = 0.5 * (root[1:] + root[:-1]) * grid.diff()
    length = torch.cat([torch.zeros(1, dtype=torch.float64), pieces.cumsum(0)])
    return length / length[-1]


def test_the_adaptive_schedule_is_even_in_thermodynamic_length():
    """LinearGaussian(3, 5) with its untrained guide, one point, T = 50: the fraction of the
    thermodynamic length reached at each ``β_t`` of ``schedule="adaptive"`` (a pilot SMC of 32
    particles with exact transitions) is within 0.08 of ``t / T`` (measured over pilot seeds
    0–4: 0.039, 0.039, 0.041, 0.050, 0.014). The fixed schedules are not: sigmoid 0.23, linear
    0.23, log 0.41 (asserted above 0.15). The pilot's evaluations count in AIS's."""
    from numpy import interp

    model = LinearGaussian(3, 5, seed=0).double()
    torch.manual_seed(0)
    x = model.sample(1)[1]
    grid = torch.linspace(0, 1, 201, dtype=torch.float64)
    length = thermodynamic_length(model, x, grid)
    even = torch.linspace(0, 1, 51, dtype=torch.float64)

    def miss(beta):
        return (torch.from_numpy(interp(beta.numpy(), grid.numpy(), length.numpy())) - even)\
            .abs().max().item()  # fmt: skip

    torch.manual_seed(0)
    result = tvo.ais(model, x, 50, 4, schedule="adaptive", kernel=GaussianPathKernel())
    assert result.beta[0] == 0 and result.beta[-1] == 1 and (result.beta.diff() >= 0).all()
    assert miss(result.beta) < 0.08
    for name in ("sigmoid", "linear", "log"):
        assert miss(annealing_schedule(50, name)) > 0.15
    plain = tvo.ais(model, x, 50, 4, kernel=GaussianPathKernel())
    assert result.evaluations > plain.evaluations + 32  # the pilot's draws of q, at least


def test_ais_and_bdmc_with_the_adaptive_schedule_stay_unbiased():
    """DiscreteToy (6 latents, 10 pixels), 8 points, 10 chains, single-site flips, T = 200,
    ``R = 20`` runs per point: the adaptive schedule (chosen from the data, before the chains
    start) leaves each chain's weight unbiased for ``p(x)``: the mean of the runs within 4
    standard errors + 0.01 nats of ``log p(x)``, as the sigmoid schedule's test above; and BDMC
    with it brackets the exact value."""
    torch.manual_seed(0)
    model = DiscreteToy(6, 10, seed=0).double()
    x = model.sample(8)[1]
    draws, _ = repeated_ais(model, x, 200, 10, schedule="adaptive")
    assert_unbiased(draws, exact_log_marginal(model, x), atol=0.01)
    torch.manual_seed(1)
    result = tvo.bdmc(model, 8, 200, 10, schedule="adaptive")
    exact = exact_log_marginal(model, result.x)
    assert (result.lower <= exact + 3 * result.forward.stderr).all()
    assert (result.upper >= exact - 3 * result.backward.stderr).all()
