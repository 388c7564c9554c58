"""The training step: ``state, info = step(state, x)``, with everything it changes in ``state``.

``TrainState`` holds the model (its parameters), the optimiser (its moments), the
schedule's state (the partition in use, and whatever an adaptive schedule carries), the random
generators and the step count. ``Step`` holds what does not change: the objective, the
number of particles and the objective's schedule. One step:

1. the objective's loss on the batch ``x`` ``[B, D]``, at the partition of the schedule state;
2. its gradient, for θ and φ at once, and one optimiser step over every parameter;
3. the schedule's update from the step's ``[S, B]`` log-weights.

A step whose loss or gradient is not finite changes nothing but the step and ``skipped`` counts
(its ``info.finite`` is ``False``; what to do about it is the caller's policy). Parameters and
the optimiser's moments are updated in place, as ``torch.optim`` does; every other part of the
state is replaced, so the returned state is the one to keep.

Randomness: the particles come from ``generators.particles``, the run's own generator: the
step makes it the default generator of its device while it runs (``drawing_from``, since
``torch.distributions`` draws from the default one) and puts the default one back afterwards, so
the run's numbers do not depend on what other code in the process drew, and a step draws nothing
from the process's stream. Batches and dynamic binarisation come from ``generators.data``, drawn
by the caller (``tvo.data.Dataset.sample_batch``). Both are saved by ``state_dict``, so a
resumed run draws what the uninterrupted one would.

``tvo train``, ``tvo.train.train`` (a single run is its group of one), the benchmarks and
anything built on them (Ray, Pyro) call this one step; a group of runs calls its batched
counterpart, ``tvo.ensemble.GroupStep``, with the same interface.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from tvo.objectives import Objective
from tvo.partitions import Schedule


class Generators(NamedTuple):
    """The random generators of a run, both its own (never the process's default generator):
    ``particles`` (made the default generator of its device during a step, ``drawing_from``)
    and ``data`` (batch indices and dynamic binarisation)."""

    particles: torch.Generator
    data: torch.Generator

    @classmethod
    def of_run(
        cls, seed: int, device: torch.device, particles_state: Tensor | None = None
    ) -> Generators:
        """A run's generators on ``device``: ``data`` seeded with ``seed``; ``particles`` seeded
        with ``seed``, or set to ``particles_state`` (``tvo.build.build`` gives the state
        that follows the model's initialisation from the same seed).

        Args:
            seed: the run's seed.
            device: the device both generators draw on (a ``torch.device`` or its name,
                ``"cpu"``, ``"cuda:0"``).
            particles_state: a state (``torch.Generator.get_state()``) to start the particles'
                generator from (default ``None``: seeded with ``seed``).
        """
        device = torch.device(device)
        particles = torch.Generator(device=device)
        if particles_state is None:
            particles.manual_seed(seed)
        else:
            particles.set_state(particles_state)
        return cls(particles, torch.Generator(device=device).manual_seed(seed))

    def state_dict(self) -> dict:
        """``torch_rng`` (the particles' generator) and ``data_rng``: the names checkpoints
        have always used (before 0.3 ``torch_rng`` was the process's CPU generator and
        ``cuda_rng`` the CUDA ones; ``tvo.runs.migrate_checkpoint`` reads those)."""
        return {"torch_rng": self.particles.get_state(), "data_rng": self.data.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Set both generators, in place, to the states ``state_dict`` saved.

        Args:
            state: a checkpoint or ``state_dict``'s dict, holding ``torch_rng`` (the
                particles' generator) and ``data_rng`` (on any device).
        """
        self.particles.set_state(state["torch_rng"].cpu())
        self.data.set_state(state["data_rng"].cpu())


def default_generator(device: torch.device) -> torch.Generator:
    """The generator that torch's samplers draw from on ``device`` when given none."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.default_generators[index]
    return torch.default_generator


@contextmanager
def drawing_from(generator: torch.Generator) -> Iterator[None]:
    """Make ``generator`` the default generator of its device for the block: what the block
    draws advances ``generator``, and the default generator is as it was afterwards (two copies
    of a generator's state each way: microseconds on the CPU)."""
    default = default_generator(generator.device)
    saved = default.get_state()
    default.set_state(generator.get_state())
    try:
        yield
    finally:
        generator.set_state(default.get_state())
        default.set_state(saved)


@dataclass(frozen=True)
class TrainState:
    """Everything a training step changes. ``schedule`` is the schedule's state (``None`` for an
    objective without a partition); ``skipped`` counts steps that were not finite.

    Attributes:
        step: the number of steps done (0 before the first).
        model: the model trained, whose parameters the optimiser updates in place.
        optimiser: the optimiser over the model's parameters (its moments updated in place).
        schedule: the schedule's state: the ``partition`` in use and whatever an adaptive
            schedule carries (``None`` for an objective without a partition).
        generators: the run's random generators.
        skipped: the steps not applied because their loss or gradient was not finite
            (default 0).
    """

    step: int
    model: nn.Module
    optimiser: torch.optim.Optimizer
    schedule: Any
    generators: Generators
    skipped: int = 0

    @property
    def partition(self) -> Tensor | None:
        return None if self.schedule is None else self.schedule.partition


class StepInfo(NamedTuple):
    """What a step reports: ``loss`` (scalar), ``estimate`` (the objective's value, ``[B]``),
    ``log_weight`` (``[S, B]``), all detached, whether the step was ``finite`` (applied), and
    whether the parameters are ``broken``: an element not finite after the update (an update so
    large that it overflows; the caller stops the run)."""

    loss: Tensor
    estimate: Tensor
    log_weight: Tensor
    finite: bool
    broken: bool = False


def init_state(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: Schedule | None,
    generators: Generators,
) -> TrainState:
    """The state before the first step.

    Args:
        model: the model to train.
        optimiser: the optimiser over ``model``'s parameters.
        schedule: the objective's schedule, whose ``init()`` gives the first state (``None`` for
            an objective without a partition).
        generators: the run's random generators (``Generators.of_run``).
    """
    return TrainState(0, model, optimiser, None if schedule is None else schedule.init(),
                      generators)  # fmt: skip


def training_loss(objective: Objective, num_particles: int, compile: bool = False):
    """``(model, x, partition) ↦ (loss, estimate, log_weight)``: the objective's call, or with
    ``compile`` the same traced by ``torch.compile`` for fixed shapes (one compilation, at the
    first step; the same particles and, up to rounding, the same numbers as without).

    On our CPU, compiling made the ``gaussian`` VAE's step faster and the SBN's slower
    (benchmarks/RESULTS.md), so it is an option, off by default.
    """

    def loss(model, x, partition):
        output = objective(model, x, num_particles, partition=partition, validate=False)
        return output.loss, output.estimate, output.diagnostics["log_weight"]

    if not compile:
        return loss
    # fallback_random: the compiled step draws its particles with torch's own generator, so a
    # seed gives the same particles with and without compile (and resumes exactly)
    return torch.compile(loss, dynamic=False, options={"fallback_random": True})


def all_finite(tensors) -> bool:
    """Whether every element of every tensor is finite. The 2-norms first (one fused call, as
    fast as the check has always been): finite norms mean finite elements; but the 2-norm of
    finite float32 elements overflows beyond about 1e19, so where a norm is not finite the
    elements themselves decide (rare: a diverging run)."""
    tensors = [t.detach() for t in tensors]
    if not tensors:
        return True
    if bool(torch.isfinite(torch.nn.utils.get_total_norm(tensors, 2.0, foreach=True))):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def grads_finite(parameters) -> bool:
    """Whether every gradient element is finite (the rule of a group's members too)."""
    return all_finite(p.grad for p in parameters if p.grad is not None)


class Step:
    """``step(state, x) → (state, info)`` for one objective, ``num_particles`` and schedule
    (default: the objective's own, if it has one).

    Args:
        objective: the objective whose loss the step minimises.
        num_particles: the number of particles ``S`` per data point.
        schedule: the partition's schedule, updated after each applied step (default ``None``:
            ``objective.schedule``, itself ``None`` for an objective without a partition).
        compile: trace the loss with ``torch.compile`` (default ``False``; see
            ``training_loss``).
    """

    def __init__(
        self,
        objective: Objective,
        num_particles: int,
        schedule: Schedule | None = None,
        compile: bool = False,
    ):
        self.objective, self.num_particles = objective, num_particles
        self.schedule = schedule if schedule is not None else objective.schedule
        self.loss = training_loss(objective, num_particles, compile)
        self._parameters: tuple[nn.Module, list] | None = None

    def parameters(self, model: nn.Module) -> list:
        """``model``'s parameters as a list (whose gradients and values the step checks for
        finiteness), made once and reused while the model is the same object.

        Args:
            model: the model trained.
        """
        if self._parameters is None or self._parameters[0] is not model:
            self._parameters = (model, list(model.parameters()))
        return self._parameters[1]

    def __call__(self, state: TrainState, x: Tensor) -> tuple[TrainState, StepInfo]:
        with drawing_from(state.generators.particles):
            loss, estimate, log_weight = self.loss(state.model, x, state.partition)
        state.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        parameters = self.parameters(state.model)
        finite = bool(torch.isfinite(loss)) and grads_finite(parameters)
        info = StepInfo(loss.detach(), estimate.detach(), log_weight.detach(), finite)
        if not finite:
            return replace(state, step=state.step + 1, skipped=state.skipped + 1), info
        state.optimiser.step()
        schedule = state.schedule
        if self.schedule is not None:
            schedule = self.schedule.update(schedule, info.log_weight)
        info = info._replace(broken=not all_finite(parameters))
        return replace(state, step=state.step + 1, schedule=schedule), info


def state_dict(state: TrainState, schedule: Schedule | None) -> dict:
    """The state as a checkpoint stores it: ``step``, ``skipped``, ``model``, ``optimiser``,
    ``partition``, ``schedule`` (what the schedule keeps besides the partition) and the
    generators' states (``torch_rng``, ``data_rng``).

    Args:
        state: the state to save.
        schedule: the schedule, whose ``state_dict`` gives what its state keeps besides the
            partition (``None``: an objective without a partition).
    """
    return {
        "step": state.step,
        "skipped": state.skipped,
        "model": state.model.state_dict(),
        "optimiser": state.optimiser.state_dict(),
        "partition": state.partition,
        "schedule": None if schedule is None else schedule.state_dict(state.schedule),
        **state.generators.state_dict(),
    }


def load_state_dict(initial: TrainState, saved: dict, schedule: Schedule | None) -> TrainState:
    """``initial`` (a freshly built state) with everything of a checkpoint's ``saved`` loaded
    into it: parameters, optimiser, schedule state and generators. ``saved`` is as this version
    writes it (``tvo.runs.Run.load_checkpoint`` migrates earlier versions').

    Args:
        initial: a freshly built state (``init_state``): its model, optimiser and generators
            are loaded in place.
        saved: the checkpoint, with the keys ``state_dict`` writes.
        schedule: the schedule that reads the saved ``partition`` and ``schedule`` into its
            state (``None``: an objective without a partition, nothing of them is read).
    """
    initial.model.load_state_dict(saved["model"])
    initial.optimiser.load_state_dict(saved["optimiser"])
    initial.generators.load_state_dict(saved)
    schedule_state = None
    if schedule is not None:
        schedule_state = schedule.load_state_dict(saved["partition"].cpu(), saved["schedule"])
    return replace(initial, step=saved["step"], skipped=saved["skipped"],
                   schedule=schedule_state)  # fmt: skip
