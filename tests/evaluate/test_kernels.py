"""The Markov kernels of AIS against their exact transition matrices, by enumeration.

For a model whose latents can be enumerated, the kernel each class means to be is known exactly:
a Metropolis–Hastings kernel of ``π_β ∝ q^(1−β) p^β`` (docs/maths.md, "Markov kernels"). Here
the matrix ``T[z, z']`` is built from that definition (``π̃_β`` by enumeration), checked to
leave ``π_β`` invariant (and, for the reversible ones, to satisfy detailed balance), and the
kernel's own steps, from every state, are counted against it. Invariance from exact draws is
also tested, by a chi-square test, in tests/evaluate/test_ais.py.
"""

import math

import pytest
import torch

from tvo.evaluate import exact_log_weights
from tvo.evaluate.kernels import HMC, FlipMH, IndependentMH, Point, SBNSweep, Target, metropolis
from tvo.models import SBN
from tvo.models.toy import DiscreteToy, LinearGaussian

pytestmark = pytest.mark.usefixtures("one_thread")  # small operations: see conftest.py

BETA = 0.7
CHAINS = 3000  # per starting state and data point


def path_densities(model, x, beta=BETA):
    """``log π̃_β(z)`` ``[N, B]``, ``log q`` ``[N, B]`` and ``ℓ`` for every latent value."""
    log_p, log_q = exact_log_weights(model, x)
    return log_q + beta * (log_p - log_q), log_q, log_p - log_q


def acceptance(log_ratio: torch.Tensor) -> torch.Tensor:
    return log_ratio.clamp(max=0).exp()


def flip_matrix(model, x, beta=BETA) -> torch.Tensor:
    """Single-site flips, a unit chosen uniformly: ``T[b, z, z']`` ``[B, N, N]``."""
    log_pi = path_densities(model, x, beta)[0].T  # [B, N]
    units = int(math.log2(log_pi.shape[1]))
    T = torch.zeros(log_pi.shape[0], log_pi.shape[1], log_pi.shape[1], dtype=torch.float64)
    for z in range(log_pi.shape[1]):
        for h in range(units):
            other = z ^ (1 << (units - 1 - h))  # unit h is bit units − 1 − h of the index
            T[:, z, other] = acceptance(log_pi[:, other] - log_pi[:, z]) / units
        T[:, z, z] = 1 - T[:, z].sum(-1)
    return T


def independent_matrix(model, x, beta=BETA) -> torch.Tensor:
    """Proposals from ``q``, accepted with ``min(1, exp(β (ℓ(z') − ℓ(z))))``."""
    _, log_q, log_weight = (v.T for v in path_densities(model, x, beta))
    gain = log_weight[:, None, :] - log_weight[:, :, None]  # ℓ(z') − ℓ(z), [B, N, N]
    T = log_q.exp()[:, None, :] * acceptance(beta * gain)
    N = log_q.shape[1]
    T[:, range(N), range(N)] = 0
    T[:, range(N), range(N)] = 1 - T.sum(-1)
    return T


def sweep_matrix(model, x, beta=BETA) -> torch.Tensor:
    """A systematic sweep: the single-site flip of unit 0 (always proposed), then unit 1, …"""
    log_pi = path_densities(model, x, beta)[0].T
    N = log_pi.shape[1]
    units = int(math.log2(N))
    total = torch.eye(N, dtype=torch.float64).expand(log_pi.shape[0], N, N)
    for h in range(units):
        T = torch.zeros_like(total)
        for z in range(N):
            other = z ^ (1 << (units - 1 - h))
            T[:, z, other] = acceptance(log_pi[:, other] - log_pi[:, z])
            T[:, z, z] = 1 - T[:, z, other]
        total = total @ T
    return total


def empirical_matrix(model, x, kernel, beta=BETA, seed=0) -> torch.Tensor:
    """One kernel step from ``CHAINS`` copies of every latent value: the fraction of each
    state's chains that end in each state, ``[B, N, N]``."""
    torch.manual_seed(seed)
    grid = model.enumerate_latents()
    leaves = grid if isinstance(grid, tuple) else (grid,)
    N, B = leaves[0].shape[0], x.shape[0]
    start = torch.arange(N).repeat(CHAINS)  # [C]
    z = tuple(leaf[start][:, None, :].expand(-1, B, -1).clone() for leaf in leaves)
    z = z if isinstance(grid, tuple) else z[0]
    target = Target(model, x)
    point = target.evaluate(z)
    _, moved, _ = kernel.step(kernel.init(target, point), target, point, beta)
    flat = torch.cat(moved.z, -1) if isinstance(moved.z, tuple) else moved.z
    end = (flat.long() * 2 ** torch.arange(flat.shape[-1] - 1, -1, -1)).sum(-1)  # [C, B]
    counts = torch.zeros(B, N, N, dtype=torch.float64)
    for b in range(B):
        counts[b].index_put_((start, end[:, b]), torch.ones(len(start), dtype=torch.float64),
                             accumulate=True)  # fmt: skip
    return counts / CHAINS


def score(empirical, exact) -> float:
    """The largest deviation of an empirical transition probability from the exact one, in
    binomial standard errors (a transition the exact kernel never makes counts as infinite)."""
    impossible = exact == 0
    if (empirical[impossible] > 0).any():
        return math.inf
    se = (exact * (1 - exact) / CHAINS).sqrt()
    return ((empirical - exact).abs() / se)[(exact > 0) & (exact < 1)].max().item()


def toy():
    model = DiscreteToy(3, 5, seed=1).double()
    torch.manual_seed(1)
    return model, model.sample(2)[1]


def tiny_sbn():
    torch.manual_seed(5)
    model = SBN((3,), pixels=5).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=1.5)
    return model, model.sample(2)[1]


MATRICES = {
    "flip": (FlipMH(1), toy, flip_matrix, True),
    "independent": (IndependentMH(), toy, independent_matrix, True),
    "sbn-sweep": (SBNSweep(), tiny_sbn, sweep_matrix, False),
}


@pytest.mark.parametrize("name", MATRICES)
def test_the_exact_kernel_leaves_the_annealed_distribution_invariant(name):
    """The matrices the kernels are compared with are right: ``π_β T = π_β`` and, for the
    reversible ones, ``π_β(z) T(z, z') = π_β(z') T(z', z)`` (a sweep is not reversible)."""
    _, make, matrix, reversible = MATRICES[name]
    model, x = make()
    pi = torch.softmax(path_densities(model, x)[0].T, -1)  # [B, N]
    T = matrix(model, x)
    torch.testing.assert_close(T.sum(-1), torch.ones_like(pi))
    torch.testing.assert_close(torch.einsum("bn,bnm->bm", pi, T), pi)
    flux = pi[:, :, None] * T
    if reversible:
        torch.testing.assert_close(flux, flux.mT)
    else:
        assert (flux - flux.mT).abs().max() > 1e-3


@pytest.mark.parametrize("name", MATRICES)
def test_each_kernel_moves_as_its_exact_matrix(name):
    """3000 steps from each of the 8 states, 2 data points: every transition frequency within
    5 binomial standard errors of the exact kernel's (128 entries; at 5 SE a false alarm has
    probability below 1e-4; measured 1.9 to 3.0 SE over seeds 0–2), and no transition the
    exact kernel never makes. Negative control: the same counts against the exact kernel at
    the wrong β = 0.2 are more than 5 SE away (measured 37 SE or more for flip and
    independent; the sweep makes transitions that the sweep at β = 0.2 never makes)."""
    kernel, make, matrix, _ = MATRICES[name]
    model, x = make()
    empirical = empirical_matrix(model, x, kernel)
    assert score(empirical, matrix(model, x)) < 5
    assert score(empirical, matrix(model, x, beta=0.2)) > 5


def test_a_flip_that_is_always_accepted_is_caught(monkeypatch):
    """A wrong variant: FlipMH without its Metropolis test (every flip accepted) is far from
    the exact kernel (measured 47 to 49 SE over seeds 0–2)."""
    model, x = toy()
    monkeypatch.setattr("tvo.evaluate.kernels.metropolis", lambda r: torch.ones_like(r).bool())
    assert score(empirical_matrix(model, x, FlipMH(1)), flip_matrix(model, x)) > 5


def test_metropolis_accepts_with_probability_min_1_exp_ratio():
    """200,000 draws per ratio: the acceptance frequency within 5 SE of ``min(1, e^r)``; a ratio
    that is not finite (an overflowed proposal) is never accepted."""
    torch.manual_seed(0)
    ratios = torch.tensor([-3.0, -0.5, 0.0, 2.0], dtype=torch.float64)
    accepted = metropolis(ratios.expand(200_000, -1)).double().mean(0)
    expected = ratios.clamp(max=0).exp()
    se = (expected * (1 - expected) / 200_000).sqrt().clamp(min=1e-12)
    assert ((accepted - expected).abs() <= 5 * se).all()
    bad = torch.tensor([math.nan, math.inf, -math.inf])
    assert not metropolis(bad.expand(100, -1)).any()


def test_a_point_gives_the_annealed_log_density_and_its_gradient():
    point = Point(torch.zeros(1, 1, 2), torch.tensor([[-1.0]]), torch.tensor([[-3.0]]),
                  torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[5.0, -2.0]]]))  # fmt: skip
    assert point.log_weight.item() == -2.0
    assert point.log_density(0.25).item() == -1.5  # log q + β ℓ
    torch.testing.assert_close(point.grad(0.25), torch.tensor([[[2.0, 1.0]]]))


def test_hmc_adapts_its_step_size_towards_the_target_acceptance(monkeypatch):
    """Every proposal accepted: the moving average rises to 0.1 + 0.9·a; above the target the
    step size grows by 1.02, within its bounds. Every proposal rejected: it shrinks by 0.98 and
    the chains stay where they were."""
    model = LinearGaussian(2, 3, seed=0).double()
    x = model.sample(2)[1]
    target = Target(model, x, grad=True)
    point = target.evaluate(torch.zeros(4, 2, 2, dtype=torch.float64))
    kernel = HMC(step_size=0.1, leapfrog_steps=2, target_acceptance=0.6)
    state = kernel.init(target, point)
    monkeypatch.setattr("tvo.evaluate.kernels.metropolis", lambda r: torch.ones_like(r).bool())
    grown, moved, rate = kernel.step(state, target, point, 0.5)
    assert rate.tolist() == [1.0, 1.0]
    torch.testing.assert_close(grown.acceptance, 0.9 * state.acceptance + 0.1)
    expected = torch.where(grown.acceptance > 0.6, 1.02, 0.98) * state.step_size
    torch.testing.assert_close(grown.step_size, expected.clamp(kernel.min_step_size,
                                                               kernel.max_step_size))  # fmt: skip
    assert not torch.equal(moved.z, point.z)
    monkeypatch.setattr("tvo.evaluate.kernels.metropolis", lambda r: torch.zeros_like(r).bool())
    shrunk, stayed, rate = kernel.step(state, target, point, 0.5)
    assert rate.tolist() == [0.0, 0.0] and torch.equal(stayed.z, point.z)
    torch.testing.assert_close(shrunk.step_size, (0.98 * state.step_size).clamp(
        kernel.min_step_size, kernel.max_step_size))  # fmt: skip
