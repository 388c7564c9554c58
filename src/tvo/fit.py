"""The trainer as a library: ``fit`` trains any model that implements the protocol, with
the run folder, checkpoints, exact resume, evaluations, TensorBoard files and metrics that
``tvo train`` gives; ``load`` returns a trained run's model.

``fit`` writes a run like ``tvo train`` does, so ``tvo eval``, ``tvo plot``, ``tvo compare`` and
``tvo train --resume`` work on it. What it cannot name it keeps in the run: a model given as an
object is saved as ``model.pt`` (its class must be importable where the run is loaded again;
``load(run, model=...)`` takes an instance otherwise), data given as tensors as ``data.npz``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import pickle
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tvo import runtime
from tvo.build import Setup, Trained, build, load_trained
from tvo.config import (
    OBJECTIVE_SETTINGS,
    SETTINGS,
    ConfigError,
    TrainConfig,
    differences,
    resolve,
)
from tvo.data import Dataset, from_arrays
from tvo.data.datasets import HELD_OUT_TEST
from tvo.models.user import import_class_module
from tvo.objectives import Objective
from tvo.runs import RUN_DATA, Run


@dataclass
class Fit:
    """A finished (or stopped) ``fit``.

    Attributes:
        run: the run folder.
        model: the trained model (the object that was given, trained in place).
        summary: the run's summary (``summary.json``'s keys), with ``signal`` set when SIGINT
            or SIGTERM stopped it early.
    """

    run: Run
    model: nn.Module
    summary: dict

    @property
    def partition(self) -> torch.Tensor | None:
        """The partition in use at the last checkpoint (``None`` without one)."""
        state = self.run.load_checkpoint()
        return None if state is None else state.get("partition")


def _model_settings(model, model_args) -> tuple[dict, nn.Module | None]:
    if isinstance(model, nn.Module):
        if model_args is not None:
            raise ConfigError("model_args are for a model given by name, not a model object")
        cls = type(model)
        file = getattr(sys.modules.get(cls.__module__), "__file__", None)
        source = str(Path(file).resolve()) if file and cls.__module__ != "__main__" else None
        return {"model": f"{cls.__module__}:{cls.__qualname__}", "model_source": source}, model
    if isinstance(model, str):
        return {"model": model, "model_args": model_args}, None
    raise ConfigError(
        f"model must be a tvo model object or a name (linear_1, package.module:Name), got "
        f"{type(model).__name__}"
    )


def _objective_settings(objective) -> dict:
    if isinstance(objective, Objective):
        return {"objective": objective.name, **objective.run_settings()}
    if isinstance(objective, str):
        return {"objective": objective}
    raise ConfigError(
        f"objective must be an objective (tvo.TVO(K=5), …) or its name, got "
        f"{type(objective).__name__}"
    )


def _data_settings(data) -> tuple[dict, Dataset | None]:
    if isinstance(data, str | Path):
        return {"data": str(data)}, None
    dataset = data if isinstance(data, Dataset) else from_arrays(data)
    return {"data": RUN_DATA}, dataset


# Each setting's keyword of fit (``num_particles`` for ``particles``), from its declaration; the
# model, its arguments, the objective and the data are fit's own arguments.
ARGUMENTS = ("model", "model_args", "objective", "data")
KEYWORDS = {s.fit_keyword: name for name, s in SETTINGS.items()
            if s.fit_keyword and s.fit_keyword not in ARGUMENTS}  # fmt: skip


def _settings_of_keywords(keywords: dict, objective) -> dict:
    """The settings that ``fit``'s keywords give, under the names of a run's config."""
    unknown = sorted(set(keywords) - set(KEYWORDS))
    if unknown:
        raise TypeError(
            f"fit() got an unexpected keyword argument {unknown[0]!r}; its settings are "
            f"{', '.join(KEYWORDS)}"
        )
    settings = {KEYWORDS[k]: v for k, v in keywords.items() if v is not None}
    own = sorted(set(settings) & set(OBJECTIVE_SETTINGS))
    if own and isinstance(objective, Objective):
        raise ConfigError(
            f"{', '.join(own)} is a setting of the objective: give it to the objective object "
            f"({type(objective).__name__}(...)), or give the objective by name"
        )
    return settings


def fit(
    model: nn.Module | str,
    data: str | Path | Dataset | torch.Tensor | dict,
    objective: Objective | str = "tvo",
    *,
    out: str | Path | None = None,
    model_args: dict | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    **settings: object,
) -> Fit:
    """Train ``model`` on ``data`` with ``objective`` into the run folder ``out``.

    Args:
        model: a model object (``tvo.Model`` or the protocol of ``tvo.models.base``), or a
            model's name (``"linear_1"``, ``"package.module:Name"`` with ``model_args``).
        data: a dataset's name or a ``.npz``/``.npy`` path, a ``tvo.data.Dataset``, a
            tensor ``[N, D]`` of training data, or a dict of ``train``, ``valid``, ``test``
            tensors (see ``tvo.data.from_arrays``). Without ``test`` tensors the run has
            no held-out test split: its ``test`` is the validation data, kept so with the
            flag ``held_out_test`` in the run's ``data.npz``, and evaluating ``test``
            (``tvo eval RUN``, ``eval_split="test"``) is refused with a message saying so.
        objective: an objective (``tvo.TVO(K=5, schedule="moments")``, ``tvo.VIMCO()``…) or
            its name (``"tvo"``, ``"vimco"``…: ``tvo train --objective``). An adaptive
            schedule advances by itself.
        out: the run folder (default ``runs/OBJECTIVE-TIME``); an existing run needs
            ``resume`` (continue it, to a larger ``steps`` or ``epochs`` if given; every other
            setting must be the run's own) or ``overwrite``.
        model_args: keyword arguments of the model's class or factory, for a model given
            by name (not for a model object).
        resume: continue the run in ``out`` from its last checkpoint.
        overwrite: replace the run already in ``out``.
        quiet: no progress bar and nothing printed (a run stopped by a signal says so in the
            returned summary's ``signal``).
        **settings: the training settings of ``tvo train``, each under its keyword (types and
            defaults in the table of ``docs/settings.md``, made from ``tvo.settings``):

            - ``data_root``: local files of a named dataset;
            - ``num_particles``: particles ``S`` per data point at each step (the run's
              ``particles``);
            - ``partitions``, ``schedule``, ``beta1``, ``integration``, ``adapt_every``,
              ``partition``: the TVO's partition, for an objective given by name (an
              objective object carries its own);
            - ``alpha``: the Rényi bound's ``α``; ``ovis_form``, ``auxiliary_particles``,
              ``gamma``: OVIS's form and its setting (for those objectives given by name);
            - ``batch_size``: data points per step, drawn with replacement;
            - ``lr``: Adam's learning rate, over every parameter (θ and φ);
            - ``steps``, ``epochs``: the length (``steps`` 10,000 unless ``epochs`` is given;
              with ``resume``, a larger length extends the run);
            - ``seed``: the model's initialisation and every random generator of the run;
            - ``device``: ``"auto"``, ``"cpu"`` or ``"cuda"``;
            - ``eval_every``, ``eval_particles``, ``eval_images``, ``eval_split``: the
              evaluations during training (default split ``valid``);
            - ``log_every``: steps between rows of ``metrics.csv``;
            - ``checkpoint_every``: steps between checkpoints (the last two are kept);
            - ``nonfinite``: a step that is not finite is skipped and counted (``"skip"``) or
              stops training (``"stop"``);
            - ``compile``: trace the step with ``torch.compile`` (fixed partitions);
            - ``threads``: torch threads, recorded in the run (default: torch's count now).

    Returns a ``Fit``. Bad settings raise ``ValueError`` (``ConfigError``, ``DataError``,
    ``ModelError``) naming them before anything is written; an unknown keyword raises
    ``TypeError`` naming the valid ones.
    """
    settings = _settings_of_keywords(settings, objective)
    steps, epochs = settings.get("steps"), settings.get("epochs")
    model_settings, instance = _model_settings(model, model_args)
    data_settings, dataset = _data_settings(data)
    settings = {**model_settings, **_objective_settings(objective), **data_settings, **settings}
    config = resolve(check_model=instance is None, **settings)
    if config.threads == "auto":  # recorded as the count it resolves to (None: train records it)
        config = dataclasses.replace(config, threads=runtime.auto_threads())
    out = (
        Path(out)
        if out is not None
        else Path("runs") / time.strftime(f"{config.objective}-%Y%m%d-%H%M%S")
    )
    if resume:
        run = Run.open(out)
        config = continued(run, config, steps, epochs)
        if instance is None:
            import_class_module(run.config.model, run.config.model_source)  # for model.pt
        setup = build(config, model=instance if instance is not None else run.saved_model(),
                      data=dataset if dataset is not None else run.data_source())  # fmt: skip
    else:
        setup = build(config, model=instance, data=dataset)  # errors stop here: nothing written
        setup.dataset.check_evaluable(config.eval_split)
        run = Run.create(out, config, overwrite=overwrite)
        with run.writer():
            if instance is not None:
                _keep_model(run, instance)
            if dataset is not None:
                run.save_data(_arrays(dataset))
    return Fit(run, setup.model, _train(run, setup, quiet))


def _signature() -> inspect.Signature:
    """``fit``'s signature with every setting's keyword and default, for ``help(tvo.fit)`` and
    editors (the function takes them as ``**settings``)."""
    signature = inspect.signature(fit)
    fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    derived = [inspect.Parameter(keyword, inspect.Parameter.KEYWORD_ONLY,
                                 default=None if name in OBJECTIVE_SETTINGS or name == "steps"
                                 else SETTINGS[name].default)
               for keyword, name in KEYWORDS.items()]  # fmt: skip
    return signature.replace(parameters=fixed + derived)


fit.__signature__ = _signature()


def _arrays(dataset: Dataset) -> dict:
    """The splits a run keeps in ``data.npz``; data without a test split keep the flag
    ``held_out_test = False`` beside them, so that the run never evaluates its validation data
    as a test set (``tvo.data.Dataset.check_evaluable``)."""
    arrays = {s: dataset.split(s).cpu().numpy() for s in ("train", "valid", "test")}
    if not dataset.held_out_test:
        arrays[HELD_OUT_TEST] = np.array(False)
    return arrays


def _keep_model(run: Run, model: nn.Module) -> None:
    """Keep the model object in the run; one that cannot be pickled (a class only ``exec``
    knows, say) is not kept, with a warning saying how to load the run instead."""
    try:
        run.save_model(model)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        warnings.warn(
            f"the model could not be kept in {run.path} ({error}); tvo eval, tvo plot and "
            "tvo train --resume cannot rebuild it: load the run with "
            f"tvo.load(run, model={type(model).__name__}(...))",
            stacklevel=3,
        )


def _train(run: Run, setup: Setup, quiet: bool) -> dict:
    """Train the run: with a progress bar, or with ``quiet`` silently (the loop's own quiet
    mode prints a line per evaluation, for ``tvo train --quiet`` logs: not printed here)."""
    from tvo.train import train  # the loop imports the step and evaluation: kept off import

    if not quiet:
        return train(run, prepared=setup)
    with contextlib.redirect_stdout(io.StringIO()):
        return train(run, quiet=True, prepared=setup)


def continued(
    run: Run, config: TrainConfig, steps: int | None = None, epochs: float | None = None
) -> TrainConfig:
    """The run's own config, extended to ``steps`` or ``epochs`` if given (``Run.extend``:
    written when training resumes, which refuses a length below the steps done); any other
    setting of ``config`` that differs from the run's is a ``ConfigError`` naming it."""
    # threads may change (the continuation is then not bit-identical to an uninterrupted run)
    changed = differences(run.config, config,
                          keep={"steps", "epochs", "model_source", "threads"})  # fmt: skip
    if changed:
        raise ConfigError(
            f"{run.path} was trained with other settings ({', '.join(changed)}); resume it with "
            "its own (only steps or epochs may grow), or train into another folder"
        )
    return run.extend(steps, epochs)


def load(run: str | Path | Run, model: nn.Module | None = None) -> Trained:
    """A trained run's model (in eval mode), ready for ``sample``, ``tvo.estimate`` or more
    training, with its settings (``.config``), the partition it trained with (``.partition``),
    its data (``.dataset``) and the checkpoint's step (``.step``).

    Args:
        run: the run folder (a path or a ``Run``).
        model: an instance to load the parameters into, for a model whose class cannot be
            imported here (``None``: the run's own model).
    """
    run = run if isinstance(run, Run) else Run.open(run)
    return load_trained(run, model=model)
