"""The sampling modes: how an objective's ``[S, B]`` tensors are drawn from a model.

Every objective is a pure function of the tensors one of these returns; the model is touched
here only, through the protocol of ``tvo.models.base``.

- ``score``: ``S`` particles of ``q(z | x)``, detached: ``(log p(x, z_s), log q(z_s | x))``,
  differentiable in θ and φ respectively (score-function and covariance estimators).
- ``pathwise``: the same with reparameterised particles ``z_s = z_φ(ε_s)`` (VAE, IWAE).
- ``doubly-reparameterized``: ``(log p(x, sg(z_s)), ℓ_s|_{θ, φ stopped})``: θ live on detached
  particles, and the log-weight with every parameter stopped so that φ reaches it only through
  ``z_φ(ε_s)`` (DReG, TVO-reparam). The model is evaluated twice per particle.
- ``model-samples``: the ``score`` tensors of the data, plus ``log q(z'_j | x'_j)`` of
  ``S·B`` exact joint samples ``(z', x') ~ p_θ`` (detached), shaped ``[S, B]`` (wake-sleep and
  inference compilation).

``SAMPLING`` maps each name to ``(draw, log_weight)``: ``draw(model, x, S)`` gives the
tensors, ``log_weight(tensors)`` the ``[S, B]`` log-weights the diagnostics are computed from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call


def score(model, x: Tensor, num_particles: int) -> tuple[Tensor, Tensor]:
    z, log_q = model.sample_guide(x, num_particles)
    return model.log_joint(x, z), log_q


def pathwise(model, x: Tensor, num_particles: int) -> tuple[Tensor, Tensor]:
    z, log_q = model.sample_guide(x, num_particles, reparameterize=True)
    return model.log_joint(x, z), log_q


class _Method(nn.Module):
    """Calls one method of a model, so that ``functional_call`` can swap its parameters."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *args):
        return getattr(self.model, self.method)(*args)


def with_stopped_parameters(model: nn.Module, method: str, *args):
    """``model.method(*args)`` with every parameter detached: gradients reach the arguments
    (the reparameterised particles) only."""
    stopped = {f"model.{name}": p.detach() for name, p in model.named_parameters()}
    return functional_call(_Method(model, method), stopped, args)


def doubly_reparameterized(model, x: Tensor, num_particles: int) -> tuple[Tensor, Tensor]:
    z, _ = model.sample_guide(x, num_particles, reparameterize=True)
    fixed = tuple(v.detach() for v in z) if isinstance(z, tuple) else z.detach()
    log_p_theta = model.log_joint(x, fixed)
    path = with_stopped_parameters(model, "log_joint", x, z) - with_stopped_parameters(
        model, "log_guide", x, z
    )
    return log_p_theta, path


def model_samples(model, x: Tensor, num_particles: int) -> tuple[Tensor, Tensor, Tensor]:
    log_p, log_q = score(model, x, num_particles)
    with torch.no_grad():
        z, x_model = model.sample(x.shape[0] * num_particles)
    log_q_sleep = model.log_guide(x_model, z).reshape(num_particles, x.shape[0])
    return log_p, log_q, log_q_sleep


class Sampling(NamedTuple):
    draw: Callable[..., tuple[Tensor, ...]]
    log_weight: Callable[[tuple[Tensor, ...]], Tensor]


def _difference(tensors: tuple[Tensor, ...]) -> Tensor:
    return tensors[0] - tensors[1]


SAMPLING = {
    "score": Sampling(score, _difference),
    "pathwise": Sampling(pathwise, _difference),
    "doubly-reparameterized": Sampling(doubly_reparameterized, lambda tensors: tensors[1]),
    "model-samples": Sampling(model_samples, _difference),
}
REPARAMETERIZED = ("pathwise", "doubly-reparameterized")  # the modes that need has_rsample
