"""A sweep's plan (``tvo.sweep.plan``): a sweep file into runs (each exactly the settings
``tvo train`` would resolve), their names, and the units of work an executor is given. No run
is trained here."""

import dataclasses

import pytest

from tvo.config import ConfigError, resolve
from tvo.sweep import plan

from tests.helpers import write_sweep

BODY = """
[[experiment]]
name = "first"
seeds = [0, 1, 2]
grid = [{objective = "tvo", partitions = [2, 3]}, {objective = "vimco"}]
[[experiment]]
name = "second"
seeds = [1]
grid = [{objective = "tvo", partitions = 2}, {objective = "rws", epochs = 2.0}]
"""


@pytest.fixture
def loaded(tmp_path, tiny_data):
    return plan.load(write_sweep(tmp_path, tiny_data, BODY))


def test_each_run_is_what_tvo_train_resolves_for_its_grid_point(loaded, tiny_data):
    """first: (2 K + vimco) × 3 seeds = 9 runs; second: its tvo run is one of first's (trained
    once), its rws run is new: 10 distinct runs, each equal to ``resolve`` of its settings."""
    assert len(loaded.experiments["first"]) == 9 and len(loaded.runs) == 10
    assert set(loaded.experiments["second"]) - set(loaded.experiments["first"]) == {
        "discrete_toy-rws-S10-tiny-seed1"
    }
    shared = {"data": tiny_data, "model": "discrete_toy", "eval_every": 10, "eval_particles": 5,
              "log_every": 10, "checkpoint_every": 10, "batch_size": 8}  # fmt: skip
    for seed in (0, 1, 2):
        for point in ({"objective": "tvo", "partitions": 2}, {"objective": "tvo",
                      "partitions": 3}, {"objective": "vimco"}):  # fmt: skip
            expected = resolve(**shared, steps=20, **point, seed=seed)
            assert loaded.runs[plan.run_name(expected)] == expected
    rws = resolve(**shared, objective="rws", epochs=2.0, seed=1)
    assert loaded.runs["discrete_toy-rws-S10-tiny-seed1"] == rws


def test_settings_a_grid_varies_outside_the_name_are_added_to_it(tmp_path, tiny_data):
    """lr is not part of a run's usual name, so a grid over lr alone would make two runs of one
    name with different settings: each gets the setting it differs in (issue #25, item 5)."""
    body = '[[experiment]]\nname = "x"\ngrid = [{objective = "vimco", lr = [0.1, 0.2]}]\n'
    loaded = plan.load(write_sweep(tmp_path, tiny_data, body))
    assert sorted(loaded.runs) == ["discrete_toy-vimco-S10-tiny-lr0.1-seed0",
                                   "discrete_toy-vimco-S10-tiny-lr0.2-seed0"]  # fmt: skip
    assert sorted(c.lr for c in loaded.runs.values()) == [0.1, 0.2]


def test_epochs_in_a_grid_replace_the_default_steps(loaded):
    rws = loaded.runs["discrete_toy-rws-S10-tiny-seed1"]
    assert (rws.steps, rws.epochs) == (None, 2.0)


def test_run_names_carry_the_settings_a_sweep_varies():
    config = resolve(objective="tvo", partitions=5, schedule="moments", beta1=0.05,
                     integration="right", adapt_every=50, seed=3)  # fmt: skip
    assert plan.run_name(config) == "linear_1-tvo-S10-K5-moments-b0.05-right-every50-seed3"
    assert plan.run_name(resolve(objective="vimco", particles=5)) == "linear_1-vimco-S5-seed0"
    assert plan._model_label("models/mine.py:Mixture") == "mine.Mixture"
    assert plan._model_label("package.module:Mixture") == "package.module.Mixture"


def test_a_grid_crosses_its_lists_and_shares_its_scalars():
    points = plan._crossed({"a": [1, 2], "b": "x", "c": [3, 4, 5]})
    assert len(points) == 6 and all(p["b"] == "x" for p in points)
    assert {(p["a"], p["c"]) for p in points} == {(a, c) for a in (1, 2) for c in (3, 4, 5)}


def test_units_are_longest_first_and_groups_hold_only_compatible_runs(loaded, tmp_path):
    """Alone: one run a unit, the most particle-steps first. In groups of 3: every unit's runs
    share their group key (all settings but seed, lr, β1, partition), none is larger than 3,
    every run is in exactly one unit, and the three seeds of each setting train together."""
    out = tmp_path / "runs"
    states = plan.prepare(loaded, out)
    assert set(states.values()) == {"new"}
    names = list(loaded.runs)
    alone = plan.units(loaded, out, names)
    costs = [plan._cost(loaded.runs[u[0]]) for u in alone]
    assert all(len(u) == 1 for u in alone) and costs == sorted(costs, reverse=True)
    from tvo.ensemble import group_key

    grouped = plan.units(loaded, out, names, group=3)
    assert sorted(n for u in grouped for n in u) == sorted(names)
    for unit in grouped:
        assert len(unit) <= 3 and len({group_key(loaded.runs[n]) for n in unit}) == 1
    assert len(grouped) == 4  # tvo K=2, tvo K=3, vimco (3 seeds each) and rws


def test_a_run_given_in_epochs_is_ranked_by_the_steps_its_epochs_make():
    """20 epochs of MNIST's 50,000 training images at batch 100 are 10,000 steps: 10⁷
    particle-images, between 1,000 and 100,000 SBN steps at batch 24 (before, an epoch run
    counted as one step and was always started last)."""
    vae = resolve(model="gaussian", data="mnist", objective="vae", epochs=20.0, batch_size=100)
    short, long = (resolve(objective="vimco", steps=n, batch_size=24) for n in (1000, 100_000))
    assert plan._cost(vae) == 10 * 100 * 10_000
    assert plan._cost(short) < plan._cost(vae) < plan._cost(long)


def test_prepare_refuses_a_folder_holding_other_settings(loaded, tmp_path):
    out = tmp_path / "runs"
    plan.prepare(loaded, out)
    name = "discrete_toy-vimco-S10-tiny-seed0"
    other = dataclasses.replace(loaded.runs[name], lr=0.5)
    changed = plan.Sweep(loaded.path, loaded.evaluation, {name: other}, {"x": [name]})
    with pytest.raises(ConfigError, match=r"settings differ from the sweep's \(lr\)"):
        plan.prepare(changed, out)


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [({"split": "dev"}, "unknown .* split 'dev'"), ({"particles": 0}, "particles must be"),
     ({"images": 2.5}, "images must be an integer")],
)  # fmt: skip
def test_the_evaluation_table_is_checked(tmp_path, evaluation, message):
    with pytest.raises(ConfigError, match=message):
        plan.check_evaluation(tmp_path / "s.toml", {**plan.EVALUATION_DEFAULTS, **evaluation})
