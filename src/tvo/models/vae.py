"""The continuous model of the TVO paper: a VAE with Gaussian latents and Bernoulli pixels.

    p(z) = N(0, I_d),    p(x | z) = Bernoulli(σ(dec(z))),    q(z | x) = N(μ(x), diag(σ(x)²))

``enc``: pixels → 200 → 200 (tanh) → (μ, log σ); ``dec``: d → 200 → 200 (tanh) → logits, output
bias initialised to ``logit(mean pixel)``. Reparameterisable, so both pathwise (VAE, IWAE) and
covariance (TVO) estimators apply. The distributions skip their argument checks
(``validate_args=False``): they cost a large share of a step and the inputs are ours.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Independent, Normal

from tvo.models.base import Model, check_sizes
from tvo.models.sbn import bernoulli, bernoulli_log_prob, mlp, output_bias


class GaussianVAE(Model):
    """Gaussian latents (``latents`` of them) over binary pixels, tanh MLPs of ``hidden`` units.

    Args:
        latents: Gaussian latent units.
        pixels: binary observed units.
        hidden: tanh units of each hidden layer of the encoder and the decoder.
        data_mean: the mean training image ``[pixels]``, to initialise the output bias.
    """

    has_rsample = True

    def __init__(
        self,
        latents: int = 50,
        pixels: int = 784,
        hidden: Sequence[int] = (200, 200),
        data_mean: Tensor | None = None,
    ):
        super().__init__()
        check_sizes("GaussianVAE", latents=latents, pixels=pixels, hidden=tuple(hidden))
        self.latents, self.pixels, self.hidden = latents, pixels, tuple(hidden)
        self.encoder = mlp((pixels, *self.hidden, 2 * latents))  # tanh hidden, affine output
        self.decoder = mlp((latents, *self.hidden, pixels))
        with torch.no_grad():
            self.decoder[-1].bias.copy_(output_bias(data_mean, pixels))
        self.register_buffer("zeros", torch.zeros(latents))

    def prior(self):
        standard = Normal(self.zeros, torch.ones_like(self.zeros), validate_args=False)
        return Independent(standard, 1, validate_args=False)

    def likelihood(self, z: Tensor):
        """``p(x | z)``, batch shape ``z``'s leading dims.

        Args:
            z: latents with leading dims ``[S, B]`` (or ``[N]``).
        """
        return bernoulli(self.decoder(z))

    def guide(self, x: Tensor):
        """``q(z | x)``, batch shape ``[B]``.

        Args:
            x: the data, ``[B, D]``.
        """
        mean, log_scale = self.encoder(x).chunk(2, dim=-1)
        return Independent(Normal(mean, log_scale.exp(), validate_args=False), 1,
                           validate_args=False)  # fmt: skip

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(z) + Σ_d [x_d l_d − softplus(l_d)]`` with ``l = dec(z)``, ``[S, B]``: the
        likelihood's log-density by the SBN's exact Bernoulli function (its own backward, and a
        ``vmap`` rule: ``torch.distributions``' Bernoulli under ``vmap`` made a group of four
        runs (``tvo.ensemble``) 1.7 times slower than four single runs).

        Args:
            x: the data, ``[B, pixels]``.
            z: latents, ``[S, B, latents]``.
        """
        return self.prior().log_prob(z) + bernoulli_log_prob(self.decoder(z), x)

    def extra_repr(self) -> str:
        return f"latents={self.latents}, pixels={self.pixels}, hidden={self.hidden}"
