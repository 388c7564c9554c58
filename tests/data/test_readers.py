"""The file readers: IDX, amat, Omniglot's .mat and a user's arrays, with their errors."""

import gzip

import numpy as np
import pytest

from tvo.data import DataError, load
from tvo.data.readers import read_amat, read_arrays, read_idx, read_omniglot_mat

from tests.helpers import idx_bytes, write_amat


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
