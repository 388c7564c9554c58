"""The training settings, declared once: name, type, default, help, owner and check.

Every other view of a run's settings is derived from ``declared``:

- ``tvo.config.TrainConfig`` has one field per setting (``None`` by default for the
  settings of an objective, which ``tvo.config.resolve`` fills in where they apply);
- a TOML file (``tvo train --config``, a sweep's ``[defaults]`` and grids, a Tune config)
  accepts exactly these names;
- ``tvo train`` has one flag per setting (``--name-with-dashes``, plus ``flags`` such as
  ``-S``), parsed by ``parse``;
- ``tvo.fit`` takes each as a keyword (``keyword``: ``num_particles`` for ``particles``);
- the table of ``docs/settings.md`` is ``markdown_table`` (a test checks it is up to
  date).

The run-wide settings are ``COMMON``. An objective's own settings are declared by its class
(``tvo.objectives.base.Objective``): ``settings`` maps each name to its default there,
and ``declared`` may give a ``Setting`` with its type, help and check; a setting with no
declaration gets one inferred from its default (its type; help naming the objective). So a new
objective with a new setting needs only those two class attributes (and ``applicable``,
``from_settings`` and ``run_settings`` to use it): its flag, TOML key, ``fit`` keyword, field
and table row follow.

``Setting`` checks a single value (its type, range or choices); a requirement that
involves several settings or the model (a pathwise objective needs ``has_rsample``, gp-bandit
needs ``K ≥ 2``, compile needs a fixed partition, exactly one of steps and epochs) is checked
once, in ``tvo.config.validate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

SEED_LIMIT = 2**63  # torch's generators take seeds below it


class ConfigError(ValueError):
    """A setting that cannot work; the message names it and what would be valid."""


def check_choice(name: str, value, choices) -> None:
    """A ``ConfigError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}: expected one of {', '.join(choices)}")


def check_number(name: str, value, low, kind=int, high=None, open_low=False) -> None:
    """An integer (``kind=int``: an ``int``, not ``10.0``) or a number in the given range."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (kind is float or isinstance(value, int))
    ok = ok and (value > low if open_low else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"> {low}" if open_low else f"≥ {low}"
        upper = f" and < {high}" if high is not None else ""
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what} {bound}{upper}, got {value!r}")


KIND_NAMES = {int: "integer", float: "number", str: "text", bool: "true/false", list: "list",
              dict: "table", object: "integer or auto"}  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One training setting.

    Attributes:
        name: its name in ``config.json``, TOML files and ``TrainConfig``.
        kind: the type of its value: ``int``, ``float``, ``str``, ``bool``, ``list``, ``dict``
            (``object``: any, left to ``check``).
        default: its value when nothing sets it (an objective's setting: its objective's).
        help: one line for ``tvo train --help`` and the documentation's table (or a function
            that returns it, for a line that lists a registry).
        optional: whether ``None`` is a valid value (the setting may be left out).
        flags: short flags besides ``--name`` (``("-S",)``); ``flag=False``: none at all.
        parse: the flag's text to a value (default: ``kind``).
        keyword: its name as a keyword of ``tvo.fit`` (default: ``name``; ``""``: none).
        label: its name in error messages (default: ``name``).
        choices: the valid values of a text setting.
        low, high, open_low: the range of a number (``low ≤ v < high``, ``low < v`` if
            ``open_low``).
        check: a check of the value given all values, ``check(value, values)``, that raises
            ``ConfigError``; for a number it replaces the range check.
        owner: ``"run"``, or the objectives that take it (filled in by ``declared``).
    """

    name: str
    kind: type
    default: object = None
    help: str | Callable[[], str] = ""
    optional: bool = False
    flags: tuple[str, ...] = ()
    flag: bool = True
    parse: Callable[[str], object] | None = None
    metavar: str | None = None
    keyword: str | None = None
    label: str | None = None
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    check: Callable[[object, Mapping], None] | None = None
    owner: tuple[str, ...] = ("run",)

    @property
    def option(self) -> str:
        """Its long flag: ``--batch-size`` for ``batch_size``."""
        return "--" + self.name.replace("_", "-")

    @property
    def fit_keyword(self) -> str | None:
        """Its keyword argument of ``tvo.fit``, or ``None``."""
        return self.name if self.keyword is None else (self.keyword or None)

    def validate(self, value, values: Mapping) -> None:
        """Raise ``ConfigError`` unless ``value`` is valid for this setting (``values``:
        all the run's settings, for a check that depends on another)."""
        label = self.label or self.name
        if value is None:
            if not self.optional:
                raise ConfigError(f"{label} must be given, got None")
            return
        if self.kind in (int, float) and self.check is None:
            if self.low is None:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                if not ok or (self.kind is int and not isinstance(value, int)):
                    what = "an integer" if self.kind is int else "a number"
                    raise ConfigError(f"{label} must be {what}, got {value!r}")
            else:
                check_number(label, value, self.low, self.kind, self.high, self.open_low)
        elif self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{label} must be true or false, got {value!r}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise ConfigError(f"{label} must be text, got {value!r}")
            if self.choices:
                check_choice(label, value, self.choices)
        elif self.kind is dict and not isinstance(value, dict):
            raise ConfigError(f"{label} must be a table of keyword arguments, got {value!r}")
        elif self.kind is list and not isinstance(value, list | tuple):
            raise ConfigError(f"{label} must be a list of points, got {value!r}")
        if self.check is not None:
            self.check(value, values)


def threads_value(text):
    """A ``threads`` value: ``"auto"``, a count, or (anything else) the text itself, refused by
    the check that follows with the valid values."""
    if isinstance(text, str) and text.strip().isdigit():
        return int(text)
    return text


def _threads_help() -> str:
    from tvo.runtime import THREADS_HELP

    return THREADS_HELP


def _check_threads(value, values) -> None:
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"threads must be an integer ≥ 1 or auto, got {value!r}")


def json_object(text: str) -> dict:
    """A ``--model-args`` value: a JSON object."""
    import argparse
    import json

    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}): {text!r}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object {{...}}, got {text!r}")
    return value


def points(text: str) -> list[float]:
    """A ``--partition`` value: numbers separated by spaces or commas."""
    import argparse

    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected numbers, got {text!r}") from error


def _model_help() -> str:
    from tvo.models import MODELS

    return (f"one of: {', '.join(MODELS)}, or a model of your own: package.module:Name or "
            "path/to/file.py:Name")  # fmt: skip


def _data_help() -> str:
    from tvo.data import DATASETS

    return f"{', '.join(DATASETS)} or a .npz/.npy path"


def _objective_help() -> str:
    from tvo.objectives import OBJECTIVES

    return f"one of: {', '.join(OBJECTIVES)}"


def _presets():
    from tvo.config import PRESETS

    return PRESETS


def _check_particles(value, values) -> None:
    from tvo.objectives import OBJECTIVES

    cls = OBJECTIVES.get(values.get("objective"))
    check_number("particles (S)", value, cls.min_particles if cls is not None else 1)


# The run-wide settings, in the order of TrainConfig's fields; an objective's settings follow
# ``particles`` (OBJECTIVE_SLOT). ``help`` may be a function, called when the flags are made.
COMMON: tuple[Setting, ...] = (
    Setting("model", str, "linear_1", _model_help),
    Setting("model_args", dict, None, "keyword arguments of the model, as a JSON object, e.g. "
            "'{\"latents\": 16}' (in TOML: a [model] table)", optional=True, parse=json_object,
            metavar="JSON"),
    Setting("model_source", str, None, "recorded: the file a package.module:Name model was "
            "imported from", optional=True, flag=False, keyword=""),
    Setting("objective", str, "tvo", _objective_help),
    Setting("data", str, "binarized-mnist", _data_help),
    Setting("data_root", str, None, "local files of the dataset (see tvo.data.load)",
            optional=True),
    Setting("particles", int, 10, "particles per data point", flags=("-S",),
            keyword="num_particles", check=_check_particles),
    Setting("batch_size", int, 24, "data points per step", label="batch size", low=1),
    Setting("lr", float, 3e-4, "Adam learning rate", label="learning rate", low=0.0,
            open_low=True),
    Setting("steps", int, 10_000, "training steps", optional=True, low=1),
    Setting("epochs", float, None, "training epochs, instead of steps", optional=True, low=0.0,
            open_low=True),
    Setting("seed", int, 0, "random seed", low=0, high=SEED_LIMIT),
    Setting("device", str, "auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda")),
    Setting("eval_every", int, 2_000, "steps between evaluations", label="eval every", low=1),
    Setting("eval_particles", int, 1_000, "particles per image at evaluations",
            label="eval particles", low=1),
    Setting("eval_images", int, 1_000, "images evaluated, the first of the split",
            label="eval images", low=1),
    Setting("eval_split", str, "valid", "train, valid or test", label="eval split",
            choices=("train", "valid", "test")),
    Setting("log_every", int, 100, "steps between metrics rows", label="log every", low=1),
    Setting("checkpoint_every", int, 5_000, "steps between checkpoints",
            label="checkpoint every", low=1),
    Setting("nonfinite", str, "skip", "a non-finite step: skip (and count) or stop",
            label="nonfinite policy", choices=("skip", "stop")),
    Setting("compile", bool, False, "trace the step with torch.compile (fixed partitions; on "
            "our CPU faster for the gaussian VAE, slower for SBNs)", parse=bool),
    Setting("preset", str, None, lambda: "the paper's settings: " + ", ".join(_presets()),
            optional=True, keyword=""),
    Setting("threads", object, None, _threads_help, optional=True, parse=threads_value,
            check=_check_threads, metavar="N|auto"),
)  # fmt: skip
OBJECTIVE_SLOT = "particles"  # an objective's settings are placed after this one


def inferred(name: str, default, objectives: tuple[str, ...]) -> Setting:
    """The declaration of an objective's setting that its class gives only a default for."""
    kind = type(default) if isinstance(default, int | float | str | bool | list | dict) else str
    kind = list if kind is tuple else kind
    return Setting(name, kind, default, f"a setting of {', '.join(objectives)}")


def objective_settings() -> dict[str, Setting]:
    """Every objective's settings (``Objective.settings`` and ``declared``), by name, with
    ``owner`` the objectives that take it; optional, as a run of another objective has none."""
    from tvo.objectives import OBJECTIVES

    owners: dict[str, list[str]] = {}
    found: dict[str, Setting] = {}
    for cls in OBJECTIVES.values():
        given = {s.name: s for s in getattr(cls, "declared", ())}
        for name, default in cls.settings.items():
            owners.setdefault(name, []).append(cls.name)
            if name not in found:
                found[name] = given.get(name) or inferred(name, default, ())
                found[name] = _replace(found[name], default=default)
    return {
        name: _replace(s, optional=True, owner=tuple(owners[name]),
                       help=s.help if s.help else f"a setting of {', '.join(owners[name])}")
        for name, s in found.items()
    }  # fmt: skip


def _replace(setting: Setting, **changes) -> Setting:
    import dataclasses

    return dataclasses.replace(setting, **changes)


def declared() -> dict[str, Setting]:
    """All the training settings by name, in the order of ``TrainConfig``'s
    fields: ``COMMON`` with every objective's settings after ``particles``."""
    settings: dict[str, Setting] = {}
    for setting in COMMON:
        settings[setting.name] = setting
        if setting.name == OBJECTIVE_SLOT:
            settings.update(objective_settings())
    return settings


def help_text(setting: Setting) -> str:
    """Its help line, with its default (and, for an objective's setting, the objectives)."""
    text = setting.help() if callable(setting.help) else setting.help
    extra = []
    if setting.owner != ("run",):
        extra.append(", ".join(setting.owner))
    if setting.default is not None and setting.kind is not bool:
        extra.append(f"default: {setting.default}")
    return f"{text} ({'; '.join(extra)})" if extra else text


def markdown_table() -> str:
    """The documentation's table of the settings (``docs/settings.md`` holds it)."""
    rows = ["| setting | flag | `tvo.fit` keyword | type | default | applies to | meaning |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in declared().values():
        flag = ", ".join(f"`{f}`" for f in (*s.flags, s.option)) if s.flag else "-"
        keyword = f"`{s.fit_keyword}`" if s.fit_keyword else "-"
        default = "-" if s.default is None else f"`{s.default}`"
        text = s.help() if callable(s.help) else s.help
        owner = "every run" if s.owner == ("run",) else ", ".join(s.owner)
        cells = [f"`{s.name}`", flag, keyword, KIND_NAMES.get(s.kind, s.kind.__name__), default,
                 owner, text.replace("|", "\\|")]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
