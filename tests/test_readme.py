"""The README's Python blocks run as written (with fewer steps, into a temporary folder) and do
what they say: the model learns, the run loads back, the adaptive schedule moves."""

import re
import sys
import types
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> dict[str, str]:
    """The README's Python blocks by what they do."""
    found = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return {
        "fit": next(b for b in found if "tvo.fit(" in b),
        "load": next(b for b in found if "tvo.load(" in b),
        "loop": next(b for b in found if "optimiser.step()" in b and "schedule.update" not in b),
        "adaptive": next(b for b in found if "schedule.update" in b),
    }


def module(name="readme_example"):
    """A module to run the blocks in, so that their classes can be pickled (as in a script)."""
    namespace = types.ModuleType(name)
    sys.modules[name] = namespace
    return namespace


def test_readme_quickstart_runs_and_learns(capsys, tmp_path):
    code = blocks()
    assert "steps=2000" in code["fit"] and 'out="runs/my-sbn"' in code["fit"]
    torch.manual_seed(0)
    namespace = module()
    run = tmp_path / "my-sbn"
    fit = code["fit"].replace("steps=2000", "steps=300").replace('"runs/my-sbn"', repr(str(run)))
    fit = fit.replace("eval_every=500", "eval_every=500, eval_particles=50")  # a faster test
    exec(fit, namespace.__dict__)
    log_px = float(re.search(r"tensor\((-?[0-9.]+)", capsys.readouterr().out).group(1))
    # 64 independent pixels with p = 0.3 have entropy 64·H(0.3) = 39.09 nats; an untrained model
    # (all logits 0) scores 64·log 2 = 44.36. 300 steps must close most of that gap; the mean
    # over 100 images has a standard deviation of about 0.34 nats around −39.09.
    assert -40.5 < log_px < -38.0
    exec(code["load"].replace('"runs/my-sbn"', repr(str(run))), namespace.__dict__)
    again = float(re.search(r"tensor\((-?[0-9.]+)", capsys.readouterr().out).group(1))
    assert -40.5 < again < -38.0  # the loaded model, on the run's validation data
    assert namespace.x.shape == (16, 64) and namespace.trained.step == 300


def test_readme_own_loop_and_adaptive_schedule_loop(capsys, tmp_path):
    """The bare loop, then the adaptive one (they reuse the first block's model class and data):
    with the moments schedule moving every 100 updates, the last of 300 steps has just moved
    it."""
    code = blocks()
    assert "range(2000)" in code["loop"] and "range(2000)" in code["adaptive"]
    torch.manual_seed(0)
    namespace = module()
    run = repr(str(tmp_path / "r"))
    fit = code["fit"].replace("steps=2000", "steps=10").replace('"runs/my-sbn"', run)
    fit = fit.replace("eval_every=500", "eval_every=500, eval_particles=10")
    exec(fit, namespace.__dict__)
    exec(code["loop"].replace("range(2000)", "range(10)"), namespace.__dict__)
    exec(code["adaptive"].replace("range(2000)", "range(300)"), namespace.__dict__)
    state, objective = namespace.state, namespace.objective
    start = objective.schedule.init().partition
    assert state.count == 0 and not torch.equal(state.partition, start)
    assert state.partition[0] == 0 and state.partition[-1] == 1
    assert (state.partition[1:] > state.partition[:-1]).all()
