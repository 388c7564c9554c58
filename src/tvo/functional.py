"""The functional layer: one pure function per objective on ``[S, B]`` log-weight tensors.

Each takes ``log_p = log p(x, z_s)`` and ``log_q = log q(z_s | x)`` (particles first) and returns a
named tuple with ``surrogate`` ``[B]`` (its gradient is the estimator, for θ and φ at once) and
``estimate`` ``[B]`` (the objective's value). Wake-sleep and inference compilation need model
samples and live at the model level (:mod:`tvo.objectives.wake_sleep`).
"""

from tvo.objectives.elbo import elbo, vae
from tvo.objectives.iwae import iwae, reinforce, vimco
from tvo.objectives.tvo import integration_weights, tvo
from tvo.objectives.wake_sleep import rws, wake_theta

__all__ = [
    "elbo",
    "integration_weights",
    "iwae",
    "reinforce",
    "rws",
    "tvo",
    "vae",
    "vimco",
    "wake_theta",
]
