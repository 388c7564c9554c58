"""From a run's settings to the objects that train and evaluate it: the one place that builds
them (``tvo train``, evaluation, plots, sweeps and the benchmarks all come here).

:func:`build` loads the data and makes the model, objective, schedule and optimiser of a
:class:`~tvo.config.TrainConfig`; :func:`load_trained` does the same for a run folder and puts
the model of its last checkpoint in it, with the partition that checkpoint used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tvo.config import ConfigError, TrainConfig
from tvo.data import Dataset
from tvo.data import load as load_data
from tvo.models import create as create_model
from tvo.objectives import Objective, objective_class
from tvo.partitions import Schedule, partition
from tvo.runs import Run, RunError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA where torch sees it, else the CPU), ``cpu`` or ``cuda``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA device")
    return torch.device(name)


def make_objective(config: TrainConfig) -> Objective:
    """The objective of ``config``, with the settings of it that apply (the TVO's adaptive
    schedules are seeded by the run's seed)."""
    cls = objective_class(config.objective)
    settings = {name: getattr(config, name) for name in cls.applicable(config.to_dict())}
    return cls.from_settings(seed=config.seed, **settings)


def make_optimiser(parameters, lr: float) -> torch.optim.Optimizer:
    """Adam over every parameter (θ and φ together); the fused kernel where this torch has one
    for the device (a third of the unfused step's time on the CPU, benchmarks/RESULTS.md)."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, lr=lr)


@dataclass
class Setup:
    """Everything a run needs, built from its config. ``schedule`` is the objective's (``None``
    for objectives without a partition)."""

    dataset: Dataset
    model: torch.nn.Module
    objective: Objective
    optimiser: torch.optim.Optimizer
    device: torch.device

    @property
    def schedule(self) -> Schedule | None:
        return self.objective.schedule


def build(config: TrainConfig, device: torch.device | None = None) -> Setup:
    """Load the data and build the model (initialised from the run's seed), objective and
    optimiser. Raises ``DataError`` or ``ConfigError`` for settings that cannot work, before
    any training."""
    device = device or resolve_device(config.device)
    dataset = load_data(config.data, config.data_root)
    if config.batch_size > len(dataset.train):
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {len(dataset.train)} training "
            f"images of {config.data}"
        )
    torch.manual_seed(config.seed)
    model = create_model(config.model, pixels=dataset.pixels, data_mean=dataset.data_mean)
    objective = make_objective(config)
    error = objective.requirement_error(model)
    if error is not None:
        raise ConfigError(error)
    model = model.to(device)
    optimiser = make_optimiser(model.parameters(), config.lr)
    return Setup(dataset.to(device), model, objective, optimiser, device)


@dataclass
class Trained:
    """A run's model as its last checkpoint left it (in eval mode), with what it was trained
    with: ``partition`` is the one in use at that checkpoint (``None`` for objectives without
    one), ``step`` the checkpoint's step."""

    setup: Setup
    partition: Tensor | None
    step: int

    @property
    def model(self) -> torch.nn.Module:
        return self.setup.model

    @property
    def dataset(self) -> Dataset:
        return self.setup.dataset


def load_trained(run: Run) -> Trained:
    """The run's :class:`Trained` model from its newest readable checkpoint."""
    config = run.config
    prepared = build(config)
    state = run.load_checkpoint(map_location=prepared.device)
    if state is None:
        raise RunError(f"{run.path} has no checkpoint yet: nothing to evaluate")
    prepared.model.load_state_dict(state["model"])
    prepared.model.eval()
    beta = state.get("partition")
    if beta is None and prepared.schedule is not None:
        beta = prepared.schedule.init().partition  # a checkpoint from before partitions were kept
    beta = None if beta is None else partition(beta.cpu())
    return Trained(prepared, beta, state["step"])
