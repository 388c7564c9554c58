"""Markov kernels for annealed importance sampling, each leaving one annealed density invariant:

    π̃_β(z) = q(z | x)^(1−β) p(x, z)^β,    log π̃_β = log q + β ℓ,    ℓ = log p(x, z) − log q(z | x)

(docs/maths.md, "Markov kernels"). They need only the model protocol (``sample_guide``,
``log_guide``, ``log_joint``), so any model gets them without writing anything:

- ``HMC``: Hamiltonian Monte Carlo for continuous latents (one tensor ``[C, B, …]``), with
  ``∇_z log π̃_β`` by autograd; the step size, one per data point, adapts towards a target
  acceptance rate as the chains run (Wu et al. 2017's rule, below);
- ``FlipMH``: Metropolis–Hastings for binary latents ``{0, 1}`` (a tensor or a tuple of
  them): flip ``block`` units chosen uniformly at random (a symmetric proposal), accept with
  probability ``min(1, π̃_β(z') / π̃_β(z))``;
- ``IndependentMH``: Metropolis–Hastings with proposals from ``q(z | x)`` itself, accepted
  with probability ``min(1, exp(β (ℓ(z') − ℓ(z))))``: any latent type;
- ``Cycle``: several kernels one after another (each invariant, so their composition is);
- ``SBNSweep``: the one exception to "the protocol only": for the one-layer linear SBN, a
  sweep of single-site flips whose densities are updated incrementally from the SBN's weights
  (at equal time 0.8 to 2.5 nats tighter than ``FlipMH`` on a trained ``linear_1``,
  ``benchmarks/ais_eval.py``); ``default_kernel`` picks it for that model.

A kernel is two functions of an explicit state, as the schedules are: ``state =
kernel.init(target, point)`` and ``state, point, accept = kernel.step(state, target, point,
beta)``, with ``accept`` the fraction of chains whose proposal was accepted, ``[B]``. Shapes:
``C`` chains of ``B`` data points; a chain's state is a ``Point``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from tvo.evaluate.paths import GEOMETRIC, Path, log_scale, per_point
from tvo.models.sbn import SBN


class Point(NamedTuple):
    """The chains' latents ``z`` (``[C, B, …]``, or a tuple of such tensors) with ``log q(z | x)``
    and ``log p(x, z)``, each ``[C, B]``; for gradient-based kernels also ``∇_z log q`` and
    ``∇_z log p`` (shaped like ``z``), else ``None``. Kept apart so that a new ``β`` needs no new
    evaluation."""

    z: Any
    log_q: Tensor
    log_p: Tensor
    grad_q: Tensor | None = None
    grad_p: Tensor | None = None

    @property
    def log_weight(self) -> Tensor:
        """``ℓ = log p(x, z) − log q(z | x)``, ``[C, B]``."""
        return self.log_p - self.log_q

    def log_density(self, beta: float) -> Tensor:
        """``log π̃_β(z) = log q + β ℓ``, ``[C, B]``.

        Args:
            beta: the inverse temperature ``β``.
        """
        return self.log_q + beta * (self.log_p - self.log_q)

    def grad(self, beta: float) -> Tensor:
        """``∇_z log π̃_β(z)``.

        Args:
            beta: the inverse temperature ``β``.
        """
        return self.grad_q + beta * (self.grad_p - self.grad_q)


class Target:
    """The annealing path of one batch ``x`` ``[B, D]``: evaluates points of a model and counts
    the evaluations, per data point (``evaluations``: calls of ``log_joint`` on one chain's
    latents; ``gradients``: how many of them also took ``∇_z``, which costs about two more).

    ``grad=True`` makes every point carry its gradients (for ``HMC``).

    Args:
        model (GenerativeModel): the model, any object with the protocol's ``sample_guide``,
            ``log_guide`` and ``log_joint``.
        x: the batch ``[B, D]``.
        grad: whether every point carries ``∇_z log q`` and ``∇_z log p`` (for ``HMC``).
        path: the annealing path, geometric by default (``tvo.evaluate.paths.Path``).
    """

    def __init__(self, model, x: Tensor, grad: bool = False, path: Path = GEOMETRIC):
        self.model, self.x, self.grad, self.path = model, x, grad, path
        self.evaluations = 0
        self.gradients = 0

    def log_density(self, point: Point, beta) -> Tensor:
        """``log π̃_β`` of the chains at ``point`` on this target's path, ``[C, B]``; ``beta`` a
        float or ``[B]``.

        Args:
            point: the chains, ``[C, B]``.
            beta (float | Tensor): the inverse temperature, a float or ``[B]``.
        """
        return self.path.log_density(point.log_q, point.log_p, beta)

    def grad_log_density(self, point: Point, beta) -> Tensor:
        """``∇_z log π̃_β`` at ``point`` (which must carry its gradients), shaped like ``z``.

        Args:
            point: the chains, with their gradients (made by a target with ``grad=True``).
            beta (float | Tensor): the inverse temperature, a float or ``[B]``.
        """
        w_q, w_p = self.path.grad_weights(point.log_q, point.log_p, beta)
        return (
            _over_event(w_q, point.grad_q) * point.grad_q
            + _over_event(w_p, point.grad_q) * point.grad_p
        )

    def sample_guide(self, num_chains: int) -> tuple[Any, Tensor]:
        """``num_chains`` draws from ``q(z | x)`` and their ``log q``: ``[C, B, …]``, ``[C, B]``.

        Args:
            num_chains: how many draws per data point, ``C``.
        """
        return self.model.sample_guide(self.x, num_chains)

    def evaluate(self, z, log_q: Tensor | None = None) -> Point:
        """The ``Point`` at ``z`` (``log q`` recomputed unless given; with gradients when
        the target was made with ``grad=True``).

        Args:
            z (Tensor | tuple[Tensor, ...]): the latents, ``[C, B, …]`` (or a tuple of such
                tensors).
            log_q: ``log q(z | x)`` ``[C, B]`` if already known (from ``sample_guide``), else
                ``None``.
        """
        if not self.grad:
            if log_q is None:
                log_q = self.model.log_guide(self.x, z)
            log_p = self.model.log_joint(self.x, z)
            self.evaluations += log_p.shape[0]
            return Point(z, log_q.detach(), log_p.detach())
        if not isinstance(z, Tensor) or not z.is_floating_point():
            raise ValueError(
                "gradient-based kernels (HMC) need a continuous latent: one floating-point "
                f"tensor, got {type(z).__name__}; use FlipMH or IndependentMH for discrete latents"
            )
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            log_q = self.model.log_guide(self.x, z)
            log_p = self.model.log_joint(self.x, z)
            (grad_q,) = torch.autograd.grad(log_q.sum(), z, retain_graph=True)
            (grad_p,) = torch.autograd.grad(log_p.sum(), z)
        self.evaluations += log_p.shape[0]
        self.gradients += log_p.shape[0]
        return Point(z.detach(), log_q.detach(), log_p.detach(), grad_q, grad_p)


def make_target(model, x: Tensor, kernel: Kernel, qpath: float, num_chains: int) -> Target:
    """The ``Target`` of ``x`` on the geometric path (``qpath=1``) or on the q-path, whose
    target is scaled by ``num_chains`` fresh draws of ``q``
    (``log_scale``).

    Args:
        model (GenerativeModel): the model, any object with the protocol's ``sample_guide``,
            ``log_guide`` and ``log_joint``.
        x: the batch ``[B, D]``.
        kernel: the kernel that will move the chains (its ``needs_grad`` says whether points carry
            gradients).
        qpath: the path's ``q`` in ``[0, 1]``: 1 for the geometric path, below 1 for a q-path
            (``paths``).
        num_chains: the number of fresh draws of ``q`` that set a q-path's scale (unused on the
            geometric path).
    """
    target = Target(model, x, grad=kernel.needs_grad)
    if qpath < 1:
        target.path = Path(qpath, log_scale(target, num_chains))
    return target


class Kernel(Protocol):
    """``init(target, point, beta) → state`` (``beta``: where the walk starts, 0 forward, 1 for
    BDMC's reverse chains); ``step(state, target, point, beta) → (state, point, accept)`` leaves
    ``π_β`` of ``target.path`` invariant, with ``beta`` a float or one per data point ``[B]``;
    ``needs_grad``: whether points must carry gradients."""

    needs_grad: bool

    def init(self, target: Target, point: Point, beta: float = 0.0) -> Any:
        """The kernel's state for the chains at ``point`` before the walk (``None`` for a
        kernel that keeps none).

        Args:
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains where the walk starts, ``[C, B]``.
            beta: the inverse temperature where the walk starts: 0 for forward AIS, 1 for BDMC's
                reverse chains.
        """
        ...

    def step(
        self, state: Any, target: Target, point: Point, beta: float
    ) -> tuple[Any, Point, Tensor]:
        """One transition at ``beta``: the new state, the new ``Point`` and the fraction of chains
        whose proposal was accepted, ``[B]``.

        Args:
            state: what ``init`` or the previous step returned.
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains now, ``[C, B]``.
            beta: the inverse temperature whose ``π_β`` the step leaves invariant: a float, or one
                per data point ``[B]``.
        """
        ...


def _over_event(weight, like: Tensor):
    """A float as it is; a ``[B]`` tensor as ``[1, B, 1, …]``, a ``[C, B]`` one as
    ``[C, B, 1, …]``, to broadcast over ``like`` ``[C, B, …]``."""
    if not isinstance(weight, Tensor):
        return weight
    if weight.dim() == 1:
        return per_point(weight, like)
    return weight.to(like.dtype).reshape(*weight.shape, *[1] * (like.dim() - 2))


def _leaves(z) -> tuple[Tensor, ...]:
    return tuple(z) if isinstance(z, tuple | list) else (z,)


def _rebuild(like, leaves: tuple[Tensor, ...]):
    return tuple(leaves) if isinstance(like, tuple | list) else leaves[0]


def _where(mask: Tensor, new: Tensor | None, old: Tensor | None) -> Tensor | None:
    """``new`` where ``mask`` (``[C, B]``) is true, else ``old``, broadcast over ``new``'s event
    dims."""
    if new is None:
        return None
    return torch.where(mask.reshape(*mask.shape, *[1] * (new.dim() - mask.dim())), new, old)


def select(mask: Tensor, new: Point, old: Point) -> Point:
    """The chains of ``new`` where ``mask`` ``[C, B]`` is true, the others of ``old``.

    Args:
        mask: ``[C, B]`` booleans, true for the chains to take from ``new``.
        new: the proposed chains.
        old: the current chains.
    """
    z = _rebuild(new.z, tuple(_where(mask, a, b) for a, b in zip(_leaves(new.z), _leaves(old.z))))
    return Point(z, *(_where(mask, a, b) for a, b in zip(new[1:], old[1:])))


def metropolis(log_ratio: Tensor) -> Tensor:
    """Accept each proposal with probability ``min(1, exp(log_ratio))``, ``[C, B]`` booleans; a
    non-finite ratio (a proposal whose density overflowed) is rejected.

    Args:
        log_ratio: the log acceptance ratio of each proposal, ``[C, B]``.
    """
    u = torch.rand(log_ratio.shape, dtype=log_ratio.dtype, device=log_ratio.device)
    return (torch.log(u) < log_ratio) & torch.isfinite(log_ratio)


class HMCState(NamedTuple):
    """Per data point: the leapfrog step size ``[B]`` (relative to ``scale``), the moving average
    of the acceptance rate ``[B]`` that adapts it, and the per-dimension scale ``[B, …]`` (one
    latent's shape)."""

    step_size: Tensor
    acceptance: Tensor
    scale: Tensor | None = None


def guide_scale(target: Target, point: Point) -> Tensor:
    """A per-dimension scale of the latent, ``[B, …]``: the guide's standard deviation where the
    model gives one (``model.guide(x).stddev`` of a ``tvo.Model``), else the spread of the
    chains at the start (``C ≥ 2``), else ones. Floored at ``1e-3`` of its largest entry.

    Args:
        target: the annealing path of the batch, which evaluates (and counts) points.
        point: the chains where the walk starts, ``[C, B]``.
    """
    z = point.z
    scale = None
    guide = getattr(target.model, "guide", None)
    if callable(guide):
        try:
            scale = guide(target.x).stddev.detach()
        except (NotImplementedError, AttributeError, TypeError, RuntimeError):
            scale = None
        if scale is not None and tuple(scale.shape) != tuple(z.shape[1:]):
            scale = None
    if scale is None and z.shape[0] >= 2:
        scale = z.std(0)
    if scale is None or not torch.isfinite(scale).all():
        scale = torch.ones_like(z[0])
    floor = 1e-3 * scale.flatten(1).amax(1).reshape(-1, *[1] * (scale.dim() - 1))
    return torch.maximum(scale.to(z.dtype), floor).clamp_min(1e-12)


def _chains_factor(z: Tensor) -> Tensor:
    """A Cholesky factor ``[B, d, d]`` of the chains' covariance of 1-D latents ``[C, B, d]``,
    shrunk by a tenth towards its diagonal (positive definite even when resampling has left
    fewer distinct chains than dimensions); the diagonal's square root where that fails."""
    centred = z - z.mean(0)
    cov = torch.einsum("cbi,cbj->bij", centred, centred) / (z.shape[0] - 1)
    variance = cov.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12)
    cov = 0.9 * cov + torch.diag_embed(0.1 * variance)
    factor, info = torch.linalg.cholesky_ex(cov)
    return torch.where((info == 0)[:, None, None], factor, torch.diag_embed(variance.sqrt()))


@dataclass(frozen=True)
class HMC:
    """Hamiltonian Monte Carlo (Neal 2011) on ``log π̃_β``: ``moves`` transitions per step,
    each ``leapfrog_steps`` leapfrog steps of per-dimension size ``ε_b · u · s_b`` per data point
    then a Metropolis test on the Hamiltonian, with fresh momenta each time.

    **Scale** ``s_b`` ``[B, …]``: ``scale="guide"`` (``guide_scale``) takes the guide's
    standard deviation where the model has one; leapfrog with step ``ε s`` and unit momenta is HMC
    with the diagonal mass matrix ``diag(1 / s²)``. ``"chains"`` uses the chains' spread per
    dimension at each step, ``"chains-full"`` a Cholesky factor of their covariance (1-D latents;
    each makes a chain's move depend on the others' states), ``"none"`` the identity.

    **Jitter** ``u ~ U(1 − jitter, 1 + jitter)``, drawn per data point and move independently of
    the state: a fixed trajectory length can return a Gaussian's chains near where they started
    (Neal 2011, section 5.4.5); a random one cannot.

    **Warm-up.** Before the walk, ``warmup`` transitions on a copy of the chains at the walk's
    first ``β`` (where they are exact draws, so the copy stays in place) tune ``ε`` by dual
    averaging (Hoffman & Gelman 2014, algorithm 5: ``μ = log 10 ε₀``, ``γ = 0.05``, ``t₀ = 10``,
    ``κ = 0.75``) towards ``target_acceptance``, on the mean Metropolis probability over the
    chains; the copy is then dropped (its cost is counted in ``Target.gradients``).

    **During the walk** (``adapt=True``), Wu et al. 2017's rule: ``a ← 0.9 a + 0.1 ·
    (fraction accepted)``, ``ε ← 1.02 ε`` above ``target_acceptance``, ``0.98 ε`` below, in
    ``[min_step_size, max_step_size]``. A step size then depends on its chains' past, which makes
    them slightly dependent; ``adapt=False`` and ``warmup=0`` keep ``ε`` fixed (and AIS exactly
    unbiased). Cost: ``moves · leapfrog_steps`` gradient evaluations per step.

    Measured (``benchmarks/ais_eval.py --hmc-study``; LinearGaussian(3, 5), untrained guide,
    8 points, 32 chains, T = 1000): the mean standard error over chains is 0.033 with exact
    transitions, 0.077 with the old kernel (``ε₀ = 0.05``, identity mass, 10 leapfrog steps, no
    jitter or warm-up), 0.054 with jitter and 10 leapfrog steps, 0.052 with 20, and 0.039–0.044
    (4 seeds) with the default, two moves of 5 steps each (the same 10 gradients per step):
    fresh momenta mix better than a longer trajectory. The guide's scale and the chains' full
    covariance changed it by less than the spread between seeds on that model.

    Attributes:
        step_size: the initial leapfrog step size ``ε₀`` (relative to the scale), for every data
            point.
        leapfrog_steps: leapfrog steps per transition (an integer ≥ 1).
        target_acceptance: the acceptance rate that the warm-up and the adaptation aim at, in ``(0,
            1)``.
        adapt: whether ``ε`` adapts during the walk (Wu et al. 2017's rule).
        warmup: dual-averaging transitions before the walk (0: none).
        moves: transitions per step, each with fresh momenta (an integer ≥ 1).
        scale: the per-dimension scale: ``guide``, ``chains``, ``chains-full`` or ``none``.
        jitter: the half-width of the random factor ``u ~ U(1 − jitter, 1 + jitter)`` on the step
            size (0: none).
        increase: the factor on ``ε`` when the moving acceptance rate is above
            ``target_acceptance``.
        decrease: the factor on ``ε`` when it is below.
        min_step_size: the smallest ``ε`` the adaptation may reach.
        max_step_size: the largest ``ε`` the adaptation may reach.
    """

    step_size: float = 0.5
    leapfrog_steps: int = 5
    target_acceptance: float = 0.65
    adapt: bool = True
    warmup: int = 20
    moves: int = 2
    scale: str = "guide"
    jitter: float = 0.5
    increase: float = 1.02
    decrease: float = 0.98
    min_step_size: float = 1e-4
    max_step_size: float = 5.0
    needs_grad = True

    def __post_init__(self):
        if not (isinstance(self.leapfrog_steps, int) and self.leapfrog_steps >= 1):
            raise ValueError(f"leapfrog_steps must be an integer ≥ 1, got {self.leapfrog_steps!r}")
        if not (isinstance(self.moves, int) and self.moves >= 1):
            raise ValueError(f"moves must be an integer ≥ 1, got {self.moves!r}")
        if not (isinstance(self.warmup, int) and self.warmup >= 0):
            raise ValueError(f"warmup must be an integer ≥ 0, got {self.warmup!r}")
        if not self.step_size > 0:
            raise ValueError(f"step_size must be positive, got {self.step_size!r}")
        if not 0 < self.target_acceptance < 1:
            raise ValueError(
                f"target_acceptance must lie in (0, 1), got {self.target_acceptance!r}"
            )
        if self.scale not in ("guide", "chains", "chains-full", "none"):
            raise ValueError(f"scale must be 'guide', 'chains' or 'none', got {self.scale!r}")

    def init(self, target: Target, point: Point, beta=0.0) -> HMCState:
        """The kernel's state for the chains at ``point`` before the walk (the step size per data
        point, after the warm-up, and the scale; a ``ValueError`` for a model without
        ``has_rsample``).

        Args:
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains where the walk starts, ``[C, B]``.
            beta (float): the inverse temperature where the walk starts (and the warm-up runs): 0
                for forward AIS, 1 for BDMC's reverse chains.
        """
        if not getattr(target.model, "has_rsample", False):
            raise ValueError(
                f"HMC needs continuous latents, and {type(target.model).__name__} has "
                "has_rsample=False; use FlipMH or IndependentMH for discrete latents"
            )
        B = point.log_p.shape[1]
        like = point.log_p.new_ones(B)
        scale = guide_scale(target, point) if self.scale != "none" else None
        state = HMCState(self.step_size * like, self.target_acceptance * like, scale)
        if self.warmup:
            state = self._warm_up(state, target, point, beta)
        return state

    def _warm_up(self, state: HMCState, target: Target, point: Point, beta) -> HMCState:
        """Dual averaging of ``log ε`` per data point over ``warmup`` steps on a copy of the
        chains (Hoffman & Gelman 2014, algorithm 5); the chains themselves do not move."""
        mu = torch.log(10 * state.step_size)
        log_eps, log_bar, h_bar = torch.log(state.step_size), torch.zeros_like(mu), 0 * mu
        t0, gamma, kappa = 10.0, 0.05, 0.75
        for t in range(1, self.warmup + 1):
            state = state._replace(step_size=log_eps.exp())
            point, probability, _ = self._move(state, target, point, beta)
            h_bar = (1 - 1 / (t + t0)) * h_bar + (self.target_acceptance - probability.mean(0)) / (
                t + t0
            )
            log_eps = (mu - t**0.5 / gamma * h_bar).clamp(
                math.log(self.min_step_size), math.log(self.max_step_size)
            )
            weight = t**-kappa
            log_bar = weight * log_eps + (1 - weight) * log_bar
        return state._replace(step_size=log_bar.exp())

    def _move(self, state: HMCState, target: Target, point: Point, beta):
        """One HMC transition: the new point, each chain's Metropolis probability ``[C, B]``
        and whether it accepted."""
        z0 = point.z
        size = state.step_size
        if self.jitter:  # a random step length, independent of the state: breaks periodicity
            size = size * (1 + self.jitter * (2 * torch.rand_like(size) - 1))
        eps = per_point(size, z0)
        factor = state.scale  # z = factor · u: leapfrog in u, where the mass is the identity
        if factor is None:
            up, down = (lambda v: v), (lambda v: v)
        elif factor.dim() == z0.dim():  # a Cholesky factor [B, d, d] of 1-D latents
            up = lambda v: torch.einsum("bij,cbj->cbi", factor, v)  # noqa: E731
            down = lambda v: torch.einsum("bji,cbj->cbi", factor, v)  # noqa: E731
        else:
            up = down = lambda v: factor.unsqueeze(0) * v
        momentum0 = torch.randn_like(z0)
        momentum = momentum0 + 0.5 * eps * down(target.grad_log_density(point, beta))
        z, new = z0, point
        for i in range(self.leapfrog_steps):
            z = z + eps * up(momentum)
            new = target.evaluate(z)
            last = i == self.leapfrog_steps - 1
            momentum = momentum + (0.5 if last else 1.0) * eps * down(
                target.grad_log_density(new, beta)
            )

        def kinetic(m):
            return 0.5 * m.pow(2).flatten(2).sum(-1)

        log_ratio = (target.log_density(new, beta) - kinetic(momentum)) - (
            target.log_density(point, beta) - kinetic(momentum0)
        )
        accepted = metropolis(log_ratio)
        probability = torch.where(torch.isfinite(log_ratio), log_ratio.clamp(max=0).exp(), 0.0)
        return select(accepted, new, point), probability, accepted

    def step(self, state: HMCState, target: Target, point: Point, beta):
        """One transition at ``beta``: the new state, the new ``Point`` and the fraction of chains
        whose proposal was accepted, ``[B]``, the mean over the ``moves``; the step size adapts
        when ``adapt``.

        Args:
            state: the step sizes, acceptance averages and scale (``HMCState``).
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains now, ``[C, B]``.
            beta (float | Tensor): the inverse temperature whose ``π_β`` the step leaves invariant:
                a float, or one per data point ``[B]``.
        """
        if self.scale == "chains" and point.z.shape[0] >= 4:
            state = state._replace(scale=point.z.std(0).clamp_min(1e-6))
        if (
            self.scale == "chains-full"
            and point.z.shape[0] > point.z.shape[-1]
            and point.z.dim() == 3
        ):
            state = state._replace(scale=_chains_factor(point.z))
        rates = []
        for _ in range(self.moves):
            point, _, accepted = self._move(state, target, point, beta)
            rates.append(accepted.to(state.acceptance.dtype).mean(0))
        rate = torch.stack(rates).mean(0)
        if self.adapt:
            average = 0.9 * state.acceptance + 0.1 * rate
            factor = torch.where(average > self.target_acceptance, self.increase, self.decrease)
            size = (state.step_size * factor).clamp(self.min_step_size, self.max_step_size)
            state = state._replace(step_size=size, acceptance=average)
        return state, point, rate


@dataclass(frozen=True)
class FlipMH:
    """Metropolis–Hastings for binary latents: flip ``block`` of the ``N`` units (all layers
    together) chosen uniformly at random without replacement; the proposal is symmetric, so the
    acceptance probability is ``min(1, π̃_β(z') / π̃_β(z))``. ``block=1`` is the single-site
    (Metropolised Gibbs) move. One evaluation per step.

    Attributes:
        block: how many binary units each proposal flips (an integer ≥ 1; 1: single-site).
    """

    block: int = 1
    needs_grad = False

    def __post_init__(self):
        if not (isinstance(self.block, int) and self.block >= 1):
            raise ValueError(f"block must be an integer ≥ 1, got {self.block!r}")

    def init(self, target: Target, point: Point, beta: float = 0.0) -> None:
        """The kernel's state for the chains at ``point`` before the walk (none: ``None``; a
        ``ValueError`` for latents that are not binary).

        Args:
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains where the walk starts, ``[C, B]``.
            beta: the inverse temperature where the walk starts: 0 for forward AIS, 1 for BDMC's
                reverse chains.
        """
        if not all(((leaf == 0) | (leaf == 1)).all() for leaf in _leaves(point.z)):
            raise ValueError(
                f"FlipMH needs binary latents (values 0 and 1), and {type(target.model).__name__}"
                "'s are not: use HMC for continuous latents, IndependentMH for any"
            )
        return None

    def step(self, state, target: Target, point: Point, beta: float):
        """One transition at ``beta``: the new state, the new ``Point`` and the fraction of chains
        whose proposal was accepted, ``[B]``.

        Args:
            state (None): unused (``init`` returns ``None``).
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains now, ``[C, B]``.
            beta: the inverse temperature whose ``π_β`` the step leaves invariant: a float, or one
                per data point ``[B]``.
        """
        leaves = _leaves(point.z)
        C, B = point.log_p.shape
        flat = torch.cat([leaf.reshape(C, B, -1) for leaf in leaves], -1)  # [C, B, N]
        N = flat.shape[-1]
        if self.block > N:
            raise ValueError(f"FlipMH block {self.block} is more than the {N} binary units")
        if self.block == 1:
            site = torch.randint(N, (C, B, 1), device=flat.device)
        else:
            site = torch.rand(flat.shape, device=flat.device).topk(self.block, -1).indices
        mask = torch.zeros_like(flat).scatter_(-1, site, 1.0)
        flipped = flat + mask * (1 - 2 * flat)
        pieces = torch.split(flipped, [leaf[0, 0].numel() for leaf in leaves], -1)
        z = _rebuild(point.z, tuple(p.reshape(leaf.shape) for p, leaf in zip(pieces, leaves)))
        new = target.evaluate(z)
        accepted = metropolis(target.log_density(new, beta) - target.log_density(point, beta))
        return state, select(accepted, new, point), accepted.to(flat.dtype).mean(0)


@dataclass(frozen=True)
class IndependentMH:
    """Metropolis–Hastings with independent proposals ``z' ~ q(z | x)``: the ratio
    ``π̃_β(z') q(z) / (π̃_β(z) q(z'))`` is ``exp(β (ℓ(z') − ℓ(z)))``. Any latent type; one
    evaluation per step. Mixes well at small ``β``, poorly near ``β = 1`` where ``q`` is far
    from the posterior."""

    needs_grad = False

    def init(self, target: Target, point: Point, beta: float = 0.0) -> None:
        """The kernel's state for the chains at ``point`` before the walk (none: ``None``).

        Args:
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains where the walk starts, ``[C, B]``.
            beta: the inverse temperature where the walk starts: 0 for forward AIS, 1 for BDMC's
                reverse chains.
        """
        return None

    def step(self, state, target: Target, point: Point, beta: float):
        """One transition at ``beta``: the new state, the new ``Point`` and the fraction of chains
        whose proposal was accepted, ``[B]``.

        Args:
            state (None): unused (``init`` returns ``None``).
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains now, ``[C, B]``.
            beta: the inverse temperature whose ``π_β`` the step leaves invariant: a float, or one
                per data point ``[B]``.
        """
        z, log_q = target.sample_guide(point.log_p.shape[0])
        new = target.evaluate(z, log_q)
        if target.path.geometric:
            accepted = metropolis(per_point(beta, new.log_q) * (new.log_weight - point.log_weight))
        else:  # π̃(z') q(z) / (π̃(z) q(z'))
            accepted = metropolis(target.log_density(new, beta) - new.log_q
                                  - target.log_density(point, beta) + point.log_q)  # fmt: skip
        return state, select(accepted, new, point), accepted.to(point.log_p.dtype).mean(0)


class Cycle:
    """The kernels one after another at the same ``β``; ``accept`` is their mean.

    Args:
        *kernels: the kernels, applied in this order (at least one).
    """

    def __init__(self, *kernels: Kernel):
        if not kernels:
            raise ValueError("Cycle needs at least one kernel")
        self.kernels = kernels
        self.needs_grad = any(k.needs_grad for k in kernels)

    def init(self, target: Target, point: Point, beta: float = 0.0) -> tuple:
        """The kernel's state for the chains at ``point`` before the walk (a tuple of each kernel's
        state).

        Args:
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains where the walk starts, ``[C, B]``.
            beta: the inverse temperature where the walk starts: 0 for forward AIS, 1 for BDMC's
                reverse chains.
        """
        return tuple(k.init(target, point, beta) for k in self.kernels)

    def step(self, state: tuple, target: Target, point: Point, beta: float):
        """One transition at ``beta``: the new state, the new ``Point`` and the fraction of chains
        whose proposal was accepted, ``[B]``, the mean over the kernels.

        Args:
            state: each kernel's state, in order (from ``init``).
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains now, ``[C, B]``.
            beta: the inverse temperature whose ``π_β`` the step leaves invariant: a float, or one
                per data point ``[B]``.
        """
        states, rates = [], []
        for kernel, s in zip(self.kernels, state):
            s, point, rate = kernel.step(s, target, point, beta)
            states.append(s)
            rates.append(rate)
        return tuple(states), point, torch.stack(rates).mean(0)

    def __repr__(self) -> str:
        return f"Cycle({', '.join(map(repr, self.kernels))})"


class SweepState(NamedTuple):
    """What a sweep reuses for a batch ``x``: the guide's logits ``a`` and ``x W``, ``[B, H]``,
    and the decoder's weight ``Wᵀ`` ``[H, D]`` laid out by unit (fixed while AIS runs)."""

    guide_logits: Tensor
    x_weight: Tensor
    weight: Tensor


class SBNSweep:
    """For the one-layer linear SBN (``linear_1``): a systematic sweep of single-site flips over
    all ``H`` units in turn, each accepted with probability ``min(1, π̃_β(z') / π̃_β(z))`` (the
    move of ``FlipMH`` with ``block=1``), with the change of ``log π̃_β`` computed
    incrementally: with ``a`` the guide's logits, ``c`` the prior's, decoder logits
    ``l = W (2z − 1) + b`` and ``s = 1 − 2 z_h`` (+1 for a flip to 1),

        Δ = s ((1 − β) a_h + β c_h + 2β (xᵀW)_h) − β Σ_d [softplus(l_d + 2 s W_dh) − softplus(l_d)]

    so a unit costs one pass over the ``[C, B, D]`` logits instead of a whole evaluation, and a
    sweep about as much as a few dozen evaluations (benchmarks/ais_eval.py measures it). The
    point is evaluated afresh after each sweep (one ``log_joint`` evaluation), so rounding never
    accumulates in the weights. Uses the SBN's parameters, not only the protocol.
    """

    needs_grad = False

    @staticmethod
    def applies(model) -> bool:
        """Whether ``model`` is a one-layer SBN with an affine decoder.

        Args:
            model (GenerativeModel): any model (an ``SBN`` or not).
        """
        return isinstance(model, SBN) and len(model.latents) == 1 and model.hidden == ()

    def init(self, target: Target, point: Point, beta: float = 0.0) -> SweepState:
        """The kernel's state for the chains at ``point`` before the walk (the guide's logits and
        the decoder's weights for the batch; a ``ValueError`` for another model or a q-path).

        Args:
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains where the walk starts, ``[C, B]``.
            beta: the inverse temperature where the walk starts: 0 for forward AIS, 1 for BDMC's
                reverse chains.
        """
        model, x = target.model, target.x
        if not self.applies(model):
            raise ValueError(f"SBNSweep needs a one-layer linear SBN, got {type(model).__name__}")
        if not target.path.geometric:
            raise ValueError(f"SBNSweep follows the geometric path only, not the q-path "
                             f"q = {target.path.q}: use flip or gibbs")  # fmt: skip
        guide_logits = model.encoders[0](model.guide_input(x))  # [B, H]
        last = model.decoders[0][-1]
        return SweepState(guide_logits, x @ last.weight, last.weight.T.contiguous())

    def step(self, state: SweepState, target: Target, point: Point, beta: float):
        """One transition at ``beta``: the new state, the new ``Point`` and the fraction of chains
        whose proposal was accepted, ``[B]`` (the mean over the chains of the fraction of units
        flipped).

        Args:
            state: the batch's logits and weights (``SweepState``).
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains now, ``[C, B]``.
            beta: the inverse temperature whose ``π_β`` the step leaves invariant: a float, or one
                per data point ``[B]``.
        """
        model = target.model
        last = model.decoders[0][-1]
        (z,) = point.z
        units = z.movedim(-1, 0).contiguous()  # [H, C, B]: one unit's values are contiguous
        weight = state.weight  # [H, D]
        logits = (2 * z - 1) @ weight + last.bias  # [C, B, D]
        softplus = F.softplus(logits).sum(-1)  # [C, B]
        b = beta.to(z.dtype).unsqueeze(-1) if isinstance(beta, Tensor) else beta  # [B, 1] or float
        coefficient = ((1 - b) * state.guide_logits + b * model.prior_logits
                       + 2 * b * state.x_weight).T.contiguous()  # [H, B]  # fmt: skip
        log_u = torch.rand(units.shape, dtype=z.dtype, device=z.device).log_()
        accepted = torch.zeros_like(softplus)
        for h in range(units.shape[0]):
            sign = 1 - 2 * units[h]  # [C, B]
            proposed = torch.addcmul(logits, (2 * sign).unsqueeze(-1), weight[h])
            proposed_softplus = F.softplus(proposed).sum(-1)
            delta = sign * coefficient[h] + beta * (softplus - proposed_softplus)
            flip = log_u[h] < delta
            units[h] += flip * sign
            logits = torch.where(flip.unsqueeze(-1), proposed, logits)
            softplus = torch.where(flip, proposed_softplus, softplus)
            accepted += flip
        new = target.evaluate((units.movedim(0, -1),))
        return state, new, (accepted / units.shape[0]).mean(0)

    def __repr__(self) -> str:
        return "SBNSweep()"


# --- the latent's support, and kernels for binary and categorical (one-hot) latents ------------

BINARY, ONE_HOT, CONTINUOUS, OTHER = "binary", "one-hot", "continuous", "other"


def _kind_of_constraint(constraint) -> str | None:
    """The kind of one latent's ``torch.distributions`` support, or ``None`` if not known."""
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    if constraint is constraints.one_hot:
        return ONE_HOT
    if constraint is constraints.boolean:
        return BINARY
    if constraint in (constraints.real, constraints.positive) or isinstance(
        constraint, constraints.interval | constraints.greater_than
    ):
        return CONTINUOUS
    return None


def _kind_of_draws(leaf: Tensor) -> str:
    """The kind of one latent from draws ``[N, …]``: floating values other than 0 and 1 are
    continuous; 0/1 values whose last axis (of length ≥ 2) always sums to 1 are one-hot; other
    0/1 values binary; anything else (integer indices, say) ``other``."""
    if not leaf.is_floating_point():
        return OTHER
    if not ((leaf == 0) | (leaf == 1)).all():
        return CONTINUOUS
    if leaf.dim() >= 2 and leaf.shape[-1] >= 2 and (leaf.sum(-1) == 1).all():
        return ONE_HOT
    return BINARY


def latent_kinds(model) -> tuple[str, ...]:
    """The kind of each part of ``model``'s latent (one for a tensor, one per tensor of a tuple):
    ``binary``, ``one-hot``, ``continuous`` or ``other``. From the prior's ``support`` for a
    ``tvo.Model`` whose prior declares one, else from 16 draws of ``model.sample`` (taken
    inside ``torch.random.fork_rng``, so the caller's random stream does not move).

    Args:
        model (GenerativeModel): the model (a ``tvo.Model`` or any object with ``sample``).
    """
    from tvo.models.base import Model

    if isinstance(model, Model):
        try:
            kind = _kind_of_constraint(model.prior().support)
        except NotImplementedError:
            kind = None
        if kind is not None:
            return (kind,)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        z, _ = model.sample(16)
    return tuple(_kind_of_draws(leaf) for leaf in _leaves(z))


def describe_kinds(kinds: tuple[str, ...]) -> str:
    """``binary``, ``one-hot`` …, or ``a product of binary and one-hot parts``.

    Args:
        kinds: the kinds, as ``latent_kinds`` gives them.
    """
    distinct = sorted(set(kinds))
    if len(kinds) == 1 or len(distinct) == 1:
        return distinct[0]
    return f"a product of {' and '.join(distinct)} parts"


class _Sites:
    """The discrete sites of a latent: each binary unit (2 values) and each one-hot variable
    (``K`` values) of every binary or one-hot part; continuous parts are left alone."""

    def __init__(self, z, kinds: tuple[str, ...]):
        self.sites = []  # (part, index of the unit or variable, number of values)
        for part, (leaf, kind) in enumerate(zip(_leaves(z), kinds)):
            event = leaf[0, 0]
            if kind == BINARY:
                self.sites += [(part, i, 2) for i in range(event.numel())]
            elif kind == ONE_HOT:
                K = event.shape[-1]
                self.sites += [(part, i, K) for i in range(event.numel() // K)]
        if not self.sites:
            raise ValueError("no binary or one-hot latent to move")

    def pick(self, device) -> tuple[int, int, int]:
        """A site chosen uniformly at random (one for all chains, so the kernel's choice does
        not depend on the state: a random-scan kernel)."""
        return self.sites[int(torch.randint(len(self.sites), (), device=device))]

    @staticmethod
    def moved(z, kinds, site, shift: Tensor):
        """``z`` with the site's value moved by ``shift`` ``[…, C, B]`` (in ``1 … K−1``): a
        binary unit flipped, a one-hot variable's category ``c`` set to ``(c + shift) mod K``.
        ``shift`` may have leading dims (candidates), which the result gets too."""
        part, index, K = site
        leaves = list(_leaves(z))
        leaf = leaves[part]
        C_B = shift.shape
        if kinds[part] == BINARY:
            flat = leaf.reshape(*C_B, -1).clone()
            flat[..., index] = 1 - flat[..., index]
        else:
            flat = leaf.reshape(*C_B, -1, K).clone()
            category = (flat[..., index, :].argmax(-1) + shift) % K
            flat[..., index, :] = F.one_hot(category, K).to(flat.dtype)
        leaves[part] = flat.reshape(leaf.shape)
        return _rebuild(z, tuple(leaves))


def _stack(z, num: int):
    """``z`` ``[C, B, …]`` repeated ``num`` times, ``[num, C, B, …]``."""
    return _rebuild(z, tuple(leaf.expand(num, *leaf.shape) for leaf in _leaves(z)))


def _flatten(z):
    """``[K, C, B, …]`` → ``[K·C, B, …]``."""
    return _rebuild(z, tuple(leaf.reshape(-1, *leaf.shape[2:]) for leaf in _leaves(z)))


@dataclass(frozen=True)
class DiscreteGibbs:
    """Random-scan Gibbs for binary and categorical (one-hot) latents, and their products: at each
    step one site (a binary unit or a one-hot variable with ``K`` values, chosen uniformly, the
    same for all chains) is drawn afresh from its conditional under ``π̃_β``, which needs the
    ``K − 1`` values it does not hold (``K − 1`` evaluations; the current one is known). For a
    latent with one categorical variable (a mixture model) each step is an exact draw of
    ``π_β``. ``accept``: the fraction of chains whose value changed. Continuous parts of a
    product are not moved (``Cycle`` it with a kernel that moves them)."""

    needs_grad = False

    def init(self, target: Target, point: Point, beta: float = 0.0) -> tuple[str, ...]:
        """The kernel's state for the chains at ``point`` before the walk (the kind of each part of
        the latent, ``latent_kinds``; a ``ValueError`` for a latent without a binary or one-hot
        part).

        Args:
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains where the walk starts, ``[C, B]``.
            beta: the inverse temperature where the walk starts: 0 for forward AIS, 1 for BDMC's
                reverse chains.
        """
        kinds = latent_kinds(target.model)
        _Sites(point.z, kinds)  # a latent without a discrete part: say so now
        return kinds

    def step(self, kinds, target: Target, point: Point, beta):
        """One transition at ``beta``: the new state, the new ``Point`` and the fraction of chains
        whose proposal was accepted, ``[B]`` (here the fraction whose value changed).

        Args:
            kinds (tuple[str, ...]): the state, the kind of each part of the latent (from ``init``).
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains now, ``[C, B]``.
            beta (float | Tensor): the inverse temperature whose ``π_β`` the step leaves invariant:
                a float, or one per data point ``[B]``.
        """
        sites = _Sites(point.z, kinds)
        site = sites.pick(point.log_p.device)
        K = site[2]
        C, B = point.log_p.shape
        shift = torch.arange(1, K, device=point.log_p.device).reshape(-1, 1, 1).expand(K - 1, C, B)
        candidates = _Sites.moved(_stack(point.z, K - 1), kinds, site, shift)
        new = target.evaluate(_flatten(candidates))  # [(K − 1) C, B]
        log_density = torch.cat([target.log_density(point, beta).unsqueeze(0),
                                 target.log_density(new, beta).reshape(K - 1, C, B)])  # fmt: skip
        choice = torch.distributions.Categorical(logits=log_density.movedim(0, -1)).sample()
        chosen = _choose(point, new, choice, K - 1)
        return kinds, chosen, (choice > 0).to(point.log_p.dtype).mean(0)

    def __repr__(self) -> str:
        return "DiscreteGibbs()"


def _choose(point: Point, new: Point, choice: Tensor, num: int) -> Point:
    """Per chain, ``point`` where ``choice`` (``[C, B]``) is 0, else candidate ``choice − 1`` of
    ``new`` (``[num·C, B, …]``)."""
    C, B = choice.shape

    def pick(old: Tensor | None, stacked: Tensor | None) -> Tensor | None:
        if old is None:
            return None
        every = torch.cat(
            [old.unsqueeze(0), stacked.reshape(num, *old.shape)]
        )  # [num + 1, C, B, …]
        index = choice.reshape(1, C, B, *[1] * (old.dim() - 2)).expand(1, *old.shape)
        return every.gather(0, index)[0]

    z = _rebuild(point.z, tuple(pick(a, b) for a, b in zip(_leaves(point.z), _leaves(new.z))))
    return Point(z, *(pick(a, b) for a, b in zip(point[1:], new[1:])))


@dataclass(frozen=True)
class DiscreteMH:
    """Metropolis–Hastings for binary and categorical (one-hot) latents and their products: one
    site per step (chosen uniformly, the same for all chains); a binary unit is flipped, a
    one-hot variable moves to one of its ``K − 1`` other categories, uniformly (a symmetric
    proposal), accepted with probability ``min(1, π̃_β(z') / π̃_β(z))``. One evaluation per
    step: cheaper than ``DiscreteGibbs`` for large ``K``, and slower to mix."""

    needs_grad = False

    init = DiscreteGibbs.init  # the same state: the kind of each part of the latent

    def step(self, kinds, target: Target, point: Point, beta):
        """One transition at ``beta``: the new state, the new ``Point`` and the fraction of chains
        whose proposal was accepted, ``[B]``.

        Args:
            kinds (tuple[str, ...]): the state, the kind of each part of the latent (from ``init``).
            target: the annealing path of the batch, which evaluates (and counts) points.
            point: the chains now, ``[C, B]``.
            beta (float | Tensor): the inverse temperature whose ``π_β`` the step leaves invariant:
                a float, or one per data point ``[B]``.
        """
        site = _Sites(point.z, kinds).pick(point.log_p.device)
        shift = torch.randint(1, site[2], point.log_p.shape, device=point.log_p.device)
        new = target.evaluate(_Sites.moved(point.z, kinds, site, shift))
        accepted = metropolis(target.log_density(new, beta) - target.log_density(point, beta))
        return kinds, select(accepted, new, point), accepted.to(point.log_p.dtype).mean(0)

    def __repr__(self) -> str:
        return "DiscreteMH()"


def default_kernel(model, qpath: float = 1.0) -> Kernel:
    """The kernel that follows ``model``'s latent (``latent_kinds``): ``HMC`` for a
    continuous one (``has_rsample``); ``SBNSweep`` for the one-layer linear SBN; single-site
    ``FlipMH`` for other binary latents; ``DiscreteGibbs`` for categorical (one-hot)
    ones and products of binary and one-hot parts; a ``ValueError`` naming what fits for anything
    else (a product with continuous parts, integer-coded categories): ``independent``. Along a
    q-path (``qpath < 1``) the SBN gets ``FlipMH``: its sweep knows the geometric path only.

    Args:
        model (GenerativeModel): the model whose latent the kernel must move.
        qpath: the path's ``q``: 1 for the geometric path, below 1 for a q-path.
    """
    if getattr(model, "has_rsample", False):
        return HMC()
    if SBNSweep.applies(model) and qpath == 1:
        return SBNSweep()
    kinds = latent_kinds(model)
    if set(kinds) == {BINARY}:
        return FlipMH(1)
    if set(kinds) <= {BINARY, ONE_HOT}:
        return DiscreteGibbs()
    raise ValueError(
        f"no built-in kernel but 'independent' moves the latent of {type(model).__name__}, which "
        f"is {describe_kinds(kinds)}: hmc needs one continuous tensor (has_rsample=True), flip "
        "binary values, gibbs and discrete-mh binary or one-hot values; use kernel "
        "'independent' (proposals from q), or pass your own kernel to tvo.ais"
    )


KERNELS = {"hmc": HMC, "flip": FlipMH, "gibbs": DiscreteGibbs, "discrete-mh": DiscreteMH,
           "independent": IndependentMH, "sbn-sweep": SBNSweep}  # fmt: skip


def fitting_kernels(model) -> list[str]:
    """The names of ``KERNELS`` (and ``auto``) that can move ``model``'s latent.

    Args:
        model (GenerativeModel): the model whose latent the kernels must move.
    """
    if getattr(model, "has_rsample", False):
        return ["auto", "hmc", "independent"]
    kinds = set(latent_kinds(model))
    names = []
    if kinds <= {BINARY, ONE_HOT}:
        names = ["auto"] + (["sbn-sweep"] if SBNSweep.applies(model) else [])
        names += (["flip"] if kinds == {BINARY} else []) + ["gibbs", "discrete-mh"]
    return [*names, "independent"]


def kernel_for(model, name: str = "auto", leapfrog_steps: int = 5, qpath: float = 1.0) -> Kernel:
    """The kernel called ``name`` for ``model``: ``auto`` (``default_kernel``), ``hmc``
    (with ``leapfrog_steps``, also what ``auto`` gives a continuous model), ``flip``
    (single-site), ``gibbs``, ``discrete-mh``, ``independent`` or ``sbn-sweep``. ``ValueError``
    for another name, and for a kernel that does not fit ``model``'s latent, naming those that
    do (``fitting_kernels``), before any work.

    Args:
        model (GenerativeModel): the model whose latent the kernel must move.
        name: ``auto`` or a name of ``KERNELS``.
        leapfrog_steps: leapfrog steps per transition, for ``hmc`` (and ``auto`` on a continuous
            model).
        qpath: the path's ``q``: 1 for the geometric path, below 1 for a q-path.
    """
    if name not in ("auto", *KERNELS):
        raise ValueError(f"unknown kernel {name!r}: expected auto or one of {', '.join(KERNELS)}")
    fits = fitting_kernels(model)
    if qpath < 1 and name == "sbn-sweep" and name in fits:
        others = ", ".join(n for n in fits if n != "sbn-sweep")
        raise ValueError(f"kernel 'sbn-sweep' follows the geometric path only, not the q-path "
                         f"q = {qpath:g}: use {others}")  # fmt: skip
    if name not in fits:
        if getattr(model, "has_rsample", False):
            what = "continuous (has_rsample=True)"
        else:
            what = describe_kinds(latent_kinds(model))
            what += "" if what == "continuous" else " (has_rsample=False)"
        need = {"hmc": "continuous latents", "flip": "binary latents",
                "gibbs": "binary or one-hot latents", "discrete-mh": "binary or one-hot latents",
                "sbn-sweep": "a one-layer linear SBN (linear_1)",
                "auto": "a latent that a built-in kernel moves"}[name]  # fmt: skip
        raise ValueError(f"kernel {name!r} needs {need}, and {type(model).__name__}'s latent is "
                         f"{what}: use {', '.join(fits)}")  # fmt: skip
    kernel = default_kernel(model, qpath) if name == "auto" else KERNELS[name]()
    if isinstance(kernel, HMC):
        kernel = HMC(leapfrog_steps=leapfrog_steps)
    return kernel


__all__ = [
    "HMC",
    "KERNELS",
    "Cycle",
    "DiscreteGibbs",
    "DiscreteMH",
    "FlipMH",
    "HMCState",
    "IndependentMH",
    "Kernel",
    "Point",
    "SBNSweep",
    "SweepState",
    "Target",
    "default_kernel",
    "fitting_kernels",
    "guide_scale",
    "kernel_for",
    "latent_kinds",
    "make_target",
]
