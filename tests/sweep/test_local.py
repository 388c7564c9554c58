"""The local executor (``tvo.sweep.local``): its units run as processes, ``jobs`` at a time
with ``threads`` each, their output in each run's ``sweep.log``, failures counted and named,
finished runs skipped, and each invocation's time recorded. The worker is replaced by a short
script (tests/sweep/test_worker.py tests the real one), so nothing is trained here."""

import json
import sys

import pytest

from tvo.runs import Run
from tvo.sweep import local, plan

from tests.helpers import write_sweep

BODY = """
[[experiment]]
name = "x"
seeds = [0, 1, 2]
grid = [{objective = "vimco"}, {objective = "rws"}]
"""

FAKE_WORKER = """
import json, os, sys
evaluation, folders = json.loads(sys.argv[1]), sys.argv[2:]
for folder in folders:
    print(f"worker for {os.path.basename(folder)} of {len(folders)}: "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}", flush=True)
    if "rws" in folder and folder.endswith("seed2"):
        sys.exit(3)  # a run that fails: no final.json
    with open(os.path.join(folder, "final.json"), "w") as handle:
        # what a worker's final holds: the result and the [evaluation] that made it
        json.dump({"log_px": -1.0, "kl": 0.5, "elbo": -1.5, "evaluation": evaluation}, handle)
"""


@pytest.fixture
def fake_worker(monkeypatch):
    calls = []

    def command(folders, evaluation):
        calls.append([f.name for f in folders])
        return [sys.executable, "-c", FAKE_WORKER, json.dumps(evaluation), *map(str, folders)]

    monkeypatch.setattr(local, "command", command)
    return calls


def test_every_unit_runs_once_with_its_threads_and_failures_are_counted(
    tmp_path, tiny_data, fake_worker, capsys
):
    sweep = plan.load(write_sweep(tmp_path, tiny_data, BODY))
    out = tmp_path / "runs"
    assert local.run(sweep, out, jobs=2, threads=3, quiet=True, group=3) == 1
    assert sorted(n for unit in fake_worker for n in unit) == sorted(sweep.runs)
    assert sorted(map(len, fake_worker)) == [3, 3]  # the seeds of each objective, together
    failed = "discrete_toy-rws-S10-tiny-seed2"
    for name in sweep.runs:
        log = Run(out / name).log_file.read_text()
        assert f"worker for {name} of 3: OMP_NUM_THREADS=3" in log
        assert "(a group: " in log  # the header names the group
        assert Run(out / name).status() == ("new" if name == failed else "done")
    printed = capsys.readouterr()
    assert f"failed (3): {failed}" in printed.out + printed.err
    record = json.loads((out / "sweep.json").read_text())["invocations"]
    assert len(record) == 1 and (record[0]["jobs"], record[0]["threads"]) == (2, 3)

    fake_worker.clear()  # again: only the failed run is started; the others are done
    assert local.run(sweep, out, jobs=2, threads=1, quiet=True) == 1
    assert fake_worker == [[failed]]
    assert len(json.loads((out / "sweep.json").read_text())["invocations"]) == 2


def test_the_threads_default_to_the_cores_shared_by_the_jobs(
    tmp_path, tiny_data, fake_worker, monkeypatch
):
    monkeypatch.setattr(local.os, "cpu_count", lambda: 8)
    sweep = plan.load(write_sweep(tmp_path, tiny_data, BODY.replace("[0, 1, 2]", "[0]")))
    local.run(sweep, tmp_path / "runs", jobs=4, quiet=True)
    record = json.loads((tmp_path / "runs" / "sweep.json").read_text())["invocations"][0]
    assert (record["jobs"], record["threads"], record["cores"]) == (4, 2, 8)
    log = Run(tmp_path / "runs" / "discrete_toy-vimco-S10-tiny-seed0").log_file.read_text()
    assert "OMP_NUM_THREADS=2" in log


def test_sigterm_is_turned_into_a_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        local.interrupt(15, None)
