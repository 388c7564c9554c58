"""Bad input stops with one message and exit status 2 before any work, and leaves every file as
it was (issue #15): the cases reproduced there, and a property test that feeds random invalid
settings and data files to the command line."""

import string

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tvo
from tvo.cli import main
from tvo.data import DataError, load

from tests.helpers import tree_digest

FAST = ["--steps", "20", "--batch-size", "8", "--eval-every", "20", "--eval-images", "8",
        "--eval-particles", "20", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small trained run and its data, for commands that read a run."""
    folder = tmp_path_factory.mktemp("validation")
    rng = np.random.default_rng(0)
    images = (rng.random((96, 16)) < 0.4).astype(np.float32)
    data = folder / "tiny.npz"
    np.savez(data, train=images[:64], valid=images[64:80], test=images[80:])
    run = folder / "run"
    assert main(["train", "--data", str(data), "--out", str(run), *FAST]) == 0
    return folder, data, run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "99999999999999999999999"], "seed must be an integer ≥ 0 and < 92233720"),
        (["-S", "100000000"], "a step of S = 100000000 particles for batches of 8"),
        (["-K", "100000000"], "with K = 100000000 intervals would need about"),
        (["--beta1", "0.9999999999999999", "-K", "5"], "so close to 1 that the 5 points"),
        (["--schedule", "linear", "--beta1", "0.5"], "beta1 does not apply to schedule 'linear'"),
        (["--partition", "0 0.5 0.5 1"], "strictly increasing"),
        (["--partition", "0 0.5 1", "-K", "3"], "partitions does not apply with a partition of"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused_before_any_file(args, message, trained, tmp_path,
                                                               capsys):  # fmt: skip
    _, data, _ = trained
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *FAST, *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_evaluation_that_could_never_fit_is_refused(trained, capsys):
    _, _, run = trained
    before = tree_digest(run)
    args = ["eval", str(run), "--particles", "2000000000", "--chunk-size", "1000000000"]
    assert main(args) == 2
    assert "would need about" in capsys.readouterr().err
    assert main(["plot", str(run), "--images", "-9990"]) == 2
    assert "--images must be ≥ 1, got -9990" in capsys.readouterr().err
    assert tree_digest(run) == before


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_text("train,test\n1,2\n"), r"not a NumPy .npz archive \(it starts with"),
        (lambda p: np.savez(p, train=np.zeros((1, 4)), test=np.zeros((2, 4))),
         r"\[train\]: 1 image is too few to set the last 10% aside"),
        (lambda p: np.savez(p, train=np.zeros((5, 0)), test=np.zeros((2, 0))),
         r"\[train\]: the data points have no values"),
    ],
)  # fmt: skip
def test_bad_data_files_are_named(tmp_path, write, message):
    path = tmp_path / "data.npz"
    write(path)
    with pytest.raises(DataError, match=message):
        load(str(path))


def test_integer_like_numbers_of_intervals_are_numbers():
    torch.testing.assert_close(tvo.partition(np.int64(5)), tvo.partition(5))
    torch.testing.assert_close(tvo.partition(torch.tensor(3)), tvo.partition(3))
    with pytest.raises(ValueError, match="so close to 1 that the 5 points"):
        tvo.partition(5, "log", 0.9999999999999999)


# --- a property: no invalid setting or data file gets past the boundary -------------------------

INVALID = {
    "particles": st.one_of(st.integers(-5, 1), st.floats(2, 50), st.text(max_size=3)),
    "partitions": st.one_of(st.integers(-5, 0), st.just(2.5), st.booleans()),
    "beta1": st.one_of(st.floats(1.0, 1e6), st.floats(-1e6, 0.0), st.just("0.1")),
    "batch_size": st.one_of(st.integers(-5, 0), st.integers(65, 10**6), st.floats(1, 8)),
    "lr": st.one_of(st.floats(-1.0, 0.0), st.just(float("inf")), st.text(max_size=2)),
    "steps": st.one_of(st.integers(-5, 0), st.floats(1, 5)),
    "seed": st.one_of(st.integers(-10**20, -1), st.integers(2**63, 2**70)),
    "schedule": st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6).filter(
        lambda s: s not in ("log", "linear")),
    "objective": st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6).filter(
        lambda s: s not in tvo.OBJECTIVES),
    "data_root": st.integers(),
    "eval_split": st.sampled_from(["dev", "Test", ""]),
    "device": st.sampled_from(["gpu", "cuda:x", ""]),
    "compile": st.sampled_from([1, "yes"]),
    "model_args": st.sampled_from([[1, 2], "latents"]),
}  # fmt: skip


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return "inf" if value == float("inf") else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return str(value)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_invalid_settings_exit_2_and_change_no_file(data, trained, tmp_path_factory):
    _, tiny, run = trained
    name = data.draw(st.sampled_from(sorted(INVALID)))
    value = data.draw(INVALID[name])
    config = tmp_path_factory.mktemp("property") / "bad.toml"
    config.write_text(
        f'data = "{tiny}"\nsteps = 20\nbatch_size = 8\n{name} = {toml_value(value)}\n'
    )
    before = tree_digest(run)
    out = config.parent / "new"
    assert main(["train", "--config", str(config), "--out", str(out), "--quiet"]) == 2, (
        name,
        value,
    )
    assert not out.exists()
    assert main(["train", "--config", str(config), "--out", str(run), "--overwrite"]) == 2
    assert tree_digest(run) == before


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.one_of(
    st.binary(max_size=64),
    st.builds(lambda n, d, v: {"train": np.full((n, d), v), "test": np.full((2, d), v)},
              st.integers(0, 3), st.integers(0, 3),
              st.sampled_from([np.nan, np.inf, -2.0, 1.5])),
))  # fmt: skip
def test_random_invalid_data_files_exit_2(content, trained, tmp_path_factory):
    _, _, run = trained
    folder = tmp_path_factory.mktemp("data")
    path = folder / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, **content)
    before = tree_digest(run)
    out = folder / "new"
    assert main(["train", "--data", str(path), "--out", str(out), *FAST]) == 2
    assert not out.exists() and tree_digest(run) == before
