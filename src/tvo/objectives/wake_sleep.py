"""Wake-sleep (Hinton et al., 1995), reweighted wake-sleep (Bornschein & Bengio, 2015) and
inference compilation (Le et al., 2017).

θ ascends the importance-weighted bound through the wake-θ term
``logmeanexp_s(log p_s − sg(log q_s))``, whose gradient is ``Σ_s w̄_s ∇_θ log p_s``.

φ descends ``KL(p(z|x) ‖ q(z|x))``, i.e. minimises ``TVO_U`` with ``K = 1`` (the EUBO) over φ;
its gradient is ``−E_{p(z|x)}[∇_φ log q]``. Two estimates of it:

- wake-φ (RWS): self-normalised weights on data, ``Σ_s sg(w̄_s) log q_s``;
- sleep-φ (wake-sleep, inference compilation): exact joint samples ``(z', x') ~ p_θ``,
  ``mean_j log q(z'_j | x'_j)``, which averages the gradient over ``x ~ p_θ`` instead of the data.

Wake-sleep and inference compilation take the tensors of the ``model-samples`` sampling mode:
``log_p``, ``log_q`` of ``S`` particles per data point and ``log_q_sleep`` of ``S·B`` model
samples, all ``[S, B]``.

The equations: docs/maths.md, "Wake-sleep, reweighted wake-sleep, inference compilation".
"""

from __future__ import annotations

from torch import Tensor

from tvo.objectives.base import Objective, Terms, check_log_weights
from tvo.ops import logmeanexp, normalized_weights


def wake_theta(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``logmeanexp_s(log p_s − sg(log q_s))``, ``[S, B] → [B]``: the θ-part of (R)WS."""
    return logmeanexp(log_p - log_q.detach())


def rws(log_p: Tensor, log_q: Tensor) -> Terms:
    """Reweighted wake-sleep: ``surrogate = wake-θ + Σ_s sg(w̄_s) log q_s``, particles detached.

    ``estimate`` is the importance-weighted bound ``L̂``.

    Args:
        log_p: ``log p(x, z_s)`` of the particles, ``[S, B]`` (differentiable in θ).
        log_q: ``log q(z_s | x)``, ``[S, B]`` (differentiable in φ).
    """
    log_p, log_q = check_log_weights(log_p, log_q)
    ell = (log_p - log_q).detach()
    wake_phi = (normalized_weights(ell) * log_q).sum(0)
    return Terms(wake_theta(log_p, log_q) + wake_phi, logmeanexp(ell))


def wake_sleep(log_p: Tensor, log_q: Tensor, log_q_sleep: Tensor) -> Terms:
    """Wake-sleep: ``surrogate = wake-θ + mean_j log q(z'_j | x'_j)`` (the sleep-φ term, the
    same for every data point), ``[B]``; ``estimate`` is ``L̂``.

    Args:
        log_p: ``log p(x, z_s)`` of the particles, ``[S, B]`` (differentiable in θ).
        log_q: ``log q(z_s | x)``, ``[S, B]`` (differentiable in φ).
        log_q_sleep: ``log q(z'_j | x'_j)`` of samples ``(z', x')`` from the model, ``[S·B]``
            (differentiable in φ).
    """
    log_p, log_q = check_log_weights(log_p, log_q)
    surrogate = wake_theta(log_p, log_q) + log_q_sleep.mean()
    return Terms(surrogate, logmeanexp((log_p - log_q).detach()))


def inference_compilation(log_p: Tensor, log_q: Tensor, log_q_sleep: Tensor) -> Terms:
    """Inference compilation: sleep-φ alone, ``surrogate = mean_j log q(z'_j | x'_j)`` for every
    data point; θ gets no gradient. The data enter only ``estimate``, the bound ``L̂``.

    Args:
        log_p: ``log p(x, z_s)`` of the particles, ``[S, B]`` (differentiable in θ).
        log_q: ``log q(z_s | x)``, ``[S, B]`` (differentiable in φ).
        log_q_sleep: ``log q(z'_j | x'_j)`` of samples ``(z', x')`` from the model, ``[S·B]``
            (differentiable in φ).
    """
    log_p, log_q = check_log_weights(log_p, log_q)
    ell = (log_p - log_q).detach()
    return Terms(log_q_sleep.mean().expand(ell.shape[1]), logmeanexp(ell))


class RWS(Objective):
    """Reweighted wake-sleep: wake-θ and wake-φ on the same ``S`` particles."""

    name = "rws"
    function = staticmethod(rws)


class WakeSleep(Objective):
    """Wake-sleep: wake-θ on ``S`` particles per data point, sleep-φ on ``B·S`` model samples."""

    name = "ws"
    sampling = "model-samples"
    function = staticmethod(wake_sleep)


class InferenceCompilation(Objective):
    """Inference compilation: sleep-φ alone on ``B·S`` model samples; θ is left unchanged.

    The data enter only the reported ``estimate`` (the bound ``L̂`` with ``S`` particles).
    """

    name = "ic"
    sampling = "model-samples"
    function = staticmethod(inference_compilation)
