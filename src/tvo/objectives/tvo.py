"""The thermodynamic variational objective (Masrani, Le & Wood, NeurIPS 2019).

``log p(x) = ∫_0^1 g(β) dβ`` with ``g(β) = E_{π_β}[ℓ]`` on the geometric path
``π_β ∝ q^(1−β) p^β``. ``g`` is non-decreasing, so for a partition ``0 = β_0 < … < β_K = 1``
(widths ``Δ_k``) the left Riemann sum is a lower bound and the right sum an upper bound:

    TVO_L = Σ_k Δ_k g(β_{k−1})  ≤  log p(x)  ≤  TVO_U = Σ_k Δ_k g(β_k).

``g(β)`` is estimated with self-normalised weights on the same ``S`` particles of ``q``:
``w̄_s(β) = softmax_s(β ℓ_s)``, ``ĝ(β) = Σ_s w̄_s(β) ℓ_s``. The gradient is the covariance
estimator (docs/maths.md, "The TVO's gradient: the covariance estimator"), which needs no
reparameterisation: per data point and ``β``,

    s(β) = Σ_s sg(w̄_s) ℓ_s + c Σ_s sg(w̄_s) sg(ℓ_s − ĝ(β)) (log π̃_β(z_s) − Σ_t sg(w̄_t) log π̃_β(z_t))

with ``log π̃_β = β log p + (1 − β) log q`` and ``c = S / (S − 1)``; the surrogate is
``Σ_k m_k s(β_k)`` with the integration weights ``m``.

Special case: ``K = 1``, left, is the ELBO with the score-function gradient and the
leave-one-out baseline (``tvo.objectives.elbo.elbo``).

``TVOReparam`` is the same bound with a doubly reparameterised gradient for φ, for models
with reparameterisable latents (Brekelmans et al., ICML 2020).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from tvo.autograd import Function, batch_dims_first
from tvo.objectives.base import Objective, check_log_weights
from tvo.ops import integrand as integrand_at
from tvo.ops import normalized_weights
from tvo.partitions import (
    ADAPTIVE_SCHEDULES,
    INTEGRATIONS,
    SCHEDULE_SETTINGS,
    SCHEDULES,
    Fixed,
    Schedule,
    integration_weights,
    validate,
)
from tvo.partitions import (
    schedule as make_schedule,
)
from tvo.settings import ConfigError, Setting, points


def check_partition(points) -> None:
    """A ``ConfigError`` for a partition of one's own that is not one."""
    try:
        validate(points)
    except ValueError as error:
        raise ConfigError(f"partition: {error}") from error


class TVOTerms(NamedTuple):
    """``Terms`` plus the integrand ``ĝ(β_k)`` at every point,
    ``[K + 1, B]`` (detached)."""

    surrogate: Tensor
    estimate: Tensor
    integrand: Tensor


class TVOWeights(NamedTuple):
    """What the TVO's arithmetic needs from a partition ``β`` ``[K + 1]``, the integration and
    ``c = S / (S − 1)``; computed once per partition (``TVO.terms`` keeps them).

    ``m`` ``[K + 1]``: the integration weights. ``constant``, ``per_g`` ``[4, K + 1]``: the
    coefficient matrix is ``(constant + ĝ̃_k · per_g) / Z_k`` (see ``tvo``), with rows
    ``[m − cmβĝ̃, cmβ, −m − cm(1−β)ĝ̃, cm(1−β)]`` (kept with ``K + 1`` last, so that the
    per-data-point products broadcast along contiguous memory). ``zero_start``: whether
    ``β_0 = 0``; ``uses_zero``: whether the sum weighs ``ĝ(0)`` (left and trapz rules).
    """

    beta: Tensor
    m: Tensor
    constant: Tensor
    per_g: Tensor
    zero_start: bool
    uses_zero: bool


def tvo_weights(partition, integration: str, num_particles: int, like: Tensor) -> TVOWeights:
    """``TVOWeights`` of ``partition`` in ``like``'s dtype and device."""
    if isinstance(partition, Tensor):
        beta = partition.to(dtype=like.dtype, device=like.device)
    else:
        beta = torch.as_tensor(partition, dtype=like.dtype, device=like.device)
    if beta.dim() != 1 or beta.numel() < 2:
        raise ValueError(f"partition must be a 1-D tensor of K + 1 ≥ 2 points, got {partition!r}")
    m = integration_weights(beta, integration)
    c = num_particles / (num_particles - 1)
    zero = torch.zeros_like(m)
    constant = torch.stack([m, c * m * beta, -m, c * m * (1 - beta)])
    per_g = torch.stack([-c * m * beta, zero, -c * m * (1 - beta), zero])
    if torch._C._are_functorch_transforms_active():
        zero_start = True  # under vmap (an ensemble): partitions are checked where they are made
    else:
        zero_start = float(torch.as_tensor(partition).flatten()[0]) == 0.0
    return TVOWeights(beta, m, constant, per_g, zero_start, integration != "right")


class _Surrogate(Function):
    """``Σ_s [a_s log p_s + b_s log q_s]`` ``[B]`` for detached coefficients ``a, b`` ``[S, B]``:
    its gradient is the coefficients themselves (one operation each way instead of autograd's
    graph of products and sums). In the ``setup_context`` form, so that ``torch.func`` (``vmap``,
    ``grad``) can transform it."""

    @staticmethod
    def forward(log_p: Tensor, log_q: Tensor, coef_p: Tensor, coef_q: Tensor) -> Tensor:
        return torch.addcmul(coef_p * log_p, coef_q, log_q).sum(0)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[2], inputs[3])

    @staticmethod
    def vmap(info, in_dims, log_p: Tensor, log_q: Tensor, coef_p: Tensor, coef_q: Tensor):
        # [M, S, B] → [S, M, B]: the sum over particles stays the first dimension's
        tensors = batch_dims_first(in_dims, log_p, log_q, coef_p, coef_q)
        return _Surrogate.apply(*(t.transpose(0, 1) for t in tensors)), 0

    @staticmethod
    def backward(ctx, grad: Tensor):
        coef_p, coef_q = ctx.saved_tensors
        return coef_p * grad, coef_q * grad, None, None


def tvo(
    log_p: Tensor, log_q: Tensor, partition: Tensor | Sequence[float], integration: str = "left"
) -> TVOTerms:
    """The TVO Riemann sum and its covariance-estimator surrogate.

    Args:
        log_p: ``log p(x, z_s)``, ``[S, B]``, differentiable in θ; particles ``z_s`` detached.
        log_q: ``log q(z_s | x)``, ``[S, B]``, differentiable in φ.
        partition: the ``K + 1`` points ``0 = β_0 < … < β_K = 1`` (a tensor from
            ``tvo.partition``, or any increasing sequence from 0 to 1).
        integration: ``"left"`` (``TVO_L``, the lower bound), ``"right"`` (``TVO_U``) or
            ``"trapz"``.

    Returns:
        ``TVOTerms``; ``estimate`` is ``Σ_k m_k ĝ(β_k)``, ``[B]``.

    Needs ``S ≥ 2``: with one particle the covariance term vanishes and the gradient is biased.

    Implementation. ``Σ_s w̄_s (ℓ_s − ĝ) = 0``, so the centring ``Σ_t sg(w̄_t) log π̃_β(z_t)`` is
    multiplied by a detached zero and drops out, and the sum over ``β`` folds into two detached
    per-particle coefficients: ``surrogate = Σ_s [(a + u)_s log p_s + (v − a)_s log q_s]`` with
    ``a = Σ_k m_k w̄_k``, ``u = c Σ_k m_k β_k w̄_k (ℓ − ĝ_k)``,
    ``v = c Σ_k m_k (1 − β_k) w̄_k (ℓ − ĝ_k)`` and ``ℓ = log p − log q``.
    With ``ℓ̃ = ℓ − max_s ℓ ≤ 0`` the unnormalised weights ``e_sk = exp(β_k ℓ̃_s) ∈ (0, 1]`` need
    no max pass (``β ≥ 0``) and their normaliser ``Z_k = Σ_s e_sk`` is ≥ 1. Both coefficients
    are linear in ``e`` once ``ℓ̃_s`` is factored out:
    ``(a + u, v − a)_s = (e C)_s[0, 2] + ℓ̃_s (e C)_s[1, 3]``, with ``C`` ``[K + 1, 4]`` the
    transpose of ``TVOWeights``' ``[4, K + 1]`` matrix, divided by ``Z``. So the
    estimator is two batched matrix products with ``e`` (``[B, S, K + 1]``) and a handful of
    small operations. Memory is ``O(K·S·B)``; the version written out term by term is in
    tests/test_functional.py, which checks this one against it.
    """
    log_p, log_q = check_log_weights(log_p, log_q, min_particles=2)
    return tvo_from_weights(log_p, log_q, tvo_weights(partition, integration, len(log_p), log_p))


def tvo_from_weights(log_p: Tensor, log_q: Tensor, weights: TVOWeights) -> TVOTerms:
    """``tvo`` with the partition's ``TVOWeights`` given (no checks).

    A particle with ``ℓ = −∞`` (``log p = −∞``) has weight ``e^{βℓ̃} = 0`` at every ``β > 0``, so
    it adds nothing there (``0 · (−∞)`` is taken as 0, its limit), and ``ĝ(0) = mean ℓ = −∞``:
    the right sum and its gradients stay finite, the left sum is ``−∞`` (never NaN).
    """
    with torch.no_grad():
        ell = log_p - log_q
        top = ell.amax(0)  # [B]; amax: Tensor.max(dim) also finds the indices
        shifted = (ell - top).T  # ℓ̃, [B, S]
        lost = torch.isneginf(shifted)  # particles of zero weight at every β > 0
        finite = shifted.masked_fill(lost, 0.0)  # ℓ̃ where only a zero weight multiplies it
        e = torch.mul(shifted[:, :, None], weights.beta).exp_()  # [B, S, K+1]
        if weights.zero_start:
            e[:, :, 0] = 1.0  # e^{0·ℓ̃} = 1, for ℓ̃ = −∞ too
        inverse_norm = e.sum(1).reciprocal_()  # 1 / Z, [B, K+1]
        g_shifted = (finite[:, None, :] @ e)[:, 0] * inverse_norm  # ĝ̃ = ĝ − max ℓ, [B, K+1]
        elbo_shifted = g_shifted[:, 0].masked_fill(lost.any(1), -math.inf)  # ĝ̃(0)
        if weights.zero_start and weights.uses_zero:
            g_shifted[:, 0] = elbo_shifted
        matrix = torch.addcmul(weights.constant, g_shifted[:, None], weights.per_g)  # [B, 4, K+1]
        products = e @ matrix.mul_(inverse_norm[:, None]).transpose(1, 2)  # [B, S, 4]
        coefficients = torch.addcmul(products[..., 0::2], finite[..., None], products[..., 1::2])
        estimate = torch.addmv(top, g_shifted, weights.m)  # ĝ is shift-equivariant
        integrand = g_shifted + top[:, None]
        if weights.zero_start:
            integrand[:, 0] = elbo_shifted + top
        integrand = integrand.T
    coef_p, coef_q = coefficients.permute(2, 1, 0)  # each [S, B]
    surrogate = _Surrogate.apply(log_p, log_q, coef_p, coef_q)
    return TVOTerms(surrogate, estimate, integrand)


def tvo_reparam(
    log_p_theta: Tensor, log_weight: Tensor, partition, integration: str = "left"
) -> TVOTerms:
    """The TVO with the reparameterised gradient (Brekelmans et al., ICML 2020), on the tensors
    of the ``doubly-reparameterized`` sampling mode: ``log_p_theta = log p(x, sg(z_s))`` and
    ``log_weight = ℓ_s`` with every parameter stopped (both ``[S, B]``, ``S ≥ 2``).

    With ``z = z_φ(ε)`` and ``ℓ`` the log-weight, differentiating
    ``g(β) = E_r[e^{βℓ} ℓ] / E_r[e^{βℓ}]`` gives ``∇g = E_{π_β}[(1 + β(ℓ − g)) ∇ℓ]``, where
    ``∇_φ ℓ = (∂ℓ/∂z)(∂z/∂φ) − ∇_φ log q``. The score term is turned into a second pathwise term
    with ``E_q[f ∇_φ log q] = E_r[(∂f/∂z)(∂z/∂φ)]`` (the identity behind DReG), which leaves

        ∇_θ g = E_{π_β}[(1 + β(ℓ − g)) ∇_θ log p(x, z)]
        ∇_φ g = E_{π_β}[(1 − 2β + β(1 − β)(ℓ − g)) (∂ℓ/∂z)(∂z/∂φ)]

    (at ``β = 0`` the "sticking the landing" ELBO gradient; at ``β = 1``
    ``−E_{p(z|x)}[(∂ℓ/∂z)(∂z/∂φ)]``). Estimated with self-normalised weights ``w̄_s(β)`` on ``S``
    reparameterised particles, the centred terms scaled by ``c = S/(S − 1)`` as in the
    covariance estimator (whose θ-gradient this equals). Surrogate per data point:

        Σ_s sg(Σ_k m_k w̄_sk (1 + cβ_k(ℓ_s − ĝ_k))) log p(x, sg(z_s))
          + Σ_s sg(Σ_k m_k w̄_sk (1 − 2β_k + cβ_k(1 − β_k)(ℓ_s − ĝ_k))) ℓ_s|_{θ, φ stopped}

    ``K = 1``, left, is the ELBO with the "sticking the landing" gradient for φ.

    Args:
        log_p_theta: ``log p(x, sg(z_s))``, ``[S, B]``, differentiable in θ only.
        log_weight: ``ℓ_s = log p(x, z_s) − log q(z_s | x)`` with every parameter stopped, ``[S,
            B]``, differentiable through ``z_s`` (in φ).
        partition (Tensor | Sequence[float]): the ``K + 1`` points ``0 = β_0 < … < β_K = 1``.
        integration: ``"left"``, ``"right"`` or ``"trapz"``, as in ``tvo``.
    """
    log_p_theta, log_weight = check_log_weights(log_p_theta, log_weight, min_particles=2)
    num_particles = log_weight.shape[0]
    ell = log_weight.detach()
    points = torch.as_tensor(partition, dtype=ell.dtype, device=ell.device)
    beta = points[:, None, None]  # [K+1, 1, 1]
    weights = normalized_weights(ell, beta)  # w̄_sk, [K+1, S, B]
    integrand = integrand_at(ell, points)  # ĝ(β_k), [K+1, B]
    m = integration_weights(points, integration)[:, None, None]
    centred = num_particles / (num_particles - 1) * (ell - integrand[:, None])
    theta_coefficient = (m * weights * (1 + beta * centred)).sum(0)  # [S, B]
    phi_coefficient = (m * weights * phi_factor(beta, centred)).sum(0)
    surrogate = (theta_coefficient * log_p_theta + phi_coefficient * log_weight).sum(0)
    estimate = (m[:, :, 0] * integrand).sum(0)
    return TVOTerms(surrogate, estimate, integrand)


def phi_factor(beta: Tensor, centred: Tensor) -> Tensor:
    """The factor of ``w̄_s (∂ℓ_s/∂z)(∂z_s/∂φ)`` in ``∇_φ ĝ(β)``: ``1 − 2β + β(1−β)(ℓ − ĝ)``."""
    return 1 - 2 * beta + beta * (1 - beta) * centred


class TVO(Objective):
    """The thermodynamic variational objective as a model-level objective.

    ``TVO(K=5, schedule="log", beta1=0.1, integration="left")``, or ``TVO(partition=[...])``
    for a partition of your own. Particles are drawn without reparameterisation, so it trains
    models with discrete and continuous latents alike. Needs ``num_particles ≥ 2``.

    The objective holds settings only; where the points are is the business of its
    ``schedule`` (``tvo.partitions``). A fixed schedule's partition is used when a call is
    given none. An adaptive one (``schedule="moments"``, or ``"gp-bandit"``: ``K ≥ 2``, needs
    scikit-learn, seeded by ``seed``) moves the points every ``adapt_every`` updates, so each
    call must be given the partition in use, and its state advanced after each step::

        state = objective.schedule.init()
        out = objective(model, x, num_particles, partition=state.partition)
        ...  # backward, optimiser step
        state = objective.schedule.update(state, out.diagnostics["log_weight"])

    Called without a partition, an adaptive TVO raises rather than train on a partition that
    never moves. ``tvo train`` does all this itself.

    Diagnostics add ``integrand``: ``ĝ(β_k)``, ``[K + 1, B]``.

    Args:
        K: the number of intervals of the partition (the setting ``partitions``).
        schedule: where the points are: ``log``, ``linear``, or an adaptive one, ``moments`` or
            ``gp-bandit`` (``tvo.partitions``).
        beta1: the first point ``β_1`` of the ``log`` schedule, where the adaptive ones start, in
            ``(0, 1)``.
        integration: the Riemann sum: ``left`` (``TVO_L``, the lower bound), ``right`` (``TVO_U``)
            or ``trapz``.
        partition (Sequence[float] | Tensor | None): points of your own from 0 to 1, instead of
            ``K``, ``schedule`` and ``beta1``; ``None``: the schedule's.
        seed: the seed of ``gp-bandit``'s proposals.
        adapt_every: updates between moves of an adaptive partition.
    """

    name = "tvo"
    function = staticmethod(tvo)  # computed with the partition's weights kept (terms)
    min_particles = 2
    settings: ClassVar[dict[str, object]] = {
        "partitions": 5, "schedule": "log", "beta1": 0.1, "integration": "left", "adapt_every": 100,
        "partition": None,  # points of your own, instead of partitions, schedule and beta1
    }  # fmt: skip

    declared: ClassVar[tuple[Setting, ...]] = (
        Setting("partitions", int, help="TVO intervals K", flags=("-K",), label="partitions (K)",
                low=1),
        Setting("schedule", str, help="log, linear, or adaptive: moments or gp-bandit",
                choices=SCHEDULES + ADAPTIVE_SCHEDULES),
        Setting("beta1", float, help="first point of the log schedule, where the adaptive ones "
                "start", low=0.0, high=1.0, open_low=True),
        Setting("integration", str, help="TVO Riemann sum: left, right, trapz",
                choices=INTEGRATIONS),
        Setting("adapt_every", int, help="steps between moves of an adaptive partition",
                label="adapt every", low=1),
        Setting("partition", list, help="the TVO's points of your own, e.g. '0 0.1 0.4 1' "
                "(instead of partitions, schedule and beta1)", parse=points, metavar="POINTS",
                check=lambda value, values: check_partition(value)),
    )  # fmt: skip

    def __init__(
        self,
        K: int = 5,
        schedule: str = "log",
        beta1: float = 0.1,
        integration: str = "left",
        partition=None,
        seed: int = 0,
        adapt_every: int = 100,
    ):
        self.schedule: Schedule = (
            Fixed(partition)
            if partition is not None
            else make_schedule(schedule, K, beta1, adapt_every, seed)
        )
        self.schedule_name = "fixed" if partition is not None else schedule
        if integration not in INTEGRATIONS:
            raise ValueError(
                f"unknown integration {integration!r}: expected one of {', '.join(INTEGRATIONS)}"
            )
        self.integration = integration
        self._memo: tuple | None = None  # the last partition's TVOWeights
        if partition is not None:
            given = {"partition": self.schedule.partition.tolist()}
        else:
            given = {"partitions": K, "schedule": schedule, "beta1": beta1,
                     "adapt_every": adapt_every}  # fmt: skip
        given["integration"] = integration
        self._settings = {k: v for k, v in given.items() if k in self.applicable(given)}

    @classmethod
    def applicable(cls, values: Mapping[str, object]) -> tuple[str, ...]:
        """The names of ``settings`` that apply given ``values``: ``partition`` and ``integration``
        when a partition of one's own is given, else ``partitions``, ``schedule``, the chosen
        schedule's own settings (``beta1``, ``adapt_every``) and ``integration``.

        Args:
            values: the settings chosen so far, by name (some may be missing).
        """
        if values.get("partition") is not None:
            return ("partition", "integration")
        schedule = values.get("schedule") or cls.settings["schedule"]
        return ("partitions", "schedule", *SCHEDULE_SETTINGS.get(schedule, ()), "integration")

    @classmethod
    def from_settings(cls, seed: int = 0, **settings) -> TVO:
        """The TVO with these ``settings`` (``TVO.settings`` for those not given).

        Args:
            seed: the seed of any randomness of the objective's own (an adaptive schedule's).
            **settings (object): values of ``settings``, by name (those that apply); the others keep
                their defaults.
        """
        settings = {**cls.settings, **settings}
        return cls(settings["partitions"], settings["schedule"], settings["beta1"],
                   settings["integration"], settings["partition"], seed=seed,
                   adapt_every=settings["adapt_every"])  # fmt: skip

    def run_settings(self) -> dict:
        return dict(self._settings)

    @property
    def K(self) -> int:
        return self.schedule.K

    def resolve_partition(self, partition):
        """The partition a call uses: the one given, else the fixed schedule's; a ``ValueError`` for
        an adaptive schedule called without one.

        Args:
            partition (Tensor | Sequence[float] | None): the partition the call was given, or
                ``None``.
        """
        if partition is not None:
            return partition
        if self.schedule.adaptive:
            raise ValueError(
                f"{self.name} with schedule {self.schedule_name!r} moves its partition, so each "
                "call must be given the one in use: state = objective.schedule.init() before "
                "training, objective(model, x, num_particles, partition=state.partition) at "
                "each step, and after it state = objective.schedule.update(state, "
                "out.diagnostics['log_weight']); tvo train does this for you"
            )
        return self.schedule.partition

    def weights(self, partition, like: Tensor) -> TVOWeights:
        """The partition's ``TVOWeights`` for ``[S, B]`` tensors like ``like``: computed
        when the partition (or dtype, device, S) differs from the last call's, else reused.

        Args:
            partition (Tensor | Sequence[float]): the points ``0 = β_0 < … < β_K = 1``.
            like: a tensor ``[S, B]`` with the dtype, device and ``S`` of the call's log-weights.
        """
        if torch._C._are_functorch_transforms_active():  # per member of an ensemble: no memo
            return tvo_weights(partition, self.integration, len(like), like)
        version = getattr(partition, "_version", None)
        key = (like.dtype, like.device, len(like), version)
        memo = self._memo
        if memo is None or memo[0] is not partition or memo[1] != key:
            weights = tvo_weights(validate(partition), self.integration, len(like), like)
            self._memo = memo = (partition, key, weights)
        return memo[2]

    def terms(self, log_p: Tensor, log_q: Tensor, partition=None) -> TVOTerms:
        """The TVO's ``TVOTerms`` (``tvo``) on the batch's tensors, with the partition's weights
        reused from the last call when it has not changed (``weights``).

        Args:
            log_p: ``log p(x, z_s)``, ``[S, B]``, differentiable in θ; particles ``z_s`` detached.
            log_q: ``log q(z_s | x)``, ``[S, B]``, differentiable in φ.
            partition (Tensor | Sequence[float]): the partition in use (``resolve_partition``).
        """
        log_p, log_q = check_log_weights(log_p, log_q, min_particles=2)
        return tvo_from_weights(log_p, log_q, self.weights(partition, log_p))

    def extra_diagnostics(self, terms: TVOTerms) -> dict[str, Tensor]:
        """``integrand``: the estimates ``ĝ(β_k)`` of the integrand at the partition's points, ``[K
        + 1, B]``.

        Args:
            terms: the ``TVOTerms`` of the batch.
        """
        return {"integrand": terms.integrand}

    def __repr__(self) -> str:
        if not self.schedule.adaptive:
            points = ", ".join(f"{b:.4g}" for b in self.schedule.partition.tolist())
            return f"{type(self).__name__}(partition=[{points}], integration={self.integration!r})"
        return (f"{type(self).__name__}(K={self.K}, schedule={self.schedule_name!r}, "
                f"integration={self.integration!r})")  # fmt: skip


class TVOReparam(TVO):
    """The TVO with the reparameterised gradient (``tvo_reparam``, Brekelmans et al., ICML
    2020): continuous latents only. The model is evaluated twice per particle, as in
    ``DReG``. Settings and schedules as ``TVO``.

    Args:
        K: the number of intervals of the partition (the setting ``partitions``).
        schedule: where the points are: ``log``, ``linear``, or an adaptive one, ``moments`` or
            ``gp-bandit`` (``tvo.partitions``).
        beta1: the first point ``β_1`` of the ``log`` schedule, where the adaptive ones start, in
            ``(0, 1)``.
        integration: the Riemann sum: ``left`` (``TVO_L``, the lower bound), ``right`` (``TVO_U``)
            or ``trapz``.
        partition (Sequence[float] | Tensor | None): points of your own from 0 to 1, instead of
            ``K``, ``schedule`` and ``beta1``; ``None``: the schedule's.
        seed: the seed of ``gp-bandit``'s proposals.
        adapt_every: updates between moves of an adaptive partition.
    """

    name = "tvo-reparam"
    sampling = "doubly-reparameterized"
    function = staticmethod(tvo_reparam)

    def terms(self, log_p_theta: Tensor, log_weight: Tensor, partition=None) -> TVOTerms:
        """The reparameterised TVO's ``TVOTerms`` (``tvo_reparam``) on the tensors of the
        ``doubly-reparameterized`` sampling mode.

        Args:
            log_p_theta: ``log p(x, sg(z_s))``, ``[S, B]``, differentiable in θ only.
            log_weight: ``ℓ_s`` with every parameter stopped, ``[S, B]``.
            partition (Tensor | Sequence[float]): the partition in use (``resolve_partition``).
        """
        return tvo_reparam(log_p_theta, log_weight, partition, self.integration)
