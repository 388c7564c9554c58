"""Models: the protocol (``tvo.models.base``), the paper's models and toy models.

``create`` builds any of them by name: ``linear_1``, ``linear_2``, ``linear_3`` and
``non_linear`` (sigmoid belief networks), ``gaussian`` (the continuous VAE), and the toys
``discrete_toy`` and ``linear_gaussian``; or a model of your own by ``package.module:Name``
(``tvo.models.user``). ``tvo.models.check.check_model`` checks any model against the
protocol.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn

from tvo.models.base import GenerativeModel, Model
from tvo.models.sbn import SBN
from tvo.models.toy import DiscreteToy, LinearGaussian
from tvo.models.user import ModelError, arguments, is_spec, load_spec, source_of
from tvo.models.vae import GaussianVAE


class Registered(NamedTuple):
    """A model by name: its class (whose ``has_rsample`` objectives ask about), the keyword
    arguments that make it this model, and the name of its argument for the data's size."""

    cls: type
    defaults: dict
    pixels: str = "pixels"


MODELS: dict[str, Registered] = {
    "linear_1": Registered(SBN, {"latents": (200,), "hidden": ()}),
    "linear_2": Registered(SBN, {"latents": (200, 200), "hidden": ()}),
    "linear_3": Registered(SBN, {"latents": (200, 200, 200), "hidden": ()}),
    "non_linear": Registered(SBN, {"latents": (200,), "hidden": (200, 200)}),
    "gaussian": Registered(GaussianVAE, {"latents": 50, "hidden": (200, 200)}),
    "discrete_toy": Registered(DiscreteToy, {"num_latents": 3}, "num_observed"),
    "linear_gaussian": Registered(LinearGaussian, {"latent_dim": 2}, "obs_dim"),
}


def model_class(name: str, source: str | None = None):
    """The class of the model called ``name``, or the class or factory a ``module:Name`` spec
    imports (``source``: the file a run recorded for it). ``ModelError`` (a ``ValueError``)
    naming the valid names otherwise.

    Args:
        name: a built-in model's name, or ``package.module:Name`` / ``path/to/file.py:Name``.
        source: the file a run recorded for a ``module:Name`` model (``None``: none).
    """
    if is_spec(name):
        return load_spec(name, source)
    if name not in MODELS:
        raise ModelError(
            f"unknown model {name!r}: expected one of {', '.join(MODELS)}, or a model of your "
            "own as package.module:Name or path/to/file.py:Name"
        )
    return MODELS[name].cls


def create(
    name: str,
    pixels: int = 784,
    data_mean=None,
    model_args: dict | None = None,
    source: str | None = None,
) -> nn.Module:
    """The model called ``name`` (or a ``module:Name`` spec) for ``pixels``-dimensional data,
    its output bias set from ``data_mean`` (the mean training image) where the model takes one,
    with the keyword arguments ``model_args``.

    Args:
        name: a built-in model's name, or ``package.module:Name`` / ``path/to/file.py:Name``.
        pixels: values per data point ``D``.
        data_mean (Tensor | None): the mean training image ``[D]`` (``None``: none).
        model_args: keyword arguments of the model's class or factory.
        source: the file a run recorded for a ``module:Name`` model.
    """
    factory = model_class(name, source)
    kwargs = _arguments(name, model_args, pixels, data_mean, source)
    try:
        return factory(**kwargs)
    except (ValueError, TypeError) as error:  # a built-in model's arguments of the wrong value
        if is_spec(name):
            raise  # a model of the user's own: its errors are its own
        raise ModelError(f"model {name} cannot be built with model_args {model_args or {}}: "
                         f"{error}") from error  # fmt: skip


def _arguments(name, model_args, pixels, data_mean, source) -> dict:
    factory = model_class(name, source)
    kwargs = dict(model_args or {})
    if not is_spec(name):
        registered = MODELS[name]
        kwargs = {**registered.defaults, **kwargs}
        kwargs.setdefault(registered.pixels, pixels)
    return arguments(factory, kwargs, pixels, data_mean)


def check_arguments(name: str, model_args: dict | None, source: str | None = None) -> None:
    """Raise ``ModelError`` if the model called ``name`` cannot take ``model_args`` (a built-in
    model is built, for one pixel, to check their values too, with a fork of the process's
    random generator: the check draws nothing from it)."""
    if is_spec(name):
        _arguments(name, model_args, 1, None, source)
    else:
        import torch

        with torch.random.fork_rng(devices=[]):
            create(name, 1, None, model_args, source)


__all__ = [
    "MODELS",
    "SBN",
    "DiscreteToy",
    "GaussianVAE",
    "GenerativeModel",
    "LinearGaussian",
    "Model",
    "ModelError",
    "check_arguments",
    "create",
    "is_spec",
    "model_class",
    "source_of",
]
