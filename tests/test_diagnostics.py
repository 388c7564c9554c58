"""Gradient statistics (``tvo.diagnostics``) and ``tvo variance``: a deterministic gradient has
infinite SNR, a zero-mean one an SNR near 0 (the vector's SNR at 0 once its bias is removed), the
mean is the exact gradient within its standard errors, θ and φ are told apart by the protocol;
on the linear-Gaussian model the φ-SNR of the pathwise IWAE gradient falls with S and that of
DReG does not (Rainforth et al., 2018; Tucker et al., 2019); the command's table, JSON lines and
figure, and its bad input."""

import json
import math

import pytest
import torch

import tvo
from tvo.cli import main
from tvo.diagnostics import gradient_stats, split_parameters
from tvo.models.toy import LinearGaussian
from tvo.objectives import Output

from tests.helpers import data, exact_expected_iwae_gradient, toy


class Deterministic(tvo.Objective):
    """A loss that draws nothing: ``Σ_p Σ p²`` over the model's parameters."""

    name = "deterministic"

    def __call__(self, model, x, num_particles, partition=None):
        loss = sum((p**2).sum() for p in model.parameters())
        return Output(loss, x.new_zeros(len(x)), {})


class ZeroMean(tvo.Objective):
    """``Σ_s (log q_s − sg(log q_s))``: its φ-gradient ``Σ_s ∇ log q_s`` has mean 0; θ gets
    none."""

    name = "zero-mean"

    def __call__(self, model, x, num_particles, partition=None):
        _, log_q = model.sample_guide(x, num_particles)
        return Output((log_q - log_q.detach()).sum(), x.new_zeros(len(x)), {})


def test_theta_and_phi_are_what_log_joint_and_log_guide_depend_on():
    model = toy()
    groups = split_parameters(model, data(model, 2))
    assert [n for n, _ in groups["theta"]] == ["prior_logits", "decoder_weight", "decoder_bias"]
    assert [n for n, _ in groups["phi"]] == ["encoder_weight", "encoder_bias"]


def test_a_deterministic_gradient_has_infinite_snr():
    model = toy()
    stats = gradient_stats(model, Deterministic(), data(model, 2), 3, repeats=5)
    for group in ("theta", "phi"):
        assert torch.isinf(stats[group].snr).all()
        summary = stats[group].summary()
        assert summary["snr"] == math.inf and summary["snr_norm"] == math.inf
        assert summary["variance"] == 0.0


def test_a_zero_mean_gradient_has_snr_near_zero_and_no_gradient_is_nan():
    """φ: 400 draws; each component's SNR estimate of a true 0 is about sqrt(2/(πR)) = 0.04
    (measured over seeds 0 to 2: a mean over components of 0.045 to 0.061); the test asks for
    < 0.15. The vector's SNR, bias removed, was 0.004 to 0.053 (asks < 0.1). θ gets no
    gradient: nan, not 0 and not inf."""
    model = toy()
    stats = gradient_stats(model, ZeroMean(), data(model, 4), 3, repeats=400)
    assert stats["phi"].summary()["snr"] < 0.15
    assert stats["phi"].summary()["snr_norm"] < 0.1
    assert stats["phi"].summary()["variance"] > 1e-3
    assert math.isnan(stats["theta"].summary()["snr"])


def test_the_mean_is_the_exact_gradient_within_its_standard_errors():
    """VIMCO on the toy (S = 3, one data point, 400 draws): every component of the mean within
    4 standard errors (+ 1e-3 of the largest) of the exact ∇ E[L̂_3]; a wrong sign fails."""
    model, S = toy(), 3
    x = data(model, 1)
    stats = gradient_stats(model, tvo.VIMCO(), x, S, repeats=400)
    mean = torch.cat([stats["theta"].mean, stats["phi"].mean])
    se = torch.cat([stats[g].variance for g in ("theta", "phi")]).div(400).sqrt()
    exact = -exact_expected_iwae_gradient(model, x, S)  # the ascent direction
    atol = 1e-3 * exact.abs().max()
    assert ((mean - exact).abs() / (se + atol)).max() < 4
    assert ((mean + exact).abs() / (se + atol)).max() > 4


def test_the_callers_random_state_and_gradients_are_left_alone():
    model = toy()
    x = data(model, 2)
    torch.manual_seed(7)
    before = torch.rand(3)
    torch.manual_seed(7)
    first = gradient_stats(model, tvo.Renyi(0.5), x, 4, repeats=3, seed=1)
    assert torch.equal(torch.rand(3), before)
    again = gradient_stats(model, tvo.Renyi(0.5), x, 4, repeats=3, seed=1)
    assert torch.equal(first["phi"].mean, again["phi"].mean)
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="repeats to be an integer ≥ 2, got 1"):
        gradient_stats(model, tvo.VIMCO(), x, 4, repeats=1)


def test_phi_snr_falls_with_s_for_pathwise_iwae_and_not_for_dreg(seed=0):
    """One data point of the linear-Gaussian model, 100 draws, S = 2 and 64. Measured over seeds
    0 to 2: pathwise IWAE's φ-SNR fell from 0.65–0.81 to 0.07–0.16 (ratio 0.09 to 0.24; the test
    asks < 0.5), DReG's rose from 1.0–1.2 to 1.8–2.0 (ratio 1.7 to 2.0; asks > 1.2), and θ's
    (the same gradient for both) rose from 1.05 to 4.6–4.7 (asks > 2 times)."""
    torch.manual_seed(0)
    model = LinearGaussian(latent_dim=2, obs_dim=3, seed=4).double()
    x = model.sample(1)[1]

    def snr(objective, S, group="phi"):
        return gradient_stats(model, objective, x, S, 100, seed=seed)[group].summary()["snr"]

    assert snr(tvo.IWAE(), 64) < 0.5 * snr(tvo.IWAE(), 2)
    assert snr(tvo.DReG(), 64) > 1.2 * snr(tvo.DReG(), 2)
    assert snr(tvo.IWAE(), 64, "theta") > 2 * snr(tvo.IWAE(), 2, "theta")


FAST = ["--steps", "20", "--eval-every", "20", "--eval-images", "8", "--eval-particles", "10",
        "--log-every", "10", "--checkpoint-every", "20", "--batch-size", "8",
        "--quiet"]  # fmt: skip


@pytest.fixture
def trained_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), "--model", "linear_1",
                 "--model-args", '{"latents": [4]}', "-K", "2", *FAST]) == 0  # fmt: skip
    return run


def test_variance_command_writes_table_json_lines_and_figure(trained_run, tmp_path, capsys):
    out = tmp_path / "variance"
    args = ["variance", str(trained_run), "--objectives", "tvo,vimco,ovis,renyi",
            "--particles", "2", "4", "--repeats", "4", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "θ SNR" in table and "ovis" in table and "renyi" in table
    lines = [json.loads(line) for line in (out / "variance.jsonl").read_text().splitlines()]
    assert [(r["objective"], r["particles"]) for r in lines] == [
        (o, s) for o in ("tvo", "vimco", "ovis", "renyi") for s in (2, 4)
    ]
    keys = {"theta_snr", "phi_snr", "theta_variance", "phi_variance", "theta_snr_norm"}
    assert keys <= set(lines[0]) and lines[0]["images"] == 8 and lines[0]["repeats"] == 4
    assert (out / "variance.png").stat().st_size > 10_000
    assert main([*args[:-2], "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["phi_snr"] for r in printed] == [r["phi_snr"] for r in lines]  # seeded


@pytest.mark.parametrize(("args", "message"), [
    (["--objectives", "vae"], "vae is a pathwise (reparameterised) objective"),
    (["--objectives", "tvo,nope"], "unknown objective 'nope'"),
    (["--particles", "1"], "tvo needs at least 2 particles, got --particles 1"),
    (["--repeats", "1"], "--repeats must be ≥ 2"),
    (["--split", "dev"], "unknown split 'dev'"),
])  # fmt: skip
def test_variance_refuses_bad_input_before_any_work(trained_run, tmp_path, capsys, args,
                                                    message):  # fmt: skip
    out = tmp_path / "variance"
    assert main(["variance", str(trained_run), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
