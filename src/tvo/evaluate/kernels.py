"""Markov kernels for annealed importance sampling, each leaving one annealed density invariant:

    π̃_β(z) = q(z | x)^(1−β) p(x, z)^β,    log π̃_β = log q + β ℓ,    ℓ = log p(x, z) − log q(z | x)

(MATH.md, "Annealed importance sampling"). They need only the model protocol (``sample_guide``,
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

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

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
        """``log π̃_β(z) = log q + β ℓ``, ``[C, B]``."""
        return self.log_q + beta * (self.log_p - self.log_q)

    def grad(self, beta: float) -> Tensor:
        """``∇_z log π̃_β(z)``."""
        return self.grad_q + beta * (self.grad_p - self.grad_q)


class Target:
    """The annealing path of one batch ``x`` ``[B, D]``: evaluates points of a model and counts
    the evaluations, per data point (``evaluations``: calls of ``log_joint`` on one chain's
    latents; ``gradients``: how many of them also took ``∇_z``, which costs about two more).

    ``grad=True`` makes every point carry its gradients (for ``HMC``)."""

    def __init__(self, model, x: Tensor, grad: bool = False):
        self.model, self.x, self.grad = model, x, grad
        self.evaluations = 0
        self.gradients = 0

    def sample_guide(self, num_chains: int) -> tuple[Any, Tensor]:
        """``num_chains`` draws from ``q(z | x)`` and their ``log q``: ``[C, B, …]``, ``[C, B]``."""
        return self.model.sample_guide(self.x, num_chains)

    def evaluate(self, z, log_q: Tensor | None = None) -> Point:
        """The ``Point`` at ``z`` (``log q`` recomputed unless given; with gradients when
        the target was made with ``grad=True``)."""
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


class Kernel(Protocol):
    """``init(target, point) → state``; ``step(state, target, point, beta) → (state, point,
    accept)`` leaves ``π_β`` invariant; ``needs_grad``: whether points must carry gradients."""

    needs_grad: bool

    def init(self, target: Target, point: Point) -> Any: ...

    def step(
        self, state: Any, target: Target, point: Point, beta: float
    ) -> tuple[Any, Point, Tensor]: ...


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
    """The chains of ``new`` where ``mask`` ``[C, B]`` is true, the others of ``old``."""
    z = _rebuild(new.z, tuple(_where(mask, a, b) for a, b in zip(_leaves(new.z), _leaves(old.z))))
    return Point(z, *(_where(mask, a, b) for a, b in zip(new[1:], old[1:])))


def metropolis(log_ratio: Tensor) -> Tensor:
    """Accept each proposal with probability ``min(1, exp(log_ratio))``, ``[C, B]`` booleans; a
    non-finite ratio (a proposal whose density overflowed) is rejected."""
    u = torch.rand(log_ratio.shape, dtype=log_ratio.dtype, device=log_ratio.device)
    return (torch.log(u) < log_ratio) & torch.isfinite(log_ratio)


class HMCState(NamedTuple):
    """Per data point: the leapfrog step size ``[B]`` and the moving average of the acceptance
    rate ``[B]`` that adapts it."""

    step_size: Tensor
    acceptance: Tensor


@dataclass(frozen=True)
class HMC:
    """Hamiltonian Monte Carlo (Neal 2011) on ``log π̃_β``, identity mass, ``leapfrog_steps``
    leapfrog steps of size ``ε_b`` per data point, then a Metropolis test on the Hamiltonian.

    Adaptation (the rule of Wu et al. 2017's AIS code): after each step the moving average
    ``a ← 0.9 a + 0.1 · (fraction of the chains that accepted)`` is compared with
    ``target_acceptance``: ``ε ← 1.02 ε`` above it, ``ε ← 0.98 ε`` below, kept in
    ``[min_step_size, max_step_size]``. A data point's step size then depends on its chains' past,
    which makes them slightly dependent; ``adapt=False`` keeps ``ε`` fixed (and AIS exactly
    unbiased). Cost: ``leapfrog_steps`` gradient evaluations per step (the start's gradient is
    carried over from the last step).
    """

    step_size: float = 0.05
    leapfrog_steps: int = 10
    target_acceptance: float = 0.65
    adapt: bool = True
    increase: float = 1.02
    decrease: float = 0.98
    min_step_size: float = 1e-4
    max_step_size: float = 0.5
    needs_grad = True

    def __post_init__(self):
        if not (isinstance(self.leapfrog_steps, int) and self.leapfrog_steps >= 1):
            raise ValueError(f"leapfrog_steps must be an integer ≥ 1, got {self.leapfrog_steps!r}")
        if not self.step_size > 0:
            raise ValueError(f"step_size must be positive, got {self.step_size!r}")
        if not 0 < self.target_acceptance < 1:
            raise ValueError(
                f"target_acceptance must lie in (0, 1), got {self.target_acceptance!r}"
            )

    def init(self, target: Target, point: Point) -> HMCState:
        if not getattr(target.model, "has_rsample", False):
            raise ValueError(
                f"HMC needs continuous latents, and {type(target.model).__name__} has "
                "has_rsample=False; use FlipMH or IndependentMH for discrete latents"
            )
        B = point.log_p.shape[1]
        like = point.log_p.new_ones(B)
        return HMCState(self.step_size * like, self.target_acceptance * like)

    def step(self, state: HMCState, target: Target, point: Point, beta: float):
        z0 = point.z
        eps = state.step_size.to(z0.dtype).reshape(1, -1, *[1] * (z0.dim() - 2))
        momentum0 = torch.randn_like(z0)
        momentum = momentum0 + 0.5 * eps * point.grad(beta)
        z, new = z0, point
        for i in range(self.leapfrog_steps):
            z = z + eps * momentum
            new = target.evaluate(z)
            last = i == self.leapfrog_steps - 1
            momentum = momentum + (0.5 if last else 1.0) * eps * new.grad(beta)

        def kinetic(m):
            return 0.5 * m.pow(2).flatten(2).sum(-1)

        log_ratio = (new.log_density(beta) - kinetic(momentum)) - (
            point.log_density(beta) - kinetic(momentum0)
        )
        accepted = metropolis(log_ratio)
        rate = accepted.to(state.acceptance.dtype).mean(0)
        if self.adapt:
            average = 0.9 * state.acceptance + 0.1 * rate
            factor = torch.where(average > self.target_acceptance, self.increase, self.decrease)
            size = (state.step_size * factor).clamp(self.min_step_size, self.max_step_size)
            state = HMCState(size, average)
        return state, select(accepted, new, point), rate


@dataclass(frozen=True)
class FlipMH:
    """Metropolis–Hastings for binary latents: flip ``block`` of the ``N`` units (all layers
    together) chosen uniformly at random without replacement; the proposal is symmetric, so the
    acceptance probability is ``min(1, π̃_β(z') / π̃_β(z))``. ``block=1`` is the single-site
    (Metropolised Gibbs) move. One evaluation per step."""

    block: int = 1
    needs_grad = False

    def __post_init__(self):
        if not (isinstance(self.block, int) and self.block >= 1):
            raise ValueError(f"block must be an integer ≥ 1, got {self.block!r}")

    def init(self, target: Target, point: Point) -> None:
        if not all(((leaf == 0) | (leaf == 1)).all() for leaf in _leaves(point.z)):
            raise ValueError(
                f"FlipMH needs binary latents (values 0 and 1), and {type(target.model).__name__}"
                "'s are not: use HMC for continuous latents, IndependentMH for any"
            )
        return None

    def step(self, state, target: Target, point: Point, beta: float):
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
        accepted = metropolis(new.log_density(beta) - point.log_density(beta))
        return state, select(accepted, new, point), accepted.to(flat.dtype).mean(0)


@dataclass(frozen=True)
class IndependentMH:
    """Metropolis–Hastings with independent proposals ``z' ~ q(z | x)``: the ratio
    ``π̃_β(z') q(z) / (π̃_β(z) q(z'))`` is ``exp(β (ℓ(z') − ℓ(z)))``. Any latent type; one
    evaluation per step. Mixes well at small ``β``, poorly near ``β = 1`` where ``q`` is far
    from the posterior."""

    needs_grad = False

    def init(self, target: Target, point: Point) -> None:
        return None

    def step(self, state, target: Target, point: Point, beta: float):
        z, log_q = target.sample_guide(point.log_p.shape[0])
        new = target.evaluate(z, log_q)
        accepted = metropolis(beta * (new.log_weight - point.log_weight))
        return state, select(accepted, new, point), accepted.to(point.log_p.dtype).mean(0)


class Cycle:
    """The kernels one after another at the same ``β``; ``accept`` is their mean."""

    def __init__(self, *kernels: Kernel):
        if not kernels:
            raise ValueError("Cycle needs at least one kernel")
        self.kernels = kernels
        self.needs_grad = any(k.needs_grad for k in kernels)

    def init(self, target: Target, point: Point) -> tuple:
        return tuple(k.init(target, point) for k in self.kernels)

    def step(self, state: tuple, target: Target, point: Point, beta: float):
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
        """Whether ``model`` is a one-layer SBN with an affine decoder."""
        return isinstance(model, SBN) and len(model.latents) == 1 and model.hidden == ()

    def init(self, target: Target, point: Point) -> SweepState:
        model, x = target.model, target.x
        if not self.applies(model):
            raise ValueError(f"SBNSweep needs a one-layer linear SBN, got {type(model).__name__}")
        guide_logits = model.encoders[0](model.guide_input(x))  # [B, H]
        last = model.decoders[0][-1]
        return SweepState(guide_logits, x @ last.weight, last.weight.T.contiguous())

    def step(self, state: SweepState, target: Target, point: Point, beta: float):
        model = target.model
        last = model.decoders[0][-1]
        (z,) = point.z
        units = z.movedim(-1, 0).contiguous()  # [H, C, B]: one unit's values are contiguous
        weight = state.weight  # [H, D]
        logits = (2 * z - 1) @ weight + last.bias  # [C, B, D]
        softplus = F.softplus(logits).sum(-1)  # [C, B]
        coefficient = ((1 - beta) * state.guide_logits + beta * model.prior_logits
                       + 2 * beta * state.x_weight).T.contiguous()  # [H, B]  # fmt: skip
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


def default_kernel(model) -> Kernel:
    """``HMC`` for a model with continuous latents (``has_rsample``); ``SBNSweep``
    for the one-layer linear SBN; else ``FlipMH`` with single-site flips."""
    if getattr(model, "has_rsample", False):
        return HMC()
    return SBNSweep() if SBNSweep.applies(model) else FlipMH(1)


KERNELS = {"hmc": HMC, "flip": FlipMH, "independent": IndependentMH, "sbn-sweep": SBNSweep}


def kernel_for(model, name: str = "auto", leapfrog_steps: int = 10) -> Kernel:
    """The kernel called ``name`` for ``model``: ``auto`` (``default_kernel``), ``hmc``
    (with ``leapfrog_steps``, also what ``auto`` gives a continuous model), ``flip``
    (single-site), ``independent`` or ``sbn-sweep``. ``ValueError`` for another name, and for a
    kernel that does not apply to ``model`` (hmc or flip on the wrong kind of latent, sbn-sweep
    on anything but the one-layer linear SBN), before any work."""
    if name not in ("auto", *KERNELS):
        raise ValueError(f"unknown kernel {name!r}: expected auto or one of {', '.join(KERNELS)}")
    model_name, continuous = type(model).__name__, bool(getattr(model, "has_rsample", False))
    if name == "hmc" and not continuous:
        raise ValueError(f"kernel 'hmc' needs continuous latents, and {model_name} has discrete "
                         "ones (has_rsample=False): use auto, flip or independent")  # fmt: skip
    if name == "flip" and continuous:
        raise ValueError(f"kernel 'flip' needs binary latents, and {model_name} has continuous "
                         "ones (has_rsample=True): use auto, hmc or independent")  # fmt: skip
    if name == "sbn-sweep" and not SBNSweep.applies(model):
        raise ValueError(f"kernel 'sbn-sweep' needs a one-layer linear SBN (linear_1), not "
                         f"{model_name}: use auto, flip or independent")  # fmt: skip
    kernel = default_kernel(model) if name == "auto" else KERNELS[name]()
    if isinstance(kernel, HMC):
        kernel = HMC(leapfrog_steps=leapfrog_steps)
    return kernel


__all__ = [
    "HMC",
    "KERNELS",
    "Cycle",
    "FlipMH",
    "HMCState",
    "IndependentMH",
    "Kernel",
    "Point",
    "SBNSweep",
    "SweepState",
    "Target",
    "default_kernel",
    "kernel_for",
]
