"""Annealed importance sampling (Neal 2001) and bidirectional Monte Carlo (Grosse et al. 2015)
along the TVO's geometric path ``π_β ∝ q(z | x)^(1−β) p(x, z)^β`` (docs/maths.md, "Annealed
importance sampling and BDMC").

With ``0 = β_0 < β_1 < … < β_T = 1``: draw ``C`` chains ``z_0 ~ q(·|x)`` per data point, and for
``t = 1 … T`` add ``(β_t − β_{t−1}) ℓ(z_{t−1})`` to each chain's log-weight (float64), then move
``z_t ~ T_t(·|z_{t−1})`` with a kernel that leaves ``π_{β_t}`` invariant (
``kernels``; no move after the last weight, so ``T = 1`` is importance sampling from
``q``). Each chain's weight has expectation ``p(x)``, so ``log p̂(x) = logmeanexp`` over chains is a
stochastic lower bound of ``log p(x)``.

Along a q-path (``qpath < 1``, ``paths``) the increment is
``log π̃_{β_t}(z_{t−1}) − log π̃_{β_{t−1}}(z_{t−1})`` of the power-mean path, whose target is
``p(x, z) e^{−s}`` with ``s`` an importance-sampling estimate of ``log p(x)`` from draws apart
from the chains; ``log p̂(x) = s + logmeanexp`` of the weights.

BDMC: on ``(z, x)`` simulated from the model, ``z`` is an exact posterior sample; AIS run down the
reversed schedule from ``z`` (the same code, ``β`` from 1 to 0) has weights ``w_rev`` with
``E[w_rev] = 1 / p(x)``, so ``−logmeanexp(log w_rev)`` is a stochastic upper bound, and the gap
between the two bounds bounds the error of forward AIS on such data.

Schedules (``annealing_schedule``): ``linear`` and ``log`` from ``tvo.partitions``,
``sigmoid`` (Grosse et al. 2015, used by Wu et al. 2017): ``β_t = (σ(δ(2t/T − 1)) − σ(−δ)) /
(σ(δ) − σ(−δ))`` with ``δ = 4``, or a partition (e.g. a trained TVO run's moments partition)
whose shape is stretched to ``T`` steps; ``adaptive`` (``schedule_for``) spaces the steps
evenly in thermodynamic length ``∫ √Var_{π_β}[ℓ] dβ``, found by a pilot tempered SMC on the data
(``tvo.evaluate.smc.thermodynamic_schedule``; docs/maths.md, "An AIS schedule evenly spaced in
thermodynamic length").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from tvo.evaluate.kernels import Kernel, Point, Target, default_kernel, make_target
from tvo.evaluate.paths import check_qpath
from tvo.evaluate.smc import thermodynamic_schedule
from tvo.models.check import check_data
from tvo.ops import logmeanexp
from tvo.partitions import partition, validate

SCHEDULES = ("sigmoid", "linear", "log")
ADAPTIVE = "adaptive"  # a schedule from a pilot run on the data: schedule_for
PILOT_PARTICLES = 32


def schedule_for(target: Target, kernel: Kernel, num_steps: int,
                 schedule: str | Sequence[float] | Tensor, beta1: float,
                 pilot_particles: int = PILOT_PARTICLES) -> Tensor:  # fmt: skip
    """The schedule ``[T + 1]`` of AIS on ``target``: ``annealing_schedule``, or for
    ``adaptive`` ``tvo.evaluate.smc.thermodynamic_schedule`` from a pilot of ``pilot_particles``
    particles moved by ``kernel``.

    Args:
        target: the annealing path of the batch.
        kernel: the Markov kernel of the walk (and of the pilot).
        num_steps: ``T``.
        schedule: a name of ``SCHEDULES``, ``adaptive``, or a partition used as a shape.
        beta1: the first positive ``β`` of the ``log`` schedule.
        pilot_particles: the pilot's particles per data point (``adaptive``).
    """
    if isinstance(schedule, str) and schedule == ADAPTIVE:
        _check(num_steps=num_steps)
        return thermodynamic_schedule(target, kernel, num_steps, pilot_particles)
    return annealing_schedule(num_steps, schedule, beta1)


def annealing_schedule(
    num_steps: int,
    schedule: str | Sequence[float] | Tensor = "sigmoid",
    beta1: float = 1e-3,
    sharpness: float = 4.0,
) -> Tensor:
    """The ``T + 1 = num_steps + 1`` inverse temperatures ``0 = β_0 < … < β_T = 1``, float64.

    ``schedule`` is ``sigmoid`` (``δ = sharpness``), ``linear``, ``log`` (log-spaced from
    ``beta1``, ``tvo.partitions.partition``), or a partition ``[K + 1]`` used as a shape: the
    ``K`` intervals get ``T / K`` steps each, ``β`` linear inside each (piecewise-linear
    interpolation at ``t / T``; every point of the partition is kept when ``K`` divides ``T``).

    Args:
        num_steps: the number of steps ``T`` (an integer ≥ 1).
        schedule: ``sigmoid``, ``linear``, ``log``, or a partition (an increasing sequence from 0 to
            1) used as the schedule's shape.
        beta1: the first positive ``β`` of the ``log`` schedule.
        sharpness: ``δ`` of the ``sigmoid`` schedule (positive; larger puts more steps near 0 and
            1).
    """
    _check(num_steps=num_steps)
    if not isinstance(schedule, str):
        shape = validate(schedule)
        K = len(shape) - 1
        position = torch.linspace(0, K, num_steps + 1, dtype=torch.float64)
        k = position.floor().clamp(max=K - 1).long()
        beta = shape[k] + (position - k) * (shape[k + 1] - shape[k])
        beta[0], beta[-1] = 0.0, 1.0
        return beta
    if schedule == "sigmoid":
        if not sharpness > 0:
            raise ValueError(f"sharpness must be positive, got {sharpness!r}")
        s = torch.sigmoid(sharpness * torch.linspace(-1, 1, num_steps + 1, dtype=torch.float64))
        beta = (s - s[0]) / (s[-1] - s[0])
        beta[0], beta[-1] = 0.0, 1.0
        return beta
    if schedule not in SCHEDULES:
        raise ValueError(
            f"unknown AIS schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}, "
            f"{ADAPTIVE!r} (with ais or bdmc) or a "
            "partition (a sequence from 0 to 1)"
        )
    return partition(num_steps, schedule, beta1)


def log_mean_stderr(log_weight: Tensor) -> Tensor:
    """The delta-method standard error of ``logmeanexp`` over chains, ``[C, B] → [B]``:
    ``sd_c(w) / (√C · mean_c(w))`` with ``w = exp(log_weight − max)``; NaN for one chain."""
    if log_weight.shape[0] < 2:
        return torch.full_like(log_weight[0], math.nan)
    w = torch.exp(log_weight - log_weight.amax(0, keepdim=True))
    return w.std(0) / (math.sqrt(log_weight.shape[0]) * w.mean(0))


class AISEstimate(NamedTuple):
    """One direction of AIS for ``B`` data points with ``C`` chains each.

    - ``log_px`` ``[B]``, float64: forward, ``logmeanexp`` of the chains' log-weights (a
      stochastic lower bound of ``log p(x)``); backward (BDMC), ``−logmeanexp`` (an upper bound);
    - ``stderr`` ``[B]``: its delta-method standard error over chains (NaN for ``C = 1``);
    - ``log_weight`` ``[C, B]``, float64: each chain's log-weight;
    - ``acceptance`` ``[T − 1, B]``: the fraction of chains that accepted, at each move;
    - ``beta`` ``[T + 1]``: the schedule, in the order walked;
    - ``evaluations``: ``log_joint`` evaluations per data point, ``gradients`` of them with
      ``∇_z`` (HMC).
    """

    log_px: Tensor
    stderr: Tensor
    log_weight: Tensor
    acceptance: Tensor
    beta: Tensor
    evaluations: int
    gradients: int

    def __repr__(self) -> str:  # a summary, not every chain's tensors
        C, B = self.log_weight.shape
        accepted = f"{self.acceptance.mean().item():.2f}" if self.acceptance.numel() else "-"
        return (f"AISEstimate(B={B} points, C={C} chains, T={len(self.beta) - 1} steps; mean "
                f"log_px={self.log_px.mean().item():.3f}, acceptance {accepted})")  # fmt: skip


class BDMCEstimate(NamedTuple):
    """Forward AIS (``lower``) and backward AIS (``upper``) on simulated ``(z, x)``."""

    forward: AISEstimate
    backward: AISEstimate
    x: Tensor
    z: Any

    @property
    def lower(self) -> Tensor:
        return self.forward.log_px

    @property
    def upper(self) -> Tensor:
        return self.backward.log_px

    @property
    def gap(self) -> Tensor:
        """``upper − lower``, ``[N]``: how far (in expectation, at most) AIS is from exact."""
        return self.upper - self.lower

    def __repr__(self) -> str:  # a summary: the means over the N points
        gap = self.gap
        se = gap.std().item() / len(gap) ** 0.5 if len(gap) > 1 else float("nan")
        return (f"BDMCEstimate(N={len(gap)} points; mean lower={self.lower.mean().item():.3f}, "
                f"upper={self.upper.mean().item():.3f}, gap={gap.mean().item():.3f} ± {se:.3f} "
                "(its standard error over the points))")  # fmt: skip


def _check(**counts: int) -> None:
    """Each of ``counts`` (a name and its value) an integer ≥ 1, else a ValueError naming it."""
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")


def anneal(
    target: Target,
    point: Point,
    beta: Tensor,
    kernel: Kernel,
    callback: Callable[[int], None] | None = None,
) -> tuple[Tensor, Tensor, Point]:
    """Walk ``beta`` (increasing: forward AIS; decreasing: the reverse chain of BDMC) from the
    chains at ``point``: for ``t = 1 … T`` add ``log π̃_{β_t}(z_{t−1}) − log π̃_{β_{t−1}}(z_{t−1})``
    on ``target.path`` (geometric: ``(β_t − β_{t−1}) ℓ(z_{t−1})``) to the float64 log-weight,
    then (for ``t < T``) move with ``kernel`` at ``β_t``. Returns the log-weights
    ``[C, B]``, the acceptance rates ``[T − 1, B]`` and the final point. ``callback(t)`` after
    each ``t``."""
    C, B = point.log_p.shape
    log_weight = torch.zeros(C, B, dtype=torch.float64, device=point.log_p.device)
    steps = beta.tolist()
    state = kernel.init(target, point, steps[0]) if len(steps) > 2 else None  # T = 1: no move
    rates = []
    for t in range(1, len(steps)):
        log_weight += target.path.increment(point.log_q, point.log_p, steps[t - 1], steps[t])
        if t < len(steps) - 1:
            state, point, rate = kernel.step(state, target, point, steps[t])
            rates.append(rate.double())
        if callback is not None:
            callback(t)
    acceptance = torch.stack(rates) if rates else log_weight.new_zeros(0, B)
    return log_weight, acceptance, point


@torch.no_grad()
def ais(
    model,
    x: Tensor,
    num_steps: int = 100,
    num_chains: int = 10,
    schedule: str | Sequence[float] | Tensor = "sigmoid",
    kernel: Kernel | None = None,
    *,
    beta1: float = 1e-3,
    qpath: float = 1.0,
    pilot_particles: int = PILOT_PARTICLES,
    callback: Callable[[int], None] | None = None,
    validate: bool = True,
) -> AISEstimate:
    """AIS from ``q(z | x)`` to ``p(z | x)`` for each of ``x``'s ``B`` data points, with
    ``num_chains`` chains each and ``num_steps`` = ``T`` intermediate distributions
    (``annealing_schedule`` of ``schedule`` and ``beta1``) along the geometric path
    (``qpath=1``) or the q-path of that ``q`` in ``[0, 1)`` (``paths``, which
    says how the target's scale is set: ``C`` extra evaluations); ``kernel`` defaults to
    ``default_kernel`` (the one that follows the latent's support).
    Uses the model protocol only. Returns an ``AISEstimate``.

    Args:
        model (GenerativeModel): the model, any object with the protocol's ``sample_guide``,
            ``log_guide`` and ``log_joint``.
        x: the batch ``[B, D]``.
        num_steps: the number ``T`` of annealing steps (an integer ≥ 1; 1 is importance sampling
            from ``q``).
        num_chains: chains per data point, ``C`` (an integer ≥ 1).
        schedule: ``sigmoid``, ``linear``, ``log``, ``adaptive`` (spaced evenly in thermodynamic
            length by a pilot SMC: ``tvo.evaluate.smc.thermodynamic_schedule``), or a partition
            (an increasing sequence from 0 to 1) used as the schedule's shape
            (``annealing_schedule``).
        kernel: the Markov kernel that moves the chains (``tvo.evaluate.kernels``); ``None``:
            ``default_kernel`` of the model.
        beta1: the first positive ``β`` of the ``log`` schedule.
        qpath: the path's ``q`` in ``[0, 1]``: 1 for the geometric path, below 1 for a q-path
            (``paths``).
        pilot_particles: the ``adaptive`` schedule's pilot particles per data point (its
            ``log_joint`` evaluations count in the estimate's).
        callback: called with ``t`` after each step ``t``, e.g. to show progress; ``None``: none.
        validate: refuse ``x`` outside the model's observation support
            (``tvo.models.check.check_data``).
    """
    _check(num_steps=num_steps, num_chains=num_chains)
    qpath = check_qpath(qpath)
    if validate:  # x in the model's observation support (tvo.models.check.check_data)
        check_data(model, x)
    kernel = default_kernel(model, qpath) if kernel is None else kernel
    target = make_target(model, x, kernel, qpath, num_chains)
    beta = schedule_for(target, kernel, num_steps, schedule, beta1, pilot_particles)
    z, log_q = target.sample_guide(num_chains)
    point = target.evaluate(z, log_q)
    return _estimate(target, point, beta, kernel, callback, sign=1.0)


def _estimate(target: Target, point: Point, beta: Tensor, kernel: Kernel, callback,
              sign: float) -> AISEstimate:  # fmt: skip
    """``anneal`` from ``point`` along ``beta``; ``sign`` 1: forward AIS (``log p̂(x)`` is
    ``s + logmeanexp`` of the log-weights, ``s`` the path's offset, 0 on the geometric path),
    −1: reverse (``s − logmeanexp``)."""
    log_weight, acceptance, _ = anneal(target, point, beta, kernel, callback)
    log_px = target.path.offset + sign * logmeanexp(log_weight)
    return AISEstimate(log_px, log_mean_stderr(log_weight), log_weight, acceptance, beta,
                       target.evaluations, target.gradients)  # fmt: skip


def _chains(z, num_chains: int):
    """``z`` ``[N, …]`` (or a tuple of them) repeated for each chain, ``[C, N, …]``."""
    if isinstance(z, tuple | list):
        return tuple(_chains(v, num_chains) for v in z)
    return z.unsqueeze(0).expand(num_chains, *z.shape).contiguous()


@torch.no_grad()
def bdmc(
    model,
    num_data: int,
    num_steps: int = 100,
    num_chains: int = 10,
    schedule: str | Sequence[float] | Tensor = "sigmoid",
    kernel: Kernel | None = None,
    *,
    beta1: float = 1e-3,
    qpath: float = 1.0,
    pilot_particles: int = PILOT_PARTICLES,
    callback: Callable[[int], None] | None = None,
) -> BDMCEstimate:
    """Bidirectional Monte Carlo on ``num_data`` points ``(z, x) ~ p`` simulated with
    ``model.sample``: forward ``ais`` on ``x`` (a stochastic lower bound of each ``log p(x)``)
    and AIS down the same schedule and path (``qpath``; the same scale ``s`` both ways) from the
    exact posterior sample ``z`` (every chain starts there; a stochastic upper bound).
    ``callback(t)`` counts ``2T`` steps in all.

    Args:
        model (GenerativeModel): the model, with ``sample`` (to simulate ``(z, x)``) besides the
            protocol.
        num_data: how many points ``(z, x)`` to simulate, ``N`` (an integer ≥ 1).
        num_steps: the number ``T`` of annealing steps (an integer ≥ 1; 1 is importance sampling
            from ``q``).
        num_chains: chains per data point, ``C`` (an integer ≥ 1).
        schedule: ``sigmoid``, ``linear``, ``log``, ``adaptive`` (spaced evenly in thermodynamic
            length by a pilot SMC: ``tvo.evaluate.smc.thermodynamic_schedule``), or a partition
            (an increasing sequence from 0 to 1) used as the schedule's shape
            (``annealing_schedule``).
        kernel: the Markov kernel that moves the chains (``tvo.evaluate.kernels``); ``None``:
            ``default_kernel`` of the model.
        beta1: the first positive ``β`` of the ``log`` schedule.
        qpath: the path's ``q`` in ``[0, 1]``: 1 for the geometric path, below 1 for a q-path
            (``paths``).
        pilot_particles: the ``adaptive`` schedule's pilot particles per data point (its
            ``log_joint`` evaluations count in the estimate's).
        callback: called with ``t`` after each step, ``t`` from 1 to ``2T`` over both directions;
            ``None``: none.
    """
    _check(num_data=num_data, num_steps=num_steps, num_chains=num_chains)
    qpath = check_qpath(qpath)
    kernel = default_kernel(model, qpath) if kernel is None else kernel
    z, x = model.sample(num_data)
    target = make_target(model, x, kernel, qpath, num_chains)
    beta = schedule_for(target, kernel, num_steps, schedule, beta1, pilot_particles)
    start, log_q = target.sample_guide(num_chains)
    forward = _estimate(target, target.evaluate(start, log_q), beta, kernel, callback, sign=1.0)
    backward_target = Target(model, x, grad=kernel.needs_grad, path=target.path)
    point = backward_target.evaluate(_chains(z, num_chains))
    count = None if callback is None else lambda t: callback(num_steps + t)
    backward = _estimate(backward_target, point, beta.flip(0), kernel, count, sign=-1.0)
    return BDMCEstimate(forward, backward, x, z)
