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
    experiment name to its run names (in file order).

    Attributes:
        path: the sweep file.
        evaluation: its ``[evaluation]`` table, defaults filled in.
        runs: each run's name and settings.
        experiments: each experiment's name and run names.
        report: the file's ``[report]`` table.
        out: the runs' folder the file names, if any.
    """

    path: Path
    evaluation: dict
    runs: dict[str, TrainConfig] = field(default_factory=dict)
    experiments: dict[str, list[str]] = field(default_factory=dict)
    report: dict = field(default_factory=dict)  # the file's [report] table, for report scripts
    out: Path | None = None  # where the runs go unless the command says otherwise


def run_name(config: TrainConfig) -> str:
    """``MODEL-OBJECTIVE-S10[-K5-log-b0.05][-right][-every50][-a0.5][-M10]-seed0``: the settings
    a sweep varies; the objective's own settings where they apply (``integration`` and
    ``adapt_every`` where they differ from their defaults).

    Args:
        config: the run's settings.
    """
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


def distinct_names(planned: list[tuple[str, TrainConfig]], defaults: dict) -> list[str]:
    """The folder name of each config of ``planned``: ``run_name``, and where configs that
    differ share it, ``-SETTINGvalue`` for each setting in which they differ that a config sets
    to other than the sweep's default (``[defaults]``, else ``TrainConfig``'s): a grid
    over ``lr`` gives ``…-lr0.001-seed0``. A run that shares no name keeps the plain one, and so
    does a run at the defaults (adding a grid to a sweep does not rename its runs)."""
    base = [run_name(config) for _, config in planned]
    by_name: dict[str, list[TrainConfig]] = {}
    for key, (_, config) in zip(base, planned):
        if config not in by_name.setdefault(key, []):
            by_name[key].append(config)
    names = []
    for key, (_, config) in zip(base, planned):
        suffix = ""
        for setting in _differing(by_name[key]):
            value = getattr(config, setting)
            default = defaults.get(setting, config_module.FIELDS[setting].default)
            if value is not None and value != default:
                suffix += f"-{setting}{_value_label(value)}"
        seed = f"-seed{config.seed}"  # run_name ends with it
        names.append(key[: -len(seed)] + suffix + seed if suffix else key)
    return names


def _differing(configs: list[TrainConfig]) -> list[str]:
    """The settings in which ``configs`` differ, in field order."""
    values = [config.to_dict() for config in configs]
    return [k for k in config_module.FIELDS if any(v[k] != values[0][k] for v in values)]


def _value_label(value) -> str:
    """A setting's value in a folder name: ``0.001``, ``100``, ``latents=16``, ``0_0.5_1``."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_value_label(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return "_".join(map(_value_label, value))
    return str(value).replace("/", "_").replace("\\", "_").replace(" ", "_")


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
    """Parse and validate a sweep file; every run's settings are checked before any work.

    Args:
        path: the sweep file (TOML).
    """
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
    planned: list[tuple[str, TrainConfig]] = []  # (experiment, config) in file order
    for experiment in experiments:
        name = experiment.get("name")
        if not name or name in sweep.experiments:
            raise ConfigError(f"{path}: every [[experiment]] needs a unique name, got {name!r}")
        config_module.check_keys(experiment, ("name", "seeds", "grid"), f"{path} [[experiment]]")
        sweep.experiments[name] = []
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
                    planned.append((name, dataclasses.replace(config, preset=None)))
    for (experiment, config), key in zip(planned, distinct_names(planned, defaults)):
        if key in sweep.runs and sweep.runs[key] != config:
            raise ConfigError(f"{path}: two runs named {key} differ in settings "
                              f"({', '.join(_differing([sweep.runs[key], config]))})")  # fmt: skip
        sweep.runs[key] = config
        if key not in sweep.experiments[experiment]:
            sweep.experiments[experiment].append(key)
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
    from the sweep's (nothing is overwritten). A finished run whose final evaluation was made
    with another ``[evaluation]`` than the file's now (``stale_evaluation``) is evaluated
    again: its ``final.json`` is removed, and the run waits for its evaluation. Returns each
    run's status.

    Args:
        sweep: the sweep.
        out: the runs' folder.
    """
    states = {}
    changed_runs = []
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
            final = run.final()
            if final is not None and stale_evaluation(final, sweep.evaluation):
                changed_runs.append((run, stale_evaluation(final, sweep.evaluation)))
        else:
            run = Run.create(folder, config)
        states[name] = run.status()
    for run, _ in changed_runs:
        with run.writer():
            (run.path / "final.json").unlink(missing_ok=True)
        states[run.path.name] = run.status()
    if changed_runs:
        print(f"{len(changed_runs)} finished run(s) are evaluated again: the sweep's "
              f"[evaluation] changed ({changed_runs[0][1]})", flush=True)  # fmt: skip
    return states


def stale_evaluation(final: dict, evaluation: dict) -> str | None:
    """How the ``[evaluation]`` that made ``final`` (a run's ``final.json``) differs from
    ``evaluation`` (``key old → new``), or ``None`` when it does not. A ``final.json`` from
    before the evaluation was recorded is compared by what it holds: split, particles, and
    images where the file gives a number."""
    made = final.get("evaluation")
    if made is None:  # recorded before #25: what the result says of its settings
        made = {**evaluation, "split": final.get("split"), "particles": final.get("particles")}
        if evaluation.get("images") is not None:
            made["images"] = final.get("num_images")
    keys = sorted(set(made) | set(evaluation))
    changed = [f"{k} {made.get(k)!r} → {evaluation.get(k)!r}" for k in keys
               if made.get(k) != evaluation.get(k)]  # fmt: skip
    return ", ".join(changed) or None


def _cost(config: TrainConfig) -> float:
    """Particle-images a run draws, ``S × batch × steps``: the order in which ``units`` starts
    runs. A run given in epochs has ``epochs × N_train / batch`` steps, with the training set's
    size known by name (``tvo.data.datasets.TRAIN_IMAGES``) or, for a user's arrays, taken as
    MNIST's 50,000 (the plan does not load data)."""
    from tvo.data.datasets import TRAIN_IMAGES

    steps = config_module.run_steps(config, TRAIN_IMAGES.get(config.data, TRAIN_IMAGES["mnist"]))
    return config.particles * config.batch_size * steps


def units(sweep: Sweep, out: Path, names: list[str], group: int = 1) -> list[list[str]]:
    """The unfinished runs ``names`` as units of work, longest first: each a run alone, or with
    ``group > 1`` up to ``group`` runs that can train together (``tvo.ensemble.group_key``:
    every setting equal but seed, learning rate, β1 and partition) and are at the same step.
    A run that only waits for its final evaluation is a unit of its own.

    Args:
        sweep: the sweep.
        out: the runs' folder.
        names: the unfinished runs.
        group: the most runs to a unit.
    """
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
