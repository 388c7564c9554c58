"""The ``tvo`` command end to end on a tiny dataset, resume equivalence, and bad input."""

import json
import math
import sys

import matplotlib.image
import pytest
import torch

import tvo
from tvo.cli import main
from tvo.runs import Run
from tvo.train import train

from tests.helpers import tree_digest

FAST = ["--steps", "40", "--eval-every", "20", "--eval-images", "8", "--eval-particles", "20",
        "--log-every", "10", "--checkpoint-every", "20", "--batch-size", "8",
        "--quiet"]  # fmt: skip


def test_train_eval_compare_plot(tiny_data, tmp_path, capsys):
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--data", tiny_data, "--out", str(run_a), *FAST]) == 0
    assert main(["train", "--data", tiny_data, "--out", str(run_b), "--objective", "vimco",
                 "-S", "5", *FAST]) == 0  # fmt: skip
    for run in (run_a, run_b):
        assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.csv", "summary.json",
                                                   "checkpoints", "events"}  # fmt: skip
        assert any((run / "events").iterdir())
    config = json.loads((run_a / "config.json").read_text())
    assert config["data"] == tiny_data and config["particles"] == 10 and config["seed"] == 0
    capsys.readouterr()

    assert main(["eval", str(run_a), "--json", "--particles", "300", "--limit", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"log_px", "kl", "elbo", "tvo_lower", "tvo_upper", "num_images",
                           "particles"}  # fmt: skip
    assert result["num_images"] == 10 and result["particles"] == 300
    assert result["elbo"] <= result["tvo_lower"] <= result["log_px"] <= result["tvo_upper"]
    assert result["kl"] >= 0

    assert main(["compare", str(run_a), str(run_b)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and "tvo" in table[1] and "vimco" in table[2] and "40/40" in table[1]

    out = tmp_path / "plots"
    assert main(["plot", str(run_a), str(run_b), "--out", str(out), "--images", "8",
                 "--particles", "50"]) == 0  # fmt: skip
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["1-a-integrand.png", "1-a-samples.png", "2-b-integrand.png",
                    "2-b-samples.png", "learning_curves.png"]  # fmt: skip
    for png in out.glob("*.png"):
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0


def test_interrupted_and_resumed_run_ends_exactly_as_an_uninterrupted_one(tiny_data, tmp_path):
    args = ["--data", tiny_data, *FAST, "--steps", "60"]
    assert main(["train", "--out", str(tmp_path / "straight"), *args]) == 0
    straight = Run.open(tmp_path / "straight")

    # The same settings, interrupted after step 33 (between checkpoints and log rows) ...
    resumed = Run.create(tmp_path / "resumed", straight.config)
    summary = train(resumed, quiet=True, stop_after=33)
    assert summary["steps"] == 33 and not (resumed.path / "summary.json").exists()
    assert resumed.load_checkpoint()["step"] == 33
    # ... then resumed from the command line, with a fresh model, optimiser and generators.
    torch.manual_seed(12345)
    assert main(["train", "--resume", str(resumed.path), "--quiet"]) == 0

    final = {run: run.load_checkpoint() for run in (straight, resumed)}
    assert final[straight]["step"] == final[resumed]["step"] == 60
    for name, tensor in final[straight]["model"].items():
        assert torch.equal(tensor, final[resumed]["model"][name]), name

    def without_time(run):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in run.read_metrics()]

    assert without_time(resumed) == without_time(straight)
    assert [row["step"] for row in resumed.read_metrics()] == list(range(10, 61, 10))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "linear_9"], "unknown model 'linear_9'"),
        (["--objective", "elbow"], "unknown objective 'elbow'"),
        (["--data", "cifar"], "unknown dataset 'cifar'"),
        (["-S", "0"], "particles (S) must be an integer ≥ 2, got 0"),
        (["-K", "0"], "partitions (K) must be an integer ≥ 1, got 0"),
        (["--beta1", "1.5"], "beta1 must be a number > 0.0 and < 1.0, got 1.5"),
        (["--batch-size", "100"], "batch size 100 is larger than the 64 training images"),
        (["--objective", "vae"], "objective 'vae' is pathwise (reparameterised), but model "
                                 "'linear_1' has discrete latents"),
        (["--objective", "vimco", "--schedule", "moments"],
         "schedule does not apply to objective 'vimco'"),
        (["--schedule", "linear", "--beta1", "0.5"], "beta1 does not apply to schedule 'linear'"),
        (["--steps", "10", "--epochs", "1"], "give exactly one of steps and epochs"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--config", "MISSING"], "missing.toml: no such file"),
        (["--config", "BAD"], "is not valid TOML"),
        (["--config", "UNKNOWN"], "unknown setting 'partitons'"),
    ],
)  # fmt: skip
def test_bad_train_input_exits_2_before_any_work(args, message, tiny_data, tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("objective = [unclosed\n")
    (tmp_path / "unknown.toml").write_text("partitons = 3\n")
    paths = {"MISSING": "missing.toml", "BAD": "bad.toml", "UNKNOWN": "unknown.toml"}
    args = [str(tmp_path / paths[a]) if a in paths else a for a in args]
    out = tmp_path / "run"
    data = [] if "--data" in args else ["--data", tiny_data]
    assert main(["train", "--out", str(out), *data, *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("tvo train: error: ") and message in error
    assert not out.exists()


def test_existing_runs_are_never_touched_by_bad_input(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), *FAST]) == 0
    before = tree_digest(run)
    cases = [
        (["train", "--data", tiny_data, "--out", str(run), *FAST], "already holds a run"),
        (["train", "--data", tiny_data, "--out", str(run), "-S", "0"], "particles (S)"),
        (["train", "--resume", str(run), "-S", "5"], "--resume continues a run with its own"),
        (["train", "--resume", str(tmp_path)], "is not a run folder"),
        (["train", "--resume", str(tmp_path / "nowhere")], "no such run folder"),
        (["eval", str(tmp_path)], "is not a run folder"),
        (["eval", str(run), "--particles", "0"], "--particles must be ≥ 1, got 0"),
        (["eval", str(run), "--split", "dev"], "unknown split 'dev'"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        assert message in capsys.readouterr().err, args
    assert tree_digest(run) == before
    # --overwrite replaces it.
    assert main(["train", "--data", tiny_data, "--out", str(run), *FAST, "--steps", "20",
                 "--overwrite"]) == 0  # fmt: skip
    assert json.loads((run / "summary.json").read_text())["steps"] == 20


def test_a_length_below_the_steps_done_is_refused_and_leaves_the_run_as_it_was(
    tiny_data, tmp_path, capsys
):
    """``--resume RUN --steps N`` (or ``--epochs``) shorter than the run: refused before the
    run's config is rewritten or its summary removed (before: both were, and the run then
    refused to resume at all without a longer length)."""
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), *FAST]) == 0
    before = tree_digest(run)
    for length in (["--steps", "10"], ["--epochs", "1"]):  # 64 images, batch 8: 8 steps
        assert main(["train", "--resume", str(run), *length]) == 2, length
        assert "has done 40 steps, more than the" in capsys.readouterr().err, length
        assert tree_digest(run) == before, length
    assert main(["train", "--resume", str(run), "--steps", "60", "--quiet"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 60


def test_a_folder_that_is_not_a_run_is_refused(tiny_data, tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    assert main(["train", "--data", tiny_data, "--out", str(folder), *FAST]) == 2
    assert "not empty and is not a run" in capsys.readouterr().err
    assert (folder / "thesis.tex").read_text() == "precious"


def test_help_describes_every_flag_with_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--model", "--objective", "--particles", "--partitions", "--beta1", "--schedule",
                 "--integration", "--data", "--batch-size", "--lr", "--steps", "--epochs",
                 "--seed", "--device", "--out", "--eval-every", "--eval-particles", "--config",
                 "--preset", "--resume", "--quiet"):  # fmt: skip
        assert flag in text
    assert "(default: linear_1)" in text and "particles per data point (default: 10)" in text
    assert "(default: None)" not in text


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_with_a_checkpoint_and_says_how_to_resume(signal_name, tiny_data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    command = [sys.executable, "-m", "tvo.cli", "train", "--data", tiny_data, "--out", str(run),
               "--steps", "1000000", "--batch-size", "8", "--eval-every", "100000",
               "--checkpoint-every", "50", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(run.glob("checkpoints/*.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the first checkpoint means the loop, and its handlers, are running
    os.kill(process.pid, getattr(signal, signal_name))
    out, err = process.communicate(timeout=60)
    # a stopped run is not a finished one: 128 + the signal's number (130, 143), as shells do
    assert process.returncode == 128 + getattr(signal, signal_name), err
    assert f"Continue with: tvo train --resume {run}" in out
    state = Run.open(run).load_checkpoint()
    assert 0 < state["step"] < 1_000_000
    assert all(row["step"] <= state["step"] for row in Run.open(run).read_metrics())


MIXBERN = '''
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, OneHotCategorical
import tvo


class MixBern(tvo.Model):
    """A mixture of Bernoullis, its component a one-hot latent."""

    def __init__(self, pixels, components=3):
        super().__init__()
        self.prior_logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(0.1 * torch.randn(components, pixels))
        self.encoder = nn.Linear(pixels, components)

    def prior(self):
        return OneHotCategorical(logits=self.prior_logits)

    def likelihood(self, z):
        return Independent(Bernoulli(logits=z @ self.means), 1)

    def guide(self, x):
        return OneHotCategorical(logits=self.encoder(x))
'''


def test_a_model_of_your_own_trains_resumes_evaluates_plots_and_sweeps(
    tiny_data, tmp_path, monkeypatch, capsys
):
    project = tmp_path / "project"
    project.mkdir()
    (project / "mymodels.py").write_text(MIXBERN)
    monkeypatch.chdir(project)
    # another test's mymodels.py may be imported already: this one is the user's module now
    monkeypatch.delitem(sys.modules, "mymodels", raising=False)
    spec = ["--model", "mymodels:MixBern", "--model-args", '{"components": 4}']
    assert main(["train", *spec, "--data", tiny_data, "--out", "run", *FAST]) == 0
    config = json.loads((project / "run" / "config.json").read_text())
    assert config["model_args"] == {"components": 4}
    assert config["model_source"] == str(project / "mymodels.py")
    assert main(["train", "--resume", "run", "--steps", "60", "--quiet"]) == 0
    assert json.loads((project / "run" / "summary.json").read_text())["steps"] == 60
    assert main(["train", "--resume", "run", "-S", "5"]) == 2
    assert "only --steps or --epochs may grow" in capsys.readouterr().err
    assert main(["plot", "run", "--images", "8", "--particles", "20"]) == 0
    sweep_file = project / "sweep.toml"
    sweep_file.write_text(f'[evaluation]\nparticles = 20\n[defaults]\ndata = "{tiny_data}"\n'
                          'steps = 10\nbatch_size = 8\neval_every = 10\neval_particles = 5\n'
                          '[defaults.model]\nname = "mymodels:MixBern"\ncomponents = 2\n'
                          '[[experiment]]\nname = "mix"\nseeds = [0]\n'
                          'grid = [{objective = ["elbo", "rws"]}]\n')  # fmt: skip
    assert main(["sweep", str(sweep_file), "--out", "swept", "--jobs", "1"]) == 0
    assert len(list((project / "swept").glob("*/final.json"))) == 2
    monkeypatch.chdir(tmp_path)  # elsewhere: the run finds its model beside the recorded file
    capsys.readouterr()
    assert main(["eval", "project/run", "--json", "--particles", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 60
    sys.modules.pop("mymodels", None)
    (project / "mymodels.py").unlink()
    assert main(["eval", "project/run", "--particles", "30"]) == 2
    assert "cannot import module 'mymodels'" in capsys.readouterr().err


def test_version_and_threads(capsys, tiny_data, tmp_path):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"tvo {tvo.__version__}"
    assert main(["train", "--data", tiny_data, "--out", str(tmp_path / "r"), "--threads", "0"]) == 2
    assert "--threads must be an integer ≥ 1 or auto, got 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    before = torch.get_num_threads()
    try:
        assert main(["train", "--data", tiny_data, "--out", str(tmp_path / "r"), *FAST,
                     "--steps", "10", "--threads", "1"]) == 0  # fmt: skip
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_python_m_tvo_is_the_command():
    import subprocess

    done = subprocess.run([sys.executable, "-m", "tvo", "--version"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == f"tvo {tvo.__version__}"


def test_eval_by_ais_and_bdmc(tiny_data, tmp_path, capsys, one_thread):
    """``tvo eval --method ais|bdmc`` on a discrete run (the flip kernel) and a continuous one
    (HMC): the IS keys, plus method, steps, chains and stderr; BDMC adds its upper bound."""
    runs = {"discrete_toy": tmp_path / "toy", "linear_gaussian": tmp_path / "gauss"}
    for model, run in runs.items():
        assert main(["train", "--data", tiny_data, "--out", str(run), "--model", model,
                     *FAST, "--steps", "20"]) == 0  # fmt: skip
    capsys.readouterr()
    keys = {"log_px", "kl", "elbo", "tvo_lower", "tvo_upper", "num_images", "particles", "split",
            "seconds", "step", "partition", "method", "steps", "chains", "stderr"}  # fmt: skip
    for model, run in runs.items():
        args = ["eval", str(run), "--json", "--ais-steps", "15", "--chains", "3", "--limit", "6"]
        assert main([*args, "--method", "ais", "--leapfrog", "2"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert set(result) >= keys and result["method"] == "ais"
        assert (result["steps"], result["chains"], result["num_images"]) == (15, 3, 6)
        assert result["stderr"] > 0 and 0 < result["acceptance"] <= 1
        assert ("HMC" in result["kernel"]) == (model == "linear_gaussian")
        sigmoid = result
        assert main([*args, "--method", "bdmc", "--schedule", "run"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert set(result) >= {*keys, "upper", "upper_stderr", "gap", "gap_stderr"}
        assert result["split"] == "simulated" and result["schedule"] == "run"
        assert result["gap"] == pytest.approx(result["upper"] - result["log_px"])
        assert result["gap_stderr"] > 0
        # the adaptive schedule: its pilot's evaluations count, and it names the eval's file
        assert main([*args, "--method", "ais", "--leapfrog", "2", "--schedule", "adaptive"]) == 0
        adaptive = json.loads(capsys.readouterr().out)
        assert adaptive["schedule"] == "adaptive" and math.isfinite(adaptive["log_px"])
        assert adaptive["evaluations"] > sigmoid["evaluations"]
        files = sorted((run / "evaluations").glob("test-ais-T15-C3-first6-*.json"))
        assert len(files) == 2  # one per schedule: neither replaced the other
    assert main(["eval", str(runs["discrete_toy"]), "--method", "ais", "--ais-steps", "5",
                 "--chains", "2", "--limit", "4"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "ais, 4 test images, T = 5 steps, 2 chains" in out and "log p(x)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "ais", "--ais-steps", "0"], "--ais-steps must be ≥ 1, got 0"),
        (["--method", "ais", "--chains", "0"], "--chains must be ≥ 1, got 0"),
        (["--method", "bdmc", "--leapfrog", "0"], "--leapfrog must be ≥ 1, got 0"),
        (["--method", "ais", "--kernel", "hmc"], "kernel 'hmc' needs continuous latents, and SBN"),
        (["--method", "ais", "--chains", "100000000000"], "ais with 100000000000 chains for 16"),
        (["--method", "bdmc", "--ais-steps", "10000000000000"], "would need about"),
    ],
)
def test_bad_ais_input_exits_2(args, message, tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", tiny_data, "--out", str(run), *FAST, "--steps", "10"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_relative_data_path_is_recorded_absolute(tiny_data, tmp_path, monkeypatch, capsys):
    """``--data tiny.npz`` given from the data's folder: config.json records the absolute path,
    so ``tvo eval``, ``plot`` and ``--resume`` work from another folder; a run that recorded the
    relative path (tvo 0.1) still resumes from the folder it was trained in."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", "tiny.npz", "--model", "discrete_toy", *FAST, "--threads", "1"]
    assert main([*args, "--out", "run"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == tiny_data
    monkeypatch.chdir(elsewhere)
    run = str(tmp_path / "run")
    assert main(["eval", run, "--particles", "5", "--limit", "4", "--threads", "1"]) == 0
    assert main(["plot", run, "--out", "figures", "--threads", "1"]) == 0
    assert main(["train", "--resume", run, "--steps", "60", "--quiet", "--threads", "1"]) == 0
    assert Run.open(run).summary()["steps"] == 60
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["data"] = "tiny.npz"  # as tvo 0.1 recorded it
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", run, "--steps", "80", "--quiet", "--threads", "1"]) == 0
    capsys.readouterr()


def test_a_model_file_given_relative_works_from_other_folders(tiny_data, tmp_path, monkeypatch,
                                                              capsys, request):  # fmt: skip
    """Issue 24, item 4: ``--model work/relmodels.py:MixBern`` trained from one folder is
    evaluated from another (the run recorded the file's absolute path); with the file gone the
    error names both places."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "relmodels.py").write_text(MIXBERN)
    request.addfinalizer(lambda: sys.modules.pop("relmodels", None))  # imported by its path
    monkeypatch.chdir(tmp_path)
    args = ["--model", "work/relmodels.py:MixBern", "--data", tiny_data, "--out", "run"]
    assert main(["train", *args, *FAST]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", "../run", "--json", "--particles", "10", "--limit", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 40
    (tmp_path / "work" / "relmodels.py").unlink()
    sys.modules.pop("relmodels", None)  # as a new process would be
    assert main(["eval", "../run", "--particles", "10", "--limit", "4"]) == 2
    error = capsys.readouterr().err
    assert "work/relmodels.py: no such file here" in error and str(tmp_path / "work") in error
