"""The Gaussian VAE (``tvo.models.vae``): normalised densities, its fast ``log_joint`` against
the ``torch.distributions`` form, reparameterised particles with the exact pathwise derivative,
the output bias, and the protocol."""

import math

import pytest
import torch

from tvo.models.base import Model
from tvo.models.check import check_model
from tvo.models.toy import binary_grid
from tvo.models.vae import GaussianVAE


def tiny(seed=0, latents=1, pixels=3):
    torch.manual_seed(seed)
    model = GaussianVAE(latents, pixels, hidden=(4,)).double()
    for p in model.parameters():  # away from the initialisation
        torch.nn.init.normal_(p, std=0.7)
    return model


def test_the_likelihood_sums_to_one_over_every_binary_image():
    """``Σ_x p(x | z) = 1`` for any ``z``: ``log p(x, z) − log p(z)`` over the 8 images."""
    model = tiny()
    z = torch.randn(5, 1, 1, dtype=torch.float64).expand(5, 8, 1)  # 5 values of z, each image
    xs = binary_grid(3).double()
    log_likelihood = model.log_joint(xs, z) - model.prior().log_prob(z)  # [5, 8]
    torch.testing.assert_close(torch.logsumexp(log_likelihood, 1), torch.zeros(5).double())


def test_the_guide_and_the_prior_integrate_to_one():
    """One latent: the trapezoid rule on [−12, 12] (20,001 points) integrates ``q(z | x)`` and
    ``p(x, z)`` summed over ``x`` to 1 within 1e-6."""
    model = tiny()
    grid = torch.linspace(-12, 12, 20_001, dtype=torch.float64)
    x = binary_grid(3).double()  # [8, 3]
    z = grid[:, None, None].expand(-1, 8, 1)  # [N, 8, 1]
    q = torch.trapezoid(model.log_guide(x, z).exp(), grid, dim=0)
    torch.testing.assert_close(q, torch.ones(8).double(), atol=1e-6, rtol=0)
    joint = torch.trapezoid(model.log_joint(x, z).exp().sum(1), grid)
    assert joint.item() == pytest.approx(1.0, abs=1e-6)


def test_the_fast_log_joint_is_the_distributions_one():
    model = tiny(latents=2)
    x = (torch.rand(4, 3) < 0.5).double()
    z, _ = model.sample_guide(x, 6)
    torch.testing.assert_close(model.log_joint(x, z), Model.log_joint(model, x, z))
    mean, log_scale = model.encoder(x).chunk(2, -1)
    normal = torch.distributions.Normal(mean, log_scale.exp())
    torch.testing.assert_close(model.log_guide(x, z), normal.log_prob(z).sum(-1))


def test_reparameterised_particles_carry_the_exact_pathwise_derivative():
    """``z = μ + σ ε``: ``∂Σz/∂μ = S·B`` per coordinate, ``∂Σz/∂log σ = Σ (z − μ)``; the
    encoder's output bias moves ``μ`` (first half) and ``log σ`` (second half) one for one."""
    model = tiny(latents=2)
    x = (torch.rand(5, 3) < 0.5).double()
    z, log_q = model.sample_guide(x, 7, reparameterize=True)
    assert z.shape == (7, 5, 2) and log_q.shape == (7, 5) and z.requires_grad
    bias = model.encoder[-1].bias
    (gradient,) = torch.autograd.grad(z.sum(), bias)
    mean = model.encoder(x).chunk(2, -1)[0]
    torch.testing.assert_close(gradient[:2], torch.full((2,), 35.0).double())
    torch.testing.assert_close(gradient[2:], (z - mean).detach().sum((0, 1)))
    detached, _ = model.sample_guide(x, 7)
    assert not detached.requires_grad


def test_the_output_bias_starts_at_the_logit_of_the_mean_pixel():
    mean = torch.tensor([0.0, 0.25, 1.0])
    model = GaussianVAE(2, 3, hidden=(4,), data_mean=mean)
    expected = torch.logit(mean.clamp(1e-4, 1 - 1e-4))
    torch.testing.assert_close(model.decoder[-1].bias.detach(), expected)
    assert math.isfinite(model.decoder[-1].bias.abs().max().item())


def test_it_follows_the_protocol_and_refuses_bad_sizes():
    model = GaussianVAE(3, 5, hidden=(4, 4))
    assert model.has_rsample
    check_model(model, (torch.rand(4, 5) < 0.5).float())
    z, x = model.sample(6)
    assert z.shape == (6, 3) and x.shape == (6, 5) and set(x.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="latents"):
        GaussianVAE(0, 5)
    with pytest.raises(ValueError, match="hidden"):
        GaussianVAE(3, 5, hidden=(4, -1))


def test_reparameterised_draws_are_normal_rsamples_drawn_out_of_place():
    """``tvo.models.base.rsample`` gives ``Normal.rsample``'s numbers from the same generator
    state, bit for bit, for a ``Normal``, an ``Independent`` of one (float32 and float64, small
    and large, where torch vectorises the draw), so a single run's particles did not change;
    another distribution keeps its own ``rsample``."""
    from torch.distributions import Independent, LogNormal, Normal

    from tvo.models.base import rsample

    for shape, dtype in (((5, 3), torch.float32), ((100, 20), torch.float64)):
        loc, scale = torch.randn(shape, dtype=dtype), torch.rand(shape, dtype=dtype) + 0.1
        for q in (Normal(loc, scale), Independent(Normal(loc, scale), 1), LogNormal(loc, scale)):
            torch.manual_seed(3)
            expected = q.rsample((7,))
            torch.manual_seed(3)
            assert torch.equal(rsample(q, (7,)), expected)
    model = GaussianVAE(latents=3, pixels=4, hidden=(5,))
    x = (torch.rand(2, 4) < 0.5).float()
    torch.manual_seed(5)
    z, _ = model.sample_guide(x, 6, reparameterize=True)
    torch.manual_seed(5)
    assert torch.equal(z, model.guide(x).rsample((6,)))
