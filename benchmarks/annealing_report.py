"""The "Annealing paths and tempered SMC (issue #27)" section of docs/RESULTS.md, from the two
JSON files of ``benchmarks/ais_eval.py`` and a hand-kept file of notes on them.

    python benchmarks/ais_eval.py --paths ...      -> benchmarks/results/ais/paths.json
    python benchmarks/ais_eval.py --hmc-study ...  -> benchmarks/results/ais/hmc_study.json

``benchmarks/paper_report.py`` puts :func:`section` right after the AIS section. Every table
and number comes from the JSON; the interpretive paragraphs cannot be derived mechanically, so
they live in ``benchmarks/results/ais/notes.md`` (written by hand from those numbers) and are
included after the tables under a sentence that says so.

What the tables show, on the first ``images`` test images (``paths.json``): the mean over images
of ``log p̂(x)`` from IWAE-5000, from AIS with ``T`` steps and ``C`` chains along the path
``π̃_{β,q} = [(1 − β) q̃^{1−q} + β p̃_s^{1−q}]^{1/(1−q)}`` from ``q̃ = q(z | x)`` to the scaled
target ``p̃_s = p(x, z) e^{−s}`` (``q = 1``: the geometric path ``q̃^{1−β} p̃^β``; ``s`` an
importance-sampling estimate of ``log p(x)`` from ``C`` extra draws, so a q-path's evaluations
are ``C`` more), and from tempered SMC with ``N`` particles; ± is the Monte Carlo standard
error over chains of that mean. BDMC on data simulated from the model brackets ``log p(x)``
between forward AIS (a stochastic lower bound) and reverse AIS started from the exact posterior
sample (an upper bound); the gap is their difference, ± its standard error over the points.
``hmc_study.json`` holds, per kernel and seed, ``max_b |log p̂(x_b) − log p(x_b)|`` over the
study's points (the exact ``log p`` from the closed form or by enumeration) and the mean over
the points of the standard error over chains. The derivation of the paths: docs/maths.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

PATHS_FILE = Path("benchmarks/results/ais/paths.json")
STUDY_FILE = Path("benchmarks/results/ais/hmc_study.json")
NOTES_FILE = Path("benchmarks/results/ais/notes.md")

# ``ais_eval.hmc_study`` draws 8 points per model; files written before its rows recorded
# ``points`` do not say so.
STUDY_POINTS = 8
WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
FAMILIES = {"sbn": "the SBN", "vae": "the VAE"}
# how the study's models are introduced: (before the name, after it)
STUDY_MODELS = {"LinearGaussian": ("", " with its untrained guide"),
                "DiscreteToy": ("the enumerable ", "")}  # fmt: skip


def _load(file: Path | None) -> dict | None:
    return json.loads(file.read_text()) if file is not None and file.is_file() else None


def _plural(n, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _estimate(value: float, stderr: float | None) -> str:
    return f"{value:.2f}" + ("" if stderr is None else f" ± {stderr:.2f}")


def _run(path: str) -> str:
    """A run's folder as the docstring's commands name it (``runs/NAME``): a relative path as
    written, an absolute one (a machine's own folder) by its last two parts."""
    p = Path(path)
    return "/".join(p.parts[-2:]) if p.is_absolute() else p.as_posix()


def _kernel(kernel: str, family: str) -> str:
    """A kernel's ``repr`` (``FlipMH(block=1)``, ``HMC(..., leapfrog_steps=5, ..., moves=2,
    ...)``) in words."""
    who = FAMILIES.get(family, family)
    if kernel.startswith("FlipMH("):
        block = int(re.search(r"block=(\d+)", kernel).group(1))
        flips = "single-site flips" if block == 1 else f"flips of blocks of {block} units"
        return f"{flips} for {who}, so that every path can use them"
    if kernel.startswith("HMC("):
        leapfrog = int(re.search(r"leapfrog_steps=(\d+)", kernel).group(1))
        moves = int(re.search(r"\bmoves=(\d+)", kernel).group(1))
        return f"HMC with {WORDS.get(moves, moves)} moves of {leapfrog} leapfrog steps for {who}"
    return f"`{kernel}` for {who}"


def _load_words(a: dict) -> str:
    return (f"{_plural(a['threads'], 'torch thread')} on {a['cores']} shared cores (load "
            f"average {a['load_before'][0]:g} before, {a['load_after'][0]:g} after; times are "
            f"noisy), {a['seconds'] / 60:.1f} minutes in all")  # fmt: skip


def paths_lines(file: Path, a: dict) -> list[str]:
    """IWAE, AIS per q-path and SMC per model, and BDMC per path, from ``--paths``'s JSON."""
    kernels = []
    for family, m in a["models"].items():
        ais = [r for r in m["rows"] if r["method"] == "ais"]
        if ais:
            kernels.append(_kernel(ais[0]["kernel"], family))
    lines = [f"From `{file.as_posix()}` (`python benchmarks/ais_eval.py --paths`), written "
             f"{a['date']}: the same two runs retrained at the same settings, the first "
             f"{a['images']} {a['split']} images, {_load_words(a)}. AIS uses the sigmoid "
             f"schedule and the default kernels ({'; '.join(kernels)}); a q-path's "
             "`evaluations` include the `C` draws that set its target's scale. SMC chooses its "
             "temperatures (conditional ESS 0.9) and its evaluations are those of the slowest "
             "of the images; it gives no standard error of its own. ± is the Monte Carlo "
             "standard error over chains of the mean over images.", ""]  # fmt: skip
    for m in a["models"].values():
        lines += [f"{m['model']} (`{_run(m['run'])}`, {m['train_steps']} steps):", "",
                  "| method | q | T or N | C | evaluations | seconds | log p̂(x) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in m["rows"]:
            estimate = _estimate(r["log_px"], r["stderr"])
            if r["method"] == "iwae":
                cells = ["iwae", "–", "–", r["evaluations"]]
            elif r["method"] == "smc":
                method = (f"smc ({r['temperatures']:.1f} temperatures, "
                          f"{_plural(r['moves'], 'move')} each)")  # fmt: skip
                cells = [method, f"{r['qpath']:g}", f"N = {r['particles']}", "–"]
            else:
                cells = [r["method"], f"{r['qpath']:g}", r["steps"], r["chains"]]
            cells += [r["evaluations"], f"{r['seconds']:.1f}", estimate]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        lines.append("")
        if m.get("bdmc"):
            points = m["bdmc"][0].get("num_data", a["bdmc_data"])
            lines += [f"BDMC on {points} points simulated from the model:", "",
                      "| q | T | C | lower | upper | gap | seconds |",
                      "|---|---|---|---|---|---|---|"]  # fmt: skip
            for r in m["bdmc"]:
                gap = _estimate(r["gap"], r["gap_stderr"])
                lines.append(f"| {r['qpath']:g} | {r['steps']} | {r['chains']} | "
                             f"{r['log_px']:.2f} | {r['upper']:.2f} | {gap} | "
                             f"{r['seconds']:.1f} |")  # fmt: skip
            lines.append("")
    return lines


WITHIN = 0.1  # nats: issue #27's "within 0.1 nats of the closed form on every one of 8 points"


def study_lines(file: Path, a: dict) -> list[str]:
    """Each kernel's largest error and mean standard error per seed, from ``--hmc-study``'s
    JSON: one row per (model, kernel), seeds in the order they were run."""
    rows = a["models"]["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    seeds = {m: list(dict.fromkeys(r["seed"] for r in rows if r["model"] == m)) for m in models}
    same_seeds = all(s == seeds[models[0]] for s in seeds.values())
    points = {r.get("points", STUDY_POINTS) for r in rows}
    described = []
    for i, model in enumerate(models):
        first = next(r for r in rows if r["model"] == model)
        before, after = STUDY_MODELS.get(model.split("(")[0], ("", ""))
        words = (f"{before}`{model}`{after}, {first.get('points', STUDY_POINTS)} points, "
                 f"{first['chains']} chains, T = {first['steps']}")  # fmt: skip
        if not same_seeds or i == 0:
            words += f", seeds {seeds[model]}"
        described.append(words)
    over = f"the {points.pop()} points" if len(points) == 1 else "the points"
    lines = ["The kernels against exact transitions (`" + file.as_posix() + "`, `python "
             "benchmarks/ais_eval.py --hmc-study`): AIS on " + "; and on ".join(described)
             + f". \"max error\" is the largest `|log p̂ − log p|` over {over}, the mean SE the "
             f"mean standard error over chains. Written {a['date']}, {_load_words(a)}.", "",
             "| model | kernel | evaluations | max error (each seed) | mean SE (each seed) | "
             f"seeds with every point within {WITHIN} | mean of the mean SEs |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for model, kernel in dict.fromkeys((r["model"], r["kernel"]) for r in rows):
        group = [r for r in rows if r["model"] == model and r["kernel"] == kernel]
        evaluations = ", ".join(map(str, dict.fromkeys(r["evaluations"] for r in group)))
        errors = ", ".join(f"{r['max_abs_error']:.3f}" for r in group)
        stderrs = ", ".join(f"{r['mean_stderr']:.3f}" for r in group)
        within = sum(r["max_abs_error"] <= WITHIN for r in group)
        mean = sum(r["mean_stderr"] for r in group) / len(group)
        lines.append(f"| {model} | {kernel} | {evaluations} | {errors} | {stderrs} | "
                     f"{within} of {len(group)} | {mean:.4f} |")  # fmt: skip
    lines.append("")
    return lines


def section(paths_file: Path | None, study_file: Path | None, notes_file: Path | None
            ) -> list[str]:  # fmt: skip
    """Markdown lines of the section: the tables of each JSON file that exists, then the notes
    (when there is a table for them to be about); an empty list when neither file exists."""
    paths, study = _load(paths_file), _load(study_file)
    if paths is None and study is None:
        return []
    lines = ["### Annealing paths and tempered SMC (issue #27)", ""]
    if paths is not None:
        lines += paths_lines(paths_file, paths)
    if study is not None:
        lines += study_lines(study_file, study)
    if notes_file is not None and notes_file.is_file():
        notes = notes_file.read_text().strip()
        lines += [f"The notes below were written by hand from these numbers "
                  f"(`{notes_file.as_posix()}`); re-read them, and correct them, whenever the "
                  "JSON files are regenerated.", "", *notes.splitlines(), ""]  # fmt: skip
    return lines[:-1] if lines[-1] == "" else lines
