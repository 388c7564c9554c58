"""q-paths (tvo.evaluate.paths): the power mean in log space, its limits, and AIS along it
against enumeration on the discrete toy."""

import math

import pytest
import torch

import tvo
from tvo.evaluate import exact_log_marginal
from tvo.evaluate.ais import anneal, annealing_schedule
from tvo.evaluate.exact import EnumeratedPathKernel
from tvo.evaluate.kernels import FlipMH, Target
from tvo.evaluate.paths import GEOMETRIC, Path, check_qpath
from tvo.models.toy import DiscreteToy
from tvo.ops import logmeanexp

pytestmark = pytest.mark.usefixtures("one_thread")


def values(seed=0):
    g = torch.Generator().manual_seed(seed)
    log_q = -3 * torch.rand(5, 4, generator=g, dtype=torch.float64)
    log_p = -200 + 20 * torch.randn(5, 4, generator=g, dtype=torch.float64)
    shift = -200 + torch.randn(4, generator=g, dtype=torch.float64)
    return log_q, log_p, shift


def test_the_power_mean_in_log_space_and_its_limits():
    """Against the power mean computed directly in float64 (moderate values, no overflow); the
    ends β = 0 and 1 are exactly log q and log p − s; q → 1 is the geometric path (shifted by
    −β s); q = 0 the mixture; and the log form stays finite where the direct one underflows."""
    log_q, log_p, shift = values()
    for q in (0.0, 0.3, 0.9):
        path = Path(q, shift)
        for beta in (0.0, 0.25, 1.0):
            got = path.log_density(log_q, log_p, beta)
            assert torch.isfinite(got).all()  # log p ≈ −200: exp would underflow in float32
            small_p = log_p + 180 - (shift + 180)  # the same ratios, direct arithmetic is fine
            direct = ((1 - beta) * torch.exp((1 - q) * log_q) + beta * torch.exp(
                (1 - q) * small_p)) ** (1 / (1 - q))  # fmt: skip
            torch.testing.assert_close(got, direct.log())
        torch.testing.assert_close(path.log_density(log_q, log_p, 0.0), log_q)
        torch.testing.assert_close(path.log_density(log_q, log_p, 1.0), log_p - shift)
    near = Path(1 - 1e-7, shift).log_density(log_q, log_p, 0.3)
    geometric = GEOMETRIC.log_density(log_q, log_p, 0.3) - 0.3 * shift
    torch.testing.assert_close(near, geometric, atol=1e-4, rtol=0)
    mixture = Path(0.0, shift).log_density(log_q, log_p, 0.3)
    torch.testing.assert_close(mixture, torch.logaddexp(math.log(0.7) + log_q,
                                                        math.log(0.3) + log_p - shift))  # fmt: skip


def test_the_gradient_weights_are_the_derivative_of_the_log_density():
    """``∇ log π̃ = w_q ∇ log q + w_p ∇ log p``: the weights are the partial derivatives of
    ``log π̃`` in ``log q`` and ``log p`` (autograd)."""
    log_q, log_p, shift = values(1)
    for path in (GEOMETRIC, Path(0.5, shift), Path(0.0, shift)):
        a, b = log_q.clone().requires_grad_(), log_p.clone().requires_grad_()
        d_q, d_p = torch.autograd.grad(path.log_density(a, b, 0.4).sum(), (a, b))
        w_q, w_p = path.grad_weights(log_q, log_p, 0.4)
        torch.testing.assert_close(d_q, torch.as_tensor(w_q).expand_as(d_q).double())
        torch.testing.assert_close(d_p, torch.as_tensor(w_p).expand_as(d_p).double())


def test_qpath_1_is_the_geometric_ais_of_before_on_the_same_draws():
    """``qpath=1`` walks the same random draws as the geometric AIS (no scale draws) and gives
    the weights of the plain sum ``Σ_t (β_t − β_{t−1}) ℓ(z_{t−1})`` bit for bit (float32 model,
    weights in float64); a q-path with ``q = 1 − 1e-7``, walked with the same kernel draws from
    the same scale, agrees to rounding."""
    model = DiscreteToy(4, 6, seed=0)
    torch.manual_seed(0)
    x = model.sample(5)[1]
    torch.manual_seed(1)
    default = tvo.ais(model, x, 20, 4)
    torch.manual_seed(1)
    explicit = tvo.ais(model, x, 20, 4, qpath=1.0)
    assert torch.equal(default.log_weight, explicit.log_weight)

    torch.manual_seed(1)  # the loop of before, written out: same draws, same sums
    target = Target(model, x)
    z, log_q = target.sample_guide(4)
    point, kernel, beta = target.evaluate(z, log_q), FlipMH(1), annealing_schedule(20).tolist()
    state = kernel.init(target, point)
    log_weight = torch.zeros(4, 5, dtype=torch.float64)
    for t in range(1, 21):
        log_weight += (beta[t] - beta[t - 1]) * point.log_weight.double()
        if t < 20:
            state, point, _ = kernel.step(state, target, point, beta[t])
    assert torch.equal(default.log_weight, log_weight)
    # q → 1: same kernel draws (the seed after the scale is set), the same estimate to rounding
    shift = exact_log_marginal(model, x)
    results = []
    for path in (GEOMETRIC, Path(1 - 1e-7, shift)):
        target = Target(model, x, path=path)
        torch.manual_seed(2)
        z, log_q = target.sample_guide(4)
        log_weight, _, _ = anneal(target, target.evaluate(z, log_q), annealing_schedule(20),
                                  FlipMH(1))  # fmt: skip
        results.append(path.offset + logmeanexp(log_weight))
    torch.testing.assert_close(results[0], results[1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("q", [0.25, 0.5, 0.9, 0.99])
def test_ais_along_a_qpath_is_unbiased_for_p_x(q, monkeypatch):
    """DiscreteToy (4 latents, 6 pixels), 4 points, T = 30 steps, 2 chains, R = 400 runs per
    point, with exact transitions (:class:`EnumeratedPathKernel`: the path and its weights are
    under test here, not a kernel's mixing): the mean of ``p̂(x) / p(x)`` within 4 standard
    errors of 1 at each point (measured at most 1.5 SE over q = 0.5, 0.9, 1; the ratio's sd is
    about 0.55). Negative control: geometric weight increments along the q-path (a wrong
    weight) are more than 4 SE away. ``q = 0`` (the mixture path) is left out: its ratio is too
    heavy-tailed for a mean test (sd 27, maximum 550 at one point, measured)."""
    model = DiscreteToy(4, 6, seed=1).double()
    torch.manual_seed(0)
    x = model.sample(4)[1]
    exact = exact_log_marginal(model, x).detach()
    R = 400

    def score():
        torch.manual_seed(1)
        result = tvo.ais(model, x.repeat(R, 1), 30, 2, qpath=q, kernel=EnumeratedPathKernel())
        ratio = torch.exp(result.log_px.reshape(R, 4) - exact)  # p̂ / p, mean 1 if unbiased
        return ((ratio.mean(0) - 1).abs() / (ratio.std(0) / R**0.5)).max().item()

    assert score() < 4
    if q > 0.9:
        return  # too close to the geometric path for the wrong weights to show in 400 runs
    geometric = GEOMETRIC.increment
    monkeypatch.setattr(Path, "increment", lambda self, lq, lp, old, new: geometric(
        lq, lp - self.shift[None], old, new))  # fmt: skip
    assert score() > 4


def test_bdmc_along_a_qpath_brackets_the_exact_value():
    """BDMC on the toy along the q-path q = 0.9, 100 points, T = 100, 5 chains: the mean lower
    bound below the mean exact value, the upper above (within 3 SE over the points)."""
    model = DiscreteToy(4, 6, seed=1).double()
    torch.manual_seed(0)
    result = tvo.bdmc(model, 100, 100, 5, qpath=0.9)
    exact = exact_log_marginal(model, result.x)
    lower, upper = result.lower - exact, result.upper - exact
    assert lower.mean() < 3 * lower.std() / 10 and upper.mean() > -3 * upper.std() / 10
    assert result.gap.mean() < 0.5


def test_bad_qpath_is_refused():
    for bad in (-0.1, 1.5, "0.9", True):
        with pytest.raises(ValueError, match="qpath must be a number in \\[0, 1\\]"):
            check_qpath(bad)
    with pytest.raises(ValueError, match="qpath must be a number"):
        tvo.ais(DiscreteToy(), torch.zeros(2, 4), 5, 2, qpath=2.0)


def test_the_sbn_sweep_steps_aside_on_a_qpath():
    """The one-layer SBN's sweep knows the geometric path only: along a q-path the automatic
    kernel is single-site flips, and asking for the sweep names the kernels that fit."""
    from tvo.evaluate.kernels import SBNSweep, default_kernel, kernel_for
    from tvo.models import SBN

    model = SBN((4,), pixels=5).double()
    assert isinstance(default_kernel(model), SBNSweep)
    assert isinstance(default_kernel(model, 0.9), FlipMH)
    assert isinstance(kernel_for(model, "auto", qpath=0.9), FlipMH)
    message = "'sbn-sweep' follows the geometric path only, not the q-path q = 0.9: use auto, flip"
    with pytest.raises(ValueError, match=message):
        kernel_for(model, "sbn-sweep", qpath=0.9)
    x = model.sample(3)[1]
    assert torch.isfinite(tvo.ais(model, x, 5, 2, qpath=0.9).log_px).all()
    assert torch.isfinite(tvo.smc(model, x, 10, qpath=0.9).log_px).all()
