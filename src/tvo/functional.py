"""The functional layer: one pure function per objective on ``[S, B]`` tensors.

Most take ``log_p = log p(x, z_s)`` and ``log_q = log q(z_s | x)`` (particles first) and return a
named tuple with ``surrogate`` ``[B]`` (its gradient is the estimator, for θ and φ at once) and
``estimate`` ``[B]`` (the objective's value). The others take the tensors of their sampling mode
(``tvo.objectives.sampling``): ``dreg`` and ``tvo_reparam`` ``(log p(x, sg(z)),
ℓ|_{parameters stopped})``, ``wake_sleep`` and ``inference_compilation``
``(log_p, log_q, log_q_sleep)``, ``ovis_mc`` ``(log_p, log_q, log_weight_aux)`` with the
``[M, B]`` log-weights of ``M`` auxiliary particles. Every one works under ``torch.func.vmap`` and
``torch.func.grad``.
"""

from tvo.objectives.elbo import elbo, vae
from tvo.objectives.iwae import dreg, iwae, reinforce, vimco
from tvo.objectives.ovis import ovis_asymptotic, ovis_mc
from tvo.objectives.renyi import renyi, renyi_pathwise
from tvo.objectives.tvo import tvo, tvo_reparam
from tvo.objectives.wake_sleep import inference_compilation, rws, wake_sleep, wake_theta
from tvo.partitions import integration_weights

__all__ = [
    "dreg",
    "elbo",
    "inference_compilation",
    "integration_weights",
    "iwae",
    "ovis_asymptotic",
    "ovis_mc",
    "reinforce",
    "renyi",
    "renyi_pathwise",
    "rws",
    "tvo",
    "tvo_reparam",
    "vae",
    "vimco",
    "wake_sleep",
    "wake_theta",
]
