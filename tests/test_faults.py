"""Numerical faults, bad input and interrupted runs lose nothing."""

import errno
import math
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tvo
from tvo import functional as F
from tvo.build import build as setup
from tvo.cli import main
from tvo.config import resolve
from tvo.models import SBN, GaussianVAE, create
from tvo.models.toy import DiscreteToy, LinearGaussian
from tvo.ops import merge, weighted_mean
from tvo.runs import Run
from tvo.train import NonFiniteError, train

FUNCTIONS = {
    "tvo": lambda p, q: F.tvo(p, q, tvo.partition(5, "log", 0.01)),
    "tvo-right": lambda p, q: F.tvo(p, q, tvo.partition(5, "log", 0.01), "right"),
    "elbo": F.elbo, "vae": F.vae, "iwae": F.iwae, "reinforce": F.reinforce, "vimco": F.vimco,
    "rws": F.rws,
}  # fmt: skip


def all_finite(fn, log_p, log_q) -> bool:
    log_p, log_q = log_p.clone().requires_grad_(), log_q.clone().requires_grad_()
    terms = fn(log_p, log_q)
    grads = torch.autograd.grad(terms.surrogate.sum(), (log_p, log_q))
    return all(torch.isfinite(t).all() for t in (terms.surrogate, terms.estimate, *grads))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_extreme_log_weights_give_finite_values_and_gradients(name, dtype):
    g = torch.Generator().manual_seed(0)
    log_p = (-1e4 + 1e3 * torch.randn(5000, 3, generator=g)).to(dtype)
    log_q = (1e3 * torch.randn(5000, 3, generator=g)).to(dtype)
    assert all_finite(FUNCTIONS[name], log_p, log_q)


def test_streaming_evaluation_reductions_are_finite_for_extreme_log_weights():
    log_weight = -1e4 + 1e3 * torch.randn(4, 5000, 3, dtype=torch.float64)
    state = None
    for chunk in log_weight.split(1000, dim=1):
        part = weighted_mean(chunk, chunk, dim=1)
        state = part if state is None else merge(state, part)
    assert torch.isfinite(state.log_norm).all() and torch.isfinite(state.mean).all()


@settings(max_examples=100, deadline=None)
@given(
    log_weight=arrays("float64", st.tuples(st.integers(2, 30), st.integers(1, 3)),
                      elements=st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False)),
    log_q=st.floats(-1e4, 0.0),
    float32=st.booleans(),
)  # fmt: skip
def test_every_objective_stays_finite_on_random_log_weights(log_weight, log_q, float32):
    dtype = torch.float32 if float32 else torch.float64
    log_weight = torch.from_numpy(log_weight).to(dtype)
    log_q = torch.full_like(log_weight, log_q)
    for name, fn in FUNCTIONS.items():
        assert all_finite(fn, log_weight + log_q, log_q), name


class NaNAfter(torch.nn.Module):
    """A model that returns NaN log-densities at one training step (its Nth call of log_joint)."""

    def __init__(self, model, bad_call):
        super().__init__()
        self.model, self.bad_call, self.calls = model, bad_call, 0
        self.has_rsample = model.has_rsample

    def sample_guide(self, x, num_particles, reparameterize=False):
        return self.model.sample_guide(x, num_particles, reparameterize)

    def log_guide(self, x, z):
        return self.model.log_guide(x, z)

    def log_joint(self, x, z):
        self.calls += 1
        log_p = self.model.log_joint(x, z)
        return log_p * float("nan") if self.calls == self.bad_call else log_p

    def sample(self, n):
        return self.model.sample(n)


def nan_setup(tiny_data, policy, bad_call=7):
    config = resolve(data=tiny_data, steps=20, batch_size=8, eval_every=1000, eval_images=4,
                     eval_particles=5, log_every=5, checkpoint_every=10,
                     nonfinite=policy)  # fmt: skip
    prepared = setup(config)
    prepared.model = NaNAfter(prepared.model, bad_call)
    prepared.optimiser = torch.optim.Adam(prepared.model.parameters(), lr=config.lr)
    return config, prepared


def test_a_nan_step_is_skipped_counted_and_training_goes_on(tiny_data, tmp_path):
    config, prepared = nan_setup(tiny_data, "skip")
    run = Run.create(tmp_path / "run", config)
    summary = train(run, quiet=True, prepared=prepared)
    assert summary["steps"] == 20 and summary["skipped"] == 1
    assert [row["skipped"] for row in run.read_metrics()][:2] == [0, 1]
    assert all(torch.isfinite(p).all() for p in prepared.model.parameters())


def test_a_nan_step_stops_training_when_asked_naming_the_step(tiny_data, tmp_path):
    config, prepared = nan_setup(tiny_data, "stop")
    run = Run.create(tmp_path / "run", config)
    before = [p.detach().clone() for p in prepared.model.parameters()]
    with pytest.raises(NonFiniteError, match="step 7: the loss or a gradient is not finite"):
        train(run, quiet=True, prepared=prepared)
    assert all(torch.isfinite(p).all() for p in prepared.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, prepared.model.parameters()))


ARGS = ["--steps", "150", "--batch-size", "8", "--eval-every", "50", "--eval-images", "8",
        "--eval-particles", "20", "--log-every", "10", "--checkpoint-every", "20",
        "--quiet"]  # fmt: skip


def tvo_process(*args):
    command = [sys.executable, "-m", "tvo.cli", "train", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def latest_step(run_dir) -> int:
    names = (
        [p.name for p in (run_dir / "checkpoints").glob("step-*.pt")] if run_dir.exists() else []
    )
    return max((int(n[5:14]) for n in names), default=0)


def test_runs_killed_at_random_moments_resume_to_the_uninterrupted_result(tiny_data, tmp_path):
    straight = tmp_path / "straight"
    assert tvo_process("--data", tiny_data, "--out", str(straight), *ARGS).wait(120) == 0
    killed, chance, kills = tmp_path / "killed", random.Random(0), 0
    # Kill three times, each soon after a seeded random checkpoint, plus a random delay of up to
    # 50 ms: between checkpoints, inside a checkpoint or metrics write, wherever it falls.
    targets = sorted(chance.sample(range(20, 141, 20), 3))
    for target in [*targets, None]:
        if Run.is_run(killed):
            process = tvo_process("--resume", str(killed), "--quiet")
        else:
            process = tvo_process("--data", tiny_data, "--out", str(killed), *ARGS)
        if target is not None:
            deadline = time.monotonic() + 60
            while latest_step(killed) < target and process.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.002)
            time.sleep(chance.uniform(0, 0.05))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
        process.wait(120)
    assert kills == 3, "each kill should land part-way through the run"
    assert (killed / "summary.json").exists()
    first, second = Run.open(straight).load_checkpoint(), Run.open(killed).load_checkpoint()
    assert first["step"] == second["step"] == 150
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][name]), name

    def without_time(path):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in Run(path).read_metrics()]

    assert without_time(killed) == without_time(straight)


def test_a_truncated_checkpoint_is_reported_and_the_previous_one_used(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run_dir), *ARGS, "--steps", "60"]) == 0
    run = Run.open(run_dir)
    latest = run.checkpoints()[-1]
    assert latest.name == "step-000000060.pt"
    latest.write_bytes(latest.read_bytes()[:500])
    with pytest.warns(UserWarning, match="step-000000060.pt is corrupt .*using the one before"):
        state = run.load_checkpoint()
    assert state["step"] == 40


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [("metrics.csv", "step,seconds\n1,2\n", "metrics.csv is corrupt"),
     ("metrics.csv", "step,seconds,train_objective,skipped,split,log_px,kl,elbo\n10,x,,,,,,\n",
      "metrics.csv is corrupt"),
     ("config.json", "{not json", "config.json is corrupt")],
)  # fmt: skip
def test_corrupt_metrics_or_config_are_reported_not_overwritten(file, content, message, tiny_data,
                                                                 tmp_path, capsys):  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), *ARGS, "--steps", "30"]) == 0
    (run / file).write_text(content)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    assert message in capsys.readouterr().err
    assert (run / file).read_text() == content


def test_a_full_disk_is_a_clear_error_and_the_last_checkpoint_survives(
    tiny_data, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    real_save, calls = torch.save, []

    def save_until_full(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) >= 2:
            with open(path, "wb") as handle:
                handle.write(b"partial")  # the disk fills part-way through the write
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr("tvo.runs.torch.save", save_until_full)
    assert main(["train", "--data", tiny_data, "--out", str(run), *ARGS, "--steps", "60"]) == 1
    error = capsys.readouterr().err
    assert "No space left on device" in error and "files written before are intact" in error
    monkeypatch.setattr("tvo.runs.torch.save", real_save)
    checkpoints = Run.open(run).checkpoints()
    assert [p.name for p in checkpoints] == ["step-000000020.pt"]
    assert Run.open(run).load_checkpoint()["step"] == 20
    assert not list(run.rglob("*.tmp"))
    assert main(["train", "--resume", str(run)]) == 0  # and the run can go on


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SBN(()), "SBN: latents must be positive integers, got ()"),
        (lambda: SBN((200, 0)), r"SBN: latents must be positive integers, got \(200, 0\)"),
        (lambda: SBN((3,), hidden=(2.5,)), "SBN: hidden must be positive integers"),
        (lambda: GaussianVAE(latents=-1), "GaussianVAE: latents must be a positive integer"),
        (lambda: DiscreteToy(0), "DiscreteToy: num_latents must be a positive integer, got 0"),
        (lambda: LinearGaussian(2, 0), "LinearGaussian: obs_dim must be a positive integer"),
        (lambda: create("linear_1", pixels=0), "SBN: pixels must be a positive integer, got 0"),
        (lambda: tvo.TVO(K=3, beta1=2.0), "beta1 must lie strictly between 0 and 1, got 2.0"),
        (lambda: tvo.estimate(DiscreteToy(), torch.zeros(2, 4), num_particles=-5),
         "num_particles must be an integer ≥ 1, got -5"),
        (lambda: tvo.VIMCO()(DiscreteToy(), torch.zeros(2, 4), 1),
         "vimco needs num_particles to be an integer ≥ 2, got 1"),
    ],
)  # fmt: skip
def test_library_constructors_validate_their_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_dataset_rejects_an_unknown_split(tiny_data):
    from tvo.data import DataError, load

    with pytest.raises(DataError, match="unknown split 'dev': expected one of train, valid"):
        load(tiny_data).split("dev")
    assert np.isfinite(load(tiny_data).train.numpy()).all()


# --- numerics at the edges -----------------------------------------------------------------------


def test_a_particle_of_zero_weight_adds_nothing_and_makes_nothing_nan():
    """One particle with log p = −∞ (issue #15's example): at every β > 0 its weight is 0, so the
    right sum equals the sum over the other particles and every gradient is finite (0 for that
    particle); the left sum's β₀ term is the ELBO, −∞, never NaN. Before: NaN for both."""
    log_p = torch.tensor([[-math.inf], [0.0], [1.0], [2.0]], dtype=torch.float64)
    log_q = torch.zeros(4, 1, dtype=torch.float64)
    beta = tvo.partition(5)
    p, q = log_p.clone().requires_grad_(), log_q.clone().requires_grad_()
    right = F.tvo(p, q, beta, "right")
    torch.testing.assert_close(right.estimate, F.tvo(log_p[1:], log_q[1:], beta, "right").estimate)
    grads = torch.autograd.grad(right.surrogate.sum(), (p, q))
    assert all(torch.isfinite(g).all() for g in grads)
    assert grads[0][0].item() == 0 and grads[1][0].item() == 0
    assert F.tvo(log_p, log_q, beta, "left").estimate.item() == -math.inf
    assert right.integrand[0].item() == -math.inf and torch.isfinite(right.integrand[1:]).all()
    # VIMCO's leave-one-out baselines: finite signals, so a finite gradient for log q
    p, q = log_p.clone().requires_grad_(), log_q.clone().requires_grad_()
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(F.vimco(p, q).surrogate.sum(),
                                                                    (p, q)))  # fmt: skip
    for fn in (F.iwae, F.rws, F.reinforce):  # these were finite already
        assert torch.isfinite(fn(log_p, log_q).estimate).all()


def test_half_precision_is_reduced_in_float32_and_integers_are_refused():
    """float16 log-weights of −6·10⁴ (within float16's range, their squares and sums are not):
    the ELBO's surrogate and gradient are computed in float32 and finite."""
    log_p = torch.full((5, 3), -6e4, dtype=torch.float16, requires_grad=True)
    log_q = torch.zeros(5, 3, dtype=torch.float16, requires_grad=True)
    terms = F.elbo(log_p, log_q)
    assert terms.surrogate.dtype == torch.float32 and torch.isfinite(terms.surrogate).all()
    grads = torch.autograd.grad(terms.surrogate.sum(), (log_p, log_q))
    assert all(g.dtype == torch.float16 and torch.isfinite(g).all() for g in grads)
    with pytest.raises(ValueError, match=r"log_p has dtype torch.int64: log-densities must be"):
        F.iwae(torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"log_q has dtype torch.bool"):
        F.tvo(torch.zeros(4, 2), torch.zeros(4, 2, dtype=torch.bool), tvo.partition(3))
