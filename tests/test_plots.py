"""Figures (``tvo.plots``): what each one draws is the data it was given, read back from the
figure's artists before it is saved; the saved file is a whole PNG."""

import numpy as np
import pytest
import torch

from tvo import plots
from tvo.evaluate import estimate_integrand
from tvo.models.toy import DiscreteToy
from tvo.partitions import partition, riemann_sum

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """The figures the functions save, in order (each is still written to its path)."""
    figures = []
    save = plots._save

    def keep(fig, path, layout=True):
        figures.append(fig)
        return save(fig, path, layout)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def lines(ax) -> dict:
    return {line.get_label(): np.asarray(line.get_xydata()) for line in ax.get_lines()}


def test_distinct_labels_add_the_folder_only_where_labels_repeat():
    labels = plots.distinct_labels(["tvo S=10", "tvo S=10", "vimco"], ["a", "b", "c"])
    assert labels == ["tvo S=10 (a)", "tvo S=10 (b)", "vimco"]


def test_tiles_place_each_image_in_its_cell_with_grey_gaps():
    images = torch.arange(6 * 4, dtype=torch.float32).reshape(6, 4) / 100  # six 2×2 images
    grid = plots._tiles(images, rows=2, side=2)
    assert grid.shape == (2 * 3 - 1, 3 * 3 - 1)
    for i in range(6):
        r, c = divmod(i, 3)
        torch.testing.assert_close(grid[3 * r : 3 * r + 2, 3 * c : 3 * c + 2],
                                   images[i].reshape(2, 2))  # fmt: skip
    assert (grid[2, :] == 0.5).all() and (grid[:, 2] == 0.5).all()


def test_learning_curves_draw_each_runs_rows_and_skip_missing_values(drawn, tmp_path):
    rows = [{"step": 10, "train_objective": -90.0, "log_px": None, "kl": None, "split": None},
            {"step": 20, "train_objective": -80.0, "log_px": -85.0, "kl": 4.0, "split": "valid"},
            {"step": 30, "train_objective": -75.0, "log_px": -82.0, "kl": 3.0,
             "split": "valid"}]  # fmt: skip
    other = [{**r, "train_objective": r["train_objective"] - 1} for r in rows]
    path = plots.learning_curves([("a", rows), ("b", other)], tmp_path / "curves.png")
    assert path.read_bytes().startswith(PNG)
    train, log_px, kl = drawn[0].axes[:3]
    np.testing.assert_array_equal(lines(train)["a"], [[10, -90], [20, -80], [30, -75]])
    np.testing.assert_array_equal(lines(train)["b"], [[10, -91], [20, -81], [30, -76]])
    np.testing.assert_array_equal(lines(log_px)["a"], [[20, -85], [30, -82]])
    np.testing.assert_array_equal(lines(kl)["b"], [[20, 4], [30, 3]])
    assert log_px.get_title() == "valid log p̂(x)"


def test_the_integrand_is_the_estimate_with_the_partitions_rectangles(drawn, tmp_path):
    """The curve is ``ĝ`` of ``estimate_integrand`` (the same particles: same seed), non-
    decreasing; the rectangles stand at the partition's points with the curve's heights, and
    the legend's sums are the Riemann sums of those heights, left ≤ right."""
    model = DiscreteToy(3, 6, seed=0)
    data = model.sample(5)[1]
    beta = partition(3, "log", 0.1)
    torch.manual_seed(0)
    plots.integrand(model, data, beta, tmp_path / "integrand.png", num_particles=200)
    ax = drawn[0].axes[0]
    curve = lines(ax)["ĝ(β) = E_π_β[log w]"]
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)
    points = torch.unique(torch.cat([grid, beta]))
    torch.manual_seed(0)
    values, _ = estimate_integrand(model, data, points, 200)
    expected = values.mean(1)[torch.searchsorted(points, grid)]
    np.testing.assert_allclose(curve[:, 0], grid.numpy())
    np.testing.assert_allclose(curve[:, 1], expected.numpy())
    assert (np.diff(curve[:, 1]) >= 0).all()
    at_points = values.mean(1)[torch.searchsorted(points, beta)]
    bars = [p for p in ax.patches if p.get_fill()]  # the left sum's rectangles
    assert [round(p.get_x(), 12) for p in bars] == [round(b, 12) for b in beta[:-1].tolist()]
    np.testing.assert_allclose([p.get_y() + p.get_height() for p in bars], at_points[:-1])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    lower = riemann_sum(at_points, beta, "left").item()
    upper = riemann_sum(at_points, beta, "right").item()
    assert f"left sum TVO_L = {lower:.2f}" in labels and f"right sum TVO_U = {upper:.2f}" in labels
    assert lower <= upper


def test_mean_curves_are_the_mean_and_sd_over_seeds_at_common_steps(drawn, tmp_path):
    seeds = [[{"step": s, "log_px": -100.0 + s * k, "kl": 1.0 * k} for s in (10, 20)]
             for k in (1, 2, 3)]  # fmt: skip
    seeds[0].append({"step": 30, "log_px": -70.0, "kl": 1.0})  # only one seed reached 30
    plots.mean_curves({"tvo": seeds}, tmp_path / "mean.png")
    ax = drawn[0].axes[0]
    np.testing.assert_allclose(lines(ax)["tvo (3 seeds)"], [[10, -80.0], [20, -60.0]])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    sd10, sd20 = np.std([-90.0, -80.0, -70.0], ddof=1), np.std([-80.0, -60.0, -40.0], ddof=1)
    assert band.min() == pytest.approx(-80.0 - sd10) and band.max() == pytest.approx(-60.0 + sd20)


def test_k_axes_are_labelled_at_the_measured_k_only(drawn, tmp_path):
    plots.bounds({"TVO_L": {1: -90.0, 2: -88.0, 10: -87.0}}, {"ELBO": -91.0}, tmp_path / "b.png")
    rows = [
        {"objective": "tvo", "model": "linear_1", "S": 5, "K": k, "ms_per_step": 2.0 * k}
        for k in (1, 5, 20)
    ] + [{"objective": "vimco", "S": 5, "K": 1, "ms_per_step": 1.0}]
    plots.cost_against_k(rows, tmp_path / "c.png")
    assert list(drawn[0].axes[0].get_xticks()) == [1, 2, 10]
    assert list(drawn[1].axes[0].get_xticks()) == [1, 5, 20]
    np.testing.assert_array_equal(lines(drawn[1].axes[0])["S = 5"], [[1, 2], [5, 10], [20, 40]])
    assert [line.get_ydata()[0] for line in drawn[0].axes[0].get_lines()][-1] == -91.0
