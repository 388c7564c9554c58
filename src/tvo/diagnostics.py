"""Gradient statistics of any estimator: mean, variance and signal-to-noise ratio, for the
generative parameters θ and the inference parameters φ separately.

An estimator ``ĝ`` of the gradient of a bound is drawn ``R`` times (``repeats``) at fixed
parameters and data ``x`` ``[B, D]``, each draw with fresh particles: ``ĝ_r = −∇ loss_r``, the
ascent direction of the objective (``loss = −mean_b surrogate_b``). Per parameter component
``i``, over the draws:

    mean_i = (1/R) Σ_r ĝ_{r,i}
    variance_i = 1/(R − 1) Σ_r (ĝ_{r,i} − mean_i)²
    SNR_i = |mean_i| / sqrt(variance_i)

the signal-to-noise ratio of Rainforth et al. (ICML 2018, "Tighter variational bounds are not
necessarily better"), ``|E ĝ| / std ĝ``. A component with zero variance has ``SNR = inf`` when
its mean is not zero (a deterministic gradient) and ``nan`` when it is (no gradient reaches it,
e.g. θ under inference compilation). Summaries per group (θ, φ): ``snr``, the mean of ``SNR_i``
over the components that have one (``inf`` if any is ``inf``); ``snr_norm``, the SNR of the
gradient as one vector, ``‖E ĝ‖ / sqrt(Σ_i Var ĝ_i)``; ``variance``, the mean of
``variance_i`` (the TVO paper's gradient-variance figure averages the standard deviation,
``std`` here).

From ``R`` draws, ``|mean_i|`` overestimates ``|E ĝ_i|``: a component whose true SNR is 0 reads
about ``sqrt(2/(πR))`` (0.08 at ``R = 100``), so read ``snr`` against that floor. For the vector
this bias is removed: ``E‖mean‖² = ‖E ĝ‖² + Σ_i Var ĝ_i / R``, so ``snr_norm`` uses
``sqrt(max(‖mean‖² − Σ_i variance_i / R, 0))`` as its numerator (0 for a zero-mean gradient;
a deterministic one has zero variance and ``snr_norm = inf``).

θ and φ are told apart by the protocol, not by names: φ are the parameters that ``log q(z | x)``
(``model.log_guide``) depends on, θ those that ``log p(x, z)`` (``model.log_joint``) depends on
and ``log q`` does not. Memory: two running sums the size of the parameters, in float64
(Welford's update), never the ``R`` draws.

The equations: docs/maths.md, "Gradient signal-to-noise ratios".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

GROUPS = ("theta", "phi")


def split_parameters(model: nn.Module, x: Tensor) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """``{"theta": [(name, p)…], "phi": [(name, p)…]}``: φ what ``log_guide`` depends on, θ what
    ``log_joint`` depends on and ``log_guide`` does not (asked of autograd on one particle)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    z, _ = model.sample_guide(x, 1)
    z = tuple(v.detach() for v in z) if isinstance(z, tuple) else z.detach()

    def used(value: Tensor) -> list[bool]:
        grads = torch.autograd.grad(value.sum(), params, allow_unused=True)
        return [g is not None for g in grads]

    in_guide, in_joint = used(model.log_guide(x, z)), used(model.log_joint(x, z))
    return {
        "theta": [item for item, q, p in zip(named, in_guide, in_joint) if p and not q],
        "phi": [item for item, q in zip(named, in_guide) if q],
    }


@dataclass
class GradientStats:
    """One group's statistics over the draws: ``mean``, ``variance`` and ``snr`` per component
    (flattened in the order of ``names``), and their summaries (module docstring)."""

    names: list[str]
    mean: Tensor
    variance: Tensor
    repeats: int

    @property
    def snr(self) -> Tensor:
        """``|mean| / std`` per component: ``inf`` for a deterministic non-zero component,
        ``nan`` for one that gets no gradient."""
        return self.mean.abs() / self.variance.sqrt()

    def summary(self) -> dict[str, float]:
        snr = self.snr
        defined = snr[~torch.isnan(snr)]
        total = self.variance.sum()
        signal = (self.mean.square().sum() - total / self.repeats).clamp(min=0).sqrt()
        return {
            "snr": defined.mean().item() if defined.numel() else math.nan,
            "snr_norm": (signal / total.sqrt()).item() if total > 0 or signal > 0 else math.nan,
            "variance": self.variance.mean().item() if self.variance.numel() else math.nan,
            "std": self.variance.sqrt().mean().item() if self.variance.numel() else math.nan,
            "parameters": int(self.mean.numel()),
        }


def gradient_stats(
    model: nn.Module,
    objective,
    x: Tensor,
    num_particles: int,
    repeats: int = 100,
    seed: int = 0,
    partition=None,
) -> dict[str, GradientStats]:
    """The statistics of ``objective``'s gradient estimator at ``model``'s parameters on ``x``
    ``[B, D]`` with ``num_particles`` particles, over ``repeats`` draws (``≥ 2``), for θ and φ:
    ``{"theta": GradientStats, "phi": GradientStats}``. Seeded by ``seed`` without touching the
    caller's random state; ``partition`` for an objective that takes one (an adaptive TVO's).
    The model's parameters and gradients are left as they were."""
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 2:
        raise ValueError(f"gradient statistics need repeats to be an integer ≥ 2, got {repeats!r}")
    objective.check(model, num_particles)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        groups = split_parameters(model, x)
        params = [p for g in GROUPS for _, p in groups[g]]
        count = 0
        mean = square = None
        for _ in range(repeats):
            loss = objective(model, x, num_particles, partition=partition).loss
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            flat = torch.cat([(torch.zeros_like(p) if g is None else -g).flatten().double()
                              for g, p in zip(grads, params)])  # fmt: skip
            count += 1
            if mean is None:
                mean, square = flat.clone(), torch.zeros_like(flat)
            else:  # Welford: mean and the sum of squared deviations
                delta = flat - mean
                mean += delta / count
                square += delta * (flat - mean)
    variance = square / (count - 1)
    out, start = {}, 0
    for group in GROUPS:
        size = sum(p.numel() for _, p in groups[group])
        names = [n for n, _ in groups[group]]
        out[group] = GradientStats(names, mean[start : start + size],
                                   variance[start : start + size], repeats)  # fmt: skip
        start += size
    return out


def record(objective_name: str, num_particles: int, stats: dict[str, GradientStats]) -> dict:
    """One JSON line: ``objective``, ``particles``, and ``theta_snr``, ``theta_snr_norm``,
    ``theta_variance``, ``theta_std``, ``theta_parameters`` and the same for ``phi``."""
    line = {"objective": objective_name, "particles": num_particles,
            "repeats": stats["theta"].repeats}  # fmt: skip
    for group in GROUPS:
        line.update({f"{group}_{k}": v for k, v in stats[group].summary().items()})
    return line


DEFAULT_OBJECTIVES = ("tvo", "vimco", "reinforce", "rws", "ovis", "renyi")


def run_objectives(trained, names: list[str], particles: list[int]) -> list[tuple]:
    """``(name, objective, partition)`` for each of ``names`` at a trained run (a
    ``tvo.build.Trained``): the run's own objective with its settings and the partition of
    its checkpoint, every other one with its defaults. A ``ConfigError``
    names an unknown objective, one the model cannot take (pathwise on discrete latents) and a
    particle count below an objective's minimum, before any work."""
    from tvo.config import ConfigError
    from tvo.objectives import OBJECTIVES, make_objective, objective_class

    chosen = []
    for name in names:
        if name not in OBJECTIVES:
            raise ConfigError(f"unknown objective {name!r}: expected one of "
                              f"{', '.join(OBJECTIVES)}")  # fmt: skip
        cls = objective_class(name)
        error = cls.requirement_error(trained.model)
        if error is not None:
            raise ConfigError(error)
        low = min(particles)
        if low < cls.min_particles:
            raise ConfigError(f"{name} needs at least {cls.min_particles} particles, got "
                              f"--particles {low}")  # fmt: skip
        if name == trained.config.objective:
            chosen.append((name, make_objective(trained.config), trained.partition))
        else:
            chosen.append((name, cls.from_settings(seed=trained.config.seed), None))
    return chosen
