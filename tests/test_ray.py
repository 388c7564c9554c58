"""``tvo sweep --executor ray`` on a real Ray of 2 CPUs (``ray_cluster``): the same files as the
local executor, bit for bit; a Ray worker killed with SIGKILL costs no run; Ctrl-C of the driver
stops the runs at a checkpoint; a failure is reported with the run's own log lines; and without
Ray the executor is a clear error."""

import _thread
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from tvo import report, sweep
from tvo.cli import main
from tvo.config import ConfigError
from tvo.runs import HOLDER, Run
from tvo.sweep import ray as ray_executor

from tests.helpers import write_sweep

# One run long enough (about 3.5 s of training here) to be stopped in the middle.
LONG = """
[[experiment]]
name = "long"
grid = [{objective = "tvo", partitions = 2, steps = 1000, eval_every = 500}]
"""
LONG_EVERY = 20  # log_every and checkpoint_every of the LONG run


def results(folder):
    """A run's final.json and metrics rows, without their wall-clock seconds."""
    run = Run.open(folder)
    final = json.loads((folder / "final.json").read_text())
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in run.read_metrics()]
    return {k: v for k, v in final.items() if k != "seconds"}, rows


def untimed(document):
    """A ``tvo report`` document without its runs' folder and the train time column."""
    rows, drop = [], None
    for line in document.splitlines()[1:]:
        if line.startswith("Runs in `"):
            continue
        cells = line.split(" | ")
        if "train time (s)" in cells:
            drop = cells.index("train time (s)")
        rows.append(" | ".join(c for i, c in enumerate(cells) if i != drop or len(cells) < 3))
    return rows


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """The LONG sweep and its run trained without interruption by the local executor (one
    thread): (sweep, reference run folder)."""
    tmp = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    images = (rng.random((96, 16)) < 0.4).astype(np.float32)
    np.savez(tmp / "tiny.npz", train=images[:64], valid=images[64:80], test=images[80:])
    text = write_sweep(tmp, tmp / "tiny.npz", LONG).read_text()
    text = text.replace("checkpoint_every = 10", f"checkpoint_every = {LONG_EVERY}")
    path = tmp / "long.toml"
    path.write_text(text.replace("log_every = 10", f"log_every = {LONG_EVERY}"))
    loaded = sweep.load(path)
    assert sweep.run(loaded, tmp / "local", jobs=1, threads=1, quiet=True) == 0
    (name,) = loaded.runs
    return loaded, tmp / "local" / name


def when_training(folder, action, timeout=120.0):
    """Call ``action(pid)`` from a thread as soon as the run in ``folder`` has a checkpoint and
    is held by a process (PID from its lock); returns the thread."""

    def watch():
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                pid = int((folder / HOLDER).read_text())
            except (OSError, ValueError):
                pid = None
            if pid and any((folder / "checkpoints").glob("step-*.pt")):
                action(pid)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_sweep_on_ray_writes_what_the_local_executor_writes(finished, ray_cluster, tmp_path):
    """The 14 runs of the ``finished`` sweep (local executor, one thread each) again as Ray
    tasks of one thread: identical final.json and metrics (but for wall-clock seconds), the
    same report, the invocation in sweep.json; a second invocation skips every run."""
    loaded, local = finished
    out = tmp_path / "ray"
    assert main(["sweep", str(loaded.path), "--executor", "ray", "--out", str(out),
                 "--threads", "1"]) == 0  # fmt: skip
    for name in loaded.runs:
        assert results(out / name) == results(local / name), name
        assert "(ray) ---" in (out / name / "sweep.log").read_text()
    assert untimed(report.document(loaded, out)) == untimed(report.document(loaded, local))
    before = {n: (out / n / "final.json").stat().st_mtime_ns for n in loaded.runs}
    assert ray_executor.run(loaded, out, quiet=True) == 0
    assert before == {n: (out / n / "final.json").stat().st_mtime_ns for n in loaded.runs}
    invocations = json.loads((out / "sweep.json").read_text())["invocations"]
    assert [i["executor"] for i in invocations] == ["ray", "ray"]
    assert invocations[0]["threads"] == 1 and invocations[0]["jobs"] == 2  # the 2 CPUs of Ray


def test_a_group_of_runs_is_one_task(tmp_path, tiny_data, ray_cluster):
    """``--group 2``: two seeds trained together in one Ray task end as the same group does on
    the local executor."""
    path = write_sweep(tmp_path, tiny_data, '[[experiment]]\nname = "a"\nseeds = [0, 1]\n')
    loaded = sweep.load(path)
    assert sweep.run(loaded, tmp_path / "local", jobs=1, threads=1, quiet=True, group=2) == 0
    assert ray_executor.run(loaded, tmp_path / "ray", threads=1, quiet=True, group=2) == 0
    for name in loaded.runs:
        assert results(tmp_path / "ray" / name) == results(tmp_path / "local" / name)
        assert "(ray) (a group: " in (tmp_path / "ray" / name / "sweep.log").read_text()


def test_a_killed_worker_is_retried_and_its_run_ends_as_an_uninterrupted_one(
    long_run, ray_cluster, tmp_path
):
    """SIGKILL of the Ray worker process that trains the run, after its first checkpoint: Ray
    runs the task again, the run resumes from its last checkpoint, and its final.json and
    metrics are those of the uninterrupted run."""
    loaded, reference = long_run
    folder = tmp_path / reference.name
    killed = []
    sweep.prepare(loaded, tmp_path)
    watcher = when_training(folder, lambda pid: (killed.append(pid), os.kill(pid, signal.SIGKILL)))
    assert ray_executor.run(loaded, tmp_path, threads=1, quiet=True) == 0
    watcher.join()
    assert killed and killed[0] != os.getpid()  # a Ray worker, not this process
    log = (folder / "sweep.log").read_text()
    assert log.count("(ray) ---") == 2, log  # the first attempt, killed, and Ray's retry
    assert results(folder) == results(reference)


def test_ctrl_c_of_the_driver_stops_the_runs_at_a_checkpoint(long_run, ray_cluster, tmp_path):
    """Ctrl-C of the driver while the run trains: the task is cancelled, the run stops after
    its step with a checkpoint at that step (no process holds it after), and the same command
    finishes it to the uninterrupted result."""
    loaded, reference = long_run
    folder = tmp_path / reference.name
    sweep.prepare(loaded, tmp_path)
    watcher = when_training(folder, lambda pid: _thread.interrupt_main())
    with pytest.raises(KeyboardInterrupt):
        ray_executor.run(loaded, tmp_path, threads=1, quiet=True)
    watcher.join()
    assert not (folder / HOLDER).exists() and sweep.status(folder) == "resume"
    stopped = [line for line in (folder / "sweep.log").read_text().splitlines()
               if line.startswith("stopped at step ")]  # fmt: skip
    assert stopped, (folder / "sweep.log").read_text()
    step = int(stopped[0].split()[3])
    assert LONG_EVERY <= step < 1000 and Run(folder).latest_step() == step
    assert ray_executor.run(loaded, tmp_path, threads=1, quiet=True) == 0
    assert results(folder) == results(reference)


def test_a_failed_run_is_reported_with_its_log_lines(tmp_path, tiny_data, ray_cluster, capsys):
    """A run whose data cannot be read (the file spoiled after the sweep was checked): the
    driver names the run and its sweep.log and prints the run's last lines, with the error."""
    loaded = sweep.load(write_sweep(tmp_path, tiny_data, '[[experiment]]\nname = "a"\n'))
    with open(tiny_data, "wb") as spoiled:
        spoiled.write(b"not a numpy file")
    assert ray_executor.run(loaded, tmp_path / "runs", quiet=True) == 1
    (name,) = loaded.runs
    printed = capsys.readouterr().out
    log = tmp_path / "runs" / name / "sweep.log"
    assert "failed (1) on " in printed and f"{name}, see {log}" in printed
    last = log.read_text().strip().splitlines()[-1]
    assert "Error" in last and f"  | {last}" in printed
    assert sweep.status(tmp_path / "runs" / name) == "new"


def test_the_ray_executor_without_ray_is_a_clear_error(tmp_path, tiny_data, monkeypatch, capsys):
    path = write_sweep(tmp_path, tiny_data, '[[experiment]]\nname = "a"\n')
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(["sweep", str(path), "--executor", "ray", "--out", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert "--executor ray needs Ray" in error and "pip install 'tvo[ray]'" in error
    assert main(["sweep", str(path), "--address", "auto", "--out", str(tmp_path / "r")]) == 2
    assert "--address and --gpus-per-task are for --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_capacity_of_a_cluster_counts_cpus_and_gpus():
    assert ray_executor.capacity({"CPU": 8.0}, 2, 0.0) == 4
    assert ray_executor.capacity({"CPU": 8.0, "GPU": 1.0}, 1, 0.25) == 4
    with pytest.raises(ConfigError,
                       match=r"asks for 1 CPU\(s\) and 0.5 GPU\(s\), more than the Ray cluster "
                       r"has \(8 CPUs, 0 GPUs\)"):  # fmt: skip
        ray_executor.capacity({"CPU": 8.0}, 1, 0.5)
