"""Issue #25, item 10: the evaluations' memory is estimated from their own size (particles and
images), before training: a small evaluation of wide data passes, one that cannot fit is
refused before the run folder exists."""

import numpy as np
import pytest

from tvo.cli import main

PIXELS = 10_000


@pytest.fixture
def wide_data(tmp_path, monkeypatch):
    """20 binary images of 10⁴ pixels per split, and 50 MB of available memory."""
    rng = np.random.default_rng(0)
    path = tmp_path / "wide.npz"
    np.savez(path, **{s: (rng.random((20, PIXELS)) < 0.5).astype(np.float32)
                      for s in ("train", "valid", "test")})  # fmt: skip
    monkeypatch.setattr("tvo.runtime.available_memory", lambda device: 50 * 2**20)
    return str(path)


def train(data, out, *extra):
    return main(["train", "--data", data, "--model", "discrete_toy", "--objective", "vimco",
                 "--out", str(out), "--steps", "2", "--batch-size", "4", "--eval-every", "2",
                 "--checkpoint-every", "2", "--log-every", "1", "--quiet", *extra])  # fmt: skip


def test_a_small_evaluation_of_wide_data_is_not_refused(wide_data, tmp_path, capsys):
    out = tmp_path / "small"
    assert train(wide_data, out, "--eval-images", "2", "--eval-particles", "2") == 0, \
        capsys.readouterr().err  # fmt: skip
    assert (out / "summary.json").is_file()
    assert main(["eval", str(out), "--particles", "2", "--limit", "2"]) == 0


def test_an_evaluation_that_cannot_fit_is_refused_before_training(wide_data, tmp_path, capsys):
    out = tmp_path / "large"
    assert train(wide_data, out, "--eval-images", "20", "--eval-particles", "5000") == 2
    error = capsys.readouterr().err
    assert "the evaluations during training" in error and "eval_particles" in error, error
    assert not out.exists()


def test_the_rows_held_at_once_follow_the_evaluation_s_size():
    from tvo.evaluate.estimate import evaluation_rows

    assert evaluation_rows(2, 2, "cpu") == 4
    assert evaluation_rows(5000, 1000, "cpu") == 2500  # 25 particles × 100 images per pass
    assert evaluation_rows(5000, 3, "cuda", chunk_size=None) == 3000
    assert evaluation_rows(10, 3, "cpu", chunk_size=4) == 12
