"""From a run's settings to the objects that train and evaluate it: the one place that builds
them (``tvo train``, ``tvo.fit``, evaluation, plots, sweeps and the benchmarks all come here).

``build`` loads the data and makes the model, objective, schedule and optimiser of a
``TrainConfig`` (or takes a model and data given to ``tvo.fit``);
``build_run`` does it for a run folder, with the model and data the run keeps for itself;
``load_trained`` puts the model of the run's last checkpoint in it, with the partition that
checkpoint used. The data are checked against what the model observes
(``tvo.models.check.observation_support``): binary data for a Bernoulli likelihood, real
values where the likelihood takes them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import torch
from torch import Tensor

from tvo.config import ConfigError, TrainConfig
from tvo.data import Dataset
from tvo.data import load as load_data
from tvo.models import ModelError
from tvo.models import create as create_model
from tvo.models.check import check_model, observation_support
from tvo.models.user import import_class_module
from tvo.objectives import Objective, make_objective
from tvo.partitions import Schedule, partition
from tvo.runs import Run, RunError
from tvo.runtime import check_memory


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA where torch sees it, else the CPU), ``cpu`` or ``cuda``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA device")
    return torch.device(name)


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
    particles_state: Tensor | None = None  # the run's particle generator at its first step

    @property
    def schedule(self) -> Schedule | None:
        return self.objective.schedule


def build(
    config: TrainConfig,
    device: torch.device | None = None,
    model: torch.nn.Module | None = None,
    data: str | Dataset | None = None,
) -> Setup:
    """Load the data and build the model (initialised from the run's seed, drawn from a fork of
    the process's generator, which is left as it was), objective and optimiser. ``model`` and
    ``data`` (a dataset, or a name or path in place of ``config.data``) are used instead of
    building them. The model is checked against the
    protocol on four training images (``tvo.models.check.check_model``). Raises
    ``DataError``, ``ConfigError`` or ``ModelError`` for what cannot work, before any
    training."""
    device = device or resolve_device(config.device)
    raw = data if isinstance(data, Dataset) else load_data(data or config.data, config.data_root,
                                                           support=None)  # fmt: skip
    if config.batch_size > len(raw.train):
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {len(raw.train)} training "
            f"images of {config.data}"
        )
    particles = config.particles * config.batch_size
    try:  # [S·B, D] activations and gradients, the TVO's [B, S, K + 1] weights: about 8 copies
        check_memory(32.0 * particles * (raw.pixels + (config.partitions or 1) + 1),
                     f"a step of S = {config.particles} particles for batches of "
                     f"{config.batch_size}"
                     + (f" with K = {config.partitions} intervals" if config.partitions else ""),
                     device)  # fmt: skip
    except MemoryError as error:
        raise ConfigError(f"{error}; use fewer particles, intervals or a smaller batch") from error
    check_evaluation_memory(config, raw, device)
    with torch.random.fork_rng(devices=[]):  # the process's generator is left as it was
        torch.default_generator.manual_seed(config.seed)
        if model is None:
            try:
                model = create_model(config.model, raw.pixels, raw.data_mean, config.model_args,
                                     config.model_source)  # fmt: skip
            except ModelError as error:
                raise ConfigError(str(error)) from error
        # the particles continue the stream that initialised the model, as they did when they
        # came from the process's generator (a run's numbers are those of tvo 0.2)
        particles_state = torch.default_generator.get_state() if device.type == "cpu" else None
    with torch.random.fork_rng(devices=[]):  # the checks' draws leave the process's alone
        dataset = raw.for_support(observation_support(model))
        check_model(model, dataset.evaluation_images("train", 4))
    objective = make_objective(config)
    error = objective.requirement_error(model)
    if error is not None:
        raise ConfigError(error)
    model = model.to(device)
    optimiser = make_optimiser(model.parameters(), config.lr)
    return Setup(dataset.to(device), model, objective, optimiser, device, particles_state)


def check_evaluation_memory(config: TrainConfig, raw: Dataset, device: torch.device) -> None:
    """The evaluations during training (``eval_particles`` on ``eval_images`` images of
    ``eval_split``), estimated from the settings before any training
    (``tvo.evaluate.estimate.evaluation_rows``): a ``ConfigError`` when they cannot
    fit."""
    from tvo.evaluate.estimate import EVALUATION_BYTES, evaluation_rows

    images = min(config.eval_images, len(raw.split(config.eval_split)))
    rows = evaluation_rows(config.eval_particles, images, device)
    try:
        check_memory(EVALUATION_BYTES * rows * raw.pixels,
                     f"the evaluations during training ({rows} particles of {raw.pixels} values "
                     "at a time)", device)  # fmt: skip
    except MemoryError as error:
        raise ConfigError(f"{error}; use fewer eval_particles or eval_images") from error


def build_run(run: Run, device: torch.device | None = None, model=None) -> Setup:
    """``build`` for a run folder: with the model (``model.pt``) and data (``data.npz``) a
    run given them by ``tvo.fit`` keeps, else from its settings; ``model`` instead of
    either."""
    if model is None:
        import_class_module(run.config.model, run.config.model_source)  # for model.pt
        model = run.saved_model()
    return build(run.config, device, model=model, data=run.data_source())


@dataclass
class Trained:
    """A run's model as its last checkpoint left it (in eval mode), with what it was trained
    with: ``partition`` is the one in use at that checkpoint (``None`` for objectives without
    one), ``step`` the checkpoint's step."""

    setup: Setup
    partition: Tensor | None
    step: int
    config: TrainConfig

    @property
    def model(self) -> torch.nn.Module:
        return self.setup.model

    @property
    def dataset(self) -> Dataset:
        return self.setup.dataset


def load_trained(run: Run, model: torch.nn.Module | None = None) -> Trained:
    """The run's ``Trained`` model from its newest readable checkpoint (put into ``model``
    if given, e.g. an instance of a class that cannot be imported here)."""
    prepared = build_run(run, model=model)
    state = run.load_checkpoint(map_location=prepared.device)
    if state is None:
        raise RunError(f"{run.path} has no checkpoint yet: nothing to evaluate{_replaced(run)}")
    from tvo import inputs

    inputs.check(run, state, run.config, prepared.dataset, prepared.model)
    prepared.model.load_state_dict(state["model"])
    prepared.model.eval()
    beta = state.get("partition")
    beta = None if beta is None else partition(beta.cpu())
    return Trained(prepared, beta, state["step"], run.config)


def _replaced(run: Run) -> str:
    """Where the run that an interrupted ``--overwrite`` moved aside is, and how to get it back."""
    from tvo.runs import REPLACED

    if not (run.path / REPLACED).is_dir():
        return ""
    return (
        f"; the run it replaces is in {run.path / REPLACED}, and comes back by itself when "
        f"the run is next opened for writing (tvo train --resume {shlex.quote(str(run.path))}), "
        "or move its "
        "files back by hand"
    )
