"""Issue #25, items 5, 6 and 8 for sweeps: a grid may vary any setting (its runs' names tell
them apart), a changed ``[evaluation]`` evaluates finished runs again, and a stopped sweep's
hint repeats the command that was given."""

import json

import pytest

from tvo import report, sweep
from tvo.cli import main

from tests.helpers import write_sweep as write


def test_a_grid_over_lr_gives_one_folder_per_learning_rate(tmp_path, tiny_data):
    body = """
    [[experiment]]
    name = "lr"
    grid = [{objective = "vimco", lr = [0.001, 0.01]}]
    [[experiment]]
    name = "plain"
    grid = [{objective = "vimco"}, {objective = "vimco", lr = 0.001}]
    """
    loaded = sweep.load(write(tmp_path, tiny_data, body))
    names = {name: config.lr for name, config in loaded.runs.items()}
    assert names == {"discrete_toy-vimco-S10-tiny-lr0.001-seed0": 0.001,
                     "discrete_toy-vimco-S10-tiny-lr0.01-seed0": 0.01,
                     "discrete_toy-vimco-S10-tiny-seed0": 3e-4}  # fmt: skip
    # The run at lr = 0.001 is shared by both experiments; the default keeps its plain name.
    assert loaded.experiments["plain"] == [
        "discrete_toy-vimco-S10-tiny-seed0",
        "discrete_toy-vimco-S10-tiny-lr0.001-seed0",
    ]


def test_any_setting_a_grid_varies_names_its_runs(tmp_path, tiny_data):
    body = """
    [[experiment]]
    name = "a"
    grid = [{objective = "vimco", batch_size = [4, 8], model_args = [{num_latents = 2},
            {num_latents = 3}]}]
    """
    loaded = sweep.load(write(tmp_path, tiny_data, body))
    assert len(loaded.runs) == 4 and "discrete_toy-vimco-S10-tiny-model_argsnum_latents=2-" \
        "batch_size4-seed0" in loaded.runs  # fmt: skip


@pytest.fixture
def one_run(tmp_path, tiny_data):
    """A finished sweep of one run: (sweep file, runs folder)."""
    path = write(tmp_path, tiny_data, '[[experiment]]\nname = "a"\ngrid = [{objective = "vimco"}]')
    out = tmp_path / "runs"
    finish(sweep.load(path), out)
    return path, out


def finish(loaded, out):
    """What a sweep's worker does, in this process (a worker process takes seconds to start)."""
    states = sweep.prepare(loaded, out)
    assert sweep.work([out / name for name in states], loaded.evaluation) == 0


def test_a_changed_evaluation_evaluates_finished_runs_again(one_run, capsys):
    path, out = one_run
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    before = json.loads((folder / "final.json").read_text())
    assert before["particles"] == 40 and before["evaluation"]["particles"] == 40
    path.write_text(path.read_text().replace("particles = 40", "particles = 7"))
    changed = sweep.load(path)
    # Until the sweep runs again, the report does not show the old numbers under the new file.
    assert "(0 of 1 runs finished)" in report.document(changed, out)
    finish(changed, out)
    assert "evaluated again" in capsys.readouterr().out
    after = json.loads((folder / "final.json").read_text())
    assert after["particles"] == 7 and after["step"] == before["step"]
    assert "(1 of 1 runs finished)" in report.document(changed, out)


def test_a_stopped_sweep_prints_the_command_that_was_given(tmp_path, tiny_data, monkeypatch,
                                                           capsys):  # fmt: skip
    path = write(tmp_path, tiny_data, '[[experiment]]\nname = "a"\ngrid = [{objective = "vimco"}]')

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tvo.sweep.run", stopped)
    out = tmp_path / "my runs"
    assert main(["sweep", str(path), "--out", str(out), "--group", "4", "--jobs", "1"]) == 130
    hint = capsys.readouterr().err
    assert f"continue with: tvo sweep {path} --out '{out}' --group 4 --jobs 1" in hint, hint
