"""A sweep's unit of work, in one process: its runs trained (or resumed) to the end, one alone
or several as a group (``tvo.ensemble``), then each run's final evaluation.

Every executor calls ``work``: the local one in a child process (``python -m tvo.sweep
--worker RUN_DIR… --evaluation JSON``), Ray in a task. A run interrupted (a signal) keeps its
checkpoint and is resumed by the next invocation of the sweep.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from tvo.runs import Run


def work(folders: list[Path], evaluation: dict, quiet: bool = True) -> int:
    """Train the runs in ``folders`` (one: ``tvo.train.train``; several:
    ``tvo.ensemble.train_group``) and write each one's ``final.json``. Returns 0 when every
    run is done, 1 when one is not (interrupted, or it left its group: its message is printed).

    Args:
        folders: the run folders of the unit.
        evaluation: the sweep's ``[evaluation]`` table.
        quiet: no progress bars.
    """
    from tvo.evaluate.run import evaluate_run

    runs = [Run.open(folder) for folder in folders]
    training = [run for run in runs if run.status() in ("new", "resume")]
    unfinished: set[Path] = set()
    if len(training) == 1:
        summary = _train_alone(training[0], quiet)
        if summary["steps"] < summary["total_steps"] and training[0].diverged() is None:
            unfinished.add(training[0].path)
    elif training:
        from tvo.ensemble import GroupError, train_group

        try:
            summaries = train_group(training, quiet=quiet)
        except GroupError as error:
            print(f"{error}: training the {len(training)} runs one at a time", flush=True)
            summaries = []
            for run in training:
                summaries.append({**_train_alone(run, quiet), "stopped": None})
                if summaries[-1]["signal"] is not None:  # stopped: the rest waits for next time
                    break
            training = training[: len(summaries)]
            unfinished.update(run.path for run in runs if run.status() in ("new", "resume"))
        for run, summary in zip(training, summaries):
            if summary["stopped"]:
                print(f"{run.path}: {summary['stopped']}", flush=True)
            if (summary["steps"] < summary["total_steps"] or summary["stopped"]) and (
                    run.diverged() is None):  # fmt: skip
                unfinished.add(run.path)
    for run in runs:
        diverged = run.diverged()
        if diverged is not None:  # a result in itself: reported as diverged, never evaluated
            run.write_final({"diverged": diverged["diverged"], "step": diverged["step"],
                             "evaluation": evaluation})  # fmt: skip
            print(f"final {run.path.name}: diverged ({diverged['diverged']})", flush=True)
            continue
        if run.path in unfinished:
            continue  # the checkpoint is saved: the next invocation of the sweep resumes it
        report = evaluate_run(run, evaluation["split"], evaluation["particles"],
                              evaluation["images"], evaluation["chunk_size"])  # fmt: skip
        report["evaluation"] = evaluation  # the sweep's [evaluation]: a changed one redoes it
        run.write_final(report)
        print(f"final {run.path.name}: {json.dumps(report)}", flush=True)
    return 1 if unfinished else 0


def work_or_report(folders: list[Path], evaluation: dict, quiet: bool = True) -> int:
    """``work``, with what the user can act on (a run held by another process: a second
    sweep at once; settings, data or a model that cannot work) printed as one line, not a
    traceback (exit code 1, as for a run that did not finish)."""
    from tvo.config import ConfigError
    from tvo.data import DataError
    from tvo.models import ModelError
    from tvo.runs import RunError

    try:
        return work(folders, evaluation, quiet)
    except (RunError, ConfigError, DataError, ModelError) as error:
        print(f"{type(error).__name__}: {error}", flush=True)
        return 1


def _train_alone(run: Run, quiet: bool) -> dict:
    from tvo.train import NonFiniteError, train

    try:
        return train(run, quiet=quiet)
    except NonFiniteError as error:  # its diverged.json says so
        print(f"{run.path}: {error}", flush=True)
        record = run.diverged()
        return {"steps": record["step"], "total_steps": record["total_steps"], "signal": None,
                "stopped": str(error)}  # fmt: skip


def command(folders: list[Path], evaluation: dict) -> list[str]:
    """The command line of a worker process for ``folders``."""
    import sys

    return [sys.executable, "-m", "tvo.sweep", "--worker", *map(str, folders),
            "--evaluation", json.dumps(evaluation)]  # fmt: skip


def watch_parent(interval: float = 1.0) -> None:
    """Stop this process (SIGTERM: training stops after its step, with a checkpoint) when its
    parent ends, so that a sweep killed with SIGKILL leaves no worker behind."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()
