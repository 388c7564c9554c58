"""The one training loop, for a single run or a group of ``M`` runs trained together: batches,
the non-finite policy, evaluations, metrics, TensorBoard, progress, checkpoints, summaries and
signals, written once. A single run is a group of one, stepped by ``tvo.step.Step``; a
group is stepped by ``tvo.ensemble.GroupStep``. Both are ``step(state, x) → (state, info)``
with the state an explicit value; ``Single`` and ``Group`` adapt them to the loop
(batches, each member's model and checkpoint), and nothing else differs.

Everything a step changes is in its ``TrainState``, and a checkpoint holds all of
it (parameters, optimiser, schedule state, both random generators) with the loop's own running
sums; a run resumed from a checkpoint therefore continues with exactly the draws the
uninterrupted run would have made: on the CPU it ends with the same parameters, bit for bit.
Evaluations draw from generators of their own (``tvo.evaluate.run``), so they never change
what training draws.

The non-finite policy, one rule for a run alone and a member of a group: a step whose loss or
gradient has an element that is not finite is never applied; with ``nonfinite = "skip"`` it is
counted (column ``skipped`` of the metrics) and ``MAX_NONFINITE`` of them in a row stop the
run, with ``"stop"`` the first one does; parameters with an element that is no longer finite
after an update (an update so large that it overflows) stop the run at once. A run alone raises
``NonFiniteError``; a member of a group leaves it with the same message (its summary says
why), and the others go on as they would have without it.

Threads: torch's CPU reductions round differently with one thread and with two, so a run
records the thread count it trains with (``threads`` in ``config.json``, at its first step where
its creator did not) and every later invocation uses it unless told otherwise
(``train``'s ``threads``; the command line's ``--threads``), saying then that the
continuation will not be bit-identical to an uninterrupted run.

Where it sits: docs/architecture.md, "How data flows" and "One run and a group".
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from tvo import inputs
from tvo.build import Setup, build_run
from tvo.config import ConfigError, TrainConfig, run_steps
from tvo.data import Dataset
from tvo.evaluate.run import evaluate_model
from tvo.runs import Run, RunError
from tvo.step import Generators, Step, TrainState, init_state, load_state_dict, state_dict

MAX_NONFINITE = 100  # steps in a row that are not finite, after which training stops


class NonFiniteError(RuntimeError):
    """Training stopped at a step whose loss or gradient was not finite (``nonfinite = "stop"``),
    or after ``MAX_NONFINITE`` such steps in a row."""


def total_steps(config: TrainConfig, dataset: Dataset) -> int:
    return run_steps(config, len(dataset.train))


@dataclass
class Progress:
    """What the loop carries between steps besides the training state (saved in checkpoints
    too): wall-clock seconds, the running sum of the training estimate since the last metrics
    row, and the last evaluation."""

    seconds: float = 0.0
    total: float = 0.0
    count: int = 0
    last_eval: dict | None = None


class StopRequest:
    """SIGINT and SIGTERM set a flag that the loop reads after finishing the current step, so
    a stopped run always ends with a consistent checkpoint."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def start(run: Run, s: Setup, at_most: int | None = None) -> tuple[TrainState, Progress]:
    """The run's state: fresh from the config's seed, or loaded from its newest readable
    checkpoint (of a step ``≤ at_most``, where given)."""
    generators = Generators.of_run(run.config.seed, s.device, s.particles_state)
    state = init_state(s.model, s.optimiser, s.schedule, generators)
    saved = run.load_checkpoint(map_location=s.device, at_most=at_most)
    if saved is None and run.checkpoints() and at_most is None:
        raise RunError(
            f"none of the checkpoints of {run.path} can be read ({len(run.checkpoints())} "
            "found, each reported above); nothing was changed. To start the run again from "
            f"step 0, train it anew: tvo train --out {shlex.quote(str(run.path))} --overwrite "
            "with its settings"
        )
    if saved is None:
        logged = max((row["step"] for row in run.read_metrics()), default=0) if (
            run.metrics_file.exists()) else 0  # fmt: skip
        if at_most is None and logged > run.config.checkpoint_every:  # checkpoints are gone
            raise RunError(
                f"{run.path} has metrics up to step {logged} but no checkpoint (checkpoints/ "
                "was emptied); nothing was changed. Put its checkpoints back to resume, or "
                f"train it anew from step 0: tvo train --out {shlex.quote(str(run.path))} "
                "--overwrite with its settings"
            )
        return state, Progress()
    inputs.check(run, saved, run.config, s.dataset, s.model)  # what it was trained with
    progress = Progress(**{k: saved[k] for k in Progress.__dataclass_fields__})
    return load_state_dict(state, saved, s.schedule), progress


def start_together(runs: list[Run], setups: list[Setup]) -> list[tuple[TrainState, Progress]]:
    """Each run's state at the newest step at which every one of them has a readable checkpoint
    (each keeps its last two): a group stopped while its members' checkpoints were being
    written, or with one member's newest checkpoint unreadable, resumes from the step they
    share and ends as the uninterrupted group would. With none in common, all start afresh."""
    starts = [start(run, s) for run, s in zip(runs, setups)]
    common = min(state.step for state, _ in starts)
    while any(state.step != common for state, _ in starts):
        starts = [start(run, s, at_most=common) for run, s in zip(runs, setups)]
        common = min(state.step for state, _ in starts)
    return starts


def train(run: Run, quiet: bool = False, stop_after: int | None = None, prepared=None,
          threads: int | None = None) -> dict:  # fmt: skip
    """Train (or resume) the run in ``run`` to its configured number of steps, holding the run
    folder for writing (``writer``: a second process is refused).

    ``stop_after`` ends after that step as an interruption would, checkpoint included;
    ``prepared`` is a ``Setup`` to use instead of building one from the config;
    ``threads`` overrides the run's recorded thread count (see the module docstring).
    Returns the summary, with ``signal``: the number of the signal (SIGINT, SIGTERM) that
    stopped it early, else ``None``; ``summary.json`` is written when the last step is done.
    A step or update that is not finite stops it with ``NonFiniteError`` (the module
    docstring gives the rule).

    Args:
        run: the run folder (``Run.create`` makes one, ``Run.open`` opens one to resume).
        quiet: no progress bar; a printed line per evaluation instead (default ``False``).
        stop_after: end after this step, as an interruption would, checkpoint included
            (default ``None``: train to the run's length).
        prepared (tvo.build.Setup | None): the dataset, model, objective, optimiser and device
            to train with (default ``None``: built from the run, ``tvo.build.build_run``).
        threads: the number of CPU threads to train with (default ``None``: the count the run
            recorded; a run that recorded none records the count it starts with).
    """
    return train_runs([run], quiet, stop_after, None if prepared is None else [prepared],
                      threads)[0]  # fmt: skip


def train_runs(
    runs: list[Run],
    quiet: bool = False,
    stop_after: int | None = None,
    prepared: list[Setup] | None = None,
    threads: int | None = None,
) -> list[dict]:
    """Train (or resume) ``runs``, one alone or several as a group (their settings may differ
    only in ``tvo.ensemble.MEMBER_SETTINGS``), each run's folder written as a single run's
    and held for writing throughout. Returns each run's summary, with ``signal`` and, for a
    group, ``stopped``: why a member left the group early (else ``None``)."""
    if len(runs) > 1:
        from tvo.ensemble import check_group

        check_group(runs)
    with ExitStack() as held:
        for run in runs:
            held.enter_context(run.writer())
        held.enter_context(_threads(runs, threads))
        setups = prepared or [build_run(run) for run in runs]
        return _train(runs, setups, quiet, stop_after, held)


class _threads:
    """Train with the runs' recorded thread count (or ``threads``, saying so when it differs),
    and give torch back its count afterwards. A run that recorded none (made by a sweep's plan,
    or by ``tvo.fit``) records the count it starts with."""

    def __init__(self, runs: list[Run], threads: int | None):
        self.runs, self.threads = runs, threads

    def __enter__(self):
        self.previous = torch.get_num_threads()
        recorded = {run.config.threads for run in self.runs} - {None}
        if len(recorded) > 1:
            raise ConfigError(f"the runs of a group recorded different thread counts "
                              f"({sorted(recorded)}); train them one at a time")  # fmt: skip
        wanted = self.threads or (recorded.pop() if recorded else None)
        if self.threads and recorded and self.threads not in recorded:
            print(f"training with {self.threads} thread(s) where the run recorded "
                  f"{min(recorded)}: the continuation will not be bit-identical to an "
                  "uninterrupted run", file=sys.stderr, flush=True)  # fmt: skip
        if wanted is not None and wanted != self.previous:
            torch.set_num_threads(wanted)
        for run in self.runs:
            if run.config.threads is None and run.latest_step() == 0:
                run.record_threads(torch.get_num_threads())
        return self

    def __exit__(self, *exc):
        if torch.get_num_threads() != self.previous:
            torch.set_num_threads(self.previous)


def last_checkpoint_text(run: Run) -> str:
    found = run.checkpoints()
    return f"the last checkpoint is {found[-1]}" if found else "no checkpoint was written yet"


class Single:
    """A run alone, for the loop: ``tvo.step.Step`` on a ``TrainState``.
    Its step reads its finiteness anyway (a Python bool), so the loop applies the non-finite
    policy at every step."""

    reads_every_step = True

    def __init__(self, setup: Setup, config: TrainConfig):
        self.setup, self.batch_size = setup, config.batch_size
        self.step = Step(setup.objective, config.particles, setup.schedule, config.compile)

    def init(self, states: list[TrainState]) -> TrainState:
        self._active = torch.ones(1, dtype=torch.bool, device=self.setup.device)
        return states[0]

    def active(self, state: TrainState) -> Tensor:
        return self._active

    def batch(self, state: TrainState) -> Tensor:
        return self.setup.dataset.sample_batch(self.batch_size, state.generators.data)

    def __call__(self, state: TrainState, x: Tensor):
        state, info = self.step(state, x)
        return state, Report(info.estimate[None], [info.finite], [info.broken])

    def model(self, state: TrainState, m: int):
        return state.model

    def checkpoint(self, state: TrainState, m: int) -> dict:
        return state_dict(state, self.setup.schedule)

    def partition(self, state: TrainState, m: int) -> Tensor | None:
        return state.partition

    def skipped(self, state: TrainState) -> list[int]:
        return [state.skipped]


class Group:
    """``M`` runs together, for the loop: ``tvo.ensemble.GroupStep`` on a
    ``GroupState``. With a fixed partition and ``nonfinite = "skip"`` a step
    makes no host synchronisation: the members' running means and counts stay on the device
    until a metrics row. An adaptive schedule or ``nonfinite = "stop"`` reads the step's
    finiteness every step."""

    def __init__(self, setups: list[Setup], config: TrainConfig, lr: list[float]):
        from tvo.ensemble import GroupStep

        self.setups, self.batch_size = setups, config.batch_size
        self.step = GroupStep(setups[0].model, setups[0].objective, config.particles, lr,
                              setups[0].schedule)  # fmt: skip
        schedule = setups[0].schedule
        self.reads_every_step = (schedule is not None and schedule.adaptive) or (
            config.nonfinite == "stop")  # fmt: skip

    def init(self, states: list[TrainState]):
        return self.step.init([s.model for s in self.setups], states)

    def active(self, state) -> Tensor:
        """Which members the step updates, ``[M]``: the state's own tensor, which the loop
        changes in place when a member leaves."""
        return state.active

    def batch(self, state) -> Tensor:
        return torch.stack([s.dataset.sample_batch(self.batch_size, g)
                            for s, g in zip(self.setups, state.data)])  # fmt: skip

    def __call__(self, state, x: Tensor):
        state, info = self.step(state, x)
        if self.reads_every_step:
            return state, Report(info.estimate, info.finite.tolist(), info.broken.tolist())
        return state, Report(info.estimate, info.finite, info.broken)

    def model(self, state, m: int):
        return self.step.to_model(state, m, self.setups[m].model)

    def checkpoint(self, state, m: int) -> dict:
        s = self.setups[m]
        return self.step.member_checkpoint(state, m, s.model, s.optimiser)

    def partition(self, state, m: int) -> Tensor | None:
        schedule = state.schedules[m]
        return None if schedule is None else schedule.partition

    def skipped(self, state) -> list[int]:
        return [int(v) for v in state.skipped.tolist()]


@dataclass
class Report:
    """A step's report to the loop, per member: ``estimate`` ``[M, B]``, whether its step was
    ``finite`` and whether its parameters ``broke`` (lists of bools where the engine reads them
    every step, else ``[M]`` tensors on the device)."""

    estimate: Tensor
    finite: list | Tensor
    broken: list | Tensor


class Tally:
    """Per-member running sums kept on the device between metrics rows (the mean training
    estimate of finite steps, their count), and the host's counts of non-finite steps in a row
    and of the step where a member's parameters broke, filled every step where the engine reads
    them and at metrics rows otherwise."""

    def __init__(self, progress: list[Progress], device: torch.device):
        def column(values):
            return torch.tensor(values, dtype=torch.float64, device=device)

        self.total = column([p.total for p in progress])
        self.count = column([p.count for p in progress])
        self.in_a_row = column([0.0] * len(progress))
        self.broken_at = column([0.0] * len(progress))

    def add(self, report: Report, active: Tensor, step: int) -> None:
        """Count step ``step``'s report, and take members whose parameters broke out of
        ``active`` (in place)."""
        finite, broken = report.finite, report.broken
        if isinstance(finite, list):
            finite = torch.tensor(finite, device=active.device)
            broken = torch.tensor(broken, device=active.device)
        applied = finite & active
        failed = ~finite & active
        mean = report.estimate.mean(1).double()  # as a single run: its float mean, then a double
        self.total += torch.where(applied, mean, torch.zeros_like(mean))
        self.count += applied
        self.in_a_row = torch.where(failed, self.in_a_row + 1, torch.zeros_like(self.in_a_row))
        self.broken_at = torch.where(broken & active, step, self.broken_at)
        active &= ~broken  # on the device: a broken member is not updated again

    def means(self, progress: list[Progress]) -> None:
        """Write the running sums into ``progress`` (a host synchronisation)."""
        for p, total, count in zip(progress, self.total.tolist(), self.count.tolist()):
            p.total, p.count = total, int(count)

    def reset_means(self) -> None:
        self.total.zero_()
        self.count.zero_()


@dataclass
class Member:
    """One run of the loop: its folder, objects, bookkeeping, and why it ``stopped`` early."""

    run: Run
    setup: Setup
    progress: Progress
    rows: list
    writer: object = None  # its TensorBoard SummaryWriter, made after the first step
    stopped: str | None = None


def _train(runs: list[Run], setups: list[Setup], quiet: bool, stop_after: int | None,
           held: ExitStack) -> list[dict]:  # fmt: skip
    from torch.utils.tensorboard import SummaryWriter  # imported here: slow to import

    config = runs[0].config
    steps = total_steps(config, setups[0].dataset)
    starts = start_together(runs, setups)
    step = starts[0][0].step
    if step > steps:
        raise RunError(
            f"{runs[0].path} has done {step} steps, more than the {steps} asked for; give a "
            "larger --steps or --epochs (the run is left as it was)"
        )
    for run in runs:
        run.read_metrics()  # a corrupt metrics file stops the resume here, the run unchanged
    for run in runs:
        run.save_extension()  # a new length, now known to cover the steps done
        run.clear_diverged()  # trained again: a divergence is recorded anew if it recurs
        if run.metrics_file.exists():
            run.truncate_metrics(step)  # rows written after the checkpoint are redone
    alone = len(runs) == 1
    engine = Single(setups[0], config) if alone else Group(setups, config,
                                                           [r.config.lr for r in runs])  # fmt: skip
    state = engine.init([state for state, _ in starts])
    members = [Member(run, s, progress, []) for run, s, (_, progress) in zip(runs, setups, starts)]
    device = setups[0].device
    tally = Tally([m.progress for m in members], device)
    active = engine.active(state)
    clock = time.perf_counter() - members[0].progress.seconds
    bar = tqdm(total=steps, initial=step, disable=quiet, mininterval=0.5, dynamic_ncols=True,
               desc=runs[0].label() if alone else f"group of {len(runs)}")  # fmt: skip
    held.callback(bar.close)
    policy = Policy(members, config, alone, steps)
    with StopRequest() as stop:
        try:
            while step < steps:
                state, report = engine(state, engine.batch(state))
                step += 1
                if members[0].writer is None:  # after the first step: a GroupError writes nothing
                    for m in members:
                        m.writer = SummaryWriter(str(m.run.path / "events"), purge_step=step)
                        held.callback(m.writer.close)
                tally.add(report, active, step)
                if engine.reads_every_step:
                    policy.after_step(report, active, step)
                    if not bool(active.any()):
                        break
                bar.update()
                due_row = row_due(config, step, steps)
                interrupted = stop.signal is not None or step == stop_after
                due_checkpoint = checkpoint_due(config, step, steps)
                if not (due_row or due_checkpoint or interrupted):
                    continue
                tally.means([m.progress for m in members])
                policy.at_row(tally, active, step)
                if due_row:
                    write_rows(members, engine, state, tally, config, steps, clock, step)
                    report_row(bar, members[0], steps, config.eval_split, quiet)
                if due_checkpoint or interrupted:
                    save_checkpoints(members, engine, state, clock)
                if interrupted or not bool(active.any()):
                    break
        finally:
            for m in members:
                if m.rows:
                    m.run.append_metrics(
                        m.rows
                    )  # rows since the last checkpoint: dropped on resume
                    m.rows = []
    skipped = engine.skipped(state)
    if stop.signal is not None:
        print(f"stopped at step {step} of {steps}; checkpoint saved. Continue with: "
              f"{resume_hint(runs)}", flush=True)  # fmt: skip
    summaries = []
    for i, m in enumerate(members):
        done = policy.stopped_at.get(i, step)
        summary = {"steps": done, "total_steps": steps,
                   "seconds": round(time.perf_counter() - clock, 1), "skipped": skipped[i],
                   **(m.progress.last_eval or {})}  # fmt: skip
        if done == steps and m.stopped is None:
            m.run.write_summary(summary)
        summaries.append({**summary, "signal": stop.signal, "stopped": m.stopped})
    return summaries


def resume_hint(runs: list[Run]) -> str:
    """The command that continues ``runs``."""
    if len(runs) == 1:
        return f"tvo train --resume {shlex.quote(str(runs[0].path))}"
    return "the same command (each run resumes from its checkpoint)"


class Policy:
    """The non-finite policy (see the module docstring), for every member alike: a run alone
    raises ``NonFiniteError``, a member of a group leaves it (``stopped``) with the same
    message."""

    def __init__(self, members: list[Member], config: TrainConfig, alone: bool, steps: int):
        self.members, self.config, self.alone, self.steps = members, config, alone, steps
        self.in_a_row = [0] * len(members)
        self.stopped_at: dict[int, int] = {}

    def after_step(self, report: Report, active: Tensor, step: int) -> None:
        """The step's finiteness, read every step."""
        for i, (finite, broken) in enumerate(zip(report.finite, report.broken)):
            if self.members[i].stopped is not None:
                continue
            if broken:
                self.leave(i, active, step, self.broken_text(i, step))
            elif finite:
                self.in_a_row[i] = 0
            elif self.config.nonfinite == "stop":
                self.leave(i, active, step, f"step {step}: the loss or a gradient is not finite; "
                           f"the step was not applied and {self.ending()}")  # fmt: skip
            else:
                self.in_a_row[i] += 1
                if self.in_a_row[i] >= MAX_NONFINITE:
                    self.leave(i, active, step, self.in_a_row_text(i, self.in_a_row[i], step))

    def at_row(self, tally: Tally, active: Tensor, step: int) -> None:
        """Members whose parameters broke, or with too many non-finite steps in a row, since
        the last row (the counts the device kept), at ``step``."""
        for i, (row, broken_at) in enumerate(zip(tally.in_a_row.tolist(),
                                                 tally.broken_at.tolist())):  # fmt: skip
            if self.members[i].stopped is not None:
                continue
            if broken_at:
                self.leave(i, active, int(broken_at), self.broken_text(i, int(broken_at)))
            elif row >= MAX_NONFINITE:
                self.leave(i, active, step, self.in_a_row_text(i, int(row), step))

    def ending(self) -> str:
        return "training stopped" if self.alone else "the run left the group"

    def broken_text(self, i: int, step: int) -> str:
        run = self.members[i].run
        return (f"step {step}: its parameters were no longer finite after the update (a learning "
                f"rate of {run.config.lr:g} may be too large); {self.ending()} "
                f"({last_checkpoint_text(run)})")  # fmt: skip

    def in_a_row_text(self, i: int, count: int, step: int) -> str:
        run = self.members[i].run
        return (f"steps {step - count + 1} to {step}: {count} steps in a row were not finite "
                f"(none was applied), so {self.ending()}: the model cannot recover on its own "
                f"(a learning rate of {run.config.lr:g} may be too large; "
                f"{last_checkpoint_text(run)})")  # fmt: skip

    def leave(self, i: int, active: Tensor, step: int, message: str) -> None:
        """Member ``i`` diverged at ``step``: its ``diverged.json`` says so (a result, not a number:
        ``tvo report`` and ``tvo compare`` show it as diverged, a sweep does not evaluate it),
        then a run alone raises, a member of a group leaves it."""
        run = self.members[i].run
        run.write_diverged({"step": step, "total_steps": self.steps, "diverged": message})
        if self.alone:
            raise NonFiniteError(message)
        self.members[i].stopped = message
        self.stopped_at[i] = step
        active[i] = False


def write_rows(members, engine, state, tally: Tally, config, steps, clock, step) -> None:
    """Each active member's metrics row; evaluates its model at evaluation steps."""
    skipped = engine.skipped(state)
    for i, m in enumerate(members):
        if m.stopped is not None:
            continue
        m.rows.append(log_row(config, m.setup, engine.model(state, i), m.progress, step, steps,
                              skipped[i], engine.partition(state, i), clock, m.writer))  # fmt: skip
    tally.reset_means()


def save_checkpoints(members, engine, state, clock) -> None:
    """Each active member's metrics so far, then its checkpoint (a view of the state, with what
    it was trained with: ``tvo.inputs.record``)."""
    seconds = time.perf_counter() - clock
    for i, m in enumerate(members):
        if m.stopped is not None:
            continue
        m.run.append_metrics(m.rows)
        m.rows = []
        m.progress.seconds = seconds
        m.run.save_checkpoint({**engine.checkpoint(state, i), **m.progress.__dict__,
                               **inputs.record(m.run.config, m.setup.dataset)})  # fmt: skip


def row_due(config: TrainConfig, step: int, steps: int) -> bool:
    """Whether ``step`` (of ``steps``) writes a metrics row: every ``log_every`` and
    ``eval_every`` steps, and the last."""
    return step % config.log_every == 0 or step % config.eval_every == 0 or step == steps


def checkpoint_due(config: TrainConfig, step: int, steps: int) -> bool:
    """Whether ``step`` (of ``steps``) saves a checkpoint: every ``checkpoint_every`` steps,
    and the last."""
    return step % config.checkpoint_every == 0 or step == steps


def evaluate_during_training(config: TrainConfig, s: Setup) -> dict:
    """Mean ``log p̂(x)``, ``KL̂`` and ``ELBÔ`` on the run's evaluation images (seeded by the
    run's seed, so every evaluation sees the same images)."""
    result = evaluate_model(s.model, s.dataset, config.eval_split, config.eval_particles,
                            config.eval_images, seed=config.seed)  # fmt: skip
    return {key: result[key] for key in ("split", "log_px", "kl", "elbo")}


def log_row(config, s: Setup, model, progress: Progress, step: int, steps: int, skipped: int,
            partition: Tensor | None, clock: float, writer) -> dict:  # fmt: skip
    """One metrics row of a member whose model is ``model``; evaluates it at evaluation steps."""
    mean = progress.total / progress.count if progress.count else None
    row = {"step": step, "seconds": time.perf_counter() - clock, "train_objective": mean,
           "skipped": skipped, "partition": partition_text(partition)}  # fmt: skip
    progress.total, progress.count = 0.0, 0
    if step % config.eval_every == 0 or step == steps:
        progress.last_eval = evaluate_during_training(config, dataclasses.replace(s, model=model))
        row.update(progress.last_eval)
    log_scalars(writer, row)
    return row


def partition_text(beta: Tensor | None) -> str | None:
    """The partition in use, as the metrics store it: points separated by spaces."""
    return None if beta is None else " ".join(f"{b:.6g}" for b in beta.tolist())


def report_row(bar, member: Member, steps: int, split: str, quiet: bool) -> None:
    """The progress bar's latest values (of the first member); with ``quiet``, one printed line
    per evaluation."""
    if not member.rows:
        return
    row, progress = member.rows[-1], member.progress
    objective, log_px = _fmt(row["train_objective"]), _fmt((progress.last_eval or {}).get("log_px"))
    bar.set_postfix(objective=objective, log_px=log_px)
    if quiet and "log_px" in row:
        print(f"step {row['step']}/{steps}: objective {objective}, {split} log p(x) {log_px}",
              flush=True)  # fmt: skip


def log_scalars(writer, row: dict) -> None:
    for key in ("train_objective", "log_px", "kl", "elbo"):
        if row.get(key) is not None:
            writer.add_scalar(key, row[key], row["step"])
    writer.add_scalar("skipped", row["skipped"], row["step"])


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"
