"""The training step: ``state, info = step(state, x)``, with everything it changes in ``state``.

:class:`TrainState` holds the model (its parameters), the optimiser (its moments), the
schedule's state (the partition in use, and whatever an adaptive schedule carries), the random
generators and the step count. :class:`Step` holds what does not change: the objective, the
number of particles and the objective's schedule. One step:

1. the objective's loss on the batch ``x`` ``[B, D]``, at the partition of the schedule state;
2. its gradient, for θ and φ at once, and one optimiser step over every parameter;
3. the schedule's update from the step's ``[S, B]`` log-weights.

A step whose loss or gradient is not finite changes nothing but the step and ``skipped`` counts
(its ``info.finite`` is ``False``; what to do about it is the caller's policy). Parameters and
the optimiser's moments are updated in place, as ``torch.optim`` does; every other part of the
state is replaced, so the returned state is the one to keep.

Randomness: the particles come from ``generators.particles`` (torch's default generator of the
data's device, which ``torch.distributions`` draws from); batches and dynamic binarisation from
``generators.data``, drawn by the caller (:meth:`tvo.data.Dataset.sample_batch`). Both are saved
by :func:`state_dict`, so a resumed run draws what the uninterrupted one would.

``tvo train``, :func:`tvo.train.train`, the benchmarks and anything built on them (ensembles,
Ray, Pyro) call this one step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from tvo.objectives import Objective
from tvo.partitions import Schedule


class Generators(NamedTuple):
    """The random generators of a run: ``particles`` (torch's default generator on the run's
    device) and ``data`` (its own, for batch indices and dynamic binarisation)."""

    particles: torch.Generator
    data: torch.Generator

    @classmethod
    def of_run(cls, seed: int, device: torch.device) -> Generators:
        """A run's generators: a ``data`` generator seeded with ``seed``, and the default
        generator of ``device`` for the particles, as it is now (:func:`tvo.build.build` seeds it
        with the run's seed before the model's initialisation, and the particles continue that
        stream)."""
        device = torch.device(device)
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            particles = torch.cuda.default_generators[index]
        else:
            particles = torch.default_generator
        return cls(particles, torch.Generator(device=device).manual_seed(seed))

    def state_dict(self) -> dict:
        state = {"torch_rng": torch.get_rng_state(), "data_rng": self.data.get_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch_rng"].cpu())
        self.data.set_state(state["data_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda_rng"]])


@dataclass(frozen=True)
class TrainState:
    """Everything a training step changes. ``schedule`` is the schedule's state (``None`` for an
    objective without a partition); ``skipped`` counts steps that were not finite."""

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
    ``log_weight`` (``[S, B]``), all detached, and whether the step was ``finite`` (applied)."""

    loss: Tensor
    estimate: Tensor
    log_weight: Tensor
    finite: bool


def init_state(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: Schedule | None,
    generators: Generators,
) -> TrainState:
    """The state before the first step."""
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


def grads_finite(parameters) -> bool:
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return bool(torch.isfinite(torch.stack(norms)).all()) if norms else True


class Step:
    """``step(state, x) → (state, info)`` for one objective, ``num_particles`` and schedule
    (default: the objective's own, if it has one)."""

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
        if self._parameters is None or self._parameters[0] is not model:
            self._parameters = (model, list(model.parameters()))
        return self._parameters[1]

    def __call__(self, state: TrainState, x: Tensor) -> tuple[TrainState, StepInfo]:
        loss, estimate, log_weight = self.loss(state.model, x, state.partition)
        state.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        finite = bool(torch.isfinite(loss)) and grads_finite(self.parameters(state.model))
        info = StepInfo(loss.detach(), estimate.detach(), log_weight.detach(), finite)
        if not finite:
            return replace(state, step=state.step + 1, skipped=state.skipped + 1), info
        state.optimiser.step()
        schedule = state.schedule
        if self.schedule is not None:
            schedule = self.schedule.update(schedule, info.log_weight)
        return replace(state, step=state.step + 1, schedule=schedule), info


def state_dict(state: TrainState, schedule: Schedule | None) -> dict:
    """The state as a checkpoint stores it: ``step``, ``skipped``, ``model``, ``optimiser``,
    ``partition``, ``schedule`` (what the schedule keeps besides the partition) and the
    generators' states (``torch_rng``, ``data_rng``, ``cuda_rng``)."""
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
    into it: parameters, optimiser, schedule state and generators."""
    initial.model.load_state_dict(saved["model"])
    initial.optimiser.load_state_dict(saved["optimiser"])
    initial.generators.load_state_dict(saved)
    schedule_state = None
    if schedule is not None:
        partition = saved.get("partition")
        partition = initial.partition if partition is None else partition.cpu()
        schedule_state = schedule.load_state_dict(partition, saved.get("schedule"), saved["step"])
    return replace(initial, step=saved["step"], skipped=saved.get("skipped", 0),
                   schedule=schedule_state)  # fmt: skip
