"""Evaluating a trained model on a split of its dataset: during training, by ``tvo eval``, by
plots and by sweeps, all through :func:`evaluate_model`.

Each evaluation is seeded by its own ``seed``: the binarisation of dynamically binarised images
and the particles are drawn inside :func:`torch.random.fork_rng`, so evaluating never moves the
random generators that training draws from (how often a run is evaluated, and with how many
particles, does not change what it learns).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor
from tqdm import tqdm

from tvo.build import load_trained
from tvo.data import Dataset
from tvo.evaluate.estimate import default_chunk_size, estimate
from tvo.runs import Run
from tvo.runtime import check_memory


class EvaluationError(RuntimeError):
    """A trained model whose evaluation is not a number: the message says why."""


def evaluate_model(
    model,
    dataset: Dataset,
    split: str,
    particles: int,
    limit: int | None = None,
    partition: Tensor | None = None,
    chunk_size: int | None = None,
    seed: int = 0,
    images_per_pass: int = 100,
    progress: bool = False,
) -> dict:
    """Mean ``log p̂(x)``, ``KL̂``, ``ELBÔ`` and the TVO bounds at ``partition`` (default
    ``[0, 1]``) over the first ``limit`` images of ``split`` (:meth:`Dataset.evaluation_images`,
    binarised with ``seed`` where the dataset is dynamic), ``particles`` per image,
    ``images_per_pass`` images at a time (memory ``chunk_size × images_per_pass`` particles).
    Returns a JSON-ready dict with the split, the number of images and the seconds it took.
    ``progress``: a progress bar over the passes, on a terminal."""
    start = time.perf_counter()
    device = next(iter(model.parameters()), torch.empty(0)).device
    rows = (chunk_size or default_chunk_size(images_per_pass, device)) * images_per_pass
    what = f"evaluating {rows} particles at a time ({images_per_pass} images per pass)"
    check_memory(16.0 * rows * dataset.pixels, what, device)  # [rows, D] and a few copies
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        images = dataset.evaluation_images(split, limit)
        starts = range(0, len(images), images_per_pass)
        bar = tqdm(starts, desc=f"{split}, {particles} particles", unit="pass",
                   disable=None if progress else True, leave=False)  # fmt: skip
        parts = [
            estimate(model, images[i : i + images_per_pass], particles, partition, chunk_size)
            for i in bar
        ]
    values = {
        k: torch.cat([p[i] for p in parts]).mean().item() for i, k in enumerate(parts[0]._fields)
    }
    return {**values, "split": split, "num_images": len(images), "particles": particles,
            "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip


def evaluate_run(
    run: Run,
    split: str = "test",
    particles: int = 5000,
    limit: int | None = None,
    chunk_size: int | None = None,
    seed: int = 0,
    images_per_pass: int = 100,
    progress: bool = False,
) -> dict:
    """:func:`evaluate_model` of the run's last checkpoint, at the partition that checkpoint
    trained with (``[0, 1]`` for objectives without one), which the result names."""
    trained = load_trained(run)
    bad = [name for name, p in trained.model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise EvaluationError(
            f"{run.path}: the model at step {trained.step} has parameters that are not finite "
            f"({', '.join(bad[:3])}): its training diverged; see the skipped column of "
            f"{run.metrics_file}"
        )
    report = evaluate_model(trained.model, trained.dataset, split, particles, limit,
                            trained.partition, chunk_size, seed, images_per_pass,
                            progress)  # fmt: skip
    beta = trained.partition
    nan = [k for k in ("log_px", "kl", "elbo", "tvo_lower", "tvo_upper") if not _finite(report[k])]
    if nan:
        values = ", ".join(f"{k} = {report[k]}" for k in nan)
        raise EvaluationError(
            f"{run.path}: the evaluation at step {trained.step} is not finite ({values}): the "
            "model gives log-weights of −∞ or NaN to these images; see the skipped column of "
            f"{run.metrics_file} for steps that were not finite"
        )
    return {**report, "step": trained.step,
            "partition": None if beta is None else beta.tolist()}  # fmt: skip


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
