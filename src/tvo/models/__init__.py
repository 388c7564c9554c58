"""Models: the protocol (:mod:`tvo.models.base`), the paper's models and toy models.

:func:`create` builds any of them by name: ``linear_1``, ``linear_2``, ``linear_3`` and
``non_linear`` (sigmoid belief networks), ``gaussian`` (the continuous VAE), and the toys
``discrete_toy`` and ``linear_gaussian``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tvo.models.base import GenerativeModel, Model
from tvo.models.sbn import SBN
from tvo.models.toy import DiscreteToy, LinearGaussian
from tvo.models.vae import GaussianVAE

MODELS: dict[str, Callable[..., nn.Module]] = {
    "linear_1": lambda pixels, data_mean: SBN((200,), pixels, (), data_mean),
    "linear_2": lambda pixels, data_mean: SBN((200, 200), pixels, (), data_mean),
    "linear_3": lambda pixels, data_mean: SBN((200, 200, 200), pixels, (), data_mean),
    "non_linear": lambda pixels, data_mean: SBN((200,), pixels, (200, 200), data_mean),
    "gaussian": lambda pixels, data_mean: GaussianVAE(50, pixels, (200, 200), data_mean),
    "discrete_toy": lambda pixels, data_mean: DiscreteToy(num_latents=3, num_observed=pixels),
    "linear_gaussian": lambda pixels, data_mean: LinearGaussian(latent_dim=2, obs_dim=pixels),
}

CONTINUOUS = ("gaussian", "linear_gaussian")  # the models with reparameterisable latents


def create(name: str, pixels: int = 784, data_mean=None) -> nn.Module:
    """The model called ``name`` for ``pixels``-dimensional data, its output bias set from
    ``data_mean`` (the mean training image) where the model has one."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    return MODELS[name](pixels, data_mean)


__all__ = [
    "CONTINUOUS",
    "MODELS",
    "SBN",
    "DiscreteToy",
    "GaussianVAE",
    "GenerativeModel",
    "LinearGaussian",
    "Model",
    "create",
]
