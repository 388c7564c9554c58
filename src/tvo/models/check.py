"""Checking a model against the protocol before any training: ``check_model``.

It draws a few particles for a small batch and checks every shape and dtype the objectives rely
on (``[S, B]`` log-densities, particles with leading ``[S, B]``, model samples ``[N, D]``), and
that ``log_guide`` agrees with ``sample_guide``. For each common mistake the message names the
fix: a ``likelihood`` or ``guide`` that is not wrapped in ``Independent`` (its ``log_prob`` is
per pixel or per unit, not per data point), a single data point instead of a batch,
``has_rsample = True`` with a guide that cannot ``rsample``, log-densities of the wrong shape or
dtype, a method that returns something other than the pair it must (``sample_guide``'s
``(z, log_q)``, ``sample``'s ``(z, x)``), and a method that fails on the batch (a model built
for data of another size, most often), named with what it was given. ``has_rsample`` is
optional (``False`` where it is missing). ``tvo.fit`` and ``tvo train`` run it first.

``observation_support`` says what values the data must take for a model: a Bernoulli
likelihood's (binary observations: data in ``[0, 1]``, binarised afresh where it is grey), or
any other ``torch.distributions`` constraint. A model declares it as ``observation_support``;
a ``Model`` is asked its likelihood's support; otherwise binary is assumed
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
    """The support of one observation's values under ``model``'s likelihood.

    Args:
        model (GenerativeModel): the model.
    """
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
    return [tuple(v.shape[:2]) if isinstance(v, Tensor) else type(v).__name__ for v in values]


def _describe(value) -> str:
    """What a method returned, in words: ``a tensor of shape [3, 5]``, ``a tuple of 3``…"""
    if isinstance(value, Tensor):
        return f"a tensor of shape {list(value.shape)}"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}: ({', '.join(map(_describe, value))})"
    return f"a {type(value).__name__}"


def _call(name: str, call: str, fn, *args, x: Tensor | None = None):
    """``fn(*args)``, with any error but a ``ModelError`` turned into one that names the
    model's method, what it was given and the likely fix (the data's size, for a shape error on
    a batch ``x``: a model built for data of another size fails this way)."""
    try:
        return fn(*args)
    except ModelError:
        raise
    except Exception as error:
        text = f"{type(error).__name__}: {error}"
        if x is not None:
            given = f"a batch x of shape {list(x.shape)}"
            words = ("shape", "size", "dimension")
            fix = (
                f"the data have {x.shape[-1]} values per data point: build the model for that "
                f"many (its pixels or size argument), or fix the shapes inside {call}"
                if isinstance(error, RuntimeError | ValueError)
                and any(w in str(error) for w in words)
                else f"{call} must run on {given}"
            )
            raise ModelError(f"{name}.{call} failed on {given} ({text}); {fix}") from error
        raise ModelError(f"{name}.{call} failed ({text})") from error


def _pair(name: str, call: str, value, first: str, second: str):
    """``value`` as the pair a protocol method returns, else a ``ModelError``."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ModelError(
            f"{name}.{call} returned {_describe(value)}; it must return a pair ({first}, {second})"
        )
    return value


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
    B, name = x.shape[0], type(model).__name__
    guide = _call(name, "guide(x)", model.guide, x, x=x)
    if tuple(guide.batch_shape) != (B,):
        extra = len(guide.batch_shape) - 1
        hint = f"; wrap it in Independent(..., {extra}) so that its event is one latent"
        raise ModelError(
            f"guide(x) has batch shape {list(guide.batch_shape)} for x of shape "
            f"{list(x.shape)}: expected [{B}], one distribution per data point"
            + (hint if extra > 0 else "")
        )
    prior = _call(name, "prior()", model.prior)
    if tuple(prior.batch_shape) != ():
        raise ModelError(
            f"prior() has batch shape {list(prior.batch_shape)}, expected []: wrap it in "
            f"Independent(..., {len(prior.batch_shape)}) so that its event is one latent"
        )
    with torch.no_grad():
        z = guide.sample((num_particles,))
        likelihood = _call(name, "likelihood(z)", model.likelihood, z, x=x)
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
    ``ModelError`` (a ``ValueError``) naming the first problem and its
    fix. Draws ``num_particles`` particles (and as many model samples) without gradients.

    Args:
        model (GenerativeModel): a ``tvo.Model`` or an object with the four methods of the
            protocol (``has_rsample`` optional).
        x: a batch of data, ``[B, D]``, as training gives it.
        num_particles: particles (and model samples) drawn for the check.
    """
    name = type(model).__name__
    if not isinstance(x, Tensor) or x.dim() < 2:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ModelError(
            f"x has shape {shape}: give a batch of data points [B, D] (for a single data "
            "point, x[None])"
        )
    missing = [m for m in ("sample_guide", "log_guide", "log_joint", "sample")
               if not callable(getattr(model, m, None))]  # fmt: skip
    if missing:
        raise ModelError(
            f"{name} lacks {', '.join(missing)} of the model protocol (tvo.models.base); "
            "subclass tvo.Model and give prior(), likelihood(z) and guide(x), or implement the "
            "four methods"
        )
    S, B = num_particles, x.shape[0]
    if isinstance(model, Model):
        _check_distributions(model, x, num_particles)
    with torch.no_grad():
        drawn = _call(name, f"sample_guide(x, {S})", model.sample_guide, x, S, x=x)
        z, log_q = _pair(name, f"sample_guide(x, {S})", drawn, f"z: the particles [{S}, {B}, …]",
                         f"log_q: log q(z | x) [{S}, {B}]")  # fmt: skip
        _check_density("sample_guide's log q", log_q, (S, B), "latent unit")
        leading = _leading(z)
        if any(shape != (S, B) for shape in leading):
            raise ModelError(
                f"sample_guide(x, {S}) gave particles with leading dimensions {leading}, "
                f"expected [{S}, {B}] (particles first, then the batch)"
            )
        log_p = _call(name, "log_joint(x, z)", model.log_joint, x, z, x=x)
        _check_density("log_joint", log_p, (S, B), "pixel or latent unit")
        again = _call(name, "log_guide(x, z)", model.log_guide, x, z, x=x)
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
        sampled = _call(name, f"sample({S})", model.sample, S)
        data = f"x: their data {[S, *x.shape[1:]]}"
        z_model, x_model = _pair(name, f"sample({S})", sampled, f"z: {S} latents [{S}, …]", data)
        if not isinstance(x_model, Tensor) or tuple(x_model.shape) != (S, *x.shape[1:]):
            got = list(x_model.shape) if isinstance(x_model, Tensor) else type(x_model).__name__
            raise ModelError(f"sample({S}) gave data of shape {got}, expected {[S, *x.shape[1:]]}")
        again = _call(name, "log_guide(x, z) of its own samples", model.log_guide, x_model,
                      z_model, x=x_model)  # fmt: skip
        _check_density("log_guide of model samples", again, (S,), "latent unit")
    particles = z if isinstance(z, tuple | list) else (z,)
    if any(v.requires_grad for v in particles):
        raise ModelError(
            "sample_guide(x, S) returned particles that require grad: without "
            "reparameterize=True they must be detached (draw them with .sample())"
        )
    if getattr(model, "has_rsample", False):
        try:
            model.sample_guide(x, S, reparameterize=True)
        except (NotImplementedError, ValueError, RuntimeError) as error:
            raise ModelError(
                f"{name} sets has_rsample = True, but its guide cannot rsample "
                f"({type(error).__name__}: {error}); set has_rsample = False (discrete latents) "
                "or use a reparameterisable guide"
            ) from error


def check_data(model, x: Tensor, where: str = "x") -> None:
    """Raise ``ValueError`` when ``x`` holds values outside ``model``'s observation support
    (``observation_support``): for a Bernoulli likelihood anything outside ``[0, 1]`` (grey
    levels are what dynamic binarisation draws from), else what the support's ``check``
    refuses; NaN is outside every support. The library's entry points (``tvo.estimate``,
    ``tvo.ais``, an objective's call) run it unless given ``validate=False``; one pass over
    ``x``, and for a ``Model`` one draw of ``z`` to ask its
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
    """``observation_support``, asked once per model and without moving the random
    generators (asking a ``Model`` draws a ``z``): the check leaves every draw after it
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
