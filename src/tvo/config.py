"""A training run's settings: defaults, the paper's presets, a TOML file, then flags.

Everything a run needs to be reproduced is in :class:`TrainConfig`; the run folder stores it
resolved (``config.json``). :func:`validate` checks it before any work starts and raises
:class:`ConfigError` naming the bad value and what would be valid.

Settings that belong to one objective (the TVO's ``partitions``, ``schedule``, ``beta1``,
``integration``, ``adapt_every``) are declared by the objective class (its ``settings`` and
``applicable``), and are ``None`` in a run whose objective does not use them. Given explicitly
(a flag, a config file, a sweep's grid) to an objective or schedule that does not use them, they
are an error; filled in by a preset or a sweep's ``[defaults]``, they are applied where they
apply.

Presets (the paper's settings; a preset fills in values, a config file or a flag overrides):

- ``sbn``: ``linear_1`` on ``binarized-mnist``, TVO with K = 2, batch 24, Adam 3·10⁻⁴, S = 10
  with β1 = 0.2 (the paper's choices of β1 by S: 0.05 at S = 5, 0.2 at S = 10, 0.3 at S = 50).
- ``continuous``: ``gaussian`` on ``mnist`` (dynamic binarisation), TVO with K = 5 on the log
  schedule, β1 = 0.02, batch 1000 (as in the paper), Adam 10⁻³, S = 10.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from tvo.bandit import require_sklearn
from tvo.models import ModelError, check_arguments, is_spec, model_class, source_of
from tvo.objectives import OBJECTIVES, objective_class
from tvo.partitions import ADAPTIVE_SCHEDULES, INTEGRATIONS, SCHEDULE_SETTINGS, SCHEDULES
from tvo.partitions import partition as make_partition
from tvo.partitions import validate as validate_partition


class ConfigError(ValueError):
    """A setting that cannot work; the message names it and what would be valid."""


@dataclass
class TrainConfig:
    model: str = "linear_1"  # a registered name, or package.module:Name / path/file.py:Name
    model_args: dict | None = None  # keyword arguments of the model's class or factory
    model_source: str | None = None  # recorded: the file a module:Name model was imported from
    objective: str = "tvo"
    data: str = "binarized-mnist"
    data_root: str | None = None
    particles: int = 10
    partitions: int | None = None  # the objective-specific settings: None where they do not apply
    schedule: str | None = None
    adapt_every: int | None = None
    beta1: float | None = None
    integration: str | None = None
    partition: list | None = None  # the TVO's points of your own, instead of K and a schedule
    alpha: float | None = None  # the Rényi bound's α (renyi, renyi-pathwise)
    ovis_form: str | None = None  # OVIS: mc or asymptotic
    auxiliary_particles: int | None = None  # OVIS-MC's particles for the control variate
    gamma: float | None = None  # OVIS~'s γ
    batch_size: int = 24
    lr: float = 3e-4
    steps: int | None = 10_000
    epochs: float | None = None
    seed: int = 0
    device: str = "auto"
    eval_every: int = 2_000
    eval_particles: int = 1_000
    eval_images: int = 1_000
    eval_split: str = "valid"
    log_every: int = 100
    checkpoint_every: int = 5_000
    nonfinite: str = "skip"
    compile: bool = False
    preset: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BETA1_BY_PARTICLES = {5: 0.05, 10: 0.2, 50: 0.3}

PRESETS: dict[str, dict] = {
    "sbn": {"model": "linear_1", "data": "binarized-mnist", "objective": "tvo", "partitions": 2,
            "schedule": "log", "batch_size": 24, "lr": 3e-4, "particles": 10, "beta1": 0.2},
    "continuous": {"model": "gaussian", "data": "mnist", "objective": "tvo", "partitions": 5,
                   "schedule": "log", "beta1": 0.02, "batch_size": 1000, "lr": 1e-3,
                   "particles": 10},
}  # fmt: skip

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# Every setting that belongs to some objective, and its default there.
OBJECTIVE_SETTINGS = {k: v for cls in OBJECTIVES.values() for k, v in cls.settings.items()}
DEVICES = ("auto", "cpu", "cuda")
NONFINITE = ("skip", "stop")
EVAL_SPLITS = ("train", "valid", "test")


def read_toml(path: str | Path, allowed=None) -> dict:
    """The settings in a TOML file: flat keys, the names of :class:`TrainConfig`, unless
    ``allowed`` names the valid top-level keys."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            settings = tomllib.load(handle)
    except FileNotFoundError as error:
        raise ConfigError(f"config file {path}: no such file") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from error
    check_keys(settings, FIELDS if allowed is None else allowed, f"config file {path}")
    return settings


def check_keys(settings: dict, valid, where: str) -> None:
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(sorted(valid))}"
        )


def model_table(settings: dict, where: str) -> dict:
    """``settings`` with a ``[model]`` table (``name`` plus the model's keyword arguments) turned
    into ``model`` and ``model_args``."""
    table = settings.get("model")
    if not isinstance(table, dict):
        return settings
    table = dict(table)
    name = table.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f'{where}: a [model] table needs name = "package.module:Name" (or a model\'s '
            "name), then the model's keyword arguments"
        )
    if settings.get("model_args") is not None:
        raise ConfigError(f"{where}: give the model's arguments in [model] or in model_args, "
                          "not both")  # fmt: skip
    return {**settings, "model": name, "model_args": table or None}


def resolve(
    preset: str | None = None,
    file: str | Path | None = None,
    defaults: dict | None = None,
    check_model: bool = True,
    **flags,
) -> TrainConfig:
    """Defaults, then the preset, then ``defaults`` (a sweep's shared settings), then the file,
    then the flags that were given (not ``None``).

    Settings of the objective (see the module docstring) that the preset or ``defaults`` fill in
    are kept where they apply to the chosen objective and schedule; given in the file or as
    flags where they do not apply, they are a :class:`ConfigError`. With the ``sbn`` preset and
    no β1 given, β1 follows the paper's choice for the chosen S. A model given as
    ``module:Name`` is imported here (``check_model=False`` skips that, for a model instance
    given to :func:`tvo.fit`) and the file it came from recorded as ``model_source``.
    """
    settings: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
        settings.update(PRESETS[preset], preset=preset)
    settings.update(model_table(defaults or {}, "[defaults]"))
    from_file = model_table(read_toml(file), f"config file {file}") if file is not None else {}
    given = model_table({k: v for k, v in flags.items() if v is not None}, "settings")
    explicit = {**from_file, **given}
    settings.update(explicit)
    if explicit.get("epochs") is not None and "steps" not in explicit:
        settings["steps"] = None  # epochs given: the default step count no longer applies
    if preset == "sbn" and "beta1" not in explicit:
        settings["beta1"] = BETA1_BY_PARTICLES.get(settings.get("particles", 10), 0.2)
    settings = objective_settings(settings, explicit)
    if check_model and is_spec(settings.get("model", "")) and not settings.get("model_source"):
        try:
            settings["model_source"] = source_of(settings["model"])
        except ModelError as error:
            raise ConfigError(str(error)) from error
    settings.update(absolute_paths(settings))
    config = TrainConfig(**{k: v for k, v in settings.items() if k in FIELDS})
    validate(config, check_model)
    return config


def is_data_file(value) -> bool:
    """Whether a ``data`` setting names a user's file (``*.npz``/``*.npy``), not a dataset nor
    the data a run keeps itself (``@run/data.npz``)."""
    return isinstance(value, str) and value.endswith((".npz", ".npy")) and value[:1] != "@"


def absolute_paths(settings: dict) -> dict:
    """``data`` (a file) and ``data_root`` of ``settings`` as absolute paths: a run records
    them so, and ``tvo eval``, ``plot`` and ``--resume`` find its data from any folder."""
    paths = {}
    if is_data_file(settings.get("data")):
        paths["data"] = os.path.abspath(settings["data"])
    if isinstance(settings.get("data_root"), str) and settings["data_root"]:
        paths["data_root"] = os.path.abspath(settings["data_root"])
    return paths


def differences(existing: TrainConfig, config: TrainConfig, keep=()) -> list[str]:
    """The settings, but ``keep``, in which ``config`` differs from a run's ``existing`` ones. A
    relative data path that runs before 0.2 recorded equals the absolute path it names from
    this folder."""
    old, new = dataclasses.asdict(existing), dataclasses.asdict(config)
    old.update(absolute_paths(old))
    new.update(absolute_paths(new))
    return [name for name in FIELDS if name not in keep and old[name] != new[name]]


def objective_settings(settings: dict, explicit=()) -> dict:
    """``settings`` with the objective's own settings resolved: its defaults where they apply
    and are missing, ``None`` where they do not apply. A setting in ``explicit`` that does not
    apply is a :class:`ConfigError` saying why."""
    name = settings.get("objective", FIELDS["objective"].default)
    try:
        cls = objective_class(name)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    schedule = settings.get("schedule")
    if "schedule" in cls.applicable(settings) and schedule is not None:
        _check_choice("schedule", schedule, SCHEDULES + ADAPTIVE_SCHEDULES)
    applicable = cls.applicable(settings)
    resolved = dict(settings)
    for setting in OBJECTIVE_SETTINGS:
        value = settings.get(setting)
        if setting not in applicable:
            if setting in explicit and value is not None:
                raise ConfigError(not_applicable(setting, name, settings))
            resolved[setting] = None
        elif value is None:
            resolved[setting] = cls.settings[setting]
    return resolved


def not_applicable(setting: str, objective: str, settings: dict) -> str:
    """Why ``setting`` does not apply, naming the objective or schedule that decides it."""
    cls = objective_class(objective)
    if setting in cls.settings and settings.get("partition") is not None:
        return (
            f"{setting} does not apply with a partition of your own (partition = "
            f"{settings['partition']}): drop one of them"
        )
    if setting in cls.settings and "schedule" not in cls.settings:  # e.g. OVIS's form decides
        return (
            f"{setting} does not apply to objective {objective!r} with these settings; those "
            f"that apply: {', '.join(cls.applicable(settings))}"
        )
    if setting in cls.settings:
        schedule = settings.get("schedule") or cls.settings.get("schedule")
        takes = [s for s, names in SCHEDULE_SETTINGS.items() if setting in names]
        return (
            f"{setting} does not apply to schedule {schedule!r}; it is a setting of the "
            f"schedules {', '.join(takes)}: drop it or choose one of those"
        )
    users = [n for n, c in OBJECTIVES.items() if setting in c.settings]
    why = " (it has no partition)" if setting in OBJECTIVES["tvo"].settings else ""
    return (
        f"{setting} does not apply to objective {objective!r}{why}; it is a "
        f"setting of {', '.join(users)}: drop it or choose one of those"
    )


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}: expected one of {', '.join(choices)}")


def _check_number(name: str, value, low, kind=int, high=None, open_low=False) -> None:
    """An integer (``kind=int``: an ``int``, not ``10.0``) or a number in the given range."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (kind is float or isinstance(value, int))
    ok = ok and (value > low if open_low else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"> {low}" if open_low else f"≥ {low}"
        upper = f" and < {high}" if high is not None else ""
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what} {bound}{upper}, got {value!r}")


# The settings that are text, and whether they may be left out (None).
TEXT = {"model": False, "objective": False, "data": False, "data_root": True, "schedule": True,
        "integration": True, "device": False, "eval_split": False, "nonfinite": False,
        "preset": True, "model_source": True, "ovis_form": True}  # fmt: skip
SEED_LIMIT = 2**63  # torch's generators take seeds below it


def check_types(config: TrainConfig) -> None:
    """Text settings are text, tables are tables, lists are lists: a TOML ``data_root = 7`` is
    an error here, before it can fail later."""
    for name, optional in TEXT.items():
        value = getattr(config, name)
        if not (isinstance(value, str) or (optional and value is None)):
            raise ConfigError(f"{name} must be text, got {value!r}")
    if config.model_args is not None and not isinstance(config.model_args, dict):
        raise ConfigError(f"model_args must be a table of keyword arguments, got "
                          f"{config.model_args!r}")  # fmt: skip
    if config.partition is not None and not isinstance(config.partition, list | tuple):
        raise ConfigError(f"partition must be a list of points, got {config.partition!r}")
    if not isinstance(config.compile, bool):
        raise ConfigError(f"compile must be true or false, got {config.compile!r}")


def validate(config: TrainConfig, check_model: bool = True, check_environment: bool = True) -> None:
    """Raise :class:`ConfigError` for any setting that cannot work. ``check_model=False`` leaves
    the model's name and arguments alone (a model instance given to :func:`tvo.fit`);
    ``check_environment=False`` does not ask this machine for scikit-learn or a C++ compiler
    (a run folder read for its settings)."""
    check_types(config)
    target = None
    if check_model:
        try:
            target = model_class(config.model, config.model_source)
            check_arguments(config.model, config.model_args, config.model_source)
        except ModelError as error:
            raise ConfigError(str(error)) from error
    _check_choice("objective", config.objective, OBJECTIVES)
    cls = objective_class(config.objective)
    values = config.to_dict()
    applicable = cls.applicable(values)
    for setting in OBJECTIVE_SETTINGS:
        given = getattr(config, setting) is not None
        if given and setting not in applicable:
            raise ConfigError(not_applicable(setting, config.objective, values))
        if not given and setting in applicable:
            raise ConfigError(f"{setting} is needed by objective {config.objective!r}, got None")
    if config.schedule is not None:
        _check_choice("schedule", config.schedule, SCHEDULES + ADAPTIVE_SCHEDULES)
    if config.integration is not None:
        _check_choice("integration", config.integration, INTEGRATIONS)
    if config.partition is not None:
        try:
            validate_partition(config.partition)
        except ValueError as error:
            raise ConfigError(f"partition: {error}") from error
    _check_choice("device", config.device, DEVICES)
    _check_choice("nonfinite policy", config.nonfinite, NONFINITE)
    _check_choice("eval split", config.eval_split, EVAL_SPLITS)
    _check_number("particles (S)", config.particles, cls.min_particles)
    if config.partitions is not None:
        _check_number("partitions (K)", config.partitions, 1)
    if config.beta1 is not None:
        _check_number("beta1", config.beta1, 0.0, float, high=1.0, open_low=True)
    if config.partitions is not None and config.schedule is not None:
        start = "linear" if config.schedule == "linear" else "log"  # the adaptive ones start at log
        try:
            make_partition(config.partitions, start, config.beta1 or 0.1)
        except ValueError as error:
            raise ConfigError(str(error)) from error
    check_objective_numbers(config)
    _check_number("batch size", config.batch_size, 1)
    _check_number("learning rate", config.lr, 0.0, float, open_low=True)
    names = ("eval_every", "eval_particles", "eval_images", "log_every", "checkpoint_every",
             "adapt_every")  # fmt: skip
    for name in names:
        if getattr(config, name) is not None:
            _check_number(name.replace("_", " "), getattr(config, name), 1)
    _check_number("seed", config.seed, 0, high=SEED_LIMIT)
    if (config.steps is None) == (config.epochs is None):
        raise ConfigError("give exactly one of steps and epochs")
    if config.steps is not None:
        _check_number("steps", config.steps, 1)
    else:
        _check_number("epochs", config.epochs, 0.0, float, open_low=True)
    if config.schedule == "gp-bandit":
        if config.partitions < 2:
            raise ConfigError(
                f"the gp-bandit schedule needs partitions (K) ≥ 2, got "
                f"{config.partitions}: with K = 1 there is no point to place"
            )
        if check_environment:
            try:
                require_sklearn()
            except ImportError as error:
                raise ConfigError(str(error)) from error
    if config.compile:
        check_compile(config, check_environment)
    if hasattr(target, "has_rsample") and cls.requirement_error(target) is not None:
        raise ConfigError(
            f"objective {config.objective!r} is pathwise (reparameterised), but model "
            f"{config.model!r} has discrete latents (has_rsample is False); use tvo, elbo, "
            "reinforce, vimco, rws, ws, ic, ovis or renyi"
        )


def check_objective_numbers(config: TrainConfig) -> None:
    """The Rényi bound's ``alpha`` (finite), OVIS's ``ovis_form``, ``auxiliary_particles``
    (≥ 1) and ``gamma`` (in [0, 1]), where given."""
    alpha = config.alpha
    if alpha is not None and not (
        isinstance(alpha, int | float) and not isinstance(alpha, bool) and math.isfinite(alpha)
    ):
        raise ConfigError(f"alpha must be a finite number, got {alpha!r}")
    if config.ovis_form is not None:
        _check_choice("ovis_form", config.ovis_form, ("mc", "asymptotic"))
    if config.auxiliary_particles is not None:
        _check_number("auxiliary_particles", config.auxiliary_particles, 1)
    gamma = config.gamma
    if gamma is not None and not (
        isinstance(gamma, int | float) and not isinstance(gamma, bool) and 0 <= gamma <= 1
    ):
        raise ConfigError(f"gamma must be a number in [0, 1], got {gamma!r}")


def check_compile(config: TrainConfig, check_environment: bool = True) -> None:
    """``compile`` traces one step's loss for a fixed partition and, on the CPU, needs a C++
    compiler for the kernels it generates."""
    if config.schedule in ADAPTIVE_SCHEDULES:
        raise ConfigError(
            f"compile needs a fixed partition, but schedule {config.schedule!r} moves it (each "
            "move would compile the step again); use schedule log or linear, or drop compile"
        )
    if not check_environment:
        return
    if config.device != "cuda" and not (os.environ.get("CXX") or shutil.which("g++")):
        raise ConfigError(
            "compile on the CPU needs a C++ compiler (g++, or one named by CXX) and none was "
            "found; install one or drop compile"
        )


def save(config: TrainConfig) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"


def load(text: str) -> TrainConfig:
    """A ``config.json``. Runs written before the objective declared its settings recorded the
    TVO's settings for every objective, where they had no effect: those are dropped here."""
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"expected a JSON object, got {type(values).__name__}")
    values = objective_settings(values)
    return TrainConfig(**values)
