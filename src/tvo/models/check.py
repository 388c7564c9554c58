"""Checking a model against the protocol before any training: :func:`check_model`.

It draws a few particles for a small batch and checks every shape and dtype the objectives rely
on (``[S, B]`` log-densities, particles with leading ``[S, B]``, model samples ``[N, D]``), and
that ``log_guide`` agrees with ``sample_guide``. For each common mistake the message names the
fix: a ``likelihood`` or ``guide`` that is not wrapped in ``Independent`` (its ``log_prob`` is
per pixel or per unit, not per data point), a single data point instead of a batch,
``has_rsample = True`` with a guide that cannot ``rsample``, log-densities of the wrong shape or
dtype. ``tvo.fit`` and ``tvo train`` run it first.

:func:`observation_support` says what values the data must take for a model: a Bernoulli
likelihood's (binary observations: data in ``[0, 1]``, binarised afresh where it is grey), or
any other ``torch.distributions`` constraint. A model declares it as ``observation_support``;
a :class:`~tvo.models.base.Model` is asked its likelihood's support; otherwise binary is assumed
(the convention of the paper's datasets).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor
from torch.distributions import constraints

from tvo.models.base import Model
from tvo.models.user import ModelError


def observation_support(model) -> constraints.Constraint:
    """The support of one observation's values under ``model``'s likelihood."""
    declared = getattr(model, "observation_support", None)
    if declared is not None:
        return declared
    if isinstance(model, Model):
        with torch.no_grad():
            z = model.prior().sample((1,))
            support = model.likelihood(z).support
        return getattr(support, "base_constraint", support)  # Independent's, per value
    return constraints.boolean


def is_binary(support: constraints.Constraint) -> bool:
    """Whether ``support`` is the Bernoulli likelihood's ``{0, 1}``."""
    return getattr(support, "base_constraint", support) is constraints.boolean


def _leading(z) -> list[tuple[int, ...]]:
    values = z if isinstance(z, tuple | list) else (z,)
    return [tuple(v.shape[:2]) for v in values]


def _check_density(name: str, value, shape: tuple[int, ...], like: str) -> None:
    if not isinstance(value, Tensor):
        raise ModelError(f"{name} must return a tensor of shape {list(shape)}, got {type(value)}")
    if not value.dtype.is_floating_point:
        raise ModelError(f"{name} has dtype {value.dtype}: a log-density must be floating point")
    if tuple(value.shape) == shape:
        return
    extra = tuple(value.shape[len(shape) :])
    if tuple(value.shape[: len(shape)]) == shape and extra:
        raise ModelError(
            f"{name} has shape {list(value.shape)}, expected {list(shape)}: it is per "
            f"{like}, not per data point; wrap the distribution in "
            f"torch.distributions.Independent(..., {len(extra)}) (or sum over the last "
            f"{len(extra)} dimension{'s' if len(extra) > 1 else ''})"
        )
    raise ModelError(f"{name} has shape {list(value.shape)}, expected {list(shape)}")


def _check_distributions(model: Model, x: Tensor, num_particles: int) -> None:
    """For a model of three distributions: their batch and event shapes."""
    B = x.shape[0]
    guide = model.guide(x)
    if tuple(guide.batch_shape) != (B,):
        extra = len(guide.batch_shape) - 1
        hint = f"; wrap it in Independent(..., {extra}) so that its event is one latent"
        raise ModelError(
            f"guide(x) has batch shape {list(guide.batch_shape)} for x of shape "
            f"{list(x.shape)}: expected [{B}], one distribution per data point"
            + (hint if extra > 0 else "")
        )
    prior = model.prior()
    if tuple(prior.batch_shape) != ():
        raise ModelError(
            f"prior() has batch shape {list(prior.batch_shape)}, expected []: wrap it in "
            f"Independent(..., {len(prior.batch_shape)}) so that its event is one latent"
        )
    with torch.no_grad():
        z = guide.sample((num_particles,))
        likelihood = model.likelihood(z)
    if tuple(likelihood.batch_shape) != (num_particles, B):
        extra = len(likelihood.batch_shape) - 2
        hint = (
            f"; wrap it in Independent(..., {extra}) so that its event is one data point"
            if extra > 0
            else ""
        )
        raise ModelError(
            f"likelihood(z) has batch shape {list(likelihood.batch_shape)} for particles z of "
            f"shape {list(z.shape)}: expected [{num_particles}, {B}]{hint}"
        )
    if tuple(likelihood.event_shape) != tuple(x.shape[1:]):
        raise ModelError(
            f"likelihood(z) has event shape {list(likelihood.event_shape)}, but a data point "
            f"has shape {list(x.shape[1:])}"
        )


def check_model(model, x: Tensor, num_particles: int = 3) -> None:
    """Check ``model`` against the protocol on the batch ``x`` ``[B, D]``; raise
    :class:`~tvo.models.user.ModelError` (a ``ValueError``) naming the first problem and its
    fix. Draws ``num_particles`` particles (and as many model samples) without gradients."""
    name = type(model).__name__
    if not isinstance(x, Tensor) or x.dim() < 2:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ModelError(
            f"x has shape {shape}: give a batch of data points [B, D] (for a single data "
            "point, x[None])"
        )
    missing = [m for m in ("sample_guide", "log_guide", "log_joint", "sample")
               if not callable(getattr(model, m, None))]  # fmt: skip
    if missing or not hasattr(model, "has_rsample"):
        what = ", ".join(missing + ([] if hasattr(model, "has_rsample") else ["has_rsample"]))
        raise ModelError(
            f"{name} lacks {what} of the model protocol (tvo.models.base); subclass tvo.Model "
            "and give prior(), likelihood(z) and guide(x), or implement the four methods"
        )
    S, B = num_particles, x.shape[0]
    if isinstance(model, Model):
        _check_distributions(model, x, num_particles)
    with torch.no_grad():
        z, log_q = model.sample_guide(x, S)
        _check_density("sample_guide's log q", log_q, (S, B), "latent unit")
        leading = _leading(z)
        if any(shape != (S, B) for shape in leading):
            raise ModelError(
                f"sample_guide(x, {S}) gave particles with leading dimensions {leading}, "
                f"expected [{S}, {B}] (particles first, then the batch)"
            )
        log_p = model.log_joint(x, z)
        _check_density("log_joint", log_p, (S, B), "pixel or latent unit")
        again = model.log_guide(x, z)
        _check_density("log_guide", again, (S, B), "latent unit")
        if log_p.dtype != log_q.dtype:
            raise ModelError(
                f"log_joint is {log_p.dtype} but log q is {log_q.dtype}: compute both in the "
                "model's dtype"
            )
        if not torch.allclose(again, log_q, rtol=1e-4, atol=1e-4, equal_nan=True):
            gap = (again - log_q).abs().max().item()
            raise ModelError(
                f"log_guide(x, z) differs from the log q that sample_guide returned for the "
                f"same particles (by up to {gap:.3g}): they must be the same density"
            )
        z_model, x_model = model.sample(S)
        if tuple(x_model.shape) != (S, *x.shape[1:]):
            raise ModelError(
                f"sample({S}) gave data of shape {list(x_model.shape)}, expected "
                f"{[S, *x.shape[1:]]}"
            )
        _check_density("log_guide of model samples", model.log_guide(x_model, z_model), (S,),
                       "latent unit")  # fmt: skip
    particles = z if isinstance(z, tuple | list) else (z,)
    if any(v.requires_grad for v in particles):
        raise ModelError(
            "sample_guide(x, S) returned particles that require grad: without "
            "reparameterize=True they must be detached (draw them with .sample())"
        )
    if getattr(model, "has_rsample", False):
        try:
            model.sample_guide(x, S, reparameterize=True)
        except NotImplementedError as error:
            raise ModelError(
                f"{name} sets has_rsample = True, but its guide cannot rsample "
                f"({type(error).__name__}: {error}); set has_rsample = False (discrete latents) "
                "or use a reparameterisable guide"
            ) from error


def check_data(model, x: Tensor, where: str = "x") -> None:
    """Raise ``ValueError`` when ``x`` holds values outside ``model``'s observation support
    (:func:`observation_support`): for a Bernoulli likelihood anything outside ``[0, 1]`` (grey
    levels are what dynamic binarisation draws from), else what the support's ``check``
    refuses; NaN is outside every support. The library's entry points (:func:`tvo.estimate`,
    :func:`tvo.ais`, an objective's call) run it unless given ``validate=False``; one pass over
    ``x``, and for a :class:`~tvo.models.base.Model` one draw of ``z`` to ask its
    likelihood."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{where} must be a floating-point tensor [B, D], got {kind}")
    support = _support_of(model, x.device)
    with torch.no_grad():
        if is_binary(support):
            outside = ~((x >= 0) & (x <= 1))
        else:
            outside = ~support.check(x)
        if not bool(outside.any()):
            return
        finite = x[torch.isfinite(x)]
        span = (f"[{finite.min().item():g}, {finite.max().item():g}]" if finite.numel()
                else "no finite value")  # fmt: skip
        bad = x[outside].flatten()[0].item()
    need = ("values in [0, 1] (a Bernoulli likelihood: 0/1, or grey levels to binarise)"
            if is_binary(support) else f"values in its support {support}")  # fmt: skip
    raise ValueError(
        f"{where} holds values outside what {type(model).__name__} observes: it needs {need}, "
        f"but {where} has {bad:g} (its finite values span {span}); give data the model can "
        "observe, or declare the model's observation_support (validate=False skips this check)"
    )


_SUPPORTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _support_of(model, device: torch.device) -> constraints.Constraint:
    """:func:`observation_support`, asked once per model and without moving the random
    generators (asking a :class:`Model` draws a ``z``): the check leaves every draw after it
    as it was."""
    declared = getattr(model, "observation_support", None)
    if declared is not None:
        return declared
    try:
        return _SUPPORTS[model]
    except (KeyError, TypeError):
        pass
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        support = observation_support(model)
    try:
        _SUPPORTS[model] = support
    except TypeError:  # a model that cannot be weakly referenced: asked each time
        pass
    return support
