"""The training loop: one optimiser over all parameters, checkpoints, and exact resume.

Randomness comes from two generators, both saved in every checkpoint: torch's global generator
(the particles, inside the objective) and the run's own ``data`` generator (batch indices and
dynamic binarisation). A run resumed from a checkpoint therefore continues with exactly the draws
the uninterrupted run would have made: on the CPU it ends with the same parameters, bit for bit.

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

import torch
from tqdm import tqdm

from tvo.config import ConfigError, TrainConfig
from tvo.data import Dataset
from tvo.data import load as load_data
from tvo.evaluate import estimate
from tvo.models import create as create_model
from tvo.objectives import OBJECTIVES, TVO_OBJECTIVES
from tvo.partitions import partition as make_partition
from tvo.runs import Run, RunError


class NonFiniteError(RuntimeError):
    """Training stopped at a step whose loss or gradient was not finite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA device")
    return torch.device(name)


def build_objective(config: TrainConfig):
    if config.objective in TVO_OBJECTIVES:
        make = OBJECTIVES[config.objective]
        return make(
            config.partitions, config.schedule, config.beta1, config.integration, seed=config.seed
        )
    return OBJECTIVES[config.objective]()


def make_optimiser(parameters, lr: float) -> torch.optim.Optimizer:
    """Adam over every parameter (θ and φ together); the fused kernel where this torch has one
    for the device (a third of the unfused step's time on the CPU, benchmarks/RESULTS.md)."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, lr=lr)


def total_steps(config: TrainConfig, dataset: Dataset) -> int:
    if config.steps is not None:
        return config.steps
    return max(1, math.ceil(config.epochs * len(dataset.train) / config.batch_size))


@dataclass
class Setup:
    """Everything a run needs, built from its config."""

    dataset: Dataset
    model: torch.nn.Module
    objective: object
    optimiser: torch.optim.Optimizer
    device: torch.device


def training_loss(objective, model, particles: int, compile: bool = False):
    """``x ↦ (loss, estimate, log_weight)``: the step's objective call, or with ``compile`` the
    same traced by ``torch.compile`` for fixed shapes (one compilation, at the first step; the
    same particles and, up to rounding, the same numbers as without).

    On our CPU, compiling made the ``gaussian`` VAE's step faster and the SBN's slower
    (benchmarks/RESULTS.md), so it is an option, off by default.
    """

    def loss(x):
        output = objective(model, x, particles)
        return output.loss, output.estimate, output.diagnostics["log_weight"]

    if not compile:
        return loss
    # fallback_random: the compiled step draws its particles with torch's own generator, so a
    # seed gives the same particles with and without compile (and resumes exactly)
    return torch.compile(loss, dynamic=False, options={"fallback_random": True})


def setup(config: TrainConfig, device: torch.device | None = None) -> Setup:
    """Load the data and build the model, objective and optimiser. Raises ``DataError`` or
    ``ConfigError`` for settings that cannot work, before any training."""
    device = device or resolve_device(config.device)
    dataset = load_data(config.data, config.data_root)
    if config.batch_size > len(dataset.train):
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {len(dataset.train)} training "
            f"images of {config.data}"
        )
    torch.manual_seed(config.seed)
    model = create_model(config.model, pixels=dataset.pixels, data_mean=dataset.data_mean)
    model = model.to(device)
    optimiser = make_optimiser(model.parameters(), config.lr)
    return Setup(dataset.to(device), model, build_objective(config), optimiser, device)


def evaluate_during_training(config: TrainConfig, s: Setup) -> dict:
    images = s.dataset.split(config.eval_split)[: config.eval_images]
    if s.dataset.dynamic:
        images = torch.bernoulli(images)
    result = estimate(s.model, images, config.eval_particles)
    return {
        "split": config.eval_split,
        "log_px": result.log_px.mean().item(),
        "kl": result.kl.mean().item(),
        "elbo": result.elbo.mean().item(),
    }


@dataclass
class Progress:
    """What the loop carries between steps, all of it saved in checkpoints."""

    step: int = 0
    seconds: float = 0.0
    skipped: int = 0
    total: float = 0.0  # sum of the training estimate since the last log row
    count: int = 0
    last_eval: dict | None = None


def checkpoint_state(s: Setup, progress: Progress, data_rng: torch.Generator) -> dict:
    state = {
        **progress.__dict__,
        "model": s.model.state_dict(),
        "optimiser": s.optimiser.state_dict(),
        "partition": getattr(s.objective, "partition", None),
        "schedule": getattr(s.objective, "schedule_state", lambda: None)(),
        "torch_rng": torch.get_rng_state(),
        "data_rng": data_rng.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore(s: Setup, state: dict, data_rng: torch.Generator) -> Progress:
    s.model.load_state_dict(state["model"])
    s.optimiser.load_state_dict(state["optimiser"])
    if state.get("partition") is not None and hasattr(s.objective, "partition"):
        s.objective.partition = state["partition"].cpu()
    if state.get("schedule") is not None:
        s.objective.load_schedule_state(state["schedule"])
    torch.set_rng_state(state["torch_rng"].cpu())
    data_rng.set_state(state["data_rng"].cpu())
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda_rng"]])
    return Progress(**{k: state[k] for k in Progress.__dataclass_fields__})


def grads_finite(parameters) -> bool:
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return bool(torch.isfinite(torch.stack(norms)).all()) if norms else True


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


def train(run: Run, quiet: bool = False, stop_after: int | None = None, prepared=None) -> dict:
    """Train (or resume) the run in ``run`` to its configured number of steps.

    ``stop_after`` ends after that step as an interruption would, checkpoint included;
    ``prepared`` is a :class:`Setup` to use instead of building one from the config.
    Returns the summary; ``summary.json`` is written when the last step is done.
    """
    config = run.config
    s = prepared or setup(config)
    steps = total_steps(config, s.dataset)
    data_rng = torch.Generator(device=s.device).manual_seed(config.seed)
    state = run.load_checkpoint(map_location=s.device)
    progress = restore(s, state, data_rng) if state is not None else Progress()
    if run.metrics_file.exists():
        run.truncate_metrics(progress.step)  # rows written after the checkpoint are redone

    from torch.utils.tensorboard import SummaryWriter  # imported here: slow to import

    writer = SummaryWriter(str(run.path / "events"), purge_step=progress.step + 1)
    parameters = list(s.model.parameters())
    loss_fn = training_loss(s.objective, s.model, config.particles, config.compile)
    n_train = len(s.dataset.train)
    rows: list[dict] = []
    clock = time.perf_counter() - progress.seconds
    bar = tqdm(total=steps, initial=progress.step, disable=quiet, desc=run.label(),
               mininterval=0.5, dynamic_ncols=True)  # fmt: skip
    with StopRequest() as stop:
        try:
            while progress.step < steps:
                step = progress.step = progress.step + 1
                index = torch.randint(n_train, (config.batch_size,), generator=data_rng,
                                      device=s.device)  # fmt: skip
                x = s.dataset.batch("train", index, generator=data_rng)
                loss, batch_estimate, log_weight = loss_fn(x)
                s.optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if torch.isfinite(loss) and grads_finite(parameters):
                    s.optimiser.step()
                    progress.total += batch_estimate.detach().mean().item()
                    progress.count += 1
                    if getattr(s.objective, "adaptive", False):
                        s.objective.adapt(log_weight, update=step % config.adapt_every == 0)
                elif config.nonfinite == "stop":
                    raise NonFiniteError(
                        f"step {step}: the loss or a gradient is not finite; the step was not "
                        f"applied and training stopped (the last checkpoint is in {run.path})"
                    )
                else:
                    progress.skipped += 1
                bar.update()
                if step % config.log_every == 0 or step % config.eval_every == 0 or step == steps:
                    rows.append(log_row(config, s, progress, step, steps, clock, writer))
                    report(bar, rows[-1], progress, steps, config.eval_split, quiet)
                interrupted = stop.signal is not None or step == stop_after
                if step % config.checkpoint_every == 0 or step == steps or interrupted:
                    run.append_metrics(rows)
                    rows = []
                    progress.seconds = time.perf_counter() - clock
                    run.save_checkpoint(checkpoint_state(s, progress, data_rng))
                if interrupted:
                    break
        finally:
            bar.close()
            writer.close()
            if rows:
                run.append_metrics(rows)  # rows since the last checkpoint: dropped on resume
    if stop.signal is not None:
        print(f"stopped at step {progress.step} of {steps}; checkpoint saved. Continue with: "
              f"tvo train --resume {run.path}", flush=True)  # fmt: skip
    summary = {"steps": progress.step, "total_steps": steps,
               "seconds": round(time.perf_counter() - clock, 1), "skipped": progress.skipped,
               **(progress.last_eval or {})}  # fmt: skip
    if progress.step == steps:
        run.write_summary(summary)
    return summary


def log_row(config, s, progress: Progress, step, steps, clock, writer) -> dict:
    """One metrics row; evaluates the model at evaluation steps."""
    mean = progress.total / progress.count if progress.count else None
    row = {"step": step, "seconds": time.perf_counter() - clock, "train_objective": mean,
           "skipped": progress.skipped, "partition": partition_text(s.objective)}  # fmt: skip
    progress.total, progress.count = 0.0, 0
    if step % config.eval_every == 0 or step == steps:
        progress.last_eval = evaluate_during_training(config, s)
        row.update(progress.last_eval)
    log_scalars(writer, row)
    return row


def partition_text(objective) -> str | None:
    """The partition in use, as the metrics store it: points separated by spaces."""
    beta = getattr(objective, "partition", None)
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


def load_trained(run: Run) -> tuple[Setup, torch.Tensor, int]:
    """The run's :class:`Setup` with the model of its last checkpoint (in eval mode), the
    partition it trained with, and the checkpoint's step."""
    config = run.config
    prepared = setup(config)
    state = run.load_checkpoint(map_location=prepared.device)
    if state is None:
        raise RunError(f"{run.path} has no checkpoint yet: nothing to evaluate")
    prepared.model.load_state_dict(state["model"])
    prepared.model.eval()
    beta = state.get("partition")
    if beta is None:
        beta = make_partition(config.partitions, config.schedule, config.beta1)
    return prepared, beta, state["step"]


def evaluate_run(
    run: Run,
    split: str = "test",
    particles: int = 5000,
    limit: int | None = None,
    chunk_size: int | None = None,
    seed: int = 0,
    images_per_pass: int = 100,
) -> dict:
    """Mean ``log p̂(x)``, ``KL̂``, ``ELBÔ`` and the TVO bounds at the run's partition over the
    first ``limit`` images of ``split`` (dynamically binarised with ``seed`` where the dataset
    is), ``particles`` per image, ``images_per_pass`` images at a time (memory
    ``chunk_size × images_per_pass`` particles). Returns a JSON-ready dict."""
    prepared, beta, step = load_trained(run)
    images = prepared.dataset.split(split)[:limit]
    torch.manual_seed(seed)
    if prepared.dataset.dynamic:
        images = torch.bernoulli(images)
    start = time.perf_counter()
    parts = [
        estimate(prepared.model, images[i : i + images_per_pass], particles, beta, chunk_size)
        for i in range(0, len(images), images_per_pass)
    ]
    values = {
        k: torch.cat([p[i] for p in parts]).mean().item() for i, k in enumerate(parts[0]._fields)
    }
    return {**values, "num_images": len(images), "particles": particles, "split": split,
            "step": step, "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
