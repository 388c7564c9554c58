"""Model-level objectives: outputs, estimates, input errors, and training with one optimiser."""

import math

import pytest
import torch

import tvo
from tvo import functional as F
from tvo.evaluate import exact_log_marginal
from tvo.models.toy import DiscreteToy, LinearGaussian
from tvo.objectives import OBJECTIVES
from tvo.objectives.sampling import SAMPLING

from tests.helpers import (
    leaves,
    train,
)

SCORE_FUNCTION = [tvo.TVO(K=3), tvo.ELBO(), tvo.Reinforce(), tvo.VIMCO(), tvo.RWS(),
                  tvo.WakeSleep(), tvo.InferenceCompilation()]  # fmt: skip

PATHWISE = [tvo.VAE(), tvo.IWAE(), tvo.DReG(), tvo.TVOReparam(K=3)]


@pytest.mark.parametrize("objective", SCORE_FUNCTION + PATHWISE, ids=repr)
def test_outputs(objective):
    model = LinearGaussian(2, 3) if objective.reparameterized else DiscreteToy(3, 4)
    x = model.sample(5)[1]
    out = objective(model, x, 8)
    assert out.loss.shape == () and out.loss.requires_grad
    assert out.estimate.shape == (5,) and not out.estimate.requires_grad
    ess = out.diagnostics["ess"]
    assert ess.shape == (5,) and ((ess >= 1 - 1e-5) & (ess <= 8 + 1e-5)).all()
    assert (out.diagnostics["elbo"] <= out.diagnostics["iwae"] + 1e-5).all()


@pytest.mark.parametrize("objective", PATHWISE, ids=repr)
def test_pathwise_objective_on_discrete_latents_is_a_clear_error(objective):
    with pytest.raises(ValueError, match=r"pathwise .* DiscreteToy has no reparameterisable"):
        objective(DiscreteToy(), torch.zeros(2, 4), 5)


@pytest.mark.parametrize(
    ("objective", "particles", "message"),
    [
        (tvo.TVO(), 1, "tvo needs num_particles to be an integer ≥ 2, got 1"),
        (tvo.VIMCO(), 1, "vimco needs num_particles to be an integer ≥ 2, got 1"),
        (tvo.ELBO(), 0, "elbo needs num_particles to be an integer ≥ 1, got 0"),
        (tvo.RWS(), 2.5, "got 2.5"),
    ],
)
def test_bad_particle_counts(objective, particles, message):
    with pytest.raises(ValueError, match=message):
        objective(DiscreteToy(), torch.zeros(2, 4), particles)


# Tolerance: 0.15 nats of the data's average log-likelihood under the true model. Every model
# starts more than 4 nats away; 300 steps bring each objective within 0.06 nats on this seed.
TOLERANCE = 0.15


def exact_log_likelihood(model, x):
    """Mean exact ``log p(x)``: by enumeration, or the linear-Gaussian closed form."""
    with torch.no_grad():
        if isinstance(model, LinearGaussian):
            return model.marginal().log_prob(x).mean()
        return exact_log_marginal(model, x).mean()


@pytest.mark.parametrize(
    ("objective", "family", "sizes"),
    [(o, DiscreteToy, (3, 6)) for o in SCORE_FUNCTION[:-1]]
    + [(o, LinearGaussian, (2, 4)) for o in [*PATHWISE, tvo.TVO(K=3)]],
    ids=lambda v: repr(v) if isinstance(v, tvo.Objective) else "",
)
def test_training_reaches_the_true_models_likelihood(objective, family, sizes):
    torch.manual_seed(0)
    true, model = family(*sizes, seed=10), family(*sizes, seed=11)
    x = true.sample(500)[1]
    target = exact_log_likelihood(true, x)
    assert exact_log_likelihood(model, x) < target - TOLERANCE
    train(model, objective, x)
    assert exact_log_likelihood(model, x) > target - TOLERANCE


def test_estimates_are_the_objectives_values():
    log_p, log_q = leaves()
    ell = (log_p - log_q).detach()
    bound = torch.logsumexp(ell, 0) - math.log(ell.shape[0])
    torch.testing.assert_close(F.elbo(log_p, log_q).estimate, ell.mean(0))
    torch.testing.assert_close(F.vae(log_p, log_q).estimate, ell.mean(0))
    for fn in (F.iwae, F.reinforce, F.vimco, F.rws):
        torch.testing.assert_close(fn(log_p, log_q).estimate, bound)
        assert not fn(log_p, log_q).estimate.requires_grad


def test_functional_input_errors():
    log_p, log_q = leaves(S=1)
    with pytest.raises(ValueError, match="at least 2 particles per data point, got S = 1"):
        F.tvo(log_p, log_q, [0, 1])
    with pytest.raises(ValueError, match="at least 2 particles per data point, got S = 1"):
        F.vimco(log_p, log_q)
    with pytest.raises(ValueError, match=r"shape \[S, B\].*\(4, 3\) and \(4, 2\)"):
        F.elbo(torch.zeros(4, 3), torch.zeros(4, 2))
    log_p, log_q = leaves()
    with pytest.raises(ValueError, match="unknown integration 'simpson'"):
        F.tvo(log_p, log_q, [0, 1], "simpson")


def test_every_objective_is_a_function_and_a_sampling_mode():
    """No objective draws its own particles: each declares a sampling mode and a function, and
    none overrides ``__call__``."""
    for name, cls in OBJECTIVES.items():
        assert cls.name == name
        assert cls.sampling in SAMPLING, name
        assert "__call__" not in vars(cls), f"{name} overrides __call__"
        assert callable(cls.function), name
        assert cls.needs_rsample() == (cls.sampling in ("pathwise", "doubly-reparameterized"))


@pytest.mark.parametrize("objective", [tvo.ELBO(), tvo.VIMCO(), tvo.WakeSleep()], ids=repr)
def test_an_objective_without_a_partition_refuses_one(objective):
    with pytest.raises(ValueError, match=f"{objective.name} has no partition, but was given one"):
        objective(DiscreteToy(), torch.zeros(2, 4), 5, partition=tvo.partition(3))


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_each_sampling_mode_gives_the_tensors_of_the_function_it_feeds(name):
    """The objective's call equals its function on the tensors of its sampling mode drawn from
    the same generator state."""
    cls = OBJECTIVES[name]
    model = (LinearGaussian(2, 3) if cls.needs_rsample() else DiscreteToy(3, 4)).double()
    objective = cls.from_settings(**{k: v for k, v in cls.settings.items()})
    x = model.sample(5)[1]
    torch.manual_seed(3)
    out = objective(model, x, 6)
    torch.manual_seed(3)
    tensors = SAMPLING[cls.sampling].draw(model, x, objective.particles_drawn(6))
    partition = objective.resolve_partition(None)
    terms = objective.terms(*tensors, partition=partition)
    torch.testing.assert_close(out.estimate, terms.estimate, rtol=0, atol=0)
    torch.testing.assert_close(out.loss, -terms.surrogate.mean(), rtol=0, atol=0)
