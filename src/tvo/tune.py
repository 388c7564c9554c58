"""Ray Tune: ``trainable``, a function trainable that trains one run with tvo's own trainer
(``tvo.train.train``) and reports its validation ``log p̂(x)`` to Tune at each evaluation.

Tune's config is a dict of tvo's settings (the names of ``tvo train``, a sweep file and
``config.json``: ``beta1``, ``partitions`` for K, ``particles`` for S, ``lr``, ``schedule``,
``steps``, ``eval_every``…, and ``preset``), searched or fixed; ``base`` holds the settings every
trial shares (pass it with ``tune.with_parameters``). A setting Tune gives overrides ``base``;
an unknown one, or a value that cannot work, fails the trial with the
``ConfigError`` that ``tvo train`` would print::

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    import tvo.tune

    base = {"preset": "sbn", "steps": 20_000, "eval_every": 1_000, "eval_particles": 100}
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(tvo.tune.trainable, base=base), {"cpu": 2}),
        param_space={"beta1": tune.loguniform(1e-3, 0.5), "partitions": tune.choice([2, 5, 10])},
        tune_config=tune.TuneConfig(metric="log_px", mode="max", num_samples=20,
                                    scheduler=ASHAScheduler(time_attr="step", max_t=20_000,
                                                            grace_period=2_000)),
    )
    best = tuner.fit().get_best_result()
    trained = tvo.load(best.checkpoint.path)      # the trial's run folder

Each report is the metrics row of the evaluation (the columns of ``metrics.csv``: ``step``,
``train_objective``, ``skipped``, ``split``, ``log_px``, ``kl``, ``elbo``, ``partition``), with
a Tune checkpoint that *is* the run folder at that step: ``config.json``, ``metrics.csv``, the
trainer's checkpoint of that step, TensorBoard files (and ``summary.json`` once the run is
done), so ``tvo.load``, ``tvo eval`` and ``tvo plot`` work on it. Training goes from one
evaluation to the next with ``train(run, stop_after=...)``, which ends a stretch as an
interruption would, with a checkpoint.

A trial that Tune starts again (a retry after its worker died, ``FailureConfig(max_failures)``,
or ``Tuner.restore``) gets its last Tune checkpoint from ``ray.tune.get_checkpoint``; the
run folder is copied back from it and training resumes from the trainer's checkpoint, so on the
CPU the trial ends with the metrics and parameters of an uninterrupted run, bit for bit.

Threads: each trial sets ``torch.set_num_threads`` to the CPUs Tune gives it
(``tune.with_resources``; Tune's default is 1 CPU, hence 1 thread), so trials sharing a machine
do not oversubscribe it. The run folder lives in the trial's working directory, on the node
that runs it; what persists is the Tune checkpoints in the ``storage_path`` of Tune's
``RunConfig`` (on a cluster: a path every node sees, or cloud storage).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tvo.config import FIELDS, TrainConfig, check_keys, resolve

METRIC = "log_px"  # the metric to give TuneConfig, and its mode: higher is better
MODE = "max"
RUN = "tvo-run"  # the run folder's name in the trial's working directory
SETTINGS = sorted(set(FIELDS) - {"model_source"})  # what a Tune config may set


def settings(config: dict, base: dict | None = None) -> TrainConfig:
    """The run's settings: ``base`` overridden by Tune's ``config`` (both dicts of tvo setting
    names, ``preset`` included), resolved as ``tvo train`` resolves its flags. An unknown name
    or a value that cannot work is a ``ConfigError`` naming it.

    Args:
        config: Tune's settings for the trial.
        base: the settings every trial shares (``None``: none).
    """
    merged = {**(base or {}), **config}
    check_keys(merged, SETTINGS, "Tune config")
    preset = merged.pop("preset", None)
    return resolve(preset=preset, **merged)


def trainable(config: dict, base: dict | None = None) -> None:
    """Train one run with the settings ``base`` overridden by ``config`` (``settings``),
    reporting the metrics row of each evaluation to Tune with the run folder as its checkpoint;
    resume from ``ray.tune.get_checkpoint`` when Tune gives one. Call it through Tune
    (``tune.Tuner(trainable, param_space=...)``), not directly.

    Args:
        config: Tune's settings for the trial.
        base: the settings every trial shares (``None``: none).
    """
    import torch
    from ray import tune

    from tvo.build import build_run
    from tvo.fit import continued
    from tvo.runs import Run
    from tvo.train import total_steps, train

    wanted = settings(config, base)  # a bad setting fails here, before anything is written
    torch.set_num_threads(threads())
    folder = run_folder()
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as saved:
            if folder.exists():
                shutil.rmtree(folder)
            shutil.copytree(saved, folder)
        run = Run.open(folder)
        continued(run, wanted)  # a restore with other settings is an error naming them
    else:
        run = Run.create(folder, wanted, overwrite=True)  # a retry before any checkpoint
    setup = build_run(run)
    steps, every = total_steps(run.config, setup.dataset), run.config.eval_every
    done = run.latest_step()  # 0: a new run (a checkpoint that does not load: train says so)
    while done < steps:
        target = min(steps, (done // every + 1) * every)  # the next evaluation
        summary = train(run, quiet=True, stop_after=target, prepared=setup)
        done = summary["steps"]
        if done != target:  # stopped by a signal: its checkpoint is not at an evaluation
            break
        # the run with only this step's trainer checkpoint: Tune keeps earlier ones itself
        copy = run.copy_to(folder.with_name(f"{folder.name}-checkpoint"))
        tune.report(evaluation(run, done), checkpoint=tune.Checkpoint.from_directory(copy))
        shutil.rmtree(copy)  # Tune copied it to its storage during report


def evaluation(run, step: int) -> dict:
    """The metrics row of the evaluation at ``step``, as ``metrics.csv`` holds it (its empty
    cells left out).

    Args:
        run (Run): the run.
        step: the evaluation's step.
    """
    rows = [row for row in run.read_metrics() if row["step"] == step and row["log_px"] is not None]
    return {key: value for key, value in rows[-1].items() if value is not None}


def threads() -> int:
    """The torch threads of this trial: the CPUs Tune gives it (at least 1)."""
    from ray import tune

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    return max(1, int(cpus))


def run_folder() -> Path:
    """The trial's run folder: ``tvo-run`` in the trial's working directory (where Tune puts
    each trial), or a folder named by the trial when ``RAY_CHDIR_TO_TRIAL_DIR=0`` keeps every
    trial in one directory."""
    if os.environ.get("RAY_CHDIR_TO_TRIAL_DIR") == "0":
        from ray import tune

        return Path.cwd() / f"{RUN}-{tune.get_context().get_trial_name()}"
    return Path.cwd() / RUN
