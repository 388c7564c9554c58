"""The training step: it applies the optimiser and advances the schedule, a step that is not
finite changes nothing, and a state saved and loaded continues as the unbroken one. With
``compile`` the traced step computes what the eager one does (skipped without a C++ compiler)."""

import copy
from dataclasses import replace

import pytest
import torch

import tvo
from tvo.build import make_optimiser
from tvo.models import create
from tvo.models.toy import DiscreteToy
from tvo.objectives import TVO
from tvo.partitions import moments
from tvo.step import Generators, Step, init_state, load_state_dict, state_dict, training_loss

from tests.helpers import needs_compiler


@needs_compiler
@pytest.mark.parametrize("model_name", ["linear_1", "gaussian"])
def test_compiled_step_has_the_eager_value_and_gradient(model_name):
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((6, 16), 0.3))
    model = create(model_name, pixels=16, data_mean=x.mean(0))
    objective = TVO(K=3)
    results = []
    for compile in (False, True):
        torch.manual_seed(1)  # the same particles: the compiled step uses torch's generator
        loss, estimate, log_weight = training_loss(objective, 5, compile)(model, x, None)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((loss, estimate, log_weight, grads))
    (loss, estimate, log_weight, grads), compiled = results
    # float32 rounding of fused kernels: 2.3e-5 on log-weights of about -7 was seen; other
    # particles would differ by whole nats
    close = {"rtol": 1e-5, "atol": 1e-4}
    torch.testing.assert_close(compiled[0], loss, **close)
    torch.testing.assert_close(compiled[1], estimate, **close)
    torch.testing.assert_close(compiled[2], log_weight, **close)
    for ours, eager in zip(compiled[3], grads):
        torch.testing.assert_close(ours, eager, **close)


# --- the step's state ---------------------------------------------------------------------------


def toy_state(objective, seed=0):
    """A double-precision toy model, its optimiser and a fresh state for ``objective``."""
    torch.manual_seed(seed)
    model = DiscreteToy(3, 6, seed=3).double()
    optimiser = make_optimiser(model.parameters(), 0.01)
    generators = Generators.of_run(seed, torch.device("cpu"))
    return init_state(model, optimiser, objective.schedule, generators)


def batch(seed=5):
    torch.manual_seed(seed)
    return DiscreteToy(3, 6, seed=1).double().sample(8)[1]


def test_a_step_applies_the_optimiser_and_advances_the_schedule():
    objective = tvo.TVO(K=3, schedule="moments", adapt_every=2)
    step = Step(objective, num_particles=10)
    state = toy_state(objective)
    start = [p.detach().clone() for p in state.model.parameters()]
    first, info = step(state, batch())
    assert (first.step, first.skipped, first.schedule.count) == (1, 0, 1)
    assert info.finite and info.log_weight.shape == (10, 8) and info.estimate.shape == (8,)
    assert torch.equal(first.partition, state.partition)  # mid-round: the partition stays
    assert all(not torch.equal(a, b) for a, b in zip(start, first.model.parameters()))
    second, info = step(first, batch(6))
    # the second update moves it to the moments partition of that step's log-weights
    assert second.schedule.count == 0
    torch.testing.assert_close(second.partition, moments(info.log_weight, 3), rtol=0, atol=0)
    assert not torch.equal(second.partition, state.partition)
    assert state.step == 0 and state.schedule.count == 0  # the old state is left as it was


class NaNJoint(torch.nn.Module):
    """A toy model whose ``log_joint`` is NaN."""

    has_rsample = False

    def __init__(self, model):
        super().__init__()
        self.model = model

    def sample_guide(self, x, num_particles, reparameterize=False):
        return self.model.sample_guide(x, num_particles, reparameterize)

    def log_joint(self, x, z):
        return self.model.log_joint(x, z) * float("nan")


def test_a_step_that_is_not_finite_changes_nothing_but_its_counts():
    objective = tvo.TVO(K=3, schedule="moments", adapt_every=1)
    step = Step(objective, num_particles=10)
    state = toy_state(objective)
    state, _ = step(state, batch())  # an applied step first: the optimiser has moments
    state = replace(state, model=NaNJoint(state.model))
    before = copy.deepcopy(state.optimiser.state_dict())
    parameters = [p.detach().clone() for p in state.model.parameters()]
    after, info = step(state, batch(6))
    assert not info.finite and (after.step, after.skipped) == (2, 1)
    assert all(torch.equal(a, b) for a, b in zip(parameters, after.model.parameters()))
    assert after.schedule is state.schedule
    for key, value in after.optimiser.state_dict()["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, before["state"][key][name]), (key, name)


@pytest.mark.parametrize("schedule", ["log", "moments", "gp-bandit"])
def test_a_saved_and_loaded_state_continues_as_the_unbroken_one(schedule, tmp_path):
    """Six steps straight, against three steps, a checkpoint written to disk and loaded into
    freshly built objects, and three more: the same parameters, optimiser, partition and
    schedule state, bit for bit."""
    objective = tvo.TVO(K=3, schedule=schedule, adapt_every=2, seed=1)
    step = Step(objective, num_particles=10)
    straight = toy_state(objective)
    for i in range(6):
        straight, _ = step(straight, batch(10 + i))
    broken = toy_state(objective)
    for i in range(3):
        broken, _ = step(broken, batch(10 + i))
    torch.save(state_dict(broken, objective.schedule), tmp_path / "state.pt")
    torch.manual_seed(999)  # the generators' states come from the checkpoint, not from here
    saved = torch.load(tmp_path / "state.pt", weights_only=False)
    resumed = load_state_dict(toy_state(objective, seed=7), saved, objective.schedule)
    for i in range(3, 6):
        resumed, _ = step(resumed, batch(10 + i))
    assert (resumed.step, resumed.skipped) == (straight.step, straight.skipped) == (6, 0)
    assert torch.equal(resumed.partition, straight.partition)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert (
        state_dict(resumed, objective.schedule)["schedule"]
        == state_dict(straight, objective.schedule)["schedule"]
    )
    if schedule != "log":
        assert not torch.equal(straight.partition, objective.schedule.init().partition)
