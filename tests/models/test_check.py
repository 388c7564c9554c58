"""``check_model``: every built-in model passes, and each common mistake gets a message that
names its fix (before: raw torch errors such as "The size of tensor a (32) must match the size
of tensor b (64)")."""

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal, constraints

import tvo
from tvo.models import MODELS, ModelError, create
from tvo.models.check import check_model, observation_support

from tests.helpers import TinySBN

X = (torch.rand(5, 8, generator=torch.Generator().manual_seed(0)) < 0.3).float()


Good = TinySBN  # the README's model


class NoIndependentLikelihood(Good):
    def likelihood(self, z):
        return Bernoulli(logits=self.decoder(z))


class NoIndependentGuide(Good):
    def guide(self, x):
        return Bernoulli(logits=self.encoder(x))


class NoIndependentPrior(Good):
    def prior(self):
        return Bernoulli(logits=self.prior_logits)


class ClaimsRsample(Good):
    has_rsample = True  # but Bernoulli latents cannot be reparameterised


class ProtocolModel(nn.Module):
    """A model written against the four methods, with a mistake chosen by ``mistake``."""

    has_rsample = False

    def __init__(self, mistake=None):
        super().__init__()
        self.inner, self.mistake = Good(), mistake

    def sample_guide(self, x, num_particles, reparameterize=False):
        z, log_q = self.inner.sample_guide(x, num_particles)
        if self.mistake == "unsummed":
            log_q = self.inner.guide(x).base_dist.log_prob(z)  # per latent unit
        if self.mistake == "integer":
            log_q = log_q.long()
        if self.mistake == "live particles":
            z = z.requires_grad_()
        if self.mistake == "batch first":
            z = z.transpose(0, 1)
        return z, log_q

    def log_guide(self, x, z):
        shift = 1.0 if self.mistake == "inconsistent" else 0.0
        return self.inner.log_guide(x, z) + shift

    def log_joint(self, x, z):
        return self.inner.log_joint(x, z)

    def sample(self, n):
        z, x = self.inner.sample(n)
        if self.mistake == "samples alone":
            return x
        return (z, x[:, :3]) if self.mistake == "short samples" else (z, x)


class ReturnsThree(ProtocolModel):
    def sample_guide(self, x, num_particles, reparameterize=False):
        z, log_q = super().sample_guide(x, num_particles, reparameterize)
        return z, log_q, log_q.exp()


class FourMethods(nn.Module):
    """Only the four methods docs/own-model.md lists, without ``has_rsample``."""

    def __init__(self):
        super().__init__()
        self.inner = Good()

    def sample_guide(self, x, num_particles, reparameterize=False):
        return self.inner.sample_guide(x, num_particles)

    def log_guide(self, x, z):
        return self.inner.log_guide(x, z)

    def log_joint(self, x, z):
        return self.inner.log_joint(x, z)

    def sample(self, n):
        return self.inner.sample(n)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_built_in_model_passes(name):
    model = create(name, pixels=8)
    check_model(model, X)


def test_a_correct_model_of_your_own_passes():
    check_model(Good(), X)
    check_model(ProtocolModel(), X)


@pytest.mark.parametrize(
    ("model", "x", "message"),
    [
        (Good(), X[0], r"x has shape \[8\]: give a batch of data points \[B, D\].*x\[None\]"),
        (NoIndependentLikelihood(), X,
         r"likelihood\(z\) has batch shape \[3, 5, 8\].*Independent\(\.\.\., 1\)"),
        (NoIndependentGuide(), X,
         r"guide\(x\) has batch shape \[5, 4\].*expected \[5\].*Independent\(\.\.\., 1\)"),
        (NoIndependentPrior(), X, r"prior\(\) has batch shape \[4\].*Independent\(\.\.\., 1\)"),
        (ClaimsRsample(), X, r"has_rsample = True, but its guide cannot rsample"),
        (ProtocolModel("unsummed"), X,
         r"log q has shape \[3, 5, 4\], expected \[3, 5\]: it is per latent unit.*Independent"),
        (ProtocolModel("integer"), X, r"dtype torch.int64: a log-density must be floating"),
        (ProtocolModel("inconsistent"), X, r"log_guide\(x, z\) differs from the log q"),
        (ProtocolModel("live particles"), X, r"particles that require grad"),
        (ProtocolModel("batch first"), X, r"leading dimensions \[\(5, 3\)\], expected \[3, 5\]"),
        (ProtocolModel("short samples"), X, r"sample\(3\) gave data of shape \[3, 3\]"),
        (nn.Linear(8, 8), X, r"Linear lacks sample_guide, log_guide, log_joint, sample"),
    ],
    ids=["single point", "likelihood", "guide", "prior", "rsample", "unsummed", "dtype",
         "inconsistent", "live particles", "batch first", "samples", "not a model"],
)  # fmt: skip
def test_each_common_mistake_names_its_fix(model, x, message):
    with pytest.raises(ModelError, match=message):
        check_model(model, x)


def test_a_model_of_four_methods_needs_no_has_rsample():
    """Issue 24, item 8: ``has_rsample`` is optional (``False`` when missing), as the docs say;
    a pathwise objective on such a model is refused by its own requirement."""
    check_model(FourMethods(), X)
    assert "has_rsample is False" in tvo.VAE.requirement_error(FourMethods())


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (Good(pixels=16), r"TinySBN\.guide\(x\) failed on a batch x of shape \[5, 8\] "
         r"\(RuntimeError: mat1 and mat2 shapes cannot be multiplied.*\); the data have 8 values "
         r"per data point: build the model for that many"),
        (ReturnsThree(), r"ReturnsThree\.sample_guide\(x, 3\) returned a tuple of 3: \(a tensor "
         r"of shape \[3, 5, 4\], a tensor of shape \[3, 5\], a tensor of shape \[3, 5\]\); it "
         r"must return a pair \(z: the particles \[3, 5, …\], log_q: log q\(z \| x\) \[3, 5\]\)"),
        (ProtocolModel("samples alone"), r"ProtocolModel\.sample\(3\) returned a tensor of shape "
         r"\[3, 8\]; it must return a pair \(z: 3 latents \[3, …\], x: their data \[3, 8\]\)"),
    ],
    ids=["built for other data", "three values", "samples alone"],
)  # fmt: skip
def test_a_method_that_fails_or_returns_the_wrong_thing_is_named(model, message):
    """Issue 24, item 8: what reached the user as torch's "mat1 and mat2 shapes cannot be
    multiplied" or Python's "too many values to unpack" names the method, what it got or
    returned, and the fix."""
    with pytest.raises(ModelError, match=message):
        check_model(model, X)


def test_the_raw_error_the_check_replaces():
    """Without the check, the likelihood mistake reaches the objective as torch's own error."""
    with pytest.raises(RuntimeError, match="must match the size of tensor"):
        tvo.ELBO()(NoIndependentLikelihood(), X, 3)


def test_observation_support_comes_from_the_likelihood_or_a_declaration():
    class Gaussian(tvo.Model):
        has_rsample = True

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(2))

        def prior(self):
            return Independent(Normal(torch.zeros(2), 1.0), 1)

        def likelihood(self, z):
            return Independent(Normal(z, self.scale), 1)

        def guide(self, x):
            return Independent(Normal(x, self.scale), 1)

    assert observation_support(Good()) is constraints.boolean
    assert observation_support(Gaussian()) is constraints.real
    declared = ProtocolModel()
    declared.observation_support = constraints.positive
    assert observation_support(declared) is constraints.positive
    assert observation_support(ProtocolModel()) is constraints.boolean  # the convention
