"""Evaluating a trained model on a split of its dataset: during training, by ``tvo eval``, by
plots and by sweeps, all through ``evaluate_model``; by annealed importance sampling
(``evaluate_model_ais``), BDMC on simulated data (``evaluate_model_bdmc``) and tempered
SMC (``evaluate_model_smc``) for ``tvo eval --method ais|bdmc|smc`` (``evaluate_run_ais``).

Each evaluation is seeded by its own ``seed``: the binarisation of dynamically binarised images
and the particles are drawn inside ``torch.random.fork_rng``, so evaluating never moves the
random generators that training draws from (how often a run is evaluated, and with how many
particles, does not change what it learns).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import torch
from torch import Tensor
from tqdm import tqdm

from tvo.build import load_trained
from tvo.config import ConfigError
from tvo.data import Dataset
from tvo.evaluate.ais import ais, bdmc
from tvo.evaluate.estimate import EVALUATION_BYTES, estimate, evaluation_rows
from tvo.evaluate.kernels import HMC, kernel_for
from tvo.evaluate.paths import check_qpath
from tvo.evaluate.smc import smc
from tvo.runs import Run
from tvo.runtime import check_memory


class EvaluationError(RuntimeError):
    """A trained model whose evaluation is not a number: the message says why."""


def model_device(model) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    return next(iter(model.parameters()), torch.empty(0)).device


@contextmanager
def seeded(seed: int, device: torch.device):
    """Draws seeded by ``seed`` inside ``torch.random.fork_rng``: the generators training
    draws from are where they were afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


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
    ``[0, 1]``) over the first ``limit`` images of ``split`` (``Dataset.evaluation_images``,
    binarised with ``seed`` where the dataset is dynamic), ``particles`` per image,
    ``images_per_pass`` images at a time (memory ``chunk_size × images_per_pass`` particles).
    Returns a JSON-ready dict with the split, the number of images and the seconds it took.
    ``progress``: a progress bar over the passes, on a terminal.

    Args:
        model (GenerativeModel): the model.
        dataset: its data.
        split: ``train``, ``valid`` or ``test``.
        particles: importance samples per data point.
        limit: how many data points of the split, from the first (``None``: all).
        partition: the points ``β`` of the TVO bounds (``None``: ``[0, 1]``).
        chunk_size: particles drawn at a time (``None``: ``default_chunk_size``).
        seed: the seed of the particles and the binarisation.
        images_per_pass: data points per pass.
        progress: show a progress bar over the passes.
    """
    start = time.perf_counter()
    device = model_device(model)
    count = len(dataset.split(split)[:limit])
    rows = evaluation_rows(particles, count, device, chunk_size, images_per_pass)
    what = f"evaluating {rows} particles at a time ({min(images_per_pass, count)} images per pass)"
    check_memory(EVALUATION_BYTES * rows * dataset.pixels, what, device)
    dataset.check_evaluable(split)
    with seeded(seed, device):
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
    """``evaluate_model`` of the run's last checkpoint, at the partition that checkpoint
    trained with (``[0, 1]`` for objectives without one), which the result names.

    Args:
        run: the run.
        split: ``train``, ``valid`` or ``test``.
        particles: importance samples per data point.
        limit: how many data points of the split, from the first (``None``: all).
        chunk_size: particles drawn at a time (``None``: ``default_chunk_size``).
        seed: the seed of the particles and the binarisation.
        images_per_pass: data points per pass.
        progress: show a progress bar over the passes.
    """
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
    keys = ("log_px", "kl", "elbo", "tvo_lower", "tvo_upper")
    nan = [k for k in keys if not math.isfinite(report[k])]
    if nan:
        values = ", ".join(f"{k} = {report[k]}" for k in nan)
        raise EvaluationError(
            f"{run.path}: the evaluation at step {trained.step} is not finite ({values}): the "
            "model gives log-weights of −∞ or NaN to these images; see the skipped column of "
            f"{run.metrics_file} for steps that were not finite"
        )
    return {**report, "step": trained.step, "limit": evaluated_limit(trained, split, report),
            "partition": None if beta is None else beta.tolist()}  # fmt: skip


def evaluated_limit(trained, split: str, report: dict) -> int | None:
    """The ``limit`` an evaluation records: the number of images it evaluated when fewer than
    the split holds, else ``None`` (``--limit 100000`` of 100 images is all of them)."""
    evaluated = report["num_images"]
    return evaluated if evaluated < len(trained.dataset.split(split)) else None


# --- annealed importance sampling and BDMC (tvo eval --method ais / bdmc) ---------------------


def ais_schedule(schedule: str, partition: Tensor | None):
    """An AIS schedule by name, where ``run`` means the run's own partition (its moments
    partition for an adaptive TVO run) stretched to the steps; ``ConfigError`` for a run without
    one."""
    if schedule != "run":
        return schedule
    if partition is None:
        raise ConfigError(
            "schedule 'run' needs a run trained with a partition (objective tvo or tvo-reparam)"
        )
    return partition


def evaluate_model_ais(
    model,
    dataset: Dataset,
    split: str,
    num_steps: int,
    num_chains: int,
    limit: int | None = None,
    schedule="sigmoid",
    kernel=None,
    seed: int = 0,
    images_per_pass: int = 100,
    callback=None,
    qpath: float = 1.0,
) -> dict:
    """Mean AIS ``log p̂(x)`` (``tvo.evaluate.ais.ais``, along the q-path ``qpath``; 1: the
    geometric path) over the first ``limit`` images of
    ``split``, drawn and binarised as ``evaluate_model`` does, ``images_per_pass`` at a time.
    ``stderr`` is the Monte Carlo standard error of that mean with the images held fixed,
    ``√(Σ_b se_b²) / B`` (``None`` for one chain); ``acceptance`` the mean acceptance rate;
    ``evaluations`` the ``log_joint`` evaluations per image. The keys of ``evaluate_model``
    that AIS does not estimate (``kl``, ``elbo``, the TVO bounds) are ``None``."""
    start = time.perf_counter()
    device = model_device(model)
    dataset.check_evaluable(split)
    with seeded(seed, device):
        images = dataset.evaluation_images(split, limit)
        parts = []
        for i in range(0, len(images), images_per_pass):
            x = images[i : i + images_per_pass]
            parts.append(ais(model, x, num_steps, num_chains, schedule, kernel, qpath=qpath,
                             callback=callback))  # fmt: skip
    log_px = torch.cat([p.log_px for p in parts])
    return {"log_px": log_px.mean().item(), "kl": None, "elbo": None, "tvo_lower": None,
            "tvo_upper": None, **_ais_summary(parts, "stderr"), "split": split,
            "num_images": len(images), "particles": None, "method": "ais", "steps": num_steps,
            "chains": num_chains, "qpath": qpath,
            "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip


def _ais_summary(parts, key: str) -> dict:
    """``key``: the standard error of the mean of ``log_px`` over all parts' data points, the
    mean acceptance rate and the evaluations per data point."""
    stderr = torch.cat([p.stderr for p in parts])
    acceptance = torch.cat([p.acceptance.mean(0) for p in parts if p.acceptance.numel()] or
                           [torch.zeros(0)])  # fmt: skip
    se = (stderr.pow(2).sum().sqrt() / len(stderr)).item()
    return {key: se if math.isfinite(se) else None,
            "acceptance": acceptance.mean().item() if acceptance.numel() else None,
            "evaluations": parts[0].evaluations, "gradients": parts[0].gradients}  # fmt: skip


def evaluate_model_bdmc(
    model,
    num_data: int,
    num_steps: int,
    num_chains: int,
    schedule="sigmoid",
    kernel=None,
    seed: int = 0,
    images_per_pass: int = 100,
    callback=None,
    qpath: float = 1.0,
) -> dict:
    """BDMC (``tvo.evaluate.ais.bdmc``, along the q-path ``qpath``) on ``num_data`` points
    simulated from the model (seeded by ``seed``), ``images_per_pass`` at a time: ``log_px`` is
    the mean lower bound (forward AIS), ``upper`` the mean upper bound, each with its standard
    error over chains as in ``evaluate_model_ais``; ``gap`` their difference,
    ``gap_stderr`` the standard error of the mean gap over the points,
    ``sd(upper_b − lower_b) / √N``. The chains' errors understate
    the gap's: every reverse chain of a point starts from its one simulated ``z``, so they miss
    the spread between starts; the spread over points holds it (``None`` for one point)."""
    start = time.perf_counter()
    device = model_device(model)
    with seeded(seed, device):
        parts = []
        for i in range(0, num_data, images_per_pass):
            n = min(images_per_pass, num_data - i)
            parts.append(bdmc(model, n, num_steps, num_chains, schedule, kernel, qpath=qpath,
                              callback=callback))  # fmt: skip
    lower = torch.cat([p.lower for p in parts])
    upper = torch.cat([p.upper for p in parts])
    gaps = upper - lower
    forward = _ais_summary([p.forward for p in parts], "stderr")
    backward = _ais_summary([p.backward for p in parts], "upper_stderr")
    return {"log_px": lower.mean().item(), "kl": None, "elbo": None, "tvo_lower": None,
            "tvo_upper": None, **forward, "upper": upper.mean().item(),
            "upper_stderr": backward["upper_stderr"], "gap": gaps.mean().item(),
            "gap_stderr": (gaps.std() / len(gaps) ** 0.5).item() if len(gaps) > 1 else None,
            "split": "simulated", "num_images": num_data, "particles": None, "method": "bdmc",
            "steps": num_steps, "chains": num_chains, "qpath": qpath,
            "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip


def evaluate_model_smc(
    model,
    dataset: Dataset,
    split: str,
    particles: int,
    limit: int | None = None,
    kernel=None,
    seed: int = 0,
    images_per_pass: int = 100,
    callback=None,
    qpath: float = 1.0,
    target_cess: float = 0.9,
    moves: int = 1,
) -> dict:
    """Mean tempered-SMC ``log p̂(x)`` (``tvo.evaluate.smc.smc``, ``particles`` per image,
    the next temperature where the conditional ESS is ``target_cess``, ``moves`` kernel steps
    at each) over the first ``limit``
    images of ``split``, drawn as ``evaluate_model`` does. ``temperatures``: the mean number
    of temperatures it chose per image; ``acceptance`` the mean acceptance rate of its moves;
    ``evaluations`` the ``log_joint`` evaluations per image of the slowest pass. ``stderr`` is
    ``None``: one SMC run gives no standard error of its own."""
    start = time.perf_counter()
    device = model_device(model)
    with seeded(seed, device):
        images = dataset.evaluation_images(split, limit)
        parts = [smc(model, images[i : i + images_per_pass], particles, kernel, target_cess, qpath,
                     moves=moves, callback=callback)
                 for i in range(0, len(images), images_per_pass)]  # fmt: skip
    log_px = torch.cat([p.log_px for p in parts])
    temperatures = torch.cat([p.num_temperatures.double() for p in parts])
    rates = torch.cat([p.acceptance.flatten() for p in parts])
    rates = rates[~torch.isnan(rates)]
    return {"log_px": log_px.mean().item(), "kl": None, "elbo": None, "tvo_lower": None,
            "tvo_upper": None, "stderr": None,
            "acceptance": rates.mean().item() if rates.numel() else None,
            "evaluations": max(p.evaluations for p in parts),
            "gradients": max(p.gradients for p in parts), "split": split,
            "num_images": len(images), "particles": particles, "method": "smc", "steps": None,
            "chains": None, "qpath": qpath, "target_cess": target_cess,
            "temperatures": temperatures.mean().item(),
            "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip


def bdmc_lines(report: dict) -> list[str]:
    """What ``tvo eval --method bdmc`` prints of ``evaluate_model_bdmc``'s ``report``: the
    two bounds, each ± its standard error over chains, and their gap ± its standard error over
    the points. Both bounds are stochastic (they hold in expectation), so a lower bound above
    the upper one is said so, and weighed against the gap's standard error."""

    def with_se(value, se) -> str:
        return f"{value:10.3f}" + ("" if se is None else f" ± {se:.3f}")

    gap, se, n = report["gap"], report["gap_stderr"], report["num_images"]
    lines = [
        f"  {'lower':>10}  {with_se(report['log_px'], report['stderr'])}  (forward AIS: a "
        "stochastic lower bound, below log p(x) in expectation)",
        f"  {'upper':>10}  {with_se(report['upper'], report['upper_stderr'])}  (reverse AIS "
        "from the exact posterior sample: a stochastic upper bound, above it in expectation)",
        f"  {'gap':>10}  {with_se(gap, se)}  (upper − lower, ± its standard error over the {n} "
        "points)",
    ]
    if gap < 0:
        if se is None:
            weight = "one point gives no standard error to weigh it against: simulate more"
        elif gap > -2 * se:
            weight = (f"it is {-gap / se:.1f} standard errors below 0, within noise: AIS is "
                      "about as tight as these chains can tell")  # fmt: skip
        else:
            weight = (f"it is {-gap / se:.1f} standard errors below 0, more than noise explains: "
                      "the upper bound needs exact samples, so check the model's sample() "
                      "against its log_joint")  # fmt: skip
        lines.append(f"  lower is above upper: both bounds are stochastic; {weight}")
    return lines


def evaluate_run_ais(
    run: Run,
    method: str = "ais",
    split: str = "test",
    num_steps: int = 100,
    num_chains: int = 10,
    limit: int | None = None,
    schedule: str = "sigmoid",
    kernel="auto",
    seed: int = 0,
    images_per_pass: int = 100,
    leapfrog_steps: int = 5,
    progress: bool = False,
    qpath: float = 1.0,
    particles: int = 100,
    target_cess: float = 0.9,
) -> dict:
    """``evaluate_model_ais`` (``method="ais"``, the first ``limit`` images of ``split``),
    ``evaluate_model_bdmc`` (``"bdmc"``, ``limit`` simulated points, 100 if ``None``) or
    ``evaluate_model_smc`` (``"smc"``, ``particles`` per image, ``target_cess``) of the
    run's last checkpoint, along the q-path ``qpath`` (1: geometric). ``schedule="run"`` anneals
    along the checkpoint's partition; ``kernel`` is a kernel or a name for
    ``tvo.evaluate.kernels.kernel_for``; ``progress`` shows a progress bar over the AIS
    steps (on stderr). ``ConfigError`` for a setting out of range, before any work."""
    if method not in ("ais", "bdmc", "smc"):
        raise ConfigError(f"unknown method {method!r}: expected ais, bdmc or smc")
    try:
        check_qpath(qpath)
    except ValueError as error:
        raise ConfigError(str(error).replace("qpath", "--qpath", 1)) from error
    if not 0 < target_cess < 1:
        raise ConfigError(f"--cess must lie in (0, 1), got {target_cess:g}")
    trained = load_trained(run)
    model = trained.model
    schedule = ais_schedule(schedule, trained.partition)
    if isinstance(kernel, str):
        try:
            kernel = kernel_for(model, kernel, leapfrog_steps, qpath)
        except ValueError as error:  # a kernel that does not fit the run's model: the input
            raise ConfigError(str(error)) from error
        if method == "smc" and isinstance(kernel, HMC):
            kernel = HMC(leapfrog_steps=leapfrog_steps, scale="chains-full")
    if method == "smc":
        return _evaluate_run_smc(run, trained, kernel, split, particles, limit, seed,
                                 images_per_pass, qpath, target_cess, progress)  # fmt: skip
    num_data = len(trained.dataset.split(split)[:limit]) if method == "ais" else limit or 100
    points = min(images_per_pass, num_data)  # of one pass: C chains each, [D] and a few copies
    device = model_device(model)
    check_memory(16.0 * num_chains * points * trained.dataset.pixels  # the chains' likelihoods
                 + 8.0 * num_steps * (points + 2),  # the schedule, each step's acceptance [N]
                 f"{method} with {num_chains} chains for {points} points and {num_steps} steps",
                 device)  # fmt: skip
    passes = -(-num_data // images_per_pass)
    total = passes * num_steps * (2 if method == "bdmc" else 1)
    with tqdm(total=total, desc=f"{method} T={num_steps} C={num_chains}", unit="step",
              disable=not progress, leave=False) as bar:  # fmt: skip
        settings = (schedule, kernel, seed, images_per_pass, lambda t: bar.update(), qpath)
        if method == "ais":
            report = evaluate_model_ais(
                model, trained.dataset, split, num_steps, num_chains, limit, *settings
            )
        else:
            report = evaluate_model_bdmc(model, num_data, num_steps, num_chains, *settings)
    beta = trained.partition
    limit = evaluated_limit(trained, split, report) if method == "ais" else num_data
    return {**report, "schedule": schedule if isinstance(schedule, str) else "run",
            "kernel": repr(kernel), "step": trained.step, "limit": limit,
            "partition": None if beta is None else beta.tolist()}  # fmt: skip


def _evaluate_run_smc(run, trained, kernel, split, particles, limit, seed, images_per_pass, qpath,
                      target_cess, progress) -> dict:  # fmt: skip
    """``tvo eval --method smc``: ``evaluate_model_smc`` of a loaded run, with a progress bar
    over the temperatures (their number is not known ahead)."""
    num_images = len(trained.dataset.split(split)[:limit])
    points = min(images_per_pass, num_images)
    check_memory(16.0 * particles * points * trained.dataset.pixels,
                 f"smc with {particles} particles for {points} points",
                 model_device(trained.model))  # fmt: skip
    with tqdm(desc=f"smc N={particles}", unit="temperature", disable=not progress,
              leave=False) as bar:  # fmt: skip
        report = evaluate_model_smc(trained.model, trained.dataset, split, particles, limit,
                                    kernel, seed, images_per_pass, lambda k: bar.update(), qpath,
                                    target_cess)  # fmt: skip
    beta = trained.partition
    return {**report, "schedule": "adaptive", "kernel": repr(kernel), "step": trained.step,
            "limit": evaluated_limit(trained, split, report),
            "partition": None if beta is None else beta.tolist()}  # fmt: skip
