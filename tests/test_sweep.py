"""``tvo sweep`` on a tiny dataset: every run once, finished runs skipped, unfinished ones
resumed to the same result, bad files refused before any run starts."""

import dataclasses
import json
import textwrap

import pytest

from tvo import sweep
from tvo.cli import main
from tvo.config import ConfigError
from tvo.runs import Run
from tvo.train import train

from tests.helpers import write_sweep as write


def test_every_run_is_trained_once_and_evaluated(finished):
    loaded, out = finished
    # sbn's tvo K=2 is also in sbn-grid: 16 grid points, 14 distinct runs
    assert len(loaded.runs) == 14
    assert set(loaded.experiments["sbn"]) & set(loaded.experiments["sbn-grid"])
    for name in loaded.runs:
        final = json.loads((out / name / "final.json").read_text())
        assert final["num_images"] == 16 and final["particles"] == 40 and final["step"] == 20
        assert final["elbo"] <= final["tvo_lower"] <= final["log_px"] <= final["tvo_upper"]


def test_a_second_sweep_skips_finished_runs(finished):
    loaded, out = finished
    before = {n: (out / n / "final.json").stat().st_mtime_ns for n in loaded.runs}
    assert sweep.run(loaded, out, jobs=2, quiet=True) == 0
    assert before == {n: (out / n / "final.json").stat().st_mtime_ns for n in loaded.runs}
    invocations = json.loads((out / "sweep.json").read_text())["invocations"]
    assert len(invocations) == 2 and invocations[1]["seconds"] < invocations[0]["seconds"]


def test_an_unfinished_run_is_resumed_to_the_uninterrupted_result(finished, tmp_path):
    loaded, out = finished
    name = "discrete_toy-vimco-S10-tiny-seed1"
    single = sweep.Sweep(loaded.path, loaded.evaluation, {name: loaded.runs[name]}, {"x": [name]})
    sweep.prepare(single, tmp_path)
    assert train(Run.open(tmp_path / name), quiet=True, stop_after=10)["steps"] == 10
    assert sweep.status(tmp_path / name) == "resume"
    assert sweep.run(single, tmp_path, jobs=1, quiet=True) == 0
    resumed = json.loads((tmp_path / name / "final.json").read_text())
    straight = json.loads((out / name / "final.json").read_text())
    assert resumed["log_px"] == straight["log_px"] and resumed["kl"] == straight["kl"]
    assert [r["step"] for r in Run.open(tmp_path / name).read_metrics()] == [10, 20]


def test_a_run_folder_with_other_settings_is_refused_and_left_alone(finished, tmp_path):
    loaded, out = finished
    name = next(iter(loaded.runs))
    other = dataclasses.replace(loaded.runs[name], lr=0.5)
    changed = sweep.Sweep(loaded.path, loaded.evaluation, {name: other}, {"x": [name]})
    before = (out / name / "config.json").read_bytes()
    with pytest.raises(ConfigError, match=r"settings differ from the sweep's \(lr\)"):
        sweep.prepare(changed, out)
    assert (out / name / "config.json").read_bytes() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[experiment]]\nname = "a"\ngrid = [{objectiv = "tvo"}]',
         r"experiment 'a'.*unknown setting 'objectiv'"),
        ('[[experiment]]\nname = "a"\ngrid = [{objective = ["tvo", "foo"]}]',
         r"experiment 'a': unknown objective 'foo'"),
        ('[experimentt]\nname = "a"', r"unknown setting 'experimentt'"),
        ('[[experiment]]\nname = "a"\ngrid = [{objective = "vimco", partitions = 3}]',
         r"experiment 'a': partitions does not apply to objective 'vimco'"),
        ("", r"no \[\[experiment\]\] tables"),
    ],
)  # fmt: skip
def test_bad_sweep_files_are_clear_errors(tmp_path, tiny_data, body, message):
    with pytest.raises(ConfigError, match=message):
        sweep.load(write(tmp_path, tiny_data, body))


def test_the_command_reports_a_bad_file_and_lists_runs(tmp_path, tiny_data, capsys):
    bad = write(tmp_path, tiny_data, '[[experiment]]\nname = "a"\nseeds = [0]\n'
                'grid = [{particles = 0}]')  # fmt: skip
    assert main(["sweep", str(bad)]) == 2
    assert "particles (S) must be an integer ≥ 2, got 0" in capsys.readouterr().err
    good = write(tmp_path, tiny_data, '[[experiment]]\nname = "a"\nseeds = [0, 1]')
    assert main(["sweep", str(good), "--dry-run", "--out", str(tmp_path / "r")]) == 0
    listing = capsys.readouterr().out
    assert listing.count("new  discrete_toy-tvo") == 2 and not (tmp_path / "r").exists()


def raw_sweep(tmp_path, text):
    path = tmp_path / "raw.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_apply_where_they_apply_and_must_apply_somewhere(tmp_path, tiny_data):
    head = f'[defaults]\ndata = "{tiny_data}"\npartitions = 3\n[[experiment]]\nname = "a"\n'
    loaded = sweep.load(raw_sweep(tmp_path, head + 'grid = [{objective = ["tvo", "vimco"]}]\n'))
    configs = {c.objective: c for c in loaded.runs.values()}
    assert configs["tvo"].partitions == 3 and configs["vimco"].partitions is None
    with pytest.raises(ConfigError, match=r"\[defaults\]: partitions applies to none of the"):
        sweep.load(raw_sweep(tmp_path, head + 'grid = [{objective = "vimco"}]\n'))


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [('split = "dev"', "unknown .*split 'dev'"),
     ("particles = -5", r"\[evaluation\] particles must be an integer ≥ 1, got -5"),
     ("images = 0", r"\[evaluation\] images must be an integer ≥ 1, got 0")],
)  # fmt: skip
def test_the_evaluation_table_is_checked_before_any_run(tmp_path, tiny_data, evaluation, message):
    text = f'[evaluation]\n{evaluation}\n[defaults]\ndata = "{tiny_data}"\n'
    with pytest.raises(ConfigError, match=message):
        sweep.load(raw_sweep(tmp_path, text + '[[experiment]]\nname = "a"\n'))


def test_units_pack_compatible_runs_and_keep_the_rest_apart(finished, tmp_path):
    """Runs that differ only in seed, lr, β1 or partition share a unit (at most ``group``);
    every run is in exactly one unit; a run at another step is not packed with the others."""
    import dataclasses

    loaded, _ = finished
    names = list(loaded.runs)
    sweep.prepare(loaded, tmp_path)
    packed = sweep.units(loaded, tmp_path, names, group=2)
    assert sorted(n for unit in packed for n in unit) == sorted(names)
    assert all(1 <= len(unit) <= 2 for unit in packed) and any(len(u) == 2 for u in packed)
    member = {"seed", "lr", "beta1", "partition", "model_source"}
    for unit in packed:  # the settings of a unit's runs, read one by one, differ only there
        first, *others = (dataclasses.asdict(loaded.runs[n]) for n in unit)
        assert all({k for k in first if first[k] != other[k]} <= member for other in others)
    assert all(len(unit) == 1 for unit in sweep.units(loaded, tmp_path, names, group=1))
    pair = next(unit for unit in packed if len(unit) == 2)
    assert train(Run.open(tmp_path / pair[0]), quiet=True, stop_after=10)["steps"] == 10
    again = sweep.units(loaded, tmp_path, names, group=2)
    assert [pair[0]] in again and pair not in again


def test_a_grouped_sweep_writes_what_an_ungrouped_one_writes(tmp_path, tiny_data):
    """Three seeds trained as one group by ``tvo sweep --group 3`` and one at a time: the same
    files in every run folder, the same metrics rows and final keys; resumed runs included."""
    body = '[[experiment]]\nname = "a"\nseeds = [0, 1, 2]\n'
    path = write(tmp_path, tiny_data, body)
    loaded = sweep.load(path)
    apart, together = tmp_path / "apart", tmp_path / "together"
    assert sweep.run(loaded, apart, jobs=1, quiet=True) == 0
    sweep.prepare(loaded, together)
    first = next(iter(loaded.runs))
    train(Run.open(together / first), quiet=True, stop_after=10)  # resumed alone, then grouped
    assert main(["sweep", str(path), "--out", str(together), "--group", "3", "--jobs", "1"]) == 0
    for name in loaded.runs:
        a, b = Run.open(apart / name), Run.open(together / name)
        assert sorted(p.name for p in a.path.iterdir()) == sorted(p.name for p in b.path.iterdir())
        assert [r["step"] for r in a.read_metrics()] == [r["step"] for r in b.read_metrics()]
        fa, fb = (json.loads((r.path / "final.json").read_text()) for r in (a, b))
        assert fa.keys() == fb.keys() and fa["step"] == fb["step"]
        assert "a group: " in b.log_file.read_text() or name == first


def test_the_hint_after_a_sweep_is_a_command_that_works(tmp_path, tiny_data, capsys,
                                                        monkeypatch):  # fmt: skip
    """Issue 24, item 6: after ``tvo sweep FILE --runs X`` the printed report command reports X
    (not the file's default folder), from another folder too; ``--out`` still names X."""
    import shlex

    def prepare_only(loaded, out, *args, **kwargs):  # the runs' folders, untrained: fast
        sweep.prepare(loaded, out)
        return 0

    monkeypatch.setattr(sweep, "run", prepare_only)
    path = write(tmp_path, tiny_data, '[[experiment]]\nname = "a"\nseeds = [0]\n')
    runs = tmp_path / "my runs"
    assert main(["sweep", str(path), "--runs", str(runs), "--jobs", "1"]) == 0
    hint = capsys.readouterr().out.strip().splitlines()[-1]
    report = shlex.split(hint.split("write the report with: ")[1].split(" (or ")[0])
    assert report[:2] == ["tvo", "report"] and "--runs" in report
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(report[1:]) == 0
    assert f"Runs in `{runs.as_posix()}`" in capsys.readouterr().out
    assert main(["sweep", str(path), "--out", str(runs), "--dry-run"]) == 0
    assert "new  discrete_toy-tvo" in capsys.readouterr().out


def test_a_diverged_run_is_reported_as_diverged_not_as_a_result(tiny_data, tmp_path, capsys):
    """Issue #25: a run that diverged (its first update overflows at lr = 1e308, alone or in a
    group: one rule) gets a final.json that says so instead of an evaluation of its last
    checkpoint; tvo report counts it beside the seeds it averages, tvo compare shows it."""
    from tvo import sweep
    from tvo.cli import main
    from tvo.runs import Run

    from tests.helpers import write_sweep

    body = """
    [[experiment]]
    name = "lr"
    seeds = [0, 1]
    grid = [{objective = "vimco", lr = [3e-3, 1e308]}]
    """
    for group in (1, 2):
        folder = tmp_path / f"g{group}"
        folder.mkdir()
        loaded = sweep.load(write_sweep(folder, tiny_data, body))
        out = folder / "runs"
        assert sweep.run(loaded, out, jobs=1, threads=1, quiet=True, group=group) == 0
        finals = {name: Run(out / name).final() for name in loaded.runs}
        wild = {n: f for n, f in finals.items() if loaded.runs[n].lr == 1e308}
        assert len(wild) == 2 and all(
            f["diverged"].startswith("step 1: its parameters were no longer finite")
            for f in wild.values()
        )
        assert all("log_px" in f for n, f in finals.items() if n not in wild)
        assert main(["report", str(loaded.path), "--runs", str(out)]) == 0
        report = capsys.readouterr().out
        assert "| 0 (2 diverged) | diverged |" in report
        assert main(["compare", str(out)]) == 0
        assert capsys.readouterr().out.count("diverged") >= 2
