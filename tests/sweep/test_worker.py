"""A sweep's unit of work (``tvo.sweep.worker``): its run trained to the end and evaluated
once, a run that only waits for its evaluation not trained again, an unfinished run left for the
next invocation, the worker's command line, and a worker that stops when its sweep is killed."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from tvo.config import resolve
from tvo.evaluate.run import evaluate_run
from tvo.runs import Run
from tvo.sweep import worker

EVALUATION = {"split": "test", "particles": 30, "images": 8, "chunk_size": None}


@pytest.fixture
def new_run(tmp_path, tiny_data):
    config = resolve(data=tiny_data, model="discrete_toy", objective="vimco", steps=20,
                     eval_every=10, eval_particles=5, eval_images=8, log_every=10,
                     checkpoint_every=10, batch_size=8)  # fmt: skip
    return Run.create(tmp_path / "run", config)


def test_a_new_run_is_trained_to_the_end_and_its_final_evaluation_written(new_run):
    assert worker.work([new_run.path], EVALUATION) == 0
    run = Run.open(new_run.path)
    assert run.status() == "done" and run.latest_step() == 20
    again = evaluate_run(run, "test", 30, 8, None)  # seeded: the same numbers
    final = run.final()
    assert (final["log_px"], final["kl"], final["step"]) == (again["log_px"], again["kl"], 20)


def test_a_trained_run_is_only_evaluated(new_run, monkeypatch):
    from tvo.train import train

    train(new_run, quiet=True)
    assert Run.open(new_run.path).status() == "evaluate"
    monkeypatch.setattr(worker, "_train_alone", lambda run, quiet: pytest.fail("trained again"))
    assert worker.work([new_run.path], EVALUATION) == 0
    assert Run.open(new_run.path).final()["step"] == 20


def test_an_unfinished_run_gets_no_final_evaluation(new_run, monkeypatch):
    """A run stopped by a signal keeps its checkpoint; the worker says so (1) and writes no
    final.json, so the next invocation of the sweep resumes it."""
    stopped = {"steps": 7, "total_steps": 20, "signal": 15}
    monkeypatch.setattr(worker, "_train_alone", lambda run, quiet: stopped)
    assert worker.work([new_run.path], EVALUATION) == 1
    assert Run.open(new_run.path).final() is None


def test_the_command_line_is_what_python_m_tvo_sweep_reads(tmp_path):
    argv = worker.command([tmp_path / "a", tmp_path / "b"], EVALUATION)
    assert argv[:4] == [sys.executable, "-m", "tvo.sweep", "--worker"]
    assert argv[4:6] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert argv[6] == "--evaluation" and json.loads(argv[7]) == EVALUATION
    bad = subprocess.run([sys.executable, "-m", "tvo.sweep", "--worker"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 1 and "usage: python -m tvo.sweep --worker" in bad.stderr


def test_a_worker_whose_sweep_is_killed_stops_itself(tmp_path):
    """A parent starts a worker-like child that watches it, then dies without a word (as a
    sweep killed with SIGKILL would); the child gets SIGTERM from its watch."""
    flag = tmp_path / "terminated"
    child = textwrap.dedent(f"""
        import signal, sys, time
        from tvo.sweep.worker import watch_parent
        def stop(*_):
            open({str(flag)!r}, "w").write("SIGTERM")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        watch_parent(interval=0.05)
        print("watching", flush=True)
        time.sleep(60)
    """)
    parent = textwrap.dedent(f"""
        import os, subprocess, sys
        process = subprocess.Popen([sys.executable, "-c", {child!r}], stdout=subprocess.PIPE,
                                   text=True)
        process.stdout.readline()
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", parent], timeout=120, check=True)
    deadline = time.time() + 30
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert flag.exists() and flag.read_text() == "SIGTERM"
