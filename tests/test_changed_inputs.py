"""Issue #25, item 6 and its tracebacks: inputs that change between invocations of a run (a
hand-edited ``config.json``, data replaced under the same path, other tensors given to
``tvo.fit(resume=True)``, a model whose parameters no longer fit the checkpoint) are refused
with a message naming what changed, and the run is left as it was."""

import json

import numpy as np
import pytest
import torch

import tvo
from tvo.cli import main
from tvo.runs import Run, RunError

from tests.helpers import tree_digest

FAST = ["--steps", "20", "--eval-every", "10", "--eval-images", "4", "--eval-particles", "5",
        "--log-every", "10", "--checkpoint-every", "10", "--batch-size", "8",
        "--quiet"]  # fmt: skip


@pytest.fixture
def stopped(tiny_data, tmp_path):
    """A run stopped at its checkpoint of step 10 (of 20)."""
    from tvo.config import resolve
    from tvo.train import train

    config = resolve(data=tiny_data, steps=20, eval_every=10, eval_images=4, eval_particles=5,
                     log_every=10, checkpoint_every=10, batch_size=8)  # fmt: skip
    run = Run.create(tmp_path / "run", config)
    train(run, quiet=True, stop_after=10)
    return run.path


def edit_config(run, **changes):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **changes}))


def refused(args, capsys, *words):
    assert main(args) == 2, args
    error = capsys.readouterr().err
    assert error.startswith(f"tvo {args[0]}: error: ") and "Traceback" not in error, error
    for word in words:
        assert word in error, error
    return error


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"lr": 0.01}, "lr 0.0003 → 0.01"), ({"partitions": 2}, "partitions 5 → 2"),
     ({"seed": 7}, "seed 0 → 7"), ({"particles": 4}, "particles 10 → 4")],
)  # fmt: skip
def test_a_hand_edited_config_is_refused_at_resume_naming_the_change(
    stopped, changes, named, capsys
):
    original = (stopped / "config.json").read_text()
    edit_config(stopped, **changes)
    before = tree_digest(stopped)
    refused(["train", "--resume", str(stopped)], capsys, named, "config.json")
    assert tree_digest(stopped) == before
    # What does not change training may change: a longer run, other evaluations.
    (stopped / "config.json").write_text(original)
    edit_config(stopped, eval_particles=7, checkpoint_every=5)
    assert main(["train", "--resume", str(stopped), "--steps", "30", "--quiet"]) == 0


def test_data_replaced_under_the_same_path_is_refused_at_resume_and_eval(stopped, capsys):
    data = Run.open(stopped).config.data
    arrays = dict(np.load(data))
    arrays["train"] = 1 - arrays["train"]
    np.savez(data, **arrays)
    before = tree_digest(stopped)
    refused(["train", "--resume", str(stopped)], capsys, "other data", data)
    refused(["eval", str(stopped), "--particles", "5"], capsys, "other data")
    assert tree_digest(stopped) == before


def test_a_model_that_no_longer_fits_its_checkpoint_exits_2_not_a_traceback(stopped, capsys):
    state_file = Run.open(stopped).checkpoints()[-1]
    state = torch.load(state_file, weights_only=False)
    state.pop("inputs", None)  # a checkpoint from before the record: the shapes are still checked
    torch.save(state, state_file)
    edit_config(stopped, model_args={"latents": [7]})
    before = tree_digest(stopped)
    for args in (["train", "--resume", str(stopped)], ["eval", str(stopped)]):
        refused(args, capsys, "does not fit the model", "[7", "--overwrite")
    assert tree_digest(stopped) == before


def test_fit_resumed_with_other_tensors_or_another_model_is_refused(tmp_path):
    torch.manual_seed(0)
    x = (torch.rand(40, 6) < 0.5).float()
    settings = {"steps": 20, "checkpoint_every": 10, "eval_every": 10, "eval_images": 4,
                "eval_particles": 5, "log_every": 10, "batch_size": 8, "quiet": True}  # fmt: skip
    out = tmp_path / "fit"
    run = tvo.fit(tvo.models.DiscreteToy(3, 6, seed=0), x, "vimco", out=out,
                  **{**settings, "steps": 10}).run  # fmt: skip
    before = tree_digest(run.path)
    with pytest.raises(RunError, match="other data"):
        tvo.fit(tvo.models.DiscreteToy(3, 6, seed=0), 1 - x, "vimco", out=out, resume=True,
                **settings)  # fmt: skip
    with pytest.raises(RunError, match="does not fit the model"):
        tvo.fit(tvo.models.DiscreteToy(4, 6, seed=0), x, "vimco", out=out, resume=True,
                **settings)  # fmt: skip
    assert tree_digest(run.path) == before
    # The same tensors resume; so does the command line, from the run's data.npz.
    tvo.fit(tvo.models.DiscreteToy(3, 6, seed=0), x, "vimco", out=out, resume=True,
            **{**settings, "steps": 15})  # fmt: skip
    assert main(["train", "--resume", str(out), "--steps", "20", "--quiet"]) == 0
    assert Run.open(out).summary()["steps"] == 20
