"""The models by name: the paper's architectures, every model with every objective that
applies, and torch.func over every built-in model's log-densities."""

import pytest
import torch

import tvo
from tvo.models import MODELS, create

from tests.helpers import flat_grad


def layer_shapes(module):
    return [(m.in_features, m.out_features) for m in module if isinstance(m, torch.nn.Linear)]


def test_named_models_have_the_papers_architecture():
    linear_3 = create("linear_3")
    assert [layer_shapes(d) for d in linear_3.decoders] == [
        [(200, 784)],
        [(200, 200)],
        [(200, 200)],
    ]
    assert [layer_shapes(e) for e in linear_3.encoders] == [
        [(784, 200)],
        [(200, 200)],
        [(200, 200)],
    ]
    non_linear = create("non_linear")
    assert layer_shapes(non_linear.decoders[0]) == [(200, 200), (200, 200), (200, 784)]
    assert layer_shapes(non_linear.encoders[0]) == [(784, 200), (200, 200), (200, 200)]
    assert sum(isinstance(m, torch.nn.Tanh) for m in non_linear.decoders[0]) == 2
    gaussian = create("gaussian")
    assert layer_shapes(gaussian.encoder) == [(784, 200), (200, 200), (200, 100)]
    assert layer_shapes(gaussian.decoder) == [(50, 200), (200, 200), (200, 784)]
    assert gaussian.has_rsample and not linear_3.has_rsample
    assert [len(create(f"linear_{k}").latents) for k in (1, 2, 3)] == [1, 2, 3]


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'linear_4': expected one of linear_1"):
        create("linear_4")


OBJECTIVES = [tvo.TVO(K=3), tvo.ELBO(), tvo.Reinforce(), tvo.VIMCO(), tvo.RWS(), tvo.WakeSleep(),
              tvo.InferenceCompilation(), tvo.VAE(), tvo.IWAE(), tvo.DReG(),
              tvo.TVOReparam(K=3)]  # fmt: skip


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("objective", OBJECTIVES, ids=repr)
def test_every_model_with_every_objective_that_applies(name, objective):
    torch.manual_seed(0)
    pixels = 784 if name in ("linear_1", "linear_2", "linear_3", "non_linear", "gaussian") else 4
    model = create(name, pixels=pixels)
    x = torch.bernoulli(torch.full((3, pixels), 0.3))
    if objective.reparameterized and not model.has_rsample:
        with pytest.raises(ValueError, match="pathwise"):
            objective(model, x, 4)
        return
    out = objective(model, x, 4)
    grad = flat_grad(out.loss, list(model.parameters()))
    assert torch.isfinite(out.loss) and torch.isfinite(grad).all() and grad.abs().max() > 0


# --- torch.func over every built-in model -------------------------------------------------------


class Method(torch.nn.Module):
    """One method of a model as ``forward``, for ``functional_call``."""

    def __init__(self, model, method):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *args):
        return getattr(self.model, self.method)(*args)


def three_models(name):
    """Three models of one architecture with different parameters, in float64, and their
    parameters and buffers stacked ``[3, …]`` under the names ``Method`` gives them."""
    torch.manual_seed(0)
    models = [create(name, pixels=16).double() for _ in range(3)]
    params, buffers = torch.func.stack_module_state(models)
    prefix = lambda d: {f"model.{k}": v for k, v in d.items()}  # noqa: E731
    return models, prefix(params), prefix(buffers)


@pytest.mark.parametrize("method", ["log_joint", "log_guide"])
@pytest.mark.parametrize("name", list(MODELS))
def test_log_densities_under_vmap_over_stacked_parameters(name, method):
    """What an ensemble does: one batched call for three models equals each model's own call,
    and ``torch.func.grad`` of it each model's autograd gradient."""
    models, params, buffers = three_models(name)
    x = torch.bernoulli(torch.full((4, 16), 0.3, dtype=torch.float64))
    z, _ = models[0].sample_guide(x, 5)
    call = Method(models[0], method)

    def density(p, b):
        return torch.func.functional_call(call, (p, b), (x, z))

    batched = torch.func.vmap(density)(params, buffers)
    gradients = torch.func.vmap(torch.func.grad(lambda p, b: density(p, b).sum()))(params, buffers)
    for i, model in enumerate(models):
        own = getattr(model, method)(x, z)
        torch.testing.assert_close(batched[i], own, rtol=1e-12, atol=1e-12)
        names, leaves = zip(*model.named_parameters())
        expected = torch.autograd.grad(own.sum(), leaves, allow_unused=True)
        for key, leaf, theirs in zip(names, leaves, expected):
            theirs = torch.zeros_like(leaf) if theirs is None else theirs
            torch.testing.assert_close(gradients[f"model.{key}"][i], theirs)


@pytest.mark.parametrize("name", list(MODELS))
def test_sampling_and_log_densities_under_vmap_over_data(name):
    """Particles for three batches drawn under ``vmap(randomness="different")``: each batch its
    own draws (the first two batches are the same images), and their log-densities equal the
    unbatched ones."""
    torch.manual_seed(1)
    model = create(name, pixels=16).double()
    x = torch.bernoulli(torch.full((3, 4, 16), 0.3, dtype=torch.float64))
    x[1] = x[0]
    z, log_q = torch.func.vmap(lambda v: model.sample_guide(v, 5), randomness="different")(x)
    assert log_q.shape == (3, 5, 4)
    first = z[0] if isinstance(z, tuple) else z
    assert not torch.equal(first[0], first[1]), "each batch draws its own particles"
    log_p = torch.func.vmap(model.log_joint)(x, z)
    for i in range(3):
        z_i = tuple(v[i] for v in z) if isinstance(z, tuple) else z[i]
        torch.testing.assert_close(log_p[i], model.log_joint(x[i], z_i))
        torch.testing.assert_close(log_q[i], model.log_guide(x[i], z_i))
