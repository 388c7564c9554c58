"""``tvo.fit`` and ``tvo.load``: a model of your own through the whole trainer (run folder,
adaptive schedules, exact extension, evaluation from the command line), real-valued data, and
mistakes stopped before anything is written."""

import json
import sys

import pytest
import torch
from torch.distributions import Bernoulli

import tvo
from tvo.cli import main
from tvo.config import ConfigError
from tvo.data import DataError
from tvo.models import ModelError
from tvo.models.toy import LinearGaussian
from tvo.runs import RunError

from tests.helpers import TinySBN

FAST = {"batch_size": 16, "eval_every": 20, "eval_images": 16, "eval_particles": 20,
        "log_every": 10, "checkpoint_every": 20, "quiet": True}  # fmt: skip


class SBN(TinySBN):
    """The README's model: binary latents over binary pixels."""

    def __init__(self, latents=4, pixels=12):
        super().__init__(latents, pixels)


class Unwrapped(SBN):
    def likelihood(self, z):
        return Bernoulli(logits=self.decoder(z))


def binary_data(n=400, pixels=12):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, pixels, generator=g) < 0.3).float()


def test_fit_writes_a_run_that_the_command_line_evaluates(tmp_path, capsys):
    torch.manual_seed(0)
    objective = tvo.TVO(K=3, schedule="moments", adapt_every=10)
    result = tvo.fit(SBN(), binary_data(), objective, out=tmp_path / "run", steps=40, **FAST)
    run = result.run
    assert result.summary["steps"] == 40 and result.summary["signal"] is None
    assert {"config.json", "metrics.csv", "model.pt", "data.npz", "checkpoints"} <= {
        p.name for p in run.path.iterdir()
    }
    config = run.config
    assert (config.model, config.data, config.schedule, config.adapt_every) == (
        "tests.test_fit:SBN", "@run/data.npz", "moments", 10)  # fmt: skip
    assert not torch.equal(result.partition, tvo.partition(3, "log", 0.1))  # it moved
    trained = tvo.load(run.path)
    for ours, theirs in zip(trained.model.parameters(), result.model.parameters()):
        assert torch.equal(ours, theirs)
    assert torch.equal(trained.partition, result.partition) and trained.step == 40
    assert trained.model.sample(3)[1].shape == (3, 12)
    capsys.readouterr()
    assert main(["eval", str(run.path), "--json", "--particles", "50", "--split", "valid"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["partition"] == result.partition.tolist()
    assert report["elbo"] <= report["tvo_lower"] <= report["log_px"] <= report["tvo_upper"]
    saved = list((run.path / "evaluations").glob("valid-*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["log_px"] == report["log_px"]


def test_a_run_extended_on_resume_ends_as_the_longer_run(tmp_path):
    finals = {}
    for name, lengths in (("straight", (80,)), ("extended", (40, 80))):
        for i, steps in enumerate(lengths):
            torch.manual_seed(0)
            model = SBN()
            result = tvo.fit(model, binary_data(), tvo.VIMCO(), out=tmp_path / name,
                             steps=steps, resume=i > 0, **FAST)  # fmt: skip
        finals[name] = result.run.load_checkpoint()
    assert finals["straight"]["step"] == finals["extended"]["step"] == 80
    for key, tensor in finals["straight"]["model"].items():
        assert torch.equal(tensor, finals["extended"]["model"][key]), key


def test_a_shorter_length_on_resume_is_refused_before_the_run_changes(tmp_path):
    run = tmp_path / "run"
    tvo.fit(SBN(), binary_data(), tvo.VIMCO(), out=run, steps=40, **FAST)
    files = {name: (run / name).read_bytes() for name in ("config.json", "summary.json")}
    for length in ({"steps": 20}, {"epochs": 1}):  # one epoch: about 23 steps of 16
        with pytest.raises(RunError, match=r"has done 40 steps, more than the 2\d asked for"):
            tvo.fit(SBN(), binary_data(), tvo.VIMCO(), out=run, resume=True, **length, **FAST)
        assert {name: (run / name).read_bytes() for name in files} == files, length


def test_real_valued_data_for_a_model_whose_likelihood_takes_it(tmp_path, capsys):
    torch.manual_seed(0)
    true = LinearGaussian(2, 4, seed=3)
    data = 5 * true.sample(300)[1]  # values far outside [0, 1]
    assert data.min() < -1 and data.max() > 1
    model = LinearGaussian(2, 4, seed=4)
    result = tvo.fit(model, {"train": data[:200], "valid": data[200:250], "test": data[250:]},
                     tvo.IWAE(), out=tmp_path / "run", steps=40, lr=0.01, **FAST)  # fmt: skip
    trained = tvo.load(result.run.path)
    assert not trained.dataset.dynamic and torch.equal(trained.dataset.test, data[250:])
    capsys.readouterr()
    assert main(["eval", str(result.run.path), "--json", "--particles", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 50


def test_binary_models_refuse_real_values_and_mistakes_stop_before_any_file(tmp_path):
    data = binary_data()
    with pytest.raises(
        DataError,
        match=r"values must lie in \[0, 1\], found \[-1, 1\]: a model "
        r"with binary observations \(a Bernoulli likelihood\)",
    ):
        tvo.fit(SBN(), 2 * data - 1, "elbo", out=tmp_path / "a", steps=5, **FAST)
    with pytest.raises(ModelError, match=r"likelihood\(z\) has batch shape .*Independent"):
        tvo.fit(Unwrapped(), data, "elbo", out=tmp_path / "b", steps=5, **FAST)
    with pytest.raises(ConfigError, match="model_args are for a model given by name"):
        tvo.fit(SBN(), data, "elbo", out=tmp_path / "c", model_args={"latents": 3}, **FAST)
    assert not any(tmp_path.iterdir())
    tvo.fit(SBN(), data, "elbo", out=tmp_path / "d", steps=5, **FAST)
    with pytest.raises(ConfigError, match=r"other settings \(lr\).*only steps or epochs may grow"):
        tvo.fit(SBN(), data, "elbo", out=tmp_path / "d", steps=10, lr=0.1, resume=True, **FAST)


def test_data_without_a_test_split_give_a_run_that_refuses_to_call_valid_test(tmp_path, capsys):
    """Issue 24, item 5: ``fit(model, x)`` with one tensor has no held-out test data. The run
    records it (``held_out_test`` in its ``data.npz``) and evaluating ``test`` is refused, by
    ``tvo eval`` and by ``tvo.evaluate_run``, rather than reporting the validation data as a
    test set; the validation split is evaluated as itself."""
    from tvo.data import load
    from tvo.evaluate.run import evaluate_run

    torch.manual_seed(0)
    result = tvo.fit(SBN(), binary_data(), "elbo", out=tmp_path / "run", steps=20, **FAST)
    kept = load(str(result.run.path / "data.npz"), support=None)
    assert not kept.held_out_test and torch.equal(kept.test, kept.valid)
    assert kept.describe()["held_out_test"] is False
    capsys.readouterr()
    assert main(["eval", str(result.run.path), "--particles", "10"]) == 2
    assert "has no held-out test split" in capsys.readouterr().err
    with pytest.raises(DataError, match="evaluate the split 'valid'"):
        evaluate_run(result.run, "test", 10)
    assert evaluate_run(result.run, "valid", 10)["split"] == "valid"
    assert not list((result.run.path / "evaluations").glob("test-*"))


def test_evaluating_a_missing_test_split_during_training_is_refused_before_any_file(tmp_path):
    with pytest.raises(DataError, match="no held-out test split"):
        tvo.fit(SBN(), binary_data(), "elbo", out=tmp_path / "run", steps=20, eval_split="test",
                **FAST)  # fmt: skip
    assert not (tmp_path / "run").exists()
    splits = {"train": binary_data()[:300], "test": binary_data()[300:]}
    result = tvo.fit(SBN(), splits, "elbo", out=tmp_path / "ok", steps=20, **FAST)
    assert result.run.path.is_dir()  # test data given: held out, evaluable


def test_quiet_prints_nothing(tmp_path, capsys):
    """Issue 24, item 9: ``quiet=True`` printed a line at each evaluation."""
    tvo.fit(SBN(), binary_data(), "elbo", out=tmp_path / "run", steps=20, **FAST)
    assert capsys.readouterr() == ("", "")


def test_a_model_class_from_a_module_beside_the_script_evaluates_from_the_command_line(
    tmp_path, monkeypatch, capsys, request
):
    """What the README promises (issue 24, more of item 4's kind): a class in a module beside
    the script works with ``tvo eval`` from the ``tvo`` command, whose import path does not
    hold the current folder, and from another folder (the run records the class's file)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "besidemodels.py").write_text(
        "from tests.helpers import TinySBN\n\nclass Mine(TinySBN):\n    pass\n"
    )
    request.addfinalizer(lambda: sys.modules.pop("besidemodels", None))
    monkeypatch.syspath_prepend(str(project))
    import besidemodels

    data = {"train": binary_data(300, 8), "test": binary_data(50, 8)}
    run = tvo.fit(besidemodels.Mine(), data, "elbo", out=tmp_path / "run", steps=20, **FAST).run
    assert run.config.model_source == str(project / "besidemodels.py")
    del sys.modules["besidemodels"]  # as in a new process
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(project)])
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", str(run.path), "--particles", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "test"
