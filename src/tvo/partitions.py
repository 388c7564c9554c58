"""Partitions ``0 = β_0 < … < β_K = 1`` of the unit interval, and the schedules that move them.

A partition is a 1-D float64 tensor of ``K + 1`` points. Fixed schedules (docs/maths.md,
"Riemann sums, bounds and fixed partitions"):

- ``linear``: ``β_k = k / K``;
- ``log``: ``β_0 = 0`` and ``β_1 … β_K`` log-spaced from ``beta1`` to 1, i.e.
  ``β_k = beta1^((K − k) / (K − 1))``;
- for ``K = 1`` every schedule gives ``[0, 1]``.

Riemann sums over a partition: ``integration_weights`` ``m`` with ``Σ_k m_k g(β_k)`` the
left sum (``TVO_L``), the right sum (``TVO_U``) or their average; ``riemann_sum``.

A *schedule* says where the points are during training. It is two functions of an explicit
state, as in BlackJAX: ``state = schedule.init()`` and ``state = schedule.update(state,
log_weight)`` after every applied step, with that step's ``[S, B]`` log-weights; the partition
in use is ``state.partition``. The state is a plain value (a named tuple of tensors and numbers)
that whoever trains owns and checkpoints; a schedule object holds settings only.

- ``Fixed``: any of the fixed schedules, or a user-given partition; ``update`` returns the
  state unchanged.
- ``Moments`` (Brekelmans et al., ICML 2020): every ``every`` updates the inner points move
  to where the integrand is evenly spaced, ``g(β_k) = g(0) + (k / K)(g(1) − g(0))``, found by
  bisection (``g`` is non-decreasing) from the self-normalised ``ĝ`` of that step's log-weights.
- ``gp-bandit`` (Nguyen et al., NeurIPS 2020): ``tvo.bandit.GPBanditSchedule``.

``schedule`` builds one by name; ``SCHEDULE_SETTINGS`` says which settings each takes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from tvo.bandit import GPBanditSchedule
from tvo.ops import integrand

SCHEDULES = ("log", "linear")
ADAPTIVE_SCHEDULES = ("moments", "gp-bandit")  # gp-bandit: see tvo.bandit
INTEGRATIONS = ("left", "right", "trapz")
# The settings each schedule takes besides K (the others do not apply to it).
SCHEDULE_SETTINGS = {
    "log": ("beta1",),
    "linear": (),
    "moments": ("beta1", "adapt_every"),  # starts from the log schedule of beta1
    "gp-bandit": ("beta1", "adapt_every"),
}


def partition(
    K: int | Sequence[float] | Tensor,
    schedule: str = "log",
    beta1: float = 0.1,
) -> Tensor:
    """The ``K + 1`` points of a partition, as a float64 tensor ``[K + 1]``.

    ``K`` is either the number of intervals (then ``schedule`` and ``beta1`` say where the points
    go) or a user-given sequence of points, which is validated and returned as it is.

    Args:
        K: the number of intervals, or the points ``0 = β_0 < … < β_K = 1`` themselves.
        schedule: ``"log"`` (``β_1 = beta1``, then log-spaced to 1) or ``"linear"``.
        beta1: the first point after 0 of the log schedule, in ``(0, 1)``.

    >>> partition(3, "linear")
    tensor([0.0000, 0.3333, 0.6667, 1.0000], dtype=torch.float64)

    Raises ``ValueError`` naming the problem for ``K < 1``, an unknown schedule, ``beta1`` outside
    ``(0, 1)``, or a sequence that does not rise strictly from 0 to 1.
    """
    if isinstance(K, Tensor) and K.dim() == 0:
        K = K.item()  # a 0-d tensor is a number, not a sequence of points
    if not isinstance(K, numbers.Real) or isinstance(K, bool):
        return validate(K)
    if K != int(K) or K < 1:
        raise ValueError(f"K (the number of intervals) must be an integer ≥ 1, got {K!r}")
    K = int(K)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if isinstance(beta1, Tensor) and beta1.dim() == 0:
        beta1 = beta1.item()
    if isinstance(beta1, numbers.Real) and not isinstance(beta1, bool):
        beta1 = float(beta1)  # numpy's and torch's scalars too
    if not (isinstance(beta1, float) and 0.0 < beta1 < 1.0):
        raise ValueError(f"beta1 must lie strictly between 0 and 1, got {beta1!r}")
    if K == 1:
        return torch.tensor([0.0, 1.0], dtype=torch.float64)
    if schedule == "linear":
        return torch.linspace(0.0, 1.0, K + 1, dtype=torch.float64)
    exponents = torch.linspace(math.log10(beta1), 0.0, K, dtype=torch.float64)
    points = torch.cat([torch.zeros(1, dtype=torch.float64), 10.0**exponents])
    points[-1] = 1.0
    if not bool((points[1:] > points[:-1]).all()):
        raise ValueError(
            f"beta1 = {beta1!r} is so close to 1 that the {K} points of the log schedule from it "
            f"to 1 coincide in float64; choose beta1 farther from 1 (or fewer intervals)"
        )
    return points


def validate(points: Sequence[float] | Tensor) -> Tensor:
    """Check a user-given partition and return it as a float64 tensor ``[K + 1]``.

    Valid: one dimension, at least two points, finite, first point 0, last point 1, strictly
    increasing. Anything else raises ``ValueError`` naming the offending value.

    Args:
        points: the partition's points ``β_0 … β_K``.
    """
    try:
        beta = torch.as_tensor(points, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"a partition must be a sequence of numbers, got {points!r}") from error
    if beta.dim() != 1 or beta.numel() < 2:
        raise ValueError(
            f"a partition must be a 1-D sequence of at least 2 points, got shape {list(beta.shape)}"
        )
    if not torch.isfinite(beta).all():
        raise ValueError(f"a partition must be finite, got {beta.tolist()}")
    if beta[0] != 0.0:
        raise ValueError(f"a partition must start at 0, got first point {beta[0].item()}")
    if beta[-1] != 1.0:
        raise ValueError(f"a partition must end at 1, got last point {beta[-1].item()}")
    steps = beta[1:] - beta[:-1]
    if (steps <= 0).any():
        k = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(
            "a partition must be strictly increasing, got "
            f"β_{k} = {beta[k].item()} followed by β_{k + 1} = {beta[k + 1].item()}"
        )
    return beta.clone()


def invert_integrand(g: Callable[[Tensor], Tensor], K: int, iterations: int = 60) -> Tensor:
    """The partition whose points split ``[g(0), g(1)]`` evenly: ``β_k = g⁻¹(g(0) + (k/K) Δ)``.

    ``g`` maps a 1-D float64 tensor of ``β`` to the (non-decreasing) integrand at each. All
    ``K − 1`` inner points are bisected at once, ``iterations`` halvings (60: below 1e-18).
    Returns the float64 ``[K + 1]`` partition; if ``g`` is flat (``g(1) − g(0)`` below 1e-12
    of its scale) or the points would not rise strictly, the linear schedule.
    """
    ends = g(torch.tensor([0.0, 1.0], dtype=torch.float64))
    spread = float(ends[1] - ends[0])
    linear = partition(K, "linear")
    if K == 1 or not spread > 1e-12 * max(1.0, float(ends.abs().max())):
        return linear
    targets = ends[0] + spread * torch.arange(1, K, dtype=torch.float64) / K
    low, high = torch.zeros(K - 1, dtype=torch.float64), torch.ones(K - 1, dtype=torch.float64)
    for _ in range(iterations):
        middle = (low + high) / 2
        below = g(middle) < targets
        low, high = torch.where(below, middle, low), torch.where(below, high, middle)
    points = torch.cat([low.new_zeros(1), (low + high) / 2, low.new_ones(1)])
    return points if bool((points[1:] > points[:-1]).all()) else linear


def moments(log_weight: Tensor, K: int) -> Tensor:
    """The moments partition from ``[S, B]`` log-weights: ``ĝ(β)`` (``tvo.ops.integrand``) is
    averaged over the batch, in float64.

    Args:
        log_weight: the log-weights ``ℓ`` of a step, ``[S, B]``.
        K: the number of intervals.
    """
    ell = log_weight.detach().to(torch.float64)
    return invert_integrand(lambda beta: integrand(ell, beta).mean(1).cpu(), K)


def integration_weights(partition: Tensor, integration: str = "left") -> Tensor:
    """Weights ``m`` ``[K + 1]`` with ``Σ_k m_k g(β_k)`` the chosen Riemann sum.

    left: ``m_k = Δ_{k+1}`` for ``k < K``, ``m_K = 0`` (a lower bound); right: ``m_0 = 0``,
    ``m_k = Δ_k`` (an upper bound); trapz: their average (not a bound).

    Args:
        partition: the points ``β`` ``[K + 1]``.
        integration: ``"left"``, ``"right"`` or ``"trapz"``.
    """
    if integration not in INTEGRATIONS:
        raise ValueError(
            f"unknown integration {integration!r}: expected one of {', '.join(INTEGRATIONS)}"
        )
    widths = partition[1:] - partition[:-1]
    zero = widths.new_zeros(1)
    left = torch.cat([widths, zero])
    right = torch.cat([zero, widths])
    return {"left": left, "right": right, "trapz": (left + right) / 2}[integration]


def riemann_sum(values: Tensor, partition: Tensor, integration: str = "left") -> Tensor:
    """``Σ_k m_k g(β_k)`` for ``values`` ``g(β_k)`` ``[K + 1, …]`` at the points of ``partition``:
    ``TVO_L`` (left) or ``TVO_U`` (right) when ``g`` is the integrand. Returns ``[…]``.

    Args:
        values: ``g(β_k)`` at each point, ``[K + 1, …]``.
        partition: the points ``β`` ``[K + 1]``.
        integration: ``"left"``, ``"right"`` or ``"trapz"``.
    """
    weights = integration_weights(partition.to(values), integration)
    return torch.tensordot(weights, values, dims=1)


# --- schedules: settings, an initial state, an update ----------------------------------------


class ScheduleState(Protocol):
    """What every schedule's state has: the partition in use, float64 ``[K + 1]``."""

    partition: Tensor


class Schedule(Protocol):
    """``init() → state`` and ``update(state, log_weight) → state``; ``adaptive`` says whether
    ``update`` can move the partition. ``state_dict``/``load_state_dict`` turn a state into the
    plain dict a checkpoint stores (besides the partition) and back."""

    adaptive: bool
    K: int

    def init(self) -> ScheduleState: ...

    def update(self, state, log_weight: Tensor): ...

    def state_dict(self, state) -> dict | None: ...

    def load_state_dict(self, partition: Tensor, saved: dict | None): ...


class FixedState(NamedTuple):
    partition: Tensor


class Fixed:
    """A partition that never moves: ``Fixed(partition(5, "log", 0.1))``.

    Args:
        points: the partition's points (checked by ``validate``).
    """

    adaptive = False

    def __init__(self, points: Tensor | Sequence[float]):
        self.partition = validate(points)

    @property
    def K(self) -> int:
        return self.partition.numel() - 1

    def init(self) -> FixedState:
        return FixedState(self.partition)

    def update(self, state: FixedState, log_weight: Tensor) -> FixedState:
        """The same state: a fixed partition never moves.

        Args:
            state: the schedule's state.
            log_weight: the step's log-weights ``[S, B]`` (unused).
        """
        return state

    def state_dict(self, state: FixedState) -> None:
        """Nothing to keep besides the partition: ``None``.

        Args:
            state: the schedule's state.
        """
        return None

    def load_state_dict(self, partition, saved) -> FixedState:
        """The state of a checkpoint's partition.

        Args:
            partition (Tensor): the partition the checkpoint stored.
            saved (None): what ``state_dict`` gave (``None``).
        """
        return FixedState(validate(partition))

    def __repr__(self) -> str:
        return f"Fixed([{', '.join(f'{b:.4g}' for b in self.partition.tolist())}])"


class MomentsState(NamedTuple):
    partition: Tensor
    count: int  # updates since the partition last moved


class Moments:
    """The moments schedule: starts from the log schedule of ``beta1``; at every ``every``-th
    update the partition moves to ``moments`` of that step's log-weights.

    Args:
        K: the number of intervals.
        beta1: the first point after 0 of the starting log schedule.
        every: updates between moves.
    """

    adaptive = True

    def __init__(self, K: int, beta1: float = 0.1, every: int = 100):
        self.start = partition(K, "log", beta1)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"adapt_every must be an integer ≥ 1, got {every!r}")
        self.K, self.every = int(K), every

    def init(self) -> MomentsState:
        return MomentsState(self.start, 0)

    def update(self, state: MomentsState, log_weight: Tensor) -> MomentsState:
        """Count the update; at every ``every``-th, move to ``moments(log_weight, K)``.

        Args:
            state: the schedule's state.
            log_weight: the step's log-weights ``[S, B]``.
        """
        count = state.count + 1
        if count < self.every:
            return MomentsState(state.partition, count)
        return MomentsState(moments(log_weight, self.K), 0)

    def state_dict(self, state: MomentsState) -> dict:
        """What a checkpoint keeps besides the partition: the count of updates.

        Args:
            state: the schedule's state.
        """
        return {"count": state.count}

    def load_state_dict(self, partition, saved: dict) -> MomentsState:
        """The state a checkpoint stored (earlier versions' are migrated first:
        ``tvo.runs.migrate_checkpoint``).

        Args:
            partition (Tensor): the partition the checkpoint stored.
            saved: what ``state_dict`` gave.
        """
        return MomentsState(validate(partition), saved["count"])

    def __repr__(self) -> str:
        return f"Moments(K={self.K}, every={self.every})"


def schedule(
    name: str, K: int = 5, beta1: float = 0.1, every: int = 100, seed: int = 0
) -> Schedule:
    """The schedule called ``name`` (``log``, ``linear``, ``moments`` or ``gp-bandit``) for ``K``
    intervals; ``beta1`` for those that start from the log schedule, ``every`` (updates between
    moves) and ``seed`` for the adaptive ones.

    Args:
        name: ``log``, ``linear``, ``moments`` or ``gp-bandit``.
        K: the number of intervals.
        beta1: the first point after 0 of the log schedule (the start of the adaptive ones).
        every: updates between moves of an adaptive schedule.
        seed: the seed of ``gp-bandit``'s proposals.
    """
    if name in SCHEDULES:
        return Fixed(partition(K, name, beta1))
    if name == "moments":
        return Moments(K, beta1, every)
    if name == "gp-bandit":
        return GPBanditSchedule(K, partition(K, "log", beta1), every, seed)
    raise ValueError(
        f"unknown schedule {name!r}: expected one of {', '.join(SCHEDULES + ADAPTIVE_SCHEDULES)}"
    )
