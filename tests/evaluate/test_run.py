"""Evaluating a trained run: at the partition its checkpoint trained with, seeded by its own
seed, without moving the generators training draws from."""

import pytest
import torch

from tvo.build import load_trained
from tvo.config import resolve
from tvo.data import load
from tvo.evaluate.run import evaluate_model, evaluate_run
from tvo.models.toy import DiscreteToy
from tvo.partitions import partition
from tvo.runs import Run
from tvo.train import train


def test_a_run_is_evaluated_at_its_checkpoints_partition(tiny_data, tmp_path):
    config = resolve(data=tiny_data, model="discrete_toy", schedule="moments", partitions=3,
                     adapt_every=4, steps=12, batch_size=8, eval_every=12, eval_images=8,
                     eval_particles=10, log_every=4, checkpoint_every=12)  # fmt: skip
    run = Run.create(tmp_path / "run", config)
    train(run, quiet=True)
    saved = run.load_checkpoint()["partition"]
    assert not torch.equal(saved, partition(3, "log", 0.1))
    assert torch.equal(load_trained(run).partition, saved)
    result = evaluate_run(run, "test", particles=200, limit=8)
    assert result["partition"] == saved.tolist() and result["step"] == 12
    assert result["elbo"] <= result["tvo_lower"] <= result["log_px"] <= result["tvo_upper"]
    again = evaluate_run(run, "test", particles=200, limit=8)
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in result.items() if k != "seconds"
    }


def test_an_evaluation_leaves_the_global_generator_where_it_was(tiny_data):
    model = DiscreteToy(3, 16, seed=0)
    dataset = load(tiny_data)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first = evaluate_model(model, dataset, "valid", particles=30, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    second = evaluate_model(model, dataset, "valid", particles=30, seed=1)
    third = evaluate_model(model, dataset, "valid", particles=30, seed=2)
    assert first["log_px"] == second["log_px"] != third["log_px"]


def test_ais_of_a_run_estimates_its_exact_log_marginal(tiny_data, tmp_path, one_thread,
                                                       monkeypatch):  # fmt: skip
    """A trained discrete-toy run (16 test images): AIS (T = 300, 10 chains, single-site flips)
    gives the enumerated mean ``log p(x)`` within 4 of its standard errors + 0.02 nats
    (measured −1.3 to +0.8 SE over training seeds 0–2 × evaluation seeds 0–2; at T = 100, down
    to −3.1 SE); seeded, and leaves the global generator alone; ``schedule="run"`` anneals
    along the run's own (moments) partition."""
    from tvo.evaluate import exact_log_marginal
    from tvo.evaluate.run import evaluate_run_ais

    config = resolve(data=tiny_data, model="discrete_toy", schedule="moments", partitions=3,
                     adapt_every=4, steps=12, batch_size=8, eval_every=12, eval_images=8,
                     eval_particles=10, log_every=4, checkpoint_every=12)  # fmt: skip
    run = Run.create(tmp_path / "run", config)
    train(run, quiet=True)
    trained = load_trained(run)
    exact = exact_log_marginal(trained.model, trained.dataset.test).mean().item()
    before = torch.get_rng_state()
    result = evaluate_run_ais(run, "ais", "test", 300, 10, kernel="flip")
    assert torch.equal(torch.get_rng_state(), before)
    assert abs(result["log_px"] - exact) < 4 * result["stderr"] + 0.02
    assert result["num_images"] == 16 and result["evaluations"] == 10 * 300
    first, again, other = (evaluate_run_ais(run, "ais", "test", 20, 3, seed=s) for s in (4, 4, 5))
    assert again["log_px"] == first["log_px"] != other["log_px"]
    import tvo.evaluate.run as run_module

    schedules, ais = [], run_module.ais
    monkeypatch.setattr(run_module, "ais", lambda *a, **k: schedules.append(a[4]) or ais(*a, **k))
    along_run = evaluate_run_ais(run, "ais", "test", 9, 4, schedule="run", kernel="flip")
    assert along_run["schedule"] == "run" and schedules
    assert all(torch.equal(torch.as_tensor(s), trained.partition) for s in schedules)
    assert not torch.equal(trained.partition, partition(3, "log", config.beta1))  # it moved


@pytest.mark.parametrize(
    ("gap", "se", "says"),
    [(0.05, 0.02, None),
     (-0.01, 0.02, "0.5 standard errors below 0, within noise"),
     (-0.5, 0.1, "5.0 standard errors below 0, more than noise explains"),
     (-0.5, None, "one point gives no standard error")],
)  # fmt: skip
def test_bdmc_says_why_its_lower_bound_can_be_above_its_upper(gap, se, says):
    """Issue 24, item 9: both bounds are stochastic; a negative gap is weighed against its
    standard error, printed beside the bounds."""
    from tvo.evaluate.run import bdmc_lines

    report = {"log_px": -20.0, "stderr": 0.01, "upper": -20.0 + gap, "upper_stderr": 0.01,
              "gap": gap, "gap_stderr": se, "num_images": 100}  # fmt: skip
    lines = bdmc_lines(report)
    assert "stochastic lower bound" in lines[0] and "stochastic upper bound" in lines[1]
    assert lines[2].split()[:2] == ["gap", f"{gap:.3f}"]
    assert "standard error over the 100 points" in lines[2]
    if says is None:
        assert len(lines) == 3
    else:
        assert "lower is above upper: both bounds are stochastic" in lines[3] and says in lines[3]
