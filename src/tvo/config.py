"""A training run's settings: defaults, the paper's presets, a TOML file, then flags.

Everything a run needs to be reproduced is in ``TrainConfig``, whose fields are the
settings declared in ``tvo.settings``; the run folder stores it resolved (``config.json``).
``validate`` checks it before any work starts and raises ``ConfigError`` naming the
bad value and what would be valid.

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
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from tvo.bandit import intervals_error, require_sklearn
from tvo.models import ModelError, check_arguments, is_spec, model_class, source_of
from tvo.objectives import OBJECTIVES, objective_class
from tvo.partitions import ADAPTIVE_SCHEDULES, SCHEDULE_SETTINGS, SCHEDULES
from tvo.partitions import partition as make_partition
from tvo.settings import ConfigError, Setting, check_choice, check_number, declared

# The settings, declared once (tvo.settings); TrainConfig, the TOML keys, the flags of tvo train
# and the keywords of tvo.fit are made from them.
SETTINGS: dict[str, Setting] = declared()
# Every setting that belongs to some objective, and its default there.
OBJECTIVE_SETTINGS = {k: v for cls in OBJECTIVES.values() for k, v in cls.settings.items()}


def _to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _annotation(setting: Setting) -> str:
    kind = "int | str" if setting.kind is object else setting.kind.__name__
    return f"{kind} | None" if setting.optional or setting.name in OBJECTIVE_SETTINGS else kind


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(s.name, _annotation(s),
      dataclasses.field(default=None if s.name in OBJECTIVE_SETTINGS else s.default))
     for s in SETTINGS.values()],
    namespace={"to_dict": _to_dict},
)  # fmt: skip
TrainConfig.__module__ = __name__
TrainConfig.__doc__ = """A run's settings, one field per setting of ``tvo.settings`` (in
that order; an objective's own settings are ``None`` where they do not apply). ``to_dict()``
gives them as a dict."""

BETA1_BY_PARTICLES = {5: 0.05, 10: 0.2, 50: 0.3}

PRESETS: dict[str, dict] = {
    "sbn": {"model": "linear_1", "data": "binarized-mnist", "objective": "tvo", "partitions": 2,
            "schedule": "log", "batch_size": 24, "lr": 3e-4, "particles": 10, "beta1": 0.2},
    "continuous": {"model": "gaussian", "data": "mnist", "objective": "tvo", "partitions": 5,
                   "schedule": "log", "beta1": 0.02, "batch_size": 1000, "lr": 1e-3,
                   "particles": 10},
}  # fmt: skip

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
DEVICES = SETTINGS["device"].choices
NONFINITE = SETTINGS["nonfinite"].choices
EVAL_SPLITS = SETTINGS["eval_split"].choices


def read_toml(path: str | Path, allowed=None) -> dict:
    """The settings in a TOML file: flat keys, the names of ``TrainConfig``, unless
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
    flags where they do not apply, they are a ``ConfigError``. With the ``sbn`` preset and
    no β1 given, β1 follows the paper's choice for the chosen S. A model given as
    ``module:Name`` is imported here (``check_model=False`` skips that, for a model instance
    given to ``tvo.fit``) and the file it came from recorded as ``model_source``.

    Args:
        preset: a preset's name, ``"sbn"`` or ``"continuous"`` (default ``None``: none); any
            other is a ``ConfigError``.
        file: a TOML file of settings, flat keys named as ``TrainConfig``'s fields or a
            ``[model]`` table (default ``None``: none).
        defaults: settings that override the preset's and that the file and the flags
            override (a sweep's ``[defaults]``; default ``None``: none).
        check_model: import the model given as ``module:Name`` and check the model's name and
            arguments (default ``True``; ``False`` for a model instance given to ``tvo.fit``).
        **flags (object): settings under the names of ``TrainConfig``'s fields (the flags of
            ``tvo train``); one that is ``None`` counts as not given.

    Returns:
        The settings, checked by ``validate``.
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


def run_steps(config: TrainConfig, train_images: int) -> int:
    """A run's training steps: ``steps``, or ``⌈epochs · N_train / batch⌉`` for a training set
    of ``train_images`` images (at least 1)."""
    if config.steps is not None:
        return config.steps
    return max(1, math.ceil(config.epochs * train_images / config.batch_size))


def differences(existing: TrainConfig, config: TrainConfig, keep=()) -> list[str]:
    """The settings, but ``keep`` and ``threads`` (which change the rounding, not what is
    trained: a run continued with other threads is said to be so where it happens), in which
    ``config`` differs from a run's ``existing`` ones."""
    old, new = dataclasses.asdict(existing), dataclasses.asdict(config)
    new.update(absolute_paths(new))
    return [name for name in FIELDS if name not in keep and name != "threads"
            and old[name] != new[name]]  # fmt: skip


def objective_settings(settings: dict, explicit=()) -> dict:
    """``settings`` with the objective's own settings resolved: its defaults where they apply
    and are missing, ``None`` where they do not apply. A setting in ``explicit`` that does not
    apply is a ``ConfigError`` saying why."""
    name = settings.get("objective", FIELDS["objective"].default)
    try:
        cls = objective_class(name)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    schedule = settings.get("schedule")
    if "schedule" in cls.applicable(settings) and schedule is not None:
        check_choice("schedule", schedule, SCHEDULES + ADAPTIVE_SCHEDULES)
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


_check_choice = check_choice  # the names the command line and the sweep's plan use
_check_number = check_number


def validate(config: TrainConfig, check_model: bool = True, check_environment: bool = True) -> None:
    """Raise ``ConfigError`` for any setting that cannot work. ``check_model=False`` leaves
    the model's name and arguments alone (a model instance given to ``tvo.fit``);
    ``check_environment=False`` does not ask this machine for scikit-learn or a C++ compiler
    (a run folder read for its settings).

    Each setting is checked by its declaration (``tvo.settings.Setting.validate``: type,
    range, choices); what involves several settings or the model is checked here, each once.

    Args:
        config: the settings to check.
        check_model: import the model's class and check its name and arguments, and what the
            objective needs of it (default ``True``).
        check_environment: check that this machine has what a setting needs: scikit-learn for
            the ``gp-bandit`` schedule, a C++ compiler for ``compile`` on the CPU (default
            ``True``).
    """
    values = config.to_dict()
    objective_names = [name for name in SETTINGS if name in OBJECTIVE_SETTINGS]
    for name, setting in SETTINGS.items():  # the run's own settings: the objective's follow
        if name not in OBJECTIVE_SETTINGS:
            setting.validate(values[name], values)
    target = None
    if check_model:
        try:
            target = model_class(config.model, config.model_source)
            check_arguments(config.model, config.model_args, config.model_source)
        except ModelError as error:
            raise ConfigError(str(error)) from error
    check_choice("objective", config.objective, OBJECTIVES)
    cls = objective_class(config.objective)
    applicable = cls.applicable(values)
    for setting in objective_names:  # those that apply are given, and only those
        given = values[setting] is not None
        if given and setting not in applicable:
            raise ConfigError(not_applicable(setting, config.objective, values))
        if not given and setting in applicable:
            raise ConfigError(f"{setting} is needed by objective {config.objective!r}, got None")
        SETTINGS[setting].validate(values[setting], values)
    check_requirements(config, target, check_environment)


def check_requirements(config: TrainConfig, target=None, check_environment: bool = True) -> None:
    """The requirements that involve more than one setting, or the model (``target``, its class,
    or ``None`` when it is not checked), each checked here only."""
    if (config.steps is None) == (config.epochs is None):
        raise ConfigError("give exactly one of steps and epochs")
    if config.partitions is not None and config.schedule is not None:
        start = "linear" if config.schedule == "linear" else "log"  # the adaptive ones start at log
        try:
            make_partition(config.partitions, start, config.beta1 or 0.1)
        except ValueError as error:
            raise ConfigError(str(error)) from error
    if config.schedule == "gp-bandit":
        error = intervals_error(config.partitions, "partitions (K)")
        if error is not None:
            raise ConfigError(error)
        if check_environment:
            try:
                require_sklearn()
            except ImportError as error:
                raise ConfigError(str(error)) from error
    if config.compile:
        check_compile(config, check_environment)
    if hasattr(target, "has_rsample"):  # a class that says; a factory is asked once it is built
        error = objective_class(config.objective).requirement_error(target, config.model)
        if error is not None:
            raise ConfigError(error)


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
    """The settings of a ``config.json`` as this version writes them (a run folder's are read
    by ``tvo.runs.Run``, which migrates those of earlier versions first:
    ``tvo.runs.migrate_config``)."""
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"expected a JSON object, got {type(values).__name__}")
    return TrainConfig(**values)
