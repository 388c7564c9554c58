"""The Gaussian-process bandit schedule (Nguyen, Masrani, Brekelmans, Osborne & Wood, NeurIPS
2020): the partition is chosen online to maximise the improvement of the model.

Training is cut into rounds of ``adapt_every`` steps; each round trains with one partition (an
*arm*). Its *reward* is the improvement of the training log-likelihood estimate over the round
before:

    r_t = mean_{round t} L̂ − mean_{round t−1} L̂,     L̂ = batch mean of logmeanexp_s ℓ_s

(``L̂`` does not depend on the partition, so rewards of different arms compare). Rewards are
modelled as a Gaussian process over the arm and the round,

    r_t = f(u_t, t) + ε,     f ~ GP(0, c · Matérn_5/2),     ε ~ N(0, σ²)

with ``u = log(β / β_min) / log(β_max / β_min) ∈ [0, 1]^{K−1}`` the inner points ``β_1 … β_{K−1}``
sorted and log-scaled (sorting makes ``f`` blind to their order, as the paper's permutation-
invariant kernel does). The Matérn kernel has its own length scale per point and one for the
round ``t``: rewards drift while the model learns, and the fitted time scale says how fast old
rounds are forgotten (the paper's time-varying bandit). The hyperparameters ``c``, the length
scales and ``σ²`` are fitted by maximum marginal likelihood over the last ``window`` rounds
(scikit-learn's ``GaussianProcessRegressor``). The next arm maximises the upper confidence bound

    UCB(u) = μ(u, t + 1) + κ sd(u, t + 1)

over random sorted candidates and small moves of the best arms seen. The first ``initial`` rounds
(default ``3(K − 1)``, as in the paper's code) draw arms uniformly in ``u``.

Everything is seeded by ``(seed, round)``, so a resumed run proposes what the uninterrupted one
does. ``GPBanditSchedule`` drives it from training as a schedule (``tvo.partitions``):
its state (the partition, the arms and rewards so far, the round's running sum) is a value that
whoever trains owns and checkpoints.

The equations: docs/maths.md, "Adaptive partitions".
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from tvo.ops import logmeanexp


def require_sklearn():
    """scikit-learn's GP module, or an error that says how to install it."""
    try:
        from sklearn import gaussian_process
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the gp-bandit schedule needs scikit-learn: pip install scikit-learn "
            "(or pip install 'tvo[bandit]')"
        ) from error
    return gaussian_process


def intervals_error(K, name: str = "K") -> str | None:
    """Why ``K`` intervals are too few for the gp-bandit schedule (``K ≥ 2``: with ``K = 1``
    there is no point to place), or ``None``; ``name`` is how the message calls ``K``. The one
    place this requirement is checked (the settings and ``GPBandit`` ask it)."""
    if isinstance(K, int) and not isinstance(K, bool) and K >= 2:
        return None
    if name == "K":
        return f"the gp-bandit schedule needs K ≥ 2 intervals, got {K!r}"
    return (f"the gp-bandit schedule needs {name} ≥ 2, got {K}: with K = 1 there is no point "
            "to place")  # fmt: skip


class GPBandit:
    """GP-UCB over sorted partitions of ``K`` intervals; rewards from ``observe``.

    ``propose()`` gives the next partition (float64 ``[K + 1]``); ``observe(partition, reward)``
    records what an arm earned. ``K ≥ 2`` (with ``K = 1`` there is nothing to choose).

    Args:
        K: the number of intervals (at least 2).
        seed: the seed of the proposals.
        beta_min: the smallest inner point a proposal may have.
        beta_max: the largest inner point a proposal may have.
        initial: rounds of random proposals before the GP (``None``: ``3 (K − 1)``).
        window: the last rounds the GP is fitted to.
        kappa: the weight of the posterior sd in the upper confidence bound.
        candidates: random candidates the bound is maximised over.
    """

    def __init__(self, K: int, seed: int = 0, beta_min: float = 1e-3, beta_max: float = 0.99,
                 initial: int | None = None, window: int = 100, kappa: float = 2.0,
                 candidates: int = 2000):  # fmt: skip
        if intervals_error(K) is not None:
            raise ValueError(intervals_error(K))
        if not 0 < beta_min < beta_max < 1:
            raise ValueError(f"need 0 < beta_min < beta_max < 1, got {beta_min}, {beta_max}")
        require_sklearn()
        self.K, self.seed = K, seed
        self.beta_min, self.beta_max = beta_min, beta_max
        self.initial = 3 * (K - 1) if initial is None else initial
        self.window, self.kappa, self.candidates = window, kappa, candidates
        self.arms: list[list[float]] = []  # u of each rewarded round, [K − 1] each
        self.rewards: list[float] = []

    def to_unit(self, partition: Tensor) -> np.ndarray:
        """Inner points of a partition as sorted ``u ∈ [0, 1]^{K−1}``.

        Args:
            partition: the points ``[K + 1]``.
        """
        inner = np.sort(np.asarray(partition, dtype=np.float64)[1:-1])
        u = np.log(inner / self.beta_min) / math.log(self.beta_max / self.beta_min)
        return np.clip(u, 0.0, 1.0)

    def to_partition(self, u: np.ndarray) -> Tensor:
        """Sorted ``u`` back to a strictly increasing partition ``[0, β_1, …, β_{K−1}, 1]``.

        Args:
            u (numpy.ndarray): the inner points in ``[0, 1]^{K−1}``.
        """
        beta = self.beta_min * (self.beta_max / self.beta_min) ** np.sort(np.clip(u, 0.0, 1.0))
        for k in range(1, len(beta)):  # ties (measure zero) are nudged apart
            beta[k] = max(beta[k], beta[k - 1] * (1 + 1e-9))
        return torch.tensor([0.0, *beta.tolist(), 1.0], dtype=torch.float64)

    def observe(self, partition: Tensor, reward: float) -> None:
        """Record that the arm ``partition`` earned ``reward``.

        Args:
            partition: the partition that was played.
            reward: what it earned.
        """
        self.arms.append(self.to_unit(partition).tolist())
        self.rewards.append(float(reward))

    def propose(self) -> Tensor:
        """The next partition: a random one for the first ``initial`` rounds, then GP-UCB."""
        t = len(self.rewards)
        rng = np.random.default_rng([self.seed, t])
        if t < self.initial:
            return self.to_partition(rng.random(self.K - 1))
        mean, sd, candidates = self.posterior(rng)
        return self.to_partition(candidates[int(np.argmax(mean + self.kappa * sd))])

    def posterior(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fit the GP to the last ``window`` rounds; its mean and sd at the next round for
        random candidates (``[N, K − 1]``, sorted rows) and moves of the best arms.

        Args:
            rng (numpy.random.Generator): the generator of the candidates.
        """
        gp = require_sklearn()
        kernels = gp.kernels
        t = len(self.rewards)
        first = max(0, t - self.window)
        arms = np.asarray(self.arms[first:])
        times = np.arange(first, t, dtype=np.float64)[:, None]
        inputs = np.hstack([arms, times])
        d = self.K - 1
        kernel = kernels.ConstantKernel(1.0, (1e-3, 1e3)) * kernels.Matern(
            length_scale=[0.3] * d + [max(10.0, t / 2)],
            length_scale_bounds=[(0.02, 10.0)] * d + [(1.0, 1e4)], nu=2.5
        ) + kernels.WhiteKernel(0.5, (1e-4, 10.0))  # fmt: skip
        model = gp.GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=0)
        with warnings.catch_warnings():  # hyperparameters at a bound are expected, not errors
            warnings.simplefilter("ignore")
            model.fit(inputs, np.asarray(self.rewards[first:]))
        uniform = np.sort(rng.random((self.candidates, d)), axis=1)
        best = arms[np.argsort(self.rewards[first:])[-5:]]
        moves = best[rng.integers(len(best), size=self.candidates // 4)]
        moves = np.sort(np.clip(moves + 0.05 * rng.standard_normal(moves.shape), 0, 1), axis=1)
        candidates = np.vstack([uniform, moves])
        at = np.hstack([candidates, np.full((len(candidates), 1), float(t))])
        mean, sd = model.predict(at, return_std=True)
        return mean, sd, candidates

    def state_dict(self) -> dict:
        return {"arms": [list(a) for a in self.arms], "rewards": list(self.rewards)}

    def load_state_dict(self, state: dict) -> None:
        """Take the arms and rewards that ``state_dict`` gave.

        Args:
            state: ``{"arms": …, "rewards": …}``.
        """
        self.arms = [list(a) for a in state["arms"]]
        self.rewards = list(state["rewards"])


class BanditState(NamedTuple):
    """The bandit schedule's state: the partition in use, ``count`` steps of the current round
    with ``total`` their summed batch-mean ``L̂`` (a tensor on the data's device, so that no
    step waits for the device), ``previous`` the last round's mean ``L̂``, and the ``arms``
    (``u`` of each rewarded round) with their ``rewards``."""

    partition: Tensor
    count: int
    total: Tensor | float
    previous: float | None
    arms: tuple[tuple[float, ...], ...]
    rewards: tuple[float, ...]


class GPBanditSchedule:
    """The bandit as a schedule: ``update(state, log_weight)`` adds the step's ``L̂`` to the
    round; at the end of a round of ``every`` updates it rewards the round's partition with the
    improvement of the mean ``L̂`` and moves to the bandit's next proposal. ``start`` is the
    first partition (``tvo.partitions.schedule`` gives it the log schedule of ``beta1``);
    ``options`` go to ``GPBandit``.

    Args:
        K: the number of intervals (at least 2).
        start: the first partition, ``[K + 1]``.
        every: updates per round.
        seed: the seed of the proposals.
        **options (Any): ``GPBandit``'s settings (``beta_min``, ``window``…).
    """

    adaptive = True

    def __init__(self, K: int, start: Tensor, every: int = 100, seed: int = 0, **options):
        self.bandit = GPBandit(K, seed, **options)  # validates K, needs scikit-learn
        self.start = start
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"adapt_every must be an integer ≥ 1, got {every!r}")
        self.K, self.every, self.seed, self.options = K, every, seed, options

    def init(self) -> BanditState:
        return BanditState(self.start, 0, 0.0, None, (), ())

    def update(self, state: BanditState, log_weight: Tensor) -> BanditState:
        """Add the step's ``L̂`` to the round; at its end, reward the partition and move.

        Args:
            state: the schedule's state.
            log_weight: the step's log-weights ``[S, B]``.
        """
        total = state.total + logmeanexp(log_weight.detach().double(), 0).mean()
        count = state.count + 1
        if count < self.every:
            return state._replace(count=count, total=total)
        mean = float(total) / count
        bandit = GPBandit(self.K, self.seed, **self.options)
        bandit.load_state_dict({"arms": state.arms, "rewards": state.rewards})
        if state.previous is not None:
            bandit.observe(state.partition, mean - state.previous)
        arms, rewards = tuple(map(tuple, bandit.arms)), tuple(bandit.rewards)
        return BanditState(bandit.propose(), 0, 0.0, mean, arms, rewards)

    def state_dict(self, state: BanditState) -> dict:
        """The checkpoint's layout (the same as before the schedule had an explicit state).

        Args:
            state: the schedule's state.
        """
        bandit = {"arms": [list(a) for a in state.arms], "rewards": list(state.rewards)}
        return {"bandit": bandit, "total": state.total, "count": state.count,
                "previous": state.previous}  # fmt: skip

    def load_state_dict(self, partition: Tensor, saved: dict) -> BanditState:
        """The state a checkpoint stored.

        Args:
            partition: the partition the checkpoint stored.
            saved: what ``state_dict`` gave.
        """
        arms = tuple(tuple(a) for a in saved["bandit"]["arms"])
        return BanditState(partition.double().cpu(), saved["count"], saved["total"],
                           saved["previous"], arms, tuple(saved["bandit"]["rewards"]))  # fmt: skip

    def __repr__(self) -> str:
        return f"GPBanditSchedule(K={self.K}, every={self.every}, seed={self.seed})"
