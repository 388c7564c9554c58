"""OVIS: the score-function gradient of the importance-weighted bound with the optimal control
variate (Liévin, Dittadi, Christensen & Winther, NeurIPS 2020).

The bound is IWAE's, ``L̂ = log Ẑ``, ``Ẑ = (1/S) Σ_s w_s``. With particles not reparameterised,
``h_s = ∇_φ log q(z_s | x)`` and ``v_s = w_s / Σ_t w_t``, its φ-gradient is

    ∇_φ E[L̂] = E[Σ_s d_s h_s],     d_s = L̂ − v_s,

and any ``c_s`` that does not depend on ``z_s`` (a function of ``z_{−s}`` and of independent
draws) may be subtracted without bias: ``Σ_s (d_s − c_s) h_s``. The paper derives the
variance-optimal control variate and works with the conditional expectation
``c*_s = E[d_s | z_{−s}]`` (over ``z_s ~ q`` alone). Two forms of it:

- ``mc`` (OVIS-MC, the paper's eq. 12): ``M`` auxiliary particles ``z'_m ~ q``, drawn
  independently of the ``S`` particles, shared by every ``s``, estimate it:
  ``c_s = (1/M) Σ_m d_s(z'_m, z_{−s})``, where ``z'_m`` takes the place of ``z_s``:
  ``d_s(z'_m, z_{−s}) = log((Σ_{t≠s} w_t + w'_m) / S) − w'_m / (Σ_{t≠s} w_t + w'_m)``.
  Unbiased for every ``M ≥ 1``. Costs ``S + M`` evaluations of ``log_joint`` and ``log q`` per
  data point (the auxiliary particles serve the control variate only, not the bound nor θ),
  and ``O(S·M)`` arithmetic.
- ``asymptotic`` (OVIS~, the paper's eq. 17): the large-``S`` limit of ``c*_s``,
  ``c_s = log Ẑ_{−s} − γ v_s + (1 − γ) log(1 − 1/S)``, ``Ẑ_{−s} = (1/(S−1)) Σ_{t≠s} w_t``.
  ``γ = 1`` is the limit for a large effective sample size, ``γ = 0`` for one near 1. At
  ``γ = 0``, ``c_s = log((1/S) Σ_{t≠s} w_t)`` depends on ``z_{−s}`` alone: unbiased. For
  ``γ > 0`` it depends on ``z_s`` through ``v_s``, so the estimator of ``∇_φ E[L̂]`` is biased
  by ``+γ E[Σ_s v_s h_s]`` (tests/objectives/test_ovis.py checks that this is the whole bias on
  a small model). Costs ``S`` evaluations, as VIMCO.

As a surrogate per data point (its gradient is the estimator; ``log q`` is live in ``L̂`` too,
which gives the ``−v_s h_s`` of ``d_s``):

    L̂(log p − log q) + Σ_s sg(L̂ − c_s) log q_s

θ gets the pathwise IWAE gradient ``Σ_s v_s ∇_θ log p(x, z_s)``, as in the paper. ``estimate``
is ``L̂`` (of the ``S`` particles). Shapes ``[S, B]``, auxiliary ``[M, B]``; ``S ≥ 2``.

The derivation: docs/maths.md, "OVIS: the optimal control variate of the score-function IWAE
gradient".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from tvo.objectives.base import Objective, Terms, check_log_weights
from tvo.ops import leave_one_out_logsumexp, logmeanexp
from tvo.settings import ConfigError, Setting

FORMS = ("mc", "asymptotic")


def _surrogate(log_p: Tensor, log_q: Tensor, control: Tensor) -> Terms:
    """``L̂ + Σ_s sg(L̂ − c_s) log q_s`` for a control variate ``c`` ``[S, B]`` (detached)."""
    bound = logmeanexp(log_p - log_q)
    signal = bound.detach() - control
    return Terms(bound + (signal * log_q).sum(0), bound.detach())


def ovis_mc_control(log_weight: Tensor, log_weight_aux: Tensor) -> Tensor:
    """OVIS-MC's control variate ``c_s = (1/M) Σ_m [log Ẑ(z'_m, z_{−s}) − v_s(z'_m, z_{−s})]``,
    ``[S, B]``, from the particles' log-weights ``[S, B]`` and the auxiliary ones ``[M, B]``
    (both detached). ``O(S·M·B)`` memory."""
    num_particles = log_weight.shape[0]
    others = leave_one_out_logsumexp(log_weight)[:, None]  # log Σ_{t≠s} w_t, [S, 1, B]
    aux = log_weight_aux[None]  # [1, M, B]
    total = torch.logaddexp(others, aux)  # log(Σ_{t≠s} w_t + w'_m), [S, M, B]
    d = total - math.log(num_particles) - torch.exp(aux - total)
    return d.mean(1)


def ovis_mc(log_p: Tensor, log_q: Tensor, log_weight_aux: Tensor) -> Terms:
    """OVIS-MC (unbiased): ``S`` particles' ``log_p``, ``log_q`` ``[S, B]`` and ``M``
    independent auxiliary particles' log-weights ``log_weight_aux`` ``[M, B]`` (used, detached,
    for the control variate only; see the module docstring). ``S ≥ 2``, ``M ≥ 1``."""
    log_p, log_q = check_log_weights(log_p, log_q, min_particles=2)
    if log_weight_aux.dim() != 2 or log_weight_aux.shape[1] != log_p.shape[1]:
        raise ValueError(
            f"log_weight_aux must be [M, B] with B = {log_p.shape[1]}, got "
            f"{tuple(log_weight_aux.shape)}"
        )
    with torch.no_grad():
        control = ovis_mc_control((log_p - log_q).detach(), log_weight_aux.detach().to(log_p))
    return _surrogate(log_p, log_q, control)


def ovis_asymptotic_control(log_weight: Tensor, gamma: float) -> Tensor:
    """OVIS~'s control variate ``c_s = log Ẑ_{−s} − γ v_s + (1 − γ) log(1 − 1/S)``, ``[S, B]``,
    from detached log-weights ``[S, B]`` (``S ≥ 2``)."""
    num_particles = log_weight.shape[0]
    log_z_others = leave_one_out_logsumexp(log_weight) - math.log(num_particles - 1)
    v = torch.softmax(log_weight, dim=0)
    return log_z_others - gamma * v + (1 - gamma) * math.log(1 - 1 / num_particles)


def ovis_asymptotic(log_p: Tensor, log_q: Tensor, gamma: float = 1.0) -> Terms:
    """OVIS~ on ``log_p``, ``log_q`` ``[S, B]`` (``S ≥ 2``): unbiased at ``γ = 0`` only (see
    the module docstring)."""
    log_p, log_q = check_log_weights(log_p, log_q, min_particles=2)
    with torch.no_grad():
        control = ovis_asymptotic_control((log_p - log_q).detach(), gamma)
    return _surrogate(log_p, log_q, control)


def check_form(form: str, auxiliary_particles, gamma) -> None:
    """``ValueError`` naming a bad OVIS setting and what would be valid."""
    if form not in FORMS:
        raise ValueError(f"unknown OVIS form {form!r}: expected one of {', '.join(FORMS)}")
    if form == "mc" and (
        not isinstance(auxiliary_particles, int)
        or isinstance(auxiliary_particles, bool)
        or auxiliary_particles < 1
    ):
        raise ValueError(
            f"OVIS-MC needs auxiliary_particles to be an integer ≥ 1, got {auxiliary_particles!r}"
        )
    if form == "asymptotic" and (
        not isinstance(gamma, int | float) or isinstance(gamma, bool) or not 0 <= gamma <= 1
    ):
        raise ValueError(f"OVIS~ needs gamma in [0, 1], got {gamma!r}")


def _gamma(value) -> None:
    """OVIS~'s ``γ``: a number in ``[0, 1]`` (a run's setting; ``check_form`` checks the
    objective's own)."""
    if value is not None and not (
        isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
    ):
        raise ConfigError(f"gamma must be a number in [0, 1], got {value!r}")


class OVIS(Objective):
    """OVIS (Liévin et al., 2020): the IWAE bound's score-function gradient with the optimal
    control variate, for discrete and continuous latents (``tvo.objectives.ovis``).

    ``OVIS()`` is OVIS-MC with 10 auxiliary particles (unbiased; ``S + 10`` model evaluations
    per data point); ``OVIS(form="asymptotic", gamma=1.0)`` is OVIS~ (``S`` evaluations;
    unbiased at ``gamma=0`` only). ``S ≥ 2``.
    """

    name = "ovis"
    function = staticmethod(ovis_mc)  # or ovis_asymptotic, by form (terms)
    min_particles = 2
    settings: ClassVar[dict[str, object]] = {
        "ovis_form": "mc", "auxiliary_particles": 10, "gamma": 1.0,
    }  # fmt: skip
    declared: ClassVar[tuple[Setting, ...]] = (
        Setting("ovis_form", str, help="OVIS's control variate: mc (unbiased) or asymptotic",
                choices=("mc", "asymptotic")),
        Setting("auxiliary_particles", int, help="OVIS-MC's particles for the control variate",
                low=1),
        Setting("gamma", float, help="OVIS~'s γ in [0, 1]", check=lambda v, values: _gamma(v)),
    )  # fmt: skip

    def __init__(self, form: str = "mc", auxiliary_particles: int = 10, gamma: float = 1.0):
        check_form(form, auxiliary_particles, gamma)
        self.form, self.auxiliary_particles, self.gamma = form, auxiliary_particles, gamma

    @classmethod
    def applicable(cls, values: Mapping[str, object]) -> tuple[str, ...]:
        form = values.get("ovis_form") or cls.settings["ovis_form"]
        return ("ovis_form", "auxiliary_particles" if form == "mc" else "gamma")

    @classmethod
    def from_settings(cls, seed: int = 0, **settings) -> OVIS:
        settings = {**cls.settings, **settings}
        return cls(settings["ovis_form"], settings["auxiliary_particles"], settings["gamma"])

    def run_settings(self) -> dict:
        if self.form == "mc":
            return {"ovis_form": "mc", "auxiliary_particles": self.auxiliary_particles}
        return {"ovis_form": "asymptotic", "gamma": self.gamma}

    def particles_drawn(self, num_particles: int) -> int:
        """OVIS-MC draws its auxiliary particles with the ``S`` (one draw, after them)."""
        return num_particles + (self.auxiliary_particles if self.form == "mc" else 0)

    def terms(self, log_p: Tensor, log_q: Tensor, partition=None) -> Terms:
        """OVIS~ on the ``S`` particles' tensors; OVIS-MC on ``S + M`` rows, the last ``M``
        the auxiliary particles (as ``particles_drawn`` draws them)."""
        if self.form == "asymptotic":
            return ovis_asymptotic(log_p, log_q, self.gamma)
        num_particles = log_p.shape[0] - self.auxiliary_particles
        if num_particles < 2:
            raise ValueError(
                f"OVIS-MC needs S ≥ 2 particles followed by its {self.auxiliary_particles} "
                f"auxiliary ones, got {log_p.shape[0]} rows"
            )
        aux = (log_p[num_particles:] - log_q[num_particles:]).detach()
        return ovis_mc(log_p[:num_particles], log_q[:num_particles], aux)

    def __repr__(self) -> str:
        if self.form == "mc":
            return f"OVIS(form='mc', auxiliary_particles={self.auxiliary_particles})"
        return f"OVIS(form='asymptotic', gamma={self.gamma:g})"
