"""Figures of runs: learning curves, samples and reconstructions, and the TVO integrand.

Each function writes one PNG and returns its path. They use matplotlib's object interface
(``Figure``), which renders without a display and keeps no global figure state.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from tvo.evaluate import estimate_integrand
from tvo.files import write_atomic
from tvo.partitions import riemann_sum


def _save(fig, path: Path, layout: bool = True) -> Path:
    """Write the figure as a PNG, atomically (a full disk leaves no empty file)."""
    if layout:
        fig.tight_layout()
    write_atomic(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    return path


def distinct_labels(labels: list[str], names: list[str]) -> list[str]:
    """``labels`` made distinct: where two runs share one, each gets its ``names`` entry (the
    run folder's name) added."""
    return [f"{label} ({name})" if labels.count(label) > 1 else label
            for label, name in zip(labels, names)]  # fmt: skip


def learning_curves(runs: list[tuple[str, list[dict]]], path: Path) -> Path:
    """The training objective (the running mean of the estimate between metrics rows), and the
    evaluations' log p̂(x) and KL̂(q‖p), against step: one line per ``(label, metrics rows)``,
    the legend beside the panels."""
    fig = Figure(figsize=(13, 4))
    panels = fig.subplots(1, 3)
    keys = ("train_objective", "log_px", "kl")
    for label, rows in runs:
        for ax, key in zip(panels, keys):
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", markersize=3,
                    label=label)  # fmt: skip
    split = next((r["split"] for _, rows in runs for r in rows if r.get("split")), "eval")
    titles = ("training objective", f"{split} log p̂(x)", f"{split} KL̂(q ‖ p)")
    for ax, title in zip(panels, titles):
        ax.set(xlabel="step", ylabel="nats", title=title)
    handles, labels = panels[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 3), 1, 1))
    return _save(fig, path, layout=False)


def _tiles(images: torch.Tensor, rows: int, side: int, gap: int = 1) -> torch.Tensor:
    """``images`` ``[N, side²]`` as a grid of ``rows`` rows, ``gap`` pixels of grey between."""
    columns = images.shape[0] // rows
    grid = torch.full((rows * (side + gap) - gap, columns * (side + gap) - gap), 0.5)
    for i, image in enumerate(images[: rows * columns].cpu()):
        r, c = divmod(i, columns)
        top, left = r * (side + gap), c * (side + gap)
        grid[top : top + side, left : left + side] = image.reshape(side, side)
    return grid


@torch.no_grad()
def samples_and_reconstructions(model, data: torch.Tensor, path: Path, count: int = 32,
                                title: str = "") -> Path:  # fmt: skip
    """Model samples ``x ~ p(x)``; test images beside their reconstructions ``E[x | z]``,
    ``z ~ q(z | x)`` (when the model has ``decode``). ``title``: the run and step, say."""
    side = round(data.shape[1] ** 0.5)
    square = side * side == data.shape[1]
    panels = [("samples x ~ p(x)", model.sample(count)[1])]
    if hasattr(model, "decode"):
        x = data[: count // 2]
        z, _ = model.sample_guide(x, 1)
        z = tuple(v[0] for v in z) if isinstance(z, tuple) else z[0]
        pairs = torch.stack([x, model.decode(z)], 1).reshape(-1, data.shape[1])
        panels.append(("test images and their reconstructions", pairs))
    fig = Figure(figsize=(5 * len(panels), 3))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (heading, images) in zip(axes[0], panels):
        if square:
            ax.imshow(_tiles(images.float(), 4, side).numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(images.float().cpu().numpy(), cmap="gray", aspect="auto")
        ax.set_title(heading, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


@torch.no_grad()
def integrand(model, data: torch.Tensor, partition: torch.Tensor | None, path: Path,
              num_particles: int = 1000, title: str = "") -> Path:  # fmt: skip
    """``ĝ(β) = E_{π_β}[log w]`` against ``β`` (self-normalised, float64, averaged over
    ``data``) and, for a run that trained with a ``partition``, its left (lower bound) and right
    (upper bound) Riemann rectangles. ``title``: the run and step, say."""
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)
    beta = None if partition is None else partition.double().cpu()
    points = grid if beta is None else torch.unique(torch.cat([grid, beta]))
    values, _ = estimate_integrand(model, data, points.to(data.device), num_particles)
    values = values.mean(1).cpu()  # one pass over the particles for the curve and the points
    g = values[torch.searchsorted(points, grid)]
    low, high = g.min().item(), g.max().item()
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    floor = low - 0.15 * (high - low)  # the rectangles stand on the bottom of the axes
    if beta is not None:
        at_points = values[torch.searchsorted(points, beta)]
        widths = (beta[1:] - beta[:-1]).numpy()
        left, right = at_points[:-1].numpy(), at_points[1:].numpy()
        lower = riemann_sum(at_points, beta, "left").item()
        upper = riemann_sum(at_points, beta, "right").item()
        ax.bar(beta[:-1].numpy(), left - floor, bottom=floor, width=widths, align="edge",
               alpha=0.3, color="tab:blue", label=f"left sum TVO_L = {lower:.2f}")  # fmt: skip
        ax.bar(beta[:-1].numpy(), right - floor, bottom=floor, width=widths, align="edge",
               fill=False, edgecolor="tab:red", linestyle="--",
               label=f"right sum TVO_U = {upper:.2f}")  # fmt: skip
    ax.plot(grid.numpy(), g.numpy(), color="black", label="ĝ(β) = E_π_β[log w]")
    ax.set_ylim(floor, high + 0.05 * (high - low))
    heading = f"TVO integrand, {num_particles} particles, mean over {data.shape[0]} images"
    ax.set(xlabel="β", ylabel="nats", title=f"{title}\n{heading}" if title else heading)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def _mean_band(ax, runs: list[list[dict]], key: str, **style):
    """Draw the mean over ``runs`` (each a run's metrics rows) of ``key`` at the steps every run
    evaluated, with a band of ± one standard deviation; returns the line."""
    curves = [{r["step"]: r[key] for r in rows if r.get(key) is not None} for rows in runs]
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    values = torch.tensor([[c[s] for s in steps] for c in curves], dtype=torch.float64)
    mean = values.mean(0).numpy()
    spread = values.std(0).numpy() if len(runs) > 1 else 0 * mean
    (line,) = ax.plot(steps, mean, **style)
    ax.fill_between(steps, mean - spread, mean + spread, color=line.get_color(), alpha=0.2)
    return line


def _split(groups) -> str:
    every_row = (r for runs in groups for rows in runs for r in rows)
    return next((r["split"] for r in every_row if r.get("split")), "eval")


def mean_curves(groups: dict[str, list[list[dict]]], path: Path, title: str = "") -> Path:
    """Evaluation log p̂(x) and KL̂ against step: per label, the mean over its runs (seeds) with
    a band of ± one standard deviation. ``groups`` maps a label to each run's metrics rows."""
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    for label, runs in groups.items():
        for ax, key in zip(axes, ("log_px", "kl")):
            _mean_band(ax, runs, key, label=f"{label} ({len(runs)} seeds)")
    split = _split(groups.values())
    axes[0].set(xlabel="step", ylabel="nats", title=f"{title} {split} log p̂(x)".strip())
    axes[1].set(xlabel="step", ylabel="nats", title=f"{title} {split} KL̂(q ‖ p)".strip())
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def budget_curves(budgets: dict[str, dict[str, list[list[dict]]]], path: Path,
                  title: str = "") -> Path:  # fmt: skip
    """``mean_curves`` of the same settings trained for several budgets, on a log-step axis:
    ``budgets`` maps a budget's name (``laptop``) to its ``mean_curves`` groups (label → each
    seed's metrics rows). A setting keeps its colour across budgets; each budget has its own
    line style (the first solid) and marker."""
    fig = Figure(figsize=(12, 4.6))
    axes = fig.subplots(1, 2)
    colours: dict[str, str] = {}
    styles = iter([("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")])
    for budget, groups in budgets.items():
        linestyle, marker = next(styles)
        for label, runs in groups.items():
            for ax, key in zip(axes, ("log_px", "kl")):
                line = _mean_band(ax, runs, key, label=f"{label}, {budget} ({len(runs)} seeds)",
                                  color=colours.get(label), linestyle=linestyle, marker=marker,
                                  markersize=3)  # fmt: skip
                colours.setdefault(label, line.get_color())
    split = _split(g for groups in budgets.values() for g in groups.values())
    for ax, what in zip(axes, ("log p̂(x)", "KL̂(q ‖ p)")):
        ax.set_xscale("log")
        ax.set(xlabel="step (log scale)", ylabel="nats", title=f"{title} {split} {what}".strip())
    handles, labels = axes[0].get_legend_handles_labels()
    rows = -(-len(labels) // 3)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7)
    fig.tight_layout(rect=(0, 0.04 * rows + 0.02, 1, 1))
    return _save(fig, path, layout=False)


def bounds(values: dict[str, dict[int, float]], references: dict[str, float], path: Path,
           title: str = "") -> Path:  # fmt: skip
    """Bounds against the number of intervals ``K`` (log axis): one line per family in
    ``values`` (``{K: bound}``), one horizontal line per ``references`` entry (ELBO, IWAE…)."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, by_k in values.items():
        ks = sorted(by_k)
        ax.plot(ks, [by_k[k] for k in ks], marker="o", label=label)
    styles = iter(["--", ":", "-.", (0, (5, 1)), (0, (1, 3)), (0, (3, 1, 1, 1))])
    for label, value in references.items():
        ax.axhline(value, color="gray", linestyle=next(styles), label=f"{label} = {value:.2f}")
    _k_axis(ax, sorted({k for by_k in values.values() for k in by_k}))
    ax.set(xlabel="K (intervals)", ylabel="nats", title=title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _k_axis(ax, ks: list[int]) -> None:
    """A log axis of ``K`` labelled at the values of ``K`` that were measured, and only there."""
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_locator(NullLocator())


def cost_against_k(rows: list[dict], path: Path) -> Path:
    """Milliseconds per training step against ``K`` (log axis), one line per ``S``, from the
    speed benchmark's JSON rows (``objective == "tvo"``)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    tvo_rows = [r for r in rows if r.get("objective") == "tvo"]
    for s in sorted({r["S"] for r in tvo_rows}):
        line = sorted((r["K"], r["ms_per_step"]) for r in tvo_rows if r["S"] == s)
        ax.plot([k for k, _ in line], [ms for _, ms in line], marker="o", label=f"S = {s}")
    _k_axis(ax, sorted({r["K"] for r in tvo_rows}))
    ax.set_yscale("log")
    model = next((r["model"] for r in tvo_rows), "")
    ax.set(xlabel="K (intervals)", ylabel="ms per training step",
           title=f"TVO step cost against K ({model})")  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, path)


def snr_against_particles(records: list[dict], path: Path, title: str = "") -> Path:
    """The gradient's signal-to-noise ratio (``theta_snr``, ``phi_snr``: the mean over
    parameters, ``tvo.diagnostics``) against ``S`` (log axes), one line per estimator, θ and
    φ side by side, from ``tvo variance``'s records. Infinite or undefined values are left
    out."""
    import math

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    names = list(dict.fromkeys(r["objective"] for r in records))
    for ax, group, label in zip(axes, ("theta", "phi"), ("θ (generative)", "φ (inference)")):
        for i, name in enumerate(names):  # past ten lines the colours repeat: a new style
            line = sorted((r["particles"], r[f"{group}_snr"]) for r in records
                          if r["objective"] == name and math.isfinite(r[f"{group}_snr"])
                          and r[f"{group}_snr"] > 0)  # fmt: skip
            style = {"marker": "os^"[i // 10 % 3], "linestyle": ("-", "--", ":")[i // 10 % 3]}
            if line:
                ax.plot([s for s, _ in line], [v for _, v in line], label=name, **style)
        _k_axis(ax, sorted({r["particles"] for r in records}))
        ax.set_yscale("log")
        ax.set(xlabel="S (particles)", ylabel="SNR |E ĝ| / std ĝ (mean over parameters)",
               title=f"{label}")  # fmt: skip
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
