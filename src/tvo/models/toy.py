"""Small models with exact answers, for tests and examples.

- ``DiscreteToy``: a one-layer sigmoid belief network with a few binary latents and binary
  pixels; ``z`` and ``x`` can both be enumerated, so ``log p(x)``, ``g(β)``, the bounds and every
  gradient are exact sums.
- ``LinearGaussian``: ``z ~ N(0, I)``, ``x | z ~ N(W z + b, σ² I)``, with a Gaussian guide;
  the marginal, the posterior, the ELBO and ``KL(p(z|x) ‖ q)`` are closed forms.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, MultivariateNormal, Normal

from tvo.models.base import Model, check_sizes


def _parameter(generator: torch.Generator, *shape: int, scale: float = 1.0) -> nn.Parameter:
    return nn.Parameter(scale * torch.randn(*shape, generator=generator))


def binary_grid(n: int) -> Tensor:
    """Every vector in ``{0, 1}^n``, ``[2^n, n]``, in lexicographic order."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)))


class DiscreteToy(Model):
    """``z ∈ {0,1}^d ~ Bernoulli(σ(a))``, ``x ∈ {0,1}^D | z ~ Bernoulli(σ(W z + b))``,
    ``q(z | x) = Bernoulli(σ(A x + c))``, all factorised. Parameters drawn from ``seed``.

    Args:
        num_latents: binary latent units ``d`` (``2^d`` values to enumerate).
        num_observed: binary observed units ``D``.
        seed: the seed of the parameters' initial values.
    """

    has_rsample = False

    def __init__(self, num_latents: int = 3, num_observed: int = 4, seed: int = 0):
        super().__init__()
        check_sizes("DiscreteToy", num_latents=num_latents, num_observed=num_observed)
        g = torch.Generator().manual_seed(seed)
        self.num_latents, self.num_observed = num_latents, num_observed
        self.prior_logits = _parameter(g, num_latents)
        self.decoder_weight = _parameter(g, num_observed, num_latents, scale=2.0)
        self.decoder_bias = _parameter(g, num_observed)
        self.encoder_weight = _parameter(g, num_latents, num_observed)
        self.encoder_bias = _parameter(g, num_latents)

    def prior(self):
        return Independent(Bernoulli(logits=self.prior_logits), 1)

    def likelihood(self, z):
        """``p(x | z)``, batch shape ``z``'s leading dims.

        Args:
            z (Tensor): latents with leading dims ``[S, B]`` (or ``[N]``).
        """
        return Independent(Bernoulli(logits=z @ self.decoder_weight.T + self.decoder_bias), 1)

    def guide(self, x):
        """``q(z | x)``, batch shape ``[B]``.

        Args:
            x (Tensor): the data, ``[B, D]``.
        """
        return Independent(Bernoulli(logits=x @ self.encoder_weight.T + self.encoder_bias), 1)

    def enumerate_latents(self) -> Tensor:
        return binary_grid(self.num_latents).to(self.prior_logits)

    def enumerate_observations(self) -> Tensor:
        """Every ``x``, ``[2^D, D]``."""
        return binary_grid(self.num_observed).to(self.prior_logits)


class LinearGaussian(Model):
    """``z ~ N(0, I_d)``, ``x | z ~ N(W z + b, σ² I_D)``, ``q(z | x) = N(A x + c, diag(s²))``.

    θ = (W, b, log σ), φ = (A, c, log s). Closed forms: ``marginal``, ``posterior``,
    ``exact_elbo``, ``exact_kl_posterior_guide``, ``exact_integrand``, all
    differentiable.

    Args:
        latent_dim: latent dimensions ``d``.
        obs_dim: observed dimensions ``D``.
        seed: the seed of the parameters' initial values.
    """

    has_rsample = True

    def __init__(self, latent_dim: int = 2, obs_dim: int = 3, seed: int = 0):
        super().__init__()
        check_sizes("LinearGaussian", latent_dim=latent_dim, obs_dim=obs_dim)
        g = torch.Generator().manual_seed(seed)
        self.latent_dim, self.obs_dim = latent_dim, obs_dim
        self.weight = _parameter(g, obs_dim, latent_dim)
        self.bias = _parameter(g, obs_dim)
        self.log_sigma = nn.Parameter(torch.tensor(-0.5))
        self.encoder_weight = _parameter(g, latent_dim, obs_dim, scale=0.3)
        self.encoder_bias = _parameter(g, latent_dim, scale=0.3)
        self.encoder_log_scale = nn.Parameter(torch.full((latent_dim,), -0.5))
        self.register_buffer("zeros", torch.zeros(latent_dim))

    def prior(self):
        return Independent(Normal(self.zeros, torch.ones_like(self.zeros)), 1)

    def likelihood(self, z):
        """``p(x | z)``, batch shape ``z``'s leading dims.

        Args:
            z (Tensor): latents with leading dims ``[S, B]`` (or ``[N]``).
        """
        return Independent(Normal(z @ self.weight.T + self.bias, self.log_sigma.exp()), 1)

    def guide(self, x):
        """``q(z | x)``, batch shape ``[B]``.

        Args:
            x (Tensor): the data, ``[B, D]``.
        """
        loc = x @ self.encoder_weight.T + self.encoder_bias
        return Independent(Normal(loc, self.encoder_log_scale.exp().expand_as(loc)), 1)

    def marginal(self) -> MultivariateNormal:
        """``p(x) = N(b, W Wᵀ + σ² I)``."""
        eye = torch.eye(self.obs_dim, dtype=self.weight.dtype, device=self.weight.device)
        covariance = self.weight @ self.weight.T + self.log_sigma.exp() ** 2 * eye
        return MultivariateNormal(self.bias, covariance)

    def posterior(self, x: Tensor) -> MultivariateNormal:
        """``p(z | x) = N(Σ Wᵀ (x − b) / σ², Σ)`` with ``Σ = (I + Wᵀ W / σ²)⁻¹``, batch ``[B]``.

        Args:
            x: the data, ``[B, D]``.
        """
        precision_noise = self.log_sigma.exp() ** -2
        eye = torch.eye(self.latent_dim, dtype=self.weight.dtype, device=self.weight.device)
        covariance = torch.linalg.inv(eye + precision_noise * self.weight.T @ self.weight)
        mean = precision_noise * (x - self.bias) @ self.weight @ covariance
        return MultivariateNormal(mean, covariance)

    def exact_elbo(self, x: Tensor) -> Tensor:
        """``E_q[log p(x, z) − log q(z | x)]`` in closed form, ``[B]``.

        Args:
            x: the data, ``[B, D]``.
        """
        q = self.guide(x)
        mean, var = q.mean, q.variance  # [B, d]
        sigma2 = self.log_sigma.exp() ** 2
        residual = x - mean @ self.weight.T - self.bias
        trace_likelihood = (var * (self.weight**2).sum(0)).sum(-1)  # tr(W diag(var) Wᵀ)
        expected_log_likelihood = -0.5 * (
            self.obs_dim * torch.log(2 * torch.pi * sigma2)
            + ((residual**2).sum(-1) + trace_likelihood) / sigma2
        )
        expected_log_prior = -0.5 * (
            self.latent_dim * torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))
            + (mean**2).sum(-1)
            + var.sum(-1)
        )
        return expected_log_likelihood + expected_log_prior + q.entropy()

    def exact_kl_posterior_guide(self, x: Tensor) -> Tensor:
        """``KL(p(z | x) ‖ q(z | x))``, ``[B]``: what wake-φ and sleep-φ descend.

        Args:
            x: the data, ``[B, D]``.
        """
        q = self.guide(x)
        q_full = MultivariateNormal(q.mean, scale_tril=torch.diag_embed(q.stddev))
        return torch.distributions.kl_divergence(self.posterior(x), q_full)

    def exact_integrand(self, x: Tensor, beta: float | Tensor) -> Tensor:
        """The TVO integrand ``g(β) = E_{π_β}[log p(x, z) − log q(z | x)]`` in closed form, ``[B]``.

        ``π_β ∝ q^(1−β) p(z | x)^β`` is Gaussian: precision ``Λ_β = (1−β) Λ_q + β Λ_p``, mean
        ``Λ_β⁻¹ ((1−β) Λ_q μ_q + β Λ_p μ_p)``. With ``log p(x, z) = log p(x) + log p(z | x)``,
        ``g(β) = log p(x) + E_{π_β}[log p(z | x)] − E_{π_β}[log q(z | x)]``, each expectation of a
        Gaussian log-density under a Gaussian.

        Args:
            x: the data, ``[B, D]``.
            beta: the point ``β`` in ``[0, 1]``.
        """
        beta = torch.as_tensor(beta, dtype=x.dtype, device=x.device)
        q, post = self.guide(x), self.posterior(x)
        q_precision = torch.diag_embed(q.variance.reciprocal())  # [B, d, d]
        p_precision = post.precision_matrix.expand_as(q_precision)
        precision = (1 - beta) * q_precision + beta * p_precision
        shift = (1 - beta) * (q_precision @ q.mean[..., None]) + beta * (
            p_precision @ post.mean[..., None]
        )
        covariance = torch.linalg.inv(precision)
        mean = (covariance @ shift)[..., 0]

        def expected_log_density(loc, density_precision):  # E_{N(mean, covariance)} log N(loc, ·)
            diff = (mean - loc)[..., None]
            quadratic = (diff.mT @ density_precision @ diff)[..., 0, 0]
            trace = (density_precision * covariance).sum((-2, -1))
            log_det = torch.logdet(density_precision)
            return 0.5 * (log_det - self.latent_dim * math.log(2 * math.pi) - trace - quadratic)

        return (
            self.marginal().log_prob(x)
            + expected_log_density(post.mean, p_precision)
            - expected_log_density(q.mean, q_precision)
        )
