"""Ray Tune's trainable (``tvo.tune``) on a real Ray of 2 CPUs (``ray_cluster``): a tiny ASHA
search whose reported metrics are the rows of each trial's run folder and whose best trial is
the run with the best validation log p̂(x); a Tuner interrupted and restored, and a trial whose
worker is killed and retried, end as an uninterrupted run, bit for bit; a trial's torch threads
are its CPUs; bad settings are the errors of ``tvo train``; and the example and the snippet of
docs/tune.md run."""

import math
import os
import re
import runpy
import signal
import sys
from pathlib import Path

import pytest
import torch

import tvo.tune
from tvo.config import ConfigError
from tvo.runs import Run
from tvo.train import train

ROOT = Path(__file__).resolve().parents[1]
STEPS, EVERY = 40, 10


@pytest.fixture(autouse=True)
def signal_handlers():
    """Tune's ``Tuner.fit`` leaves its own SIGINT and SIGUSR1 handlers installed (Ray 2.60: a
    later Ctrl-C only sets the finished run's flag); the tests after these need Python's."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGUSR1)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def base_settings(data, steps=STEPS):
    """A tiny run: the enumerable toy model on the 4×4 images, an evaluation every 10 steps."""
    return {"data": data, "model": "discrete_toy", "batch_size": 8, "steps": steps,
            "eval_every": EVERY, "log_every": EVERY, "checkpoint_every": EVERY,
            "eval_particles": 20, "eval_images": 16}  # fmt: skip


def tuner(base, param_space, storage, name="search", callbacks=None, failure_config=None,
          **tune_config):  # fmt: skip
    from ray import tune

    trainable = tune.with_parameters(tvo.tune.trainable, base=base)
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=tvo.tune.METRIC, mode=tvo.tune.MODE, **tune_config),
        run_config=tune.RunConfig(
            storage_path=str(storage),
            name=name,
            verbose=0,
            callbacks=callbacks,
            failure_config=failure_config,
        ),
    )


def evaluations(folder):
    """The evaluation rows of a run folder's metrics.csv, without their wall-clock seconds."""
    return [{k: v for k, v in row.items() if k != "seconds"}
            for row in Run.open(folder).read_metrics() if row["log_px"] is not None]  # fmt: skip


def reported(result):
    """The rows a trial reported to Tune, in metrics.csv's columns (seconds left out)."""
    frame = result.metrics_dataframe
    columns = [c for c in Run.open(result.checkpoint.path).read_metrics()[0] if c != "seconds"]
    return [{c: row[c] for c in columns} for row in frame.to_dict("records")]


def test_an_asha_search_reports_each_trials_run_folder(tiny_data, ray_cluster, tmp_path):
    """Four trials over β1 (log-uniform) and K under ASHA: every row a trial reported is the
    evaluation row of its run folder (its last Tune checkpoint), to the last bit; that folder
    was trained with the trial's β1 and K and stands at the last reported step (finished, or
    stopped by ASHA with a checkpoint to resume from); and the best result is the trial whose
    run has the highest final validation log p̂(x)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    space = {"beta1": tune.loguniform(1e-3, 0.5), "partitions": tune.choice([2, 3]), "seed": 0}
    asha = ASHAScheduler(time_attr="step", max_t=STEPS, grace_period=EVERY, reduction_factor=2)
    grid = tuner(base_settings(tiny_data), space, tmp_path, num_samples=4, scheduler=asha).fit()
    assert len(grid) == 4 and not grid.errors
    finals = {}
    for result in grid:
        folder = Path(result.checkpoint.path)
        config = Run.open(folder).config
        assert (config.beta1, config.partitions) == (result.config["beta1"],
                                                     result.config["partitions"])  # fmt: skip
        rows = evaluations(folder)
        assert reported(result) == rows
        step = result.metrics["step"]
        assert step == rows[-1]["step"] == Run(folder).latest_step()
        assert len(Run(folder).checkpoints()) == 1  # the one of that step
        assert Run(folder).status() == ("evaluate" if step == STEPS else "resume")
        finals[folder] = rows[-1]["log_px"]
    best = grid.get_best_result()
    assert finals[Path(best.checkpoint.path)] == max(finals.values())
    assert best.metrics["log_px"] == max(finals.values())


def test_a_restored_tuner_ends_as_an_uninterrupted_run(tiny_data, ray_cluster, tmp_path,
                                                       one_thread):  # fmt: skip
    """A Tuner interrupted (SIGUSR1, Tune's signal to stop) after its trial's second report, then
    ``Tuner.restore``: the trial resumes from its Tune checkpoint (it does not start over) and
    ends with the metrics and parameters of the same run trained without interruption by
    ``tvo.train.train`` at one thread, bit for bit."""
    from ray import tune

    class Interrupt(tune.Callback):  # kept in the Tuner's state: it acts once, by a file
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result["training_iteration"] == 2 and not once.exists():
                once.touch()
                os.kill(os.getpid(), signal.SIGUSR1)

    once = tmp_path / "interrupted"

    base = base_settings(tiny_data, steps=60)
    space = {"beta1": 0.05, "partitions": 3, "schedule": "moments"}  # a schedule with state
    first = tuner(base, space, tmp_path, name="restored", callbacks=[Interrupt()])
    stopped = first.fit()[0]
    assert once.exists() and stopped.metrics["step"] < 60  # interrupted before the end

    restored = tune.Tuner.restore(str(tmp_path / "restored"), tune.with_resources(
        tune.with_parameters(tvo.tune.trainable, base=base), {"cpu": 1}),
        resume_unfinished=True).fit()[0]  # fmt: skip
    assert restored.metrics["step"] == 60 and not restored.error
    assert restored.metrics["training_iteration"] == 60 // EVERY  # each evaluation once
    assert restored.metrics["iterations_since_restore"] < 60 // EVERY  # not started over

    assert_uninterrupted(Path(restored.checkpoint.path), tvo.tune.settings(space, base), tmp_path)


def test_a_trial_whose_worker_is_killed_resumes_from_its_tune_checkpoint(
    tiny_data, ray_cluster, tmp_path, one_thread
):
    """SIGKILL of the trial's worker process after its second report, with
    ``FailureConfig(max_failures=1)``: Tune starts the trial again from its last Tune
    checkpoint and it ends as the uninterrupted run, bit for bit."""
    from ray import tune

    class Kill(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result["training_iteration"] == 2 and not killed:
                killed.append(result["pid"])
                os.kill(result["pid"], signal.SIGKILL)

    killed: list[int] = []
    base = base_settings(tiny_data, steps=60)
    space = {"beta1": 0.05, "partitions": 3, "schedule": "moments"}
    retried = tuner(base, space, tmp_path, name="killed", callbacks=[Kill()],
                    failure_config=tune.FailureConfig(max_failures=1)).fit()[0]  # fmt: skip
    assert killed and killed[0] != os.getpid() and retried.metrics["pid"] != killed[0]
    assert retried.metrics["step"] == 60 and not retried.error
    assert retried.metrics["training_iteration"] == 60 // EVERY  # each evaluation once
    assert_uninterrupted(Path(retried.checkpoint.path), tvo.tune.settings(space, base), tmp_path)


def assert_uninterrupted(folder, config, tmp_path):
    """The run in ``folder`` has the evaluations and final parameters and partition of
    ``config`` trained without interruption by ``tvo.train.train``, bit for bit."""
    reference = Run.create(tmp_path / "reference", config)
    train(reference, quiet=True)
    assert evaluations(folder) == evaluations(reference.path)
    ours, theirs = Run(folder).load_checkpoint(), reference.load_checkpoint()
    assert ours["step"] == theirs["step"] == config.steps
    for name, tensor in theirs["model"].items():
        assert torch.equal(ours["model"][name], tensor), name
    assert torch.equal(ours["partition"], theirs["partition"])


def test_a_trials_torch_threads_are_its_cpus(tiny_data, ray_cluster, tmp_path):
    """A trial given 2 CPUs trains with 2 torch threads, whatever the process had before."""
    from ray import tune

    base = base_settings(tiny_data, steps=EVERY)

    def probe(config):
        torch.set_num_threads(5)
        tvo.tune.trainable(config, base)
        tune.report({"threads": torch.get_num_threads(), "log_px": 0.0})

    storage = tune.RunConfig(storage_path=str(tmp_path), verbose=0)
    grid = tune.Tuner(tune.with_resources(probe, {"cpu": 2}), run_config=storage).fit()
    assert grid[0].metrics["threads"] == 2


def test_bad_settings_are_the_errors_of_tvo_train(tiny_data):
    base = base_settings(tiny_data)
    with pytest.raises(ConfigError, match=r"Tune config: unknown setting 'beta'; valid: .*beta1"):
        tvo.tune.settings({"beta": 0.1}, base)
    with pytest.raises(ConfigError, match=r"beta1 must be a number > 0.0 and < 1.0, got 2.0"):
        tvo.tune.settings({"beta1": 2.0}, base)
    with pytest.raises(ConfigError, match="beta1 does not apply to objective 'vimco'"):
        tvo.tune.settings({"objective": "vimco", "beta1": 0.1}, base)
    config = tvo.tune.settings({"beta1": 0.02, "partitions": 5}, {**base, "beta1": 0.3})
    assert (config.beta1, config.partitions, config.steps) == (0.02, 5, STEPS)  # Tune's win


def test_the_example_runs_an_asha_search(tiny_data, ray_cluster, tmp_path, monkeypatch, capsys):
    """examples/tune_asha.py at tiny settings: two trials, and it prints the best trial's
    settings, its validation log p̂(x) and its run folder."""
    example = ROOT / "examples" / "tune_asha.py"
    argv = [str(example), "--data", tiny_data, "--model", "discrete_toy", "--steps", "20",
            "--eval-every", "10", "--samples", "2", "--batch-size", "8", "--eval-images", "16",
            "--storage", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    best = r"best: beta1 = (\S+), K = (\d+): valid log p\(x\) = (\S+) at step 20 \((.+)\)"
    found = re.search(best, out)
    assert found, out
    folder = Path(found.group(4))
    assert evaluations(folder)[-1]["log_px"] == float(found.group(3))
    config = Run.open(folder).config
    assert math.isclose(config.beta1, float(found.group(1)), rel_tol=1e-3)
    assert config.partitions == int(found.group(2))


def test_the_snippet_of_the_docs_runs(tiny_data, ray_cluster, tmp_path, monkeypatch):
    """The code of docs/tune.md, with the tiny data and length: it trains and loads the best
    run."""
    code = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "tune.md").read_text(), re.S)
    code = code.group(1)
    for old, new in (('"binarized-mnist"', repr(tiny_data)), ('"linear_1"', '"discrete_toy"'),
                     ("steps, every = 2_000, 250", "steps, every = 20, 10"),
                     ("num_samples=8", "num_samples=1")):  # fmt: skip
        assert old in code, old
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code, namespace)
    trained = namespace["trained"]
    assert trained.step == 20 and trained.config.data == tiny_data
