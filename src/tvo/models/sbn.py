"""Sigmoid belief networks: the discrete models of the TVO paper (and of VIMCO and REBAR).

Generative model with ``L`` stochastic layers of binary units, top layer ``z_L``:

    p(z_L) = Bernoulli(σ(a)),   p(z_{l−1} | z_l) = Bernoulli(σ(f_l(±z_l))),
    p(x | z_1) = Bernoulli(σ(f_0(±z_1)))

where ``±z = 2z − 1`` maps binary inputs to ±1 and ``f`` is affine (``linear_L``) or, for
``non_linear``, two tanh layers of 200 units then affine. The inference network mirrors it from
the pixels up: ``q(z_1 | x) q(z_2 | z_1) … q(z_L | z_{L−1})`` with the same kind of maps.
The output bias starts at ``logit(mean pixel)``, the mean clamped to ``[1e-4, 1 − 1e-4]``.

Latents are a tuple ``(z_1, …, z_L)``, each ``[*, B, units]``.

The Bernoulli densities and draws are written out (``bernoulli_log_prob``,
``bernoulli_sample``) rather than built from ``torch.distributions`` objects at every step:
the objects' argument checks cost as much as the log-densities themselves (benchmarks/).

The densities: docs/maths.md, "Model densities".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent

from tvo.autograd import Function, batch_dims_first
from tvo.models.base import check_sizes


def output_bias(data_mean: Tensor | None, pixels: int) -> Tensor:
    """``logit(clamp(mean, 1e-4, 1 − 1e-4))``, ``[pixels]``; zeros without a mean."""
    if data_mean is None:
        return torch.zeros(pixels)
    mean = torch.as_tensor(data_mean, dtype=torch.float32).flatten()
    if mean.numel() != pixels:
        raise ValueError(f"data_mean has {mean.numel()} values but the model has {pixels} pixels")
    return torch.logit(mean.clamp(1e-4, 1 - 1e-4))


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Affine maps between ``sizes``, with tanh between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def bernoulli(logits: Tensor) -> Independent:
    """Independent Bernoulli units with these logits, as a ``torch.distributions`` object."""
    return Independent(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)


class _BernoulliLogProb(Function):
    """``Σ_d [v_d l_d − softplus(l_d)]`` with the hand-written backward
    ``∂/∂l_d = v_d − σ(l_d)``, ``∂/∂v_d = l_d`` (each summed to its input's shape).

    Autograd's own graph of the same expression makes about three times as many passes over
    the ``[S, B, D]`` logits (the log-sigmoid's buffer, the broadcast product, the sum's
    expansion and a copy for the matrix product); this makes three forward and three backward.
    In the ``setup_context`` form, so that ``torch.func`` (``vmap``, ``grad``) can transform it.
    """

    @staticmethod
    def forward(logits: Tensor, value: Tensor) -> Tensor:
        return (logits * value).sum(-1) - F.softplus(logits).sum(-1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def vmap(info, in_dims, logits: Tensor, value: Tensor):
        return _BernoulliLogProb.apply(*batch_dims_first(in_dims, logits, value)), 0

    @staticmethod
    def backward(ctx, grad: Tensor):
        logits, value = ctx.saved_tensors
        grad = grad.unsqueeze(-1)
        grad_logits = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_logits = (value - torch.sigmoid(logits)).mul_(grad).sum_to_size(logits.shape)
        if ctx.needs_input_grad[1]:
            grad_value = (logits * grad).sum_to_size(value.shape)
        return grad_logits, grad_value


def bernoulli_log_prob(logits: Tensor, value: Tensor) -> Tensor:
    """``Σ_d log Bernoulli(value_d; σ(logits_d)) = Σ_d [value_d l_d − softplus(l_d)]``, summed over
    the last dimension; ``logits`` and ``value`` broadcast against each other (``[B, D]`` logits
    of the guide with ``[S, B, D]`` particles, ``[S, B, D]`` logits with ``[B, D]`` pixels)."""
    return _BernoulliLogProb.apply(logits, value)


def bernoulli_sample(logits: Tensor, sample_shape: tuple = ()) -> Tensor:
    """Draws of independent Bernoulli units, ``[*sample_shape, *logits.shape]``, as ``u < σ(l)``."""
    probs = torch.sigmoid(logits)
    u = torch.rand(*sample_shape, *probs.shape, dtype=probs.dtype, device=probs.device)
    return (u < probs).to(probs.dtype)


def signed(z: Tensor) -> Tensor:
    """Binary ``{0, 1}`` to ``{−1, +1}``."""
    return 2 * z - 1


class SBN(nn.Module):
    """A sigmoid belief network with its mirrored inference network.

    Args:
        latents: units per stochastic layer, bottom (next to the pixels) first, e.g.
            ``(200, 200, 200)`` for ``linear_3``.
        pixels: number of observed binary units.
        hidden: tanh units between consecutive stochastic layers (``()`` for affine maps;
            ``(200, 200)`` for ``non_linear``).
        data_mean: mean training image, to initialise the output bias (and, for
            ``encoder_input="reference"``, to centre the inference network's input).
        encoder_input: what the inference network's first layer sees of the pixels:
            ``"signed"`` (the default), ``2x − 1``; ``"reference"``, ``(x − mean + 1) / 2``, as
            the TVO paper's code does. The two are the same family of models (the first layer's
            affine map absorbs the difference: ``guide_input``), but Adam is not
            invariant to that reparameterisation, so they train differently.
    """

    has_rsample = False
    ENCODER_INPUTS = ("signed", "reference")

    def __init__(
        self,
        latents: Sequence[int] = (200,),
        pixels: int = 784,
        hidden: Sequence[int] = (),
        data_mean: Tensor | None = None,
        encoder_input: str = "signed",
    ):
        super().__init__()
        check_sizes("SBN", latents=tuple(latents), pixels=pixels, hidden=tuple(hidden))
        if encoder_input not in self.ENCODER_INPUTS:
            raise ValueError(f"unknown encoder_input {encoder_input!r}: expected one of "
                             f"{', '.join(self.ENCODER_INPUTS)}")  # fmt: skip
        if encoder_input == "reference":
            if data_mean is None:
                raise ValueError('encoder_input="reference" needs data_mean (the mean image)')
            mean = torch.as_tensor(data_mean, dtype=torch.float32).flatten()
            if mean.numel() != pixels:
                raise ValueError(
                    f"data_mean has {mean.numel()} values but the model has {pixels} pixels"
                )
            self.register_buffer("input_mean", mean.clone())
        self.latents, self.pixels, self.hidden = tuple(latents), pixels, tuple(hidden)
        self.encoder_input = encoder_input
        below = (pixels, *self.latents[:-1])  # what each layer generates
        self.prior_logits = nn.Parameter(torch.zeros(self.latents[-1]))
        self.decoders = nn.ModuleList(
            mlp((n, *self.hidden, m)) for n, m in zip(self.latents, below)
        )
        self.encoders = nn.ModuleList(
            mlp((m, *self.hidden, n)) for n, m in zip(self.latents, below)
        )
        with torch.no_grad():
            self.decoders[0][-1].bias.copy_(output_bias(data_mean, pixels))

    def guide_input(self, x: Tensor) -> Tensor:
        """The pixels as the inference network's first layer sees them: ``2x − 1`` (``signed``)
        or ``(x − mean + 1) / 2`` (``reference``). The second is ``(2x − 1) / 4 + (3/4 − mean/2)``,
        an affine map of the first, so a first encoder layer ``W u + b`` of the reference model
        equals ``(W / 4) (2x − 1) + b + W (3/4 − mean/2)`` of the signed one.

        Args:
            x: the data, ``[B, pixels]``.
        """
        if self.encoder_input == "reference":
            return (x - self.input_mean + 1) / 2
        return signed(x)

    def sample_guide(self, x: Tensor, num_particles: int, reparameterize: bool = False):
        """``(z, log q(z | x))``: the layers' units bottom first, ``[S, B, units]``, and ``[S, B]``.

        Args:
            x: the data, ``[B, pixels]``.
            num_particles: ``S``, the particles per data point.
            reparameterize: must be ``False``: binary latents cannot be reparameterised.
        """
        if reparameterize:
            raise ValueError("SBN has binary latents: they cannot be reparameterised")
        z, log_q = [], 0.0
        below = self.guide_input(x)
        for depth, encoder in enumerate(self.encoders):
            logits = encoder(below)  # the first layer runs once per data point, not per particle
            with torch.no_grad():
                sample = bernoulli_sample(logits, (num_particles,) if depth == 0 else ())
            log_q = log_q + bernoulli_log_prob(logits, sample)
            z.append(sample)
            below = signed(sample)
        return tuple(z), log_q

    def log_guide(self, x: Tensor, z: Sequence[Tensor]) -> Tensor:
        """``log q(z | x)``, ``[S, B]``.

        Args:
            x: the data, ``[B, pixels]``.
            z: the layers' units, bottom first, each with leading dims ``[S, B]``.
        """
        inputs = (self.guide_input(x), *map(signed, z[:-1]))
        return sum(
            bernoulli_log_prob(encoder(v), target)
            for encoder, v, target in zip(self.encoders, inputs, z)
        )

    def log_joint(self, x: Tensor, z: Sequence[Tensor]) -> Tensor:
        """``log p(x, z)``, ``[S, B]``.

        Args:
            x: the data, ``[B, pixels]``.
            z: the layers' units, bottom first, each with leading dims ``[S, B]``.
        """
        log_p = bernoulli_log_prob(self.prior_logits, z[-1]) + self.log_likelihood(x, z[0])
        for decoder, above, target in zip(self.decoders[1:], z[1:], z[:-1]):
            log_p = log_p + bernoulli_log_prob(decoder(signed(above)), target)
        return log_p

    def log_likelihood(self, x: Tensor, z1: Tensor) -> Tensor:
        """``log p(x | z_1) = Σ_d [x_d l_d − softplus(l_d)]``, ``[*, B]``.

        Without gradients (evaluation), the pixel term uses ``l = h Wᵀ + b`` (``h`` the input of
        the last affine map): ``Σ_d x_d l_d = h · (x W) + x · b``, with ``x W`` computed once per
        data point instead of once per particle, so only ``softplus(l)`` is evaluated at every
        pixel of every particle. In training its extra backward products cost more than the
        one elementwise pass it saves at small ``S`` (benchmarks/RESULTS.md), so training uses
        the direct form.

        Args:
            x: the data, ``[B, pixels]``.
            z1: the bottom layer's units, ``[*, B, latents[0]]``.
        """
        decoder = self.decoders[0]
        if torch.is_grad_enabled():
            return bernoulli_log_prob(decoder(signed(z1)), x)
        *hidden, last = decoder
        h = signed(z1)
        for layer in hidden:
            h = layer(h)
        per_point = (h * (x @ last.weight)).sum(-1) + x @ last.bias  # [*, B]
        return per_point - F.softplus(last(h)).sum(-1)

    @torch.no_grad()
    def sample(self, num_samples: int):
        """``(z, x)``: ancestral samples, the layers bottom first, ``[N, units]``, ``[N, pixels]``.

        Args:
            num_samples: ``N``.
        """
        z = [bernoulli_sample(self.prior_logits, (num_samples,))]
        for decoder in reversed(self.decoders[1:]):
            z.insert(0, bernoulli_sample(decoder(signed(z[0]))))
        x = bernoulli_sample(self.decoders[0](signed(z[0])))
        return tuple(z), x

    @torch.no_grad()
    def decode(self, z) -> Tensor:
        """``E[x | z] = σ(f_0(±z_1))``, ``[*, pixels]``: for reconstructions.

        Args:
            z (tuple[Tensor, ...]): the layers' units, bottom first.
        """
        return torch.sigmoid(self.decoders[0](signed(z[0])))

    def enumerate_latents(self) -> tuple[Tensor, ...]:
        """Every joint value of all layers, as a tuple of ``[N, units]`` (tiny networks only)."""
        total = sum(self.latents)
        if total > 20:
            raise ValueError(f"enumerating {total} binary latents (2^{total} values) is too many")
        grid = (torch.arange(2**total).unsqueeze(1) >> torch.arange(total - 1, -1, -1)) & 1
        grid = grid.to(self.prior_logits)
        return tuple(torch.split(grid, self.latents, dim=1))

    def extra_repr(self) -> str:
        extra = "" if self.encoder_input == "signed" else ", encoder_input='reference'"
        return f"latents={self.latents}, pixels={self.pixels}, hidden={self.hidden}{extra}"
