"""The loop around the training step (:mod:`tvo.step`): batches, the non-finite policy,
evaluations, metrics, TensorBoard, progress, checkpoints and signals.

Everything a step changes is in its :class:`~tvo.step.TrainState`, and a checkpoint holds all of
it (parameters, optimiser, schedule state, both random generators) with the loop's own running
sums; a run resumed from a checkpoint therefore continues with exactly the draws the
uninterrupted run would have made: on the CPU it ends with the same parameters, bit for bit.
Evaluations draw from generators of their own (:mod:`tvo.evaluate.run`), so they never change
what training draws.

A step whose loss or gradient is not finite is never applied: with ``nonfinite = "skip"`` it is
counted (column ``skipped`` of the metrics), with ``"stop"`` training stops with a message
naming the step.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass

from tqdm import tqdm

from tvo import inputs
from tvo.build import Setup, build_run
from tvo.config import TrainConfig
from tvo.data import Dataset
from tvo.evaluate.run import evaluate_model
from tvo.runs import Run, RunError
from tvo.step import Generators, Step, TrainState, init_state, load_state_dict, state_dict

MAX_NONFINITE = 100  # steps in a row that are not finite, after which training stops


class NonFiniteError(RuntimeError):
    """Training stopped at a step whose loss or gradient was not finite (``nonfinite = "stop"``),
    or after :data:`MAX_NONFINITE` such steps in a row."""


def total_steps(config: TrainConfig, dataset: Dataset) -> int:
    if config.steps is not None:
        return config.steps
    return max(1, math.ceil(config.epochs * len(dataset.train) / config.batch_size))


@dataclass
class Progress:
    """What the loop carries between steps besides the training state (saved in checkpoints
    too): wall-clock seconds, the running sum of the training estimate since the last metrics
    row, and the last evaluation."""

    seconds: float = 0.0
    total: float = 0.0
    count: int = 0
    last_eval: dict | None = None


class StopRequest:
    """SIGINT and SIGTERM set a flag that the loop reads after finishing the current step, so
    a stopped run always ends with a consistent checkpoint."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def start(run: Run, s: Setup) -> tuple[TrainState, Progress]:
    """The run's state: fresh from the config's seed, or loaded from its last checkpoint."""
    generators = Generators.of_run(run.config.seed, s.device)
    state = init_state(s.model, s.optimiser, s.schedule, generators)
    saved = run.load_checkpoint(map_location=s.device)
    if saved is None and run.checkpoints():
        raise RunError(
            f"none of the checkpoints of {run.path} can be read ({len(run.checkpoints())} "
            "found, each reported above); nothing was changed. To start the run again from "
            f"step 0, train it anew: tvo train --out {run.path} --overwrite with its settings"
        )
    if saved is None:
        logged = max((row["step"] for row in run.read_metrics()), default=0) if (
            run.metrics_file.exists()) else 0  # fmt: skip
        if logged > run.config.checkpoint_every:  # a checkpoint was written, and is gone
            raise RunError(
                f"{run.path} has metrics up to step {logged} but no checkpoint (checkpoints/ "
                "was emptied); nothing was changed. Put its checkpoints back to resume, or "
                f"train it anew from step 0: tvo train --out {run.path} --overwrite with its "
                "settings"
            )
        return state, Progress()
    inputs.check(run, saved, run.config, s.dataset, s.model)  # what it was trained with
    progress = Progress(**{k: saved[k] for k in Progress.__dataclass_fields__})
    return load_state_dict(state, saved, s.schedule), progress


def checkpoint(state: TrainState, progress: Progress, s: Setup) -> dict:
    return {**state_dict(state, s.schedule), **progress.__dict__}


def train(run: Run, quiet: bool = False, stop_after: int | None = None, prepared=None) -> dict:
    """Train (or resume) the run in ``run`` to its configured number of steps, holding the run
    folder for writing (:meth:`~tvo.runs.Run.writer`: a second process is refused).

    ``stop_after`` ends after that step as an interruption would, checkpoint included;
    ``prepared`` is a :class:`~tvo.build.Setup` to use instead of building one from the config.
    Returns the summary, with ``signal``: the number of the signal (SIGINT, SIGTERM) that
    stopped it early, else ``None``; ``summary.json`` is written when the last step is done.
    ``MAX_NONFINITE`` steps in a row that are not finite stop it with :class:`NonFiniteError`.
    """
    with run.writer():
        return _train(run, quiet, stop_after, prepared)


def last_checkpoint_text(run: Run) -> str:
    found = run.checkpoints()
    return f"the last checkpoint is {found[-1]}" if found else "no checkpoint was written yet"


def _train(run: Run, quiet: bool, stop_after: int | None, prepared) -> dict:
    config = run.config
    s = prepared or build_run(run)
    steps = total_steps(config, s.dataset)
    state, progress = start(run, s)
    if state.step > steps:
        raise RunError(
            f"{run.path} has done {state.step} steps, more than the {steps} asked for; give a "
            "larger --steps or --epochs (the run is left as it was)"
        )
    run.save_extension()  # a new length, now known to cover the steps done
    if run.metrics_file.exists():
        run.truncate_metrics(state.step)  # rows written after the checkpoint are redone

    from torch.utils.tensorboard import SummaryWriter  # imported here: slow to import

    writer = SummaryWriter(str(run.path / "events"), purge_step=state.step + 1)
    step_fn = Step(s.objective, config.particles, s.schedule, config.compile)
    rows: list[dict] = []
    in_a_row = 0  # steps that were not finite, since the last one that was
    clock = time.perf_counter() - progress.seconds
    bar = tqdm(total=steps, initial=state.step, disable=quiet, desc=run.label(),
               mininterval=0.5, dynamic_ncols=True)  # fmt: skip
    with StopRequest() as stop:
        try:
            while state.step < steps:
                x = s.dataset.sample_batch(config.batch_size, state.generators.data)
                state, info = step_fn(state, x)
                step = state.step
                in_a_row = 0 if info.finite else in_a_row + 1
                if info.finite:
                    progress.total += info.estimate.mean().item()
                    progress.count += 1
                elif config.nonfinite == "stop":
                    raise NonFiniteError(
                        f"step {step}: the loss or a gradient is not finite; the step was not "
                        f"applied and training stopped ({last_checkpoint_text(run)})"
                    )
                elif in_a_row >= MAX_NONFINITE:
                    raise NonFiniteError(
                        f"steps {step - in_a_row + 1} to {step}: {in_a_row} steps in a row were "
                        "not finite (none was applied), so training stopped: the model cannot "
                        f"recover on its own (a learning rate of {config.lr:g} may be too large; "
                        f"{last_checkpoint_text(run)})"
                    )
                bar.update()
                if row_due(config, step, steps):
                    rows.append(log_row(config, s, state, progress, steps, clock, writer))
                    report(bar, rows[-1], progress, steps, config.eval_split, quiet)
                interrupted = stop.signal is not None or step == stop_after
                if checkpoint_due(config, step, steps) or interrupted:
                    run.append_metrics(rows)
                    rows = []
                    progress.seconds = time.perf_counter() - clock
                    run.save_checkpoint({**checkpoint(state, progress, s),
                                         **inputs.record(config, s.dataset)})  # fmt: skip
                if interrupted:
                    break
        finally:
            bar.close()
            writer.close()
            if rows:
                run.append_metrics(rows)  # rows since the last checkpoint: dropped on resume
    if stop.signal is not None:
        print(f"stopped at step {state.step} of {steps}; checkpoint saved. Continue with: "
              f"tvo train --resume {run.path}", flush=True)  # fmt: skip
    summary = summary_of(state, progress, steps, clock)
    if state.step == steps:
        run.write_summary(summary)
    return {**summary, "signal": stop.signal}


def row_due(config: TrainConfig, step: int, steps: int) -> bool:
    """Whether ``step`` (of ``steps``) writes a metrics row: every ``log_every`` and
    ``eval_every`` steps, and the last."""
    return step % config.log_every == 0 or step % config.eval_every == 0 or step == steps


def checkpoint_due(config: TrainConfig, step: int, steps: int) -> bool:
    """Whether ``step`` (of ``steps``) saves a checkpoint: every ``checkpoint_every`` steps,
    and the last."""
    return step % config.checkpoint_every == 0 or step == steps


def summary_of(state: TrainState, progress: Progress, steps: int, clock: float) -> dict:
    """The run's ``summary.json``: steps done of ``steps``, seconds since ``clock``, skipped
    steps and the last evaluation."""
    return {"steps": state.step, "total_steps": steps,
            "seconds": round(time.perf_counter() - clock, 1), "skipped": state.skipped,
            **(progress.last_eval or {})}  # fmt: skip


def evaluate_during_training(config: TrainConfig, s: Setup) -> dict:
    """Mean ``log p̂(x)``, ``KL̂`` and ``ELBÔ`` on the run's evaluation images (seeded by the
    run's seed, so every evaluation sees the same images)."""
    result = evaluate_model(s.model, s.dataset, config.eval_split, config.eval_particles,
                            config.eval_images, seed=config.seed)  # fmt: skip
    return {key: result[key] for key in ("split", "log_px", "kl", "elbo")}


def log_row(config, s: Setup, state: TrainState, progress: Progress, steps, clock, writer) -> dict:
    """One metrics row; evaluates the model at evaluation steps."""
    step = state.step
    mean = progress.total / progress.count if progress.count else None
    row = {"step": step, "seconds": time.perf_counter() - clock, "train_objective": mean,
           "skipped": state.skipped, "partition": partition_text(state)}  # fmt: skip
    progress.total, progress.count = 0.0, 0
    if step % config.eval_every == 0 or step == steps:
        progress.last_eval = evaluate_during_training(config, s)
        row.update(progress.last_eval)
    log_scalars(writer, row)
    return row


def partition_text(state: TrainState) -> str | None:
    """The partition in use, as the metrics store it: points separated by spaces."""
    beta = state.partition
    return None if beta is None else " ".join(f"{b:.6g}" for b in beta.tolist())


def report(bar, row: dict, progress: Progress, steps: int, split: str, quiet: bool) -> None:
    """The progress bar's latest values; with ``quiet``, one printed line per evaluation."""
    objective, log_px = _fmt(row["train_objective"]), _fmt((progress.last_eval or {}).get("log_px"))
    bar.set_postfix(objective=objective, log_px=log_px)
    if quiet and "log_px" in row:
        print(f"step {row['step']}/{steps}: objective {objective}, {split} log p(x) {log_px}",
              flush=True)  # fmt: skip


def log_scalars(writer, row: dict) -> None:
    for key in ("train_objective", "log_px", "kl", "elbo"):
        if row.get(key) is not None:
            writer.add_scalar(key, row[key], row["step"])
    writer.add_scalar("skipped", row["skipped"], row["step"])


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"
