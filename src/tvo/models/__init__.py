"""Models: the protocol (:mod:`tvo.models.base`), the paper's models and toy models.

:func:`create` builds any of them by name: ``linear_1``, ``linear_2``, ``linear_3`` and
``non_linear`` (sigmoid belief networks), ``gaussian`` (the continuous VAE), and the toys
``discrete_toy`` and ``linear_gaussian``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import nn

from tvo.models.base import GenerativeModel, Model
from tvo.models.sbn import SBN
from tvo.models.toy import DiscreteToy, LinearGaussian
from tvo.models.vae import GaussianVAE


class Registered(NamedTuple):
    """A model by name: its class (whose ``has_rsample`` objectives ask about) and how to build
    it for ``pixels``-dimensional data with mean image ``data_mean``."""

    cls: type
    build: Callable[..., nn.Module]


MODELS: dict[str, Registered] = {
    "linear_1": Registered(SBN, lambda pixels, mean: SBN((200,), pixels, (), mean)),
    "linear_2": Registered(SBN, lambda pixels, mean: SBN((200, 200), pixels, (), mean)),
    "linear_3": Registered(SBN, lambda pixels, mean: SBN((200, 200, 200), pixels, (), mean)),
    "non_linear": Registered(SBN, lambda pixels, mean: SBN((200,), pixels, (200, 200), mean)),
    "gaussian": Registered(GaussianVAE, lambda pixels, mean: GaussianVAE(50, pixels, (200, 200),
                                                                         mean)),
    "discrete_toy": Registered(DiscreteToy, lambda pixels, mean: DiscreteToy(3, pixels)),
    "linear_gaussian": Registered(LinearGaussian, lambda pixels, mean: LinearGaussian(2, pixels)),
}  # fmt: skip


def model_class(name: str) -> type:
    """The class of the model called ``name``; ``ValueError`` naming the valid ones otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    return MODELS[name].cls


def create(name: str, pixels: int = 784, data_mean=None) -> nn.Module:
    """The model called ``name`` for ``pixels``-dimensional data, its output bias set from
    ``data_mean`` (the mean training image) where the model has one."""
    model_class(name)
    return MODELS[name].build(pixels, data_mean)


__all__ = [
    "MODELS",
    "SBN",
    "DiscreteToy",
    "GaussianVAE",
    "GenerativeModel",
    "LinearGaussian",
    "Model",
    "create",
    "model_class",
]
