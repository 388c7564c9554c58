"""The run folder, read and written here only.

    RUN_DIR/
      config.json                  the resolved TrainConfig: enough to reproduce the run
      metrics.csv                  one row per log step; evaluation columns filled at eval steps;
                                   the TVO's partition in use (points separated by spaces)
      checkpoints/step-NNNNNNNNN.pt the last two: model, optimiser, partition, schedule state,
                                   RNG states
      events/                      TensorBoard event files
      summary.json                 the final metrics, written when training ends
      diverged.json                where and why training stopped as diverged (no summary then)
      final.json                   a sweep's final evaluation of the trained model
      evaluations/                 what ``tvo eval`` measured, one file per split and setting
      model.pt                     the model object given to ``tvo.fit`` (when it was one)
      data.npz                     data given to ``tvo.fit`` as tensors (``data = "@run/data.npz"``)
      sweep.log                    a sweep worker's output
      plots/                       written by ``tvo plot``

Every file is written atomically (temporary file, fsync, rename), so a killed process leaves
the previous version, never half a file; the temporary files a killed process leaves behind are
removed when the run is next written. At a checkpoint the metrics are written first and the
checkpoint second: a kill between the two leaves metrics ahead of the last checkpoint, and a
resume drops those rows. A checkpoint that fails to load (or lacks what a checkpoint holds) is
reported and the one before it used; when none loads, resuming stops with an error.

One writer at a time: ``Run.writer`` holds an operating-system lock on ``RUN/.lock``
(``filelock``; released when the process ends, however it ends) while a run is created,
trained or extended, and ``RUN/.lock.pid`` names the holder, so a second writer is refused with
its PID. An overwritten run is moved aside (``RUN/.replaced/``) and deleted only once the new run
has written its first checkpoint; a new run that fails or is killed before that gives the old
one back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shlex
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from tvo.config import TrainConfig
from tvo.config import load as load_config
from tvo.config import save as save_config
from tvo.config import validate as validate_config
from tvo.files import write_atomic
from tvo.objectives import make_objective

METRICS = ("step", "seconds", "train_objective", "skipped", "split", "log_px", "kl", "elbo",
           "partition")  # fmt: skip
KEEP_CHECKPOINTS = 2
RUN_FILES = ("config.json", "metrics.csv", "summary.json", "final.json", "diverged.json",
             "sweep.log",
             "checkpoints", "events", "plots", "evaluations", "model.pt", "data.npz")  # fmt: skip
RUN_DATA = "@run/data.npz"  # config.data of a run that keeps its own data
LOCK, HOLDER, REPLACED = ".lock", ".lock.pid", ".replaced"
CHECKPOINT_KEYS = ("step", "model", "optimiser", "torch_rng", "data_rng")
FINAL_KEYS = ("log_px", "kl", "elbo")  # what every final evaluation holds (tvo report reads)
# What tvo itself leaves in a run folder: none of it makes a folder "not empty".
LEFTOVERS = (LOCK, HOLDER, REPLACED)


class RunError(ValueError):
    """A run folder that cannot be used as asked; the message says why and what to do."""


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


class Run:
    """A run folder. Create one with ``create``, open an existing one with ``open``.

    Args:
        path: the run folder. Nothing is read or checked here: ``open`` checks that it holds a
            run, ``create`` makes one.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._config: TrainConfig | None = None
        self._replacing = False  # this object moved an old run aside and has not checkpointed
        self._extended = False  # extend() gave a new length that is not written yet
        self._restored = False  # writer() gave back a run an interrupted overwrite moved aside

    # --- creating and opening ---------------------------------------------------------------

    @staticmethod
    def is_run(path: str | Path) -> bool:
        """Whether ``path`` holds a run (its ``config.json``); nothing is read.

        Args:
            path: the folder to look in.
        """
        return (Path(path) / "config.json").is_file()

    @classmethod
    def create(cls, path: str | Path, config: TrainConfig, overwrite: bool = False) -> Run:
        """A new run at ``path``. An existing run there needs ``overwrite`` (its run files are
        then moved aside until the new run's first checkpoint); a non-empty folder that is not a
        run is refused, before anything is written.

        Args:
            path: the run folder, made with its parents where missing.
            config: the run's resolved settings, written as its ``config.json``.
            overwrite: replace a run already at ``path`` (default ``False``: such a run is a
                ``RunError`` naming ``--resume`` and ``--overwrite``).
        """
        path = Path(path)
        if path.is_symlink() and not path.exists():
            raise RunError(f"{path} is a link to {os.readlink(path)}, which does not exist; "
                           "remove the link or choose another folder")  # fmt: skip
        if path.exists() and not path.is_dir():
            raise RunError(f"{path} is a file, not a run folder; move it away or choose another "
                           "folder for the run")  # fmt: skip
        if path.is_dir() and not cls.is_run(path) and _foreign(path):
            raise RunError(
                f"{path} is a folder that is not empty and is not a run (it holds "
                f"{', '.join(sorted(_foreign(path))[:3])}); choose another"
            )
        if cls.is_run(path) and not overwrite:  # checked again under the lock, below
            raise RunError(
                f"{path} already holds a run; pass --resume {shlex.quote(str(path))} to continue "
                "it or --overwrite to replace it"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a full disk or a read-only parent: name the folder
            raise OSError(error.errno, error.strerror, str(path)) from error
        run = cls(path)
        with run.writer():
            if cls.is_run(path) and not overwrite:
                how = "created just now by another process"
                if run._restored:
                    how = "given back from .replaced/, where an interrupted --overwrite moved it"
                raise RunError(
                    f"{path} already holds a run ({how}); pass "
                    f"--resume {shlex.quote(str(path))} to continue it or --overwrite to replace it"
                )
            if cls.is_run(path):
                run._move_aside()
                run._replacing = True
            write_text(run.path / "config.json", save_config(config))
        return run

    def _move_aside(self) -> None:
        """Move the run files into ``.replaced/``, until the new run's first checkpoint."""
        aside = self.path / REPLACED
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for name in RUN_FILES:
            if (self.path / name).exists():
                os.replace(self.path / name, aside / name)

    def _restore_replaced(self) -> None:
        """Give back the run moved aside by an overwrite whose new run never checkpointed."""
        aside = self.path / REPLACED
        if not any(aside.iterdir()):  # nothing was moved into it yet: nothing to give back
            aside.rmdir()
            return
        for name in RUN_FILES:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for moved in aside.iterdir():
            os.replace(moved, self.path / moved.name)
        aside.rmdir()
        self._config, self._replacing, self._restored = None, False, True
        warnings.warn(
            f"{self.path}: the run that replaced it stopped before its first checkpoint; the "
            "run it replaced is back",
            stacklevel=4,
        )

    @contextmanager
    def writer(self) -> Iterator[Run]:
        """Hold the run folder for writing. Another process holding it is a ``RunError``
        naming its PID. On entry, leftovers of killed processes are cleaned up (temporary files
        of interrupted writes; an overwrite that never reached its first checkpoint is undone).
        The run an overwrite moved aside is deleted once this run has a checkpoint, and given
        back if this process fails before that."""
        lock = FileLock(str(self.path / LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            holder = (self.path / HOLDER).read_text().strip() if (self.path / HOLDER).is_file() \
                else "unknown"  # fmt: skip
            raise RunError(
                f"{self.path} is being written by another process (PID {holder}); wait for it "
                "to end or stop it, then try again"
            ) from None
        except OSError as error:  # a full disk or a read-only folder: name the lock file
            raise OSError(error.errno, error.strerror, str(self.path / LOCK)) from error
        aside = self.path / REPLACED
        try:
            (self.path / HOLDER).write_text(f"{os.getpid()}\n")
            if aside.is_dir() and not self._replacing and not self.checkpoints():
                self._restore_replaced()  # its replacement was killed before a checkpoint
            for folder in (self.path, self.checkpoint_dir):
                for stale in folder.glob(".*.tmp"):
                    stale.unlink(missing_ok=True)
            yield self
        except BaseException:
            if self._replacing and aside.is_dir() and not self.checkpoints():
                self._restore_replaced()
            raise
        finally:
            try:
                if aside.is_dir() and self.checkpoints():
                    shutil.rmtree(aside)
                    self._replacing = False
            finally:
                (self.path / HOLDER).unlink(missing_ok=True)
                lock.release()

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """The run at ``path``, its ``config.json`` read and checked now: a path that is not a
        run folder, or a corrupt ``config.json``, is a ``RunError``.

        Args:
            path: the run folder.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunError(f"{path} is a file, not a run folder; give the run's folder")
        if not path.is_dir():
            raise RunError(f"{path}: no such run folder")
        if not cls.is_run(path):
            raise RunError(f"{path} is not a run folder (it has no config.json)")
        run = cls(path)
        run.config  # noqa: B018 (reads and checks config.json now)
        return run

    def extend(self, steps: int | None = None, epochs: float | None = None) -> TrainConfig:
        """Give the run a new length (``steps`` or ``epochs``; neither: unchanged) and return its
        config. Nothing is written here: training writes it (``save_extension``) once the
        checkpoint has loaded and the length covers the steps done, so a resume refused for
        either leaves the run as it was.

        Args:
            steps: the run's new total number of steps (default ``None``).
            epochs: the run's new length in passes over the training data (default ``None``);
                give ``steps`` or ``epochs``, not both (a ``RunError``).
        """
        config = self.config
        if steps is None and epochs is None:
            return config
        if steps is not None and epochs is not None:
            raise RunError("give steps or epochs to extend a run, not both")
        from dataclasses import replace

        extended = replace(config, steps=steps, epochs=epochs)
        validate_config(extended, check_model=False, check_environment=False)
        if extended != config:
            self._config, self._extended = extended, True
        return extended

    def save_extension(self) -> None:
        """Write the length given by ``extend`` (the caller holds ``writer``):
        ``config.json`` is rewritten and the summary and final evaluation, which describe the
        shorter run, are removed; metrics and checkpoints stay."""
        if self._extended:
            write_text(self.path / "config.json", save_config(self.config))
            for name in ("summary.json", "final.json"):
                (self.path / name).unlink(missing_ok=True)
            self._extended = False

    @property
    def config(self) -> TrainConfig:
        """The run's settings, read once and checked (all but the model's import and what this
        machine has: those are checked where the model is built)."""
        if self._config is None:
            file = self.path / "config.json"
            try:
                config = _read_config(file)
                validate_config(config, check_model=False, check_environment=False)
            except (ValueError, TypeError) as error:
                raise RunError(f"{file} is corrupt or holds settings that cannot work "
                               f"({error}); it was not changed") from error  # fmt: skip
            self._config = config
        return self._config

    # --- metrics --------------------------------------------------------------------------------

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    def read_metrics(self) -> list[dict]:
        """The rows of ``metrics.csv``, numbers parsed (empty cells as ``None``)."""
        if not self.metrics_file.is_file():
            return []
        try:
            text = self.metrics_file.read_text()
            if text and not text.endswith("\n"):
                raise ValueError("its last row is cut short (no end of line)")
            with io.StringIO(text, newline="") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames is not None and tuple(reader.fieldnames) != METRICS:
                    raise ValueError(f"unexpected columns {reader.fieldnames}")
                return [_parse_row(row) for row in reader]
        except (ValueError, csv.Error) as error:
            raise RunError(
                f"{self.metrics_file} is corrupt ({error}); it was not changed"
            ) from error

    def append_metrics(self, rows: list[dict]) -> None:
        """Add rows: the whole file is rewritten atomically, so a kill never leaves half a row.
        (Rows come in batches at checkpoints, so the rewrite costs little.)

        Args:
            rows: the new rows, each a dict keyed by the columns of ``METRICS`` (a missing key
                or ``None`` is an empty cell); none: nothing is written.
        """
        if rows:
            self._write_metrics(self.read_metrics() + rows)

    def truncate_metrics(self, step: int) -> None:
        """Keep only the rows up to ``step`` (rows a killed run wrote after its checkpoint).

        Args:
            step: the last step kept (that of the checkpoint a resume starts from).
        """
        self._write_metrics([row for row in self.read_metrics() if row["step"] <= step])

    def _write_metrics(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRICS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(row.get(k)) for k in METRICS} for row in rows)
        write_text(self.metrics_file, buffer.getvalue())

    # --- checkpoints ----------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def copy_to(self, to: str | Path) -> Path:
        """A copy of the run at ``to`` (replaced if it exists) with only its newest checkpoint:
        a run folder that ``open``, ``tvo.load``, ``tvo eval`` and ``--resume`` read (Ray
        Tune's checkpoint of a trial, ``tvo.tune``).

        Args:
            to: the folder of the copy (returned as a ``Path``).
        """
        to = Path(to)
        if to.exists():
            shutil.rmtree(to)
        (to / "checkpoints").mkdir(parents=True)
        newest = self.checkpoints()[-1:]
        for path in newest:
            shutil.copy2(path, to / "checkpoints" / path.name)
        for name in RUN_FILES:
            source = self.path / name
            if name == "checkpoints" or not source.exists():
                continue
            if source.is_dir():
                shutil.copytree(source, to / name)
            else:
                shutil.copy2(source, to / name)
        return to

    def latest_step(self) -> int:
        """The step of the newest checkpoint file (0 without one), from its name: the step a
        resume starts from, without loading it."""
        newest = self.checkpoints()[-1:]
        return _step_of(newest[0]) if newest else 0

    def record_threads(self, threads: int) -> None:
        """Record the thread count the run trains with in ``config.json`` (a run made without
        one, at its first step; the caller holds ``writer``). The file's other settings are
        written as they are on disk (a new length waits for ``save_extension``).

        Args:
            threads: the number of CPU threads (``torch.get_num_threads()``) the run trains
                with.
        """
        from dataclasses import replace

        on_disk = replace(_read_config(self.path / "config.json"), threads=threads)
        write_text(self.path / "config.json", save_config(on_disk))
        self._config = replace(self.config, threads=threads)

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        return sorted(self.checkpoint_dir.glob("step-*.pt"))

    def save_checkpoint(self, state: dict) -> Path:
        """Write ``state`` (with its ``step``) atomically; keep the last two checkpoints. Those
        of later steps are removed: they belong to a run that was resumed from an earlier
        checkpoint (one unreadable, or a group's common step), and training redoes them.

        Args:
            state: the checkpoint, as ``tvo.step.state_dict`` makes it (with the loop's own
                entries); its ``step`` names the file ``checkpoints/step-NNNNNNNNN.pt``.
        """
        path = self.checkpoint_dir / f"step-{state['step']:09d}.pt"
        write_atomic(path, lambda tmp: torch.save(state, tmp))
        for old in self.checkpoints():
            if _step_of(old) > state["step"]:
                old.unlink()
        for old in self.checkpoints()[:-KEEP_CHECKPOINTS]:
            old.unlink()
        return path

    def load_checkpoint(self, map_location=None, at_most: int | None = None) -> dict | None:
        """The newest checkpoint (of a step ``≤ at_most``, where given) that loads and holds
        what a checkpoint holds, read as this version writes it (``migrate_checkpoint``); a
        corrupt one is reported and skipped. ``None`` when there is none (see
        ``checkpoints`` for whether there were files that did not load).

        Args:
            map_location (str | torch.device | None): where the tensors are loaded, as
                ``torch.load`` takes it (default ``None``: the device each was saved from).
            at_most: the latest step a checkpoint may have (default ``None``: any step); later
                ones are passed over.
        """
        for path in reversed(self.checkpoints()):
            if at_most is not None and _step_of(path) > at_most:
                continue
            try:
                state = torch.load(path, map_location=map_location, weights_only=False)
                if not isinstance(state, dict):
                    raise ValueError("not a tvo checkpoint")
                missing = [key for key in CHECKPOINT_KEYS if key not in state]
                if missing:
                    raise ValueError(f"it lacks {', '.join(missing)}")
                return migrate_checkpoint(state, self.config)
            except Exception as error:  # any failure to read means this one is unusable
                warnings.warn(
                    f"checkpoint {path} is corrupt ({type(error).__name__}: {error}); "
                    "using the one before it",
                    stacklevel=2,
                )
        return None

    # --- summary, final evaluation, status -----------------------------------------------------

    def write_summary(self, summary: dict) -> None:
        """Write ``summary.json`` (the caller holds ``writer``): the run's final metrics.

        Args:
            summary: what training reports when its last step is done (``steps``,
                ``total_steps``, ``seconds``, ``skipped`` and the last evaluation's values),
                written as JSON.
        """
        write_text(self.path / "summary.json", json.dumps(summary, indent=2) + "\n")

    def summary(self) -> dict | None:
        """``summary.json`` (written when training ends), or ``None`` before."""
        return self._read_json("summary.json")

    def write_final(self, report: dict) -> None:
        """The final evaluation of the trained model (``final.json``): a sweep's result.

        Args:
            report: the evaluation's results, written as JSON; it must hold ``FINAL_KEYS``
                (``log_px``, ``kl``, ``elbo``) for ``final`` to read it back.
        """
        with self.writer():
            write_text(self.path / "final.json", json.dumps(report, indent=2) + "\n")

    def final(self) -> dict | None:
        """``final.json``, or ``None`` before the final evaluation; one without the result's
        keys (``FINAL_KEYS``) is a ``RunError`` saying how to redo it, unless it says why the
        run has none (``diverged``: the message that stopped it)."""
        final = self._read_json("final.json")
        if final is not None or (self.path / "final.json").is_file():
            lacks = [key for key in FINAL_KEYS if key not in final] if isinstance(final, dict) \
                else list(FINAL_KEYS)  # fmt: skip
            if isinstance(final, dict) and isinstance(final.get("diverged"), str):
                lacks = []  # a run that diverged has no result, only why (tvo.train's rule)
            if lacks:
                raise RunError(
                    f"{self.path / 'final.json'} is not a final evaluation (it lacks "
                    f"{', '.join(lacks)}); delete it and run the sweep again to evaluate the run"
                )
        return final

    def _read_json(self, name: str) -> dict | None:
        file = self.path / name
        if not file.is_file():
            return None
        try:
            return json.loads(file.read_text())
        except ValueError as error:
            raise RunError(f"{file} is corrupt ({error}); it was not changed") from error

    def write_diverged(self, report: dict) -> None:
        """Record that training diverged (``diverged.json``: ``step``, ``total_steps`` and the
        message, ``diverged``); the run has no summary, as it did not finish.

        Args:
            report: what to record.
        """
        write_text(self.path / "diverged.json", json.dumps(report, indent=2) + "\n")

    def clear_diverged(self) -> None:
        """Forget a divergence recorded before (training starts again; it records it anew if
        it diverges again)."""
        (self.path / "diverged.json").unlink(missing_ok=True)

    def diverged(self) -> dict | None:
        """``diverged.json``: where and why training stopped as diverged (a step or update that
        was not finite, by the rule of ``tvo.train``), or ``None``."""
        return self._read_json("diverged.json")

    def status(self) -> str:
        """``done`` (evaluated), ``evaluate`` (trained), ``resume`` (a checkpoint) or ``new``."""
        if (self.path / "final.json").is_file():
            return "done"
        if (self.path / "summary.json").is_file():
            return "evaluate"
        return "resume" if self.checkpoints() else "new"

    # --- what tvo.fit gives a run to keep: the model object and the data ----------------------

    def save_model(self, model) -> None:
        """Keep the model object (its class is pickled by reference: it must be importable
        wherever the run is loaded again).

        Args:
            model (torch.nn.Module): the model object given to ``tvo.fit``, written with
                ``torch.save`` as ``model.pt``.
        """
        write_atomic(self.path / "model.pt", lambda tmp: torch.save(model, tmp))

    def saved_model(self):
        """The model object the run keeps, or ``None`` for a run built from its settings."""
        file = self.path / "model.pt"
        if not file.is_file():
            return None
        try:
            return torch.load(file, map_location="cpu", weights_only=False)
        except (AttributeError, ModuleNotFoundError, ImportError) as error:
            name = self.config.model
            raise RunError(
                f"{file} holds a model of class {name} that cannot be imported here ({error}); "
                "define the class in a module on the import path, or load the run in Python "
                "with tvo.load(run, model=YourModel(...))"
            ) from error

    def save_data(self, arrays: dict) -> None:
        """Keep data given as tensors: ``arrays`` maps split names to ``[N, D]`` arrays.

        Args:
            arrays: NumPy arrays by name, written as ``data.npz``: the splits (``train``,
                ``valid``, ``test``) and, for data without a test split, the flag
                ``held_out_test`` (``tvo.fit`` gives them).
        """
        import numpy as np

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        write_atomic(self.path / "data.npz", write)

    def data_source(self) -> str:
        """Where the run's data are: the run's own ``data.npz``, or the config's dataset."""
        config = self.config
        return str(self.path / "data.npz") if config.data == RUN_DATA else config.data

    # --- evaluations ------------------------------------------------------------------------------

    def write_evaluation(self, report: dict) -> Path:
        """Keep what ``tvo eval`` measured, in ``evaluations/``, named by its settings:
        ``SPLIT-METHOD-S…|N…|T…-C…[-firstN]-seedN-ID.json``, where ``ID`` is a digest of every
        key of ``report`` that is not a result (``EVALUATION_RESULTS``): the kernel, schedule,
        leapfrog steps and whatever settings a method records, so two evaluations that can
        differ never share a file, and the same evaluation of a newer checkpoint replaces the
        older.

        Args:
            report: what ``tvo eval`` measured and how: ``split``, ``method`` (default
                ``"is"``), ``particles`` (importance sampling) or ``steps`` and ``chains``
                (AIS, BDMC), ``limit``, ``seed`` and the results.

        Returns:
            The path of the file written.
        """
        method = report.get("method", "is")
        if method == "is":
            name = f"{report['split']}-is-S{report['particles']}"
        elif method == "smc":  # its temperatures are chosen as it goes: N particles name it
            name = f"{report['split']}-smc-N{report['particles']}"
        else:
            name = f"{report['split']}-{method}-T{report['steps']}-C{report['chains']}"
        if report.get("limit") is not None:
            name += f"-first{report['limit']}"
        name += f"-seed{report.get('seed', 0)}-{evaluation_id(report)}"
        path = self.path / "evaluations" / f"{name}.json"
        write_text(path, json.dumps(report, indent=2) + "\n")
        return path

    @property
    def log_file(self) -> Path:
        """Where a sweep worker's output goes."""
        return self.path / "sweep.log"

    def label(self) -> str:
        """``objective S=… K=…``: how plots and tables name the run."""
        config = self.config
        k = f" K={config.partitions}" if config.partitions is not None else ""
        return f"{config.objective} S={config.particles}{k}"


# --- runs written by earlier versions: every migration is here ---------------------------------


def migrate_config(values: dict) -> dict:
    """A ``config.json``'s settings as this version reads them.

    - 0.1.0 recorded the TVO's settings (``partitions``, ``schedule``, ``beta1``…) for every
      objective, where they had no effect: they are dropped (``None``) where they do not apply.
    - 0.1.0 recorded a ``data`` file or ``data_root`` as given, relative to the folder it was
      trained in: it is made absolute from the working folder, as that version read it.
    - before 0.3.0 no ``threads`` were recorded: ``None`` (the run trains with the count it is
      given, and records none).
    """
    from tvo.config import absolute_paths, objective_settings

    values = objective_settings(values)
    values.update(absolute_paths(values))
    return values


def migrate_checkpoint(state: dict, config: TrainConfig) -> dict:
    """A checkpoint as this version writes it, from any earlier version's.

    - 0.1.0 counted no ``skipped`` steps: 0.
    - 0.1.0 kept no ``partition`` before the schedules were explicit state: the schedule's
      initial one (a fixed schedule's, or an adaptive one's start); the moments schedule's
      state (``count``, steps since its partition moved) was implied, as it moved at steps
      divisible by ``adapt_every``: ``step mod adapt_every``.
    - up to 0.2.0 the particles were drawn from the process's generators, and ``torch_rng`` was
      the CPU's, ``cuda_rng`` the CUDA devices': on a CUDA device the particles' generator is
      the first CUDA one's state.
    """
    state = dict(state)
    state.setdefault("skipped", 0)
    if state.get("partition") is None or (state.get("schedule") is None
                                          and config.schedule == "moments"):  # fmt: skip
        schedule = make_objective(config).schedule
        if schedule is not None and state.get("partition") is None:
            state["partition"] = schedule.init().partition
        if config.schedule == "moments" and state.get("schedule") is None:
            state["schedule"] = {"count": state["step"] % config.adapt_every}
    cuda = state.pop("cuda_rng", None)
    if cuda and config.device != "cpu" and torch.cuda.is_available():
        state["torch_rng"] = cuda[0]
    return state


def _read_config(file: Path) -> TrainConfig:
    """``config.json``, migrated (``migrate_config``) and read."""
    values = json.loads(file.read_text())
    if not isinstance(values, dict):
        raise ValueError(f"expected a JSON object, got {type(values).__name__}")
    return load_config(json.dumps(migrate_config(values)))


def _step_of(path: Path) -> int:
    """The step of a checkpoint file, from its name ``step-NNNNNNNNN.pt``."""
    return int(path.stem.split("-")[1])


# The keys of an evaluation's report that are what it measured (or the model it measured: its
# step and partition), not how: every other key is a setting and names its file.
EVALUATION_RESULTS = ("log_px", "kl", "elbo", "tvo_lower", "tvo_upper", "stderr", "acceptance",
                      "evaluations", "gradients", "upper", "upper_stderr", "gap", "gap_stderr",
                      "seconds", "num_images", "step", "partition",
                      "temperatures")  # fmt: skip


def evaluation_id(report: dict) -> str:
    """Eight hex digits of the SHA-256 of ``report``'s settings (its keys but
    ``EVALUATION_RESULTS``, as sorted JSON)."""
    settings = {k: v for k, v in report.items() if k not in EVALUATION_RESULTS}
    text = json.dumps(settings, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _foreign(path: Path) -> list[str]:
    """The names in the folder ``path`` that tvo did not leave there (its lock, the lock's
    holder, an overwrite's ``.replaced/``, the temporary files of interrupted writes)."""
    return [
        p.name
        for p in path.iterdir()
        if p.name not in LEFTOVERS and not (p.name.startswith(".") and p.name.endswith(".tmp"))
    ]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(round(value, 6))
    return value


def _parse_row(row: dict) -> dict:
    parsed = {}
    for key, value in row.items():
        if key is None or value is None:
            raise ValueError("a row has the wrong number of cells")
        if value == "":
            parsed[key] = None
        elif key in ("step", "skipped"):
            parsed[key] = int(value)
        elif key in ("split", "partition"):
            parsed[key] = value
        else:
            parsed[key] = float(value)
    return parsed
