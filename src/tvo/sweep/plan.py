"""A sweep's plan: its TOML file parsed and checked into runs, and the unfinished runs packed
into units of work (a run, or a group of runs trained together) for an executor.

The file (see ``benchmarks/sweeps/*.toml``)::

    out = "results/mine"     # the runs' folder (default: results/FILE_NAME)
    [evaluation]             # the final evaluation of every run (written to RUN/final.json)
    split = "test"
    particles = 5000
    images = 2000            # the first N images of the split; leave out for all of them

    [defaults]               # TrainConfig settings shared by every run (names as config.json)
    data = "binarized-mnist"
    steps = 10000

    [[experiment]]           # a named group of runs; its grids are crossed with its seeds
    name = "sbn"
    seeds = [0, 1, 2]
    grid = [{objective = ["vimco", "rws"]}, {objective = "tvo", partitions = [2, 5]}]

    [report]                 # optional, free-form: read by report scripts, ignored by the sweep

In a grid a list is crossed with the other lists; a scalar is shared. A setting of an objective
(``partitions``, ``beta1``…) in ``[defaults]`` is applied to the runs it applies to (and must
apply to one at least); in a grid it must apply to the grid's runs. Every run gets a folder
``OUT/NAME`` named by its settings, so a run that two experiments share is trained once. A run
is done when its ``final.json`` exists; a run with a checkpoint is resumed (``tvo train
--resume``). Every setting of the file is checked before any run starts.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from tvo import config as config_module
from tvo.config import ConfigError, TrainConfig
from tvo.runs import Run

EVALUATION_DEFAULTS = {"split": "test", "particles": 5000, "images": None, "chunk_size": None}
TOP_KEYS = {"out", "evaluation", "defaults", "experiment", "report"}
# Runs trained together by default (tvo sweep --group). One, by measurement
# (benchmarks/ensemble_speed.py, the table in benchmarks/RESULTS.md): on 2 CPU cores a group of
# 16 trained linear_1 1.4 to 1.6 times faster than one run after another, but the Gaussian VAE
# 0.74 to 0.97 times as fast; the gain depends on the model and the machine.
DEFAULT_GROUP = 1


@dataclass
class Sweep:
    """A parsed sweep file: ``runs`` maps a run name to its config, ``experiments`` an
    experiment name to its run names (in file order)."""

    path: Path
    evaluation: dict
    runs: dict[str, TrainConfig] = field(default_factory=dict)
    experiments: dict[str, list[str]] = field(default_factory=dict)
    report: dict = field(default_factory=dict)  # the file's [report] table, for report scripts
    out: Path | None = None  # where the runs go unless the command says otherwise


def run_name(config: TrainConfig) -> str:
    """``MODEL-OBJECTIVE-S10[-K5-log-b0.05][-right][-every50][-a0.5][-M10]-seed0``: the settings
    a sweep varies; the objective's own settings where they apply (``integration`` and
    ``adapt_every`` where they differ from their defaults)."""
    name = f"{_model_label(config.model)}-{config.objective}-S{config.particles}"
    if config.partitions is not None:
        name += f"-K{config.partitions}-{config.schedule}"
    if config.beta1 is not None:
        name += f"-b{config.beta1:g}"
    if config.integration not in (None, "left"):
        name += f"-{config.integration}"
    if config.adapt_every not in (None, 100):
        name += f"-every{config.adapt_every}"
    if config.alpha is not None:
        name += f"-a{config.alpha:g}"
    if config.ovis_form == "mc":  # OVIS-MC with M auxiliary particles
        name += f"-M{config.auxiliary_particles}"
    elif config.ovis_form is not None:  # OVIS~ with γ
        name += f"-gamma{config.gamma:g}"
    if config.data != "binarized-mnist" and config.model != "gaussian":
        name += f"-{Path(config.data).stem}"
    return f"{name}-seed{config.seed}"


def _model_label(model: str) -> str:
    """A model's name as a folder name: a registered name as it is, a ``module:Name`` or
    ``path/file.py:Name`` spec as ``module.Name`` or ``file.Name`` (two models with one label
    in a sweep are refused when it is loaded)."""
    if ":" not in model:
        return model
    where, name = model.rsplit(":", 1)
    stem = Path(where).stem if where.endswith(".py") else where
    return f"{stem}.{name}".replace("/", "_").replace("\\", "_")


def _crossed(grid: dict) -> list[dict]:
    keys = list(grid)
    values = [v if isinstance(v, list) else [v] for v in grid.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def load(path: str | Path) -> Sweep:
    """Parse and validate a sweep file; every run's settings are checked before any work."""
    path = Path(path)
    settings = config_module.read_toml(path, allowed=TOP_KEYS)
    evaluation = {**EVALUATION_DEFAULTS, **settings.get("evaluation", {})}
    config_module.check_keys(evaluation, EVALUATION_DEFAULTS, f"{path} [evaluation]")
    defaults = settings.get("defaults", {})
    config_module.check_keys(defaults, config_module.FIELDS, f"{path} [defaults]")
    experiments = settings.get("experiment", [])
    if not experiments:
        raise ConfigError(f"{path}: no [[experiment]] tables: nothing to run")
    out = Path(settings["out"]) if "out" in settings else None
    sweep = Sweep(path, evaluation, report=settings.get("report", {}), out=out)
    for experiment in experiments:
        name = experiment.get("name")
        if not name or name in sweep.experiments:
            raise ConfigError(f"{path}: every [[experiment]] needs a unique name, got {name!r}")
        config_module.check_keys(experiment, ("name", "seeds", "grid"), f"{path} [[experiment]]")
        names = sweep.experiments[name] = []
        for grid in experiment.get("grid", [{}]):
            config_module.check_keys(grid, config_module.FIELDS, f"{path} experiment {name!r}")
            for seed in experiment.get("seeds", [0]):
                for point in _crossed(grid):
                    shared = dict(defaults)
                    if "epochs" in point and "steps" not in point:
                        shared.pop("steps", None)  # epochs replace the default step count
                    try:
                        config = config_module.resolve(defaults=shared, **point, seed=seed)
                    except (ConfigError, TypeError) as error:
                        raise ConfigError(f"{path}, experiment {name!r}: {error}") from error
                    # A preset only fills in values: the same values make the same run.
                    config = dataclasses.replace(config, preset=None)
                    key = run_name(config)
                    if key in sweep.runs and sweep.runs[key] != config:
                        raise ConfigError(f"{path}: two runs named {key} differ in settings")
                    sweep.runs[key] = config
                    if key not in names:
                        names.append(key)
    for setting in defaults:
        if all(getattr(config, setting) is None for config in sweep.runs.values()):
            raise ConfigError(
                f"{path} [defaults]: {setting} applies to none of the sweep's runs (their "
                "objectives and schedules do not use it); drop it or move it into a grid"
            )
    check_evaluation(path, evaluation)
    return sweep


def check_evaluation(path: Path, evaluation: dict) -> None:
    """The ``[evaluation]`` table's values, checked before any run starts."""
    config_module._check_choice(f"{path} [evaluation] split", evaluation["split"],
                                config_module.EVAL_SPLITS)  # fmt: skip
    for key in ("particles", "images", "chunk_size"):
        if evaluation[key] is not None or key == "particles":
            config_module._check_number(f"{path} [evaluation] {key}", evaluation[key], 1)


def status(folder: Path) -> str:
    """``done`` (evaluated), ``evaluate`` (trained), ``resume`` (a checkpoint) or ``new``."""
    return Run(folder).status()


def prepare(sweep: Sweep, out: Path) -> dict[str, str]:
    """Create the run folders that do not exist yet; refuse a folder whose settings differ
    from the sweep's (nothing is overwritten). Returns each run's status."""
    states = {}
    for name, config in sweep.runs.items():
        folder = out / name
        if Run.is_run(folder):
            changed = config_module.differences(Run.open(folder).config, config)
            if changed:
                raise ConfigError(
                    f"{folder} holds a run whose settings differ from the sweep's "
                    f"({', '.join(changed)}); move it away or give the sweep another --out"
                )
            run = Run(folder)
        else:
            run = Run.create(folder, config)
        states[name] = run.status()
    return states


def _cost(config: TrainConfig) -> float:
    return config.particles * config.batch_size * (config.steps or 1)


def units(sweep: Sweep, out: Path, names: list[str], group: int = 1) -> list[list[str]]:
    """The unfinished runs ``names`` as units of work, longest first: each a run alone, or with
    ``group > 1`` up to ``group`` runs that can train together (:func:`tvo.ensemble.group_key`:
    every setting equal but seed, learning rate, β1 and partition) and are at the same step.
    A run that only waits for its final evaluation is a unit of its own."""
    from tvo.ensemble import group_key

    order = sorted(names, key=lambda n: -_cost(sweep.runs[n]))
    if group <= 1:
        return [[n] for n in order]
    packs: dict[tuple, list[list[str]]] = {}
    result: list[list[str]] = []
    for name in order:
        if Run(out / name).status() == "evaluate":
            result.append([name])
            continue
        key = (group_key(sweep.runs[name]), Run(out / name).latest_step())
        bins = packs.setdefault(key, [])
        if not bins or len(bins[-1]) >= group:
            bins.append([])
            result.append(bins[-1])
        bins[-1].append(name)
    return result
