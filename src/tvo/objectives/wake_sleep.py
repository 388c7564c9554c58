"""Wake-sleep (Hinton et al., 1995), reweighted wake-sleep (Bornschein & Bengio, 2015) and
inference compilation (Le et al., 2017).

θ ascends the importance-weighted bound through the wake-θ term
``logmeanexp_s(log p_s − sg(log q_s))``, whose gradient is ``Σ_s w̄_s ∇_θ log p_s``.

φ descends ``KL(p(z|x) ‖ q(z|x))``, i.e. minimises ``TVO_U`` with ``K = 1`` (the EUBO) over φ;
its gradient is ``−E_{p(z|x)}[∇_φ log q]``. Two estimates of it:

- wake-φ (RWS): self-normalised weights on data, ``Σ_s sg(w̄_s) log q_s``;
- sleep-φ (wake-sleep, inference compilation): exact joint samples ``(z', x') ~ p_θ``,
  ``mean_j log q(z'_j | x'_j)``, which averages the gradient over ``x ~ p_θ`` instead of the data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tvo.objectives.base import (
    Objective,
    Output,
    Terms,
    check_log_weights,
    log_weight_diagnostics,
)
from tvo.ops import logmeanexp, normalized_weights


def wake_theta(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``logmeanexp_s(log p_s − sg(log q_s))``, ``[S, B] → [B]``: the θ-part of (R)WS."""
    return logmeanexp(log_p - log_q.detach())


def rws(log_p: Tensor, log_q: Tensor) -> Terms:
    """Reweighted wake-sleep: ``surrogate = wake-θ + Σ_s sg(w̄_s) log q_s``, particles detached.

    ``estimate`` is the importance-weighted bound ``L̂``.
    """
    check_log_weights(log_p, log_q)
    ell = (log_p - log_q).detach()
    wake_phi = (normalized_weights(ell) * log_q).sum(0)
    return Terms(wake_theta(log_p, log_q) + wake_phi, logmeanexp(ell))


def sleep_phi(model, num_samples: int) -> Tensor:
    """``mean_j log q(z'_j | x'_j)`` over ``num_samples`` joint samples ``(z', x') ~ p_θ``
    (detached): a scalar whose φ-gradient is ``−∇_φ E_{x ~ p_θ} KL(p(z|x) ‖ q(z|x))``."""
    with torch.no_grad():
        z, x = model.sample(num_samples)
    return model.log_guide(x, z).mean()


class RWS(Objective):
    """Reweighted wake-sleep: wake-θ and wake-φ on the same ``S`` particles."""

    name = "rws"

    def terms(self, log_p: Tensor, log_q: Tensor) -> Terms:
        return rws(log_p, log_q)


class WakeSleep(Objective):
    """Wake-sleep: wake-θ on ``S`` particles per data point, sleep-φ on ``B·S`` model samples."""

    name = "ws"

    def __call__(self, model, x: Tensor, num_particles: int) -> Output:
        self.check(model, num_particles)
        z, log_q = model.sample_guide(x, num_particles)
        log_p = model.log_joint(x, z)
        check_log_weights(log_p, log_q)
        surrogate = wake_theta(log_p, log_q).mean() + sleep_phi(model, x.shape[0] * num_particles)
        diagnostics = log_weight_diagnostics(log_p - log_q)
        return Output(-surrogate, diagnostics["iwae"], diagnostics)


class InferenceCompilation(Objective):
    """Inference compilation: sleep-φ alone on ``B·S`` model samples; θ is left unchanged.

    The data enter only the reported ``estimate`` (the bound ``L̂`` with ``S`` particles,
    computed without gradients).
    """

    name = "ic"

    def __call__(self, model, x: Tensor, num_particles: int) -> Output:
        self.check(model, num_particles)
        with torch.no_grad():
            z, log_q = model.sample_guide(x, num_particles)
            diagnostics = log_weight_diagnostics(model.log_joint(x, z) - log_q)
        surrogate = sleep_phi(model, x.shape[0] * num_particles)
        return Output(-surrogate, diagnostics["iwae"], diagnostics)
