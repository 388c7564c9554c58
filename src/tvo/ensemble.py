"""Many runs trained at once in one process: their parameters stacked, the same step under
``torch.func.vmap``, one optimiser step for all.

A small model cannot fill the machine: its step is bound by per-operation overhead. ``M`` runs
that share a model architecture, objective, ``S``, ``K`` and batch size pay that overhead once:
each parameter is one ``[M, …]`` tensor, the objective of every member is evaluated by one
batched call (``functional_call`` of the model under ``vmap``, ``randomness="different"``: each
member draws its own particles), and ``StackedAdam`` updates them together. Members differ
in seed (their own batches and particles), learning rate, ``β1`` or partition, and adaptive
schedule state.

Each member stays a normal run: ``train_group`` writes its run folder (config, metrics,
TensorBoard, checkpoints) exactly as ``tvo.train.train`` does, so ``tvo eval``, ``tvo plot``,
``tvo compare`` and ``tvo report`` cannot tell the difference, and a member's checkpoint holds its
own parameters and Adam moments in ``torch.optim.Adam``'s format. A member whose step is not
finite is left as it was (its skipped count grows), and one whose parameters overflow leaves the
group with a message; the others go on, bit for bit as without it. A group stopped at any point
resumes from its members' checkpoints to the same parameters as an uninterrupted group (the
same members: they share torch's generator, so the particles depend on the group).
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from tvo import train as single
from tvo.build import Setup, build_run
from tvo.config import ConfigError, TrainConfig, differences
from tvo.objectives import Objective
from tvo.runs import Run
from tvo.step import TrainState, training_loss

# The settings in which the members of a group may differ (everything else must be equal).
MEMBER_SETTINGS = ("seed", "lr", "beta1", "partition", "model_source")


def group_key(config: TrainConfig) -> tuple:
    """Runs with the same key can be trained as one group."""
    values = dataclasses.asdict(config)
    return tuple(sorted((k, repr(v)) for k, v in values.items() if k not in MEMBER_SETTINGS))


class StackedAdam:
    """Adam (Kingma & Ba) over stacked parameters ``[M, …]``: each member ``m`` with its own
    learning rate ``lr[m]`` and step count ``t[m]``, updated as ``torch.optim.Adam`` updates it:
    ``p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)``.

    Each member is one call of torch's fused Adam kernel (``torch._fused_adam_``, what
    ``torch.optim.Adam(fused=True)`` calls) on its slices of the stacked tensors, in place: a
    fresh ``[M, …]`` tensor per operation of the formula cost ten times more on the CPU (36 ms
    against 3 ms for 16 ``linear_1`` members; the stacked tensors outgrow the caches). A member
    whose step is not ``applied`` is skipped by the kernel itself (its ``found_inf``), so that
    nothing waits for the device; its step count does not advance."""

    def __init__(self, params: dict[str, Tensor], lr: list[float], betas=(0.9, 0.999),
                 eps=1e-8):  # fmt: skip
        self.params, self.lr, self.betas, self.eps = params, [float(v) for v in lr], betas, eps
        self.exp_avg = {k: torch.zeros_like(p) for k, p in params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(p) for k, p in params.items()}
        device = next(iter(params.values())).device
        self.step_count = torch.zeros(len(self.lr), dtype=torch.float32, device=device)

    @torch.no_grad()
    def step(self, grads: dict[str, Tensor], applied: Tensor) -> None:
        """One update of the members where ``applied`` ``[M]`` is true."""
        self.step_count += applied
        skip = (~applied).float()  # the kernel's found_inf: 1.0 skips the member
        names = list(self.params)
        grads = {k: self._in_layout(k, grads[k]) for k in names}
        tensors = [[_contiguous_view(t[k]) for k in names]
                   for t in (self.params, grads, self.exp_avg, self.exp_avg_sq)]  # fmt: skip
        params, grads, exp_avg, exp_avg_sq = tensors
        for m, lr in enumerate(self.lr):
            torch._fused_adam_(
                [p[m] for p in params], [g[m] for g in grads],
                [a[m] for a in exp_avg], [v[m] for v in exp_avg_sq],
                [], [self.step_count[m]] * len(names), lr=lr, beta1=self.betas[0],
                beta2=self.betas[1], weight_decay=0.0, eps=self.eps, amsgrad=False,
                maximize=False, found_inf=skip[m],
            )  # fmt: skip

    def _in_layout(self, name: str, grad: Tensor) -> Tensor:
        """``grad`` in the memory layout of the parameter ``name``: the kernel pairs the
        elements of its four tensors by their place in memory (and is fast on contiguous ones
        alone: 1.0 against 3.5 ms on transposed ones, for 16 × 784 × 200). Autograd gives the
        gradient of a weight used in a batched product in a transposed layout; the first time,
        the parameter and its moments take that layout, and the kernel is given the four as
        contiguous views (``_contiguous_view``): this saves a copy of every such gradient
        at every step (5 ms of a 60 ms step of 16 ``linear_1`` members). A gradient of another
        layout is copied."""
        param = self.params[name]
        if grad.stride() == param.stride():
            return grad
        if not (_dense(grad) and grad.stride(0) == grad[0].numel()):
            return grad.contiguous(memory_format=torch.contiguous_format)

        def relayout(t: Tensor) -> Tensor:
            out = torch.empty_strided(t.shape, grad.stride(), dtype=t.dtype, device=t.device)
            return out.copy_(t)

        self.params[name] = relayout(param.detach()).requires_grad_(param.requires_grad)
        self.exp_avg[name] = relayout(self.exp_avg[name])
        self.exp_avg_sq[name] = relayout(self.exp_avg_sq[name])
        return grad

    def member_state(self, m: int, optimiser: torch.optim.Optimizer) -> dict:
        """Member ``m``'s moments in ``optimiser``'s (a ``torch.optim.Adam`` over the member's
        parameters, in the same order) state-dict format."""
        state = optimiser.state_dict()
        step = self.step_count[m].cpu()
        state["state"] = {
            i: {"step": step.clone(), "exp_avg": self.exp_avg[k][m].clone(),
                "exp_avg_sq": self.exp_avg_sq[k][m].clone()}
            for i, k in enumerate(self.params)
        }  # fmt: skip
        return state

    def load_member(self, m: int, state: dict) -> None:
        """Member ``m``'s moments from a ``torch.optim.Adam`` state dict (of a checkpoint)."""
        saved = state["state"]
        for i, k in enumerate(self.params):
            if i in saved:
                self.exp_avg[k][m] = saved[i]["exp_avg"]
                self.exp_avg_sq[k][m] = saved[i]["exp_avg_sq"]
                self.step_count[m] = float(saved[i]["step"])


def _member_norms(t: Tensor) -> Tensor:
    """The norm of each member's slice of ``t`` ``[M, …]``, ``[M]`` (without ``flatten``, which
    copies a tensor of a transposed layout)."""
    return torch.linalg.vector_norm(t, dim=tuple(range(1, t.dim()))) if t.dim() > 1 else t.abs()


def _contiguous_view(t: Tensor) -> Tensor:
    """``t`` ``[M, …]`` with its dimensions after the first permuted so that it is contiguous
    (for a dense tensor whose first dimension is outermost)."""
    order = sorted(range(1, t.dim()), key=lambda d: -t.stride(d))
    return t.permute(0, *order)


def _dense(t: Tensor) -> bool:
    """Whether ``t``'s elements fill its memory without gaps or overlaps (a permutation of a
    contiguous layout)."""
    expected = 1
    for stride, size in sorted(zip(t.stride(), t.shape)):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


class GroupError(ConfigError):
    """The runs cannot be trained as a group (their model's step does not go through
    ``torch.func.vmap``); raised at the first step, before anything of the runs is written."""


@contextmanager
def _no_validation():
    previous = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(previous)


class _Call(nn.Module):
    """The objective's call on a model, as ``forward`` (what ``functional_call`` swaps the
    parameters of): ``(x, partition) ↦ (loss, estimate, log_weight)``."""

    def __init__(self, model: nn.Module, objective: Objective, num_particles: int):
        super().__init__()
        self.model, self.loss = model, training_loss(objective, num_particles)

    def forward(self, x: Tensor, partition: Tensor | None):
        return self.loss(self.model, x, partition)


@dataclass
class GroupInfo:
    """A group step's report, per member: ``loss`` ``[M]``, ``estimate`` ``[M, B]``,
    ``log_weight`` ``[M, S, B]``, whether the member's step was ``finite`` (applied where the
    member was active) and whether its parameters are ``broken`` (no longer finite)."""

    loss: Tensor
    estimate: Tensor
    log_weight: Tensor
    finite: Tensor
    broken: Tensor


class GroupStep:
    """The training step of ``M`` members at once: their parameters stacked (``params``, the
    leaves that ``StackedAdam`` updates), one batched call of the objective, one backward
    pass, one optimiser step. ``template`` is one member's model (its structure; its own
    parameters are not used)."""

    def __init__(self, template: nn.Module, objective: Objective, num_particles: int,
                 models: list[nn.Module], lr: list[float]):  # fmt: skip
        params, buffers = stack_module_state(models)
        self.call = _Call(template, objective, num_particles)
        self.params = {f"model.{k}": v for k, v in params.items()}
        self.buffers = {f"model.{k}": v for k, v in buffers.items()}
        self.optimiser = StackedAdam(self.params, lr)

        def member(params, buffers, x, partition):
            return functional_call(self.call, (params, buffers), (x, partition))

        self._checked = False  # whether a first call went through vmap
        self._members = vmap(member, in_dims=(0, 0, 0, 0), randomness="different")
        self._members_fixed = vmap(member, in_dims=(0, 0, 0, None), randomness="different")

    def losses(self, x: Tensor, partitions: Tensor | None):
        """Every member's ``(loss, estimate, log_weight)`` for its batch ``x[m]`` ``[M, B, D]``
        and partition ``partitions[m]`` (``None`` for objectives without one).

        The distributions' argument checks (``validate_args``) are off during the call: a member
        whose parameters are no longer finite would make them raise for the whole group (a
        single run's step is not finite then, and is skipped), and each check waits for the
        device."""
        fn = self._members if partitions is not None else self._members_fixed
        with _no_validation():
            if self._checked:
                return fn(self.params, self.buffers, x, partitions)
            try:
                result = fn(self.params, self.buffers, x, partitions)
            except (RuntimeError, NotImplementedError, ValueError, TypeError) as error:
                raise GroupError(
                    f"this model cannot be trained in a group: its step under torch.func.vmap "
                    f"failed ({type(error).__name__}: {str(error).splitlines()[0]}); train its "
                    "runs one at a time (tvo sweep --group 1)"
                ) from error
            self._checked = True
            return result

    def __call__(self, x: Tensor, partitions: Tensor | None,
                 active: Tensor | None = None) -> GroupInfo:  # fmt: skip
        """One step; only members where ``active`` ``[M]`` (default: all) and the step is
        finite are updated. Nothing here waits for the device (no host synchronisation).

        A step is finite when the member's loss and the norm of each of its gradients are (as a
        single run's ``tvo.step.grads_finite``). A member whose parameters are no longer
        finite after the update (a learning rate so large that the update overflows) is
        ``broken``: its parameters are set to zero, so that it cannot make the group's next
        step raise, and the caller takes it out of the group."""
        loss, estimate, log_weight = self.losses(x, partitions)
        leaves = list(self.params.values())
        grads = torch.autograd.grad(loss.sum(), leaves, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]
        finite = torch.isfinite(loss)
        for g in grads:
            finite &= torch.isfinite(_member_norms(g))
        applied = finite if active is None else finite & active
        self.optimiser.step(dict(zip(self.params, grads)), applied)
        leaves = list(self.params.values())  # the optimiser may have given them a new layout
        broken = torch.zeros_like(finite)
        with torch.no_grad():
            for p in leaves:
                broken |= ~torch.isfinite(_member_norms(p))
            if p.device.type != "cpu" or bool(broken.any()):  # a free check on the CPU
                for p in leaves:
                    p.masked_fill_(broken.view((-1,) + (1,) * (p.dim() - 1)), 0.0)
        return GroupInfo(loss.detach(), estimate.detach(), log_weight.detach(), finite, broken)

    @torch.no_grad()
    def to_model(self, m: int, model: nn.Module) -> None:
        """Member ``m``'s parameters and buffers into ``model`` (for evaluation, checkpoints)."""
        model.load_state_dict({k[len("model."):]: v[m] for k, v in
                               {**self.params, **self.buffers}.items()})  # fmt: skip


def check_group(runs: list[Run]) -> None:
    """Runs can share a group when every setting but those of ``MEMBER_SETTINGS`` is
    equal; otherwise a ``ConfigError`` names the settings that differ."""
    first = runs[0].config
    for run in runs[1:]:
        differ = differences(first, run.config, keep=MEMBER_SETTINGS)
        if differ:
            raise ConfigError(
                f"{run.path} cannot join the group of {runs[0].path}: they differ in "
                f"{', '.join(differ)} (members may differ only in {', '.join(MEMBER_SETTINGS)})"
            )


@dataclass
class Member:
    """One run of a group: its folder, objects, state and bookkeeping. ``stopped`` says why it
    left the group early (``nonfinite = "stop"``, or too many non-finite steps in a row)."""

    run: Run
    setup: Setup
    state: TrainState
    progress: object
    rows: list
    writer: object  # its TensorBoard SummaryWriter, made after the group's first step
    stopped: str | None = None


class Tally:
    """Per-member counts kept on the device between metrics rows, so that a step of a group
    with a fixed partition makes no host synchronisation: the sum and count of finite steps'
    mean estimates, skipped steps, and non-finite steps in a row."""

    def __init__(self, members: list[Member], device: torch.device):
        def column(values):
            return torch.tensor(values, dtype=torch.float64, device=device)

        self.total = column([m.progress.total for m in members])
        self.count = column([m.progress.count for m in members])
        self.skipped = column([m.state.skipped for m in members])
        self.in_a_row = torch.zeros(len(members), dtype=torch.float64, device=device)
        self.broken_at = torch.zeros(len(members), dtype=torch.float64, device=device)

    def add(self, info: GroupInfo, active: Tensor, step: int) -> None:
        """Count step ``step``'s report and take broken members out of ``active`` (in place)."""
        applied = info.finite & active
        failed = ~info.finite & active
        self.broken_at = torch.where(info.broken & active, step, self.broken_at)
        active &= ~info.broken
        mean = info.estimate.mean(1).double()  # as a single run: its float mean, then a double
        self.total += torch.where(applied, mean, torch.zeros_like(mean))
        self.count += applied
        self.skipped += failed
        self.in_a_row = torch.where(failed, self.in_a_row + 1, torch.zeros_like(self.in_a_row))

    def to_members(self, members: list[Member]) -> None:
        """Write the counts into the members' progress and states (a host synchronisation)."""
        for i, (total, count, skipped) in enumerate(zip(self.total.tolist(), self.count.tolist(),
                                                        self.skipped.tolist())):  # fmt: skip
            m = members[i]
            m.progress.total, m.progress.count = total, int(count)
            m.state = dataclasses.replace(m.state, skipped=int(skipped))

    def reset_means(self) -> None:
        self.total.zero_()
        self.count.zero_()


def train_group(runs: list[Run], quiet: bool = False, stop_after: int | None = None) -> list[dict]:
    """Train (or resume) ``runs`` as one group (see the module docstring) to their configured
    number of steps; each run's folder is written as ``tvo.train.train`` writes it, each
    held for writing throughout. Returns each run's summary (``stopped``: why a member left the
    group early, else ``None``).

    With a fixed partition and ``nonfinite = "skip"`` a step makes no host synchronisation: the
    members' running means and counts stay on the device until a metrics row. An adaptive
    schedule (its update needs to know which steps were applied) or ``nonfinite = "stop"`` reads
    the step's finiteness every step.
    """
    from torch.utils.tensorboard import SummaryWriter

    check_group(runs)
    with ExitStack() as held:
        for run in runs:
            held.enter_context(run.writer())
        config = runs[0].config
        setups = [build_run(run) for run in runs]
        device = setups[0].device
        steps = single.total_steps(config, setups[0].dataset)
        members = []
        for run, s in zip(runs, setups):
            state, progress = single.start(run, s)
            if run.metrics_file.exists():
                run.truncate_metrics(state.step)
            members.append(Member(run, s, state, progress, [], None))
        step = members[0].state.step
        if any(m.state.step != step for m in members):
            raise ConfigError("the members of a group must be at the same step to train together; "
                              f"found steps {[m.state.step for m in members]}")  # fmt: skip
        if step > steps:
            raise ConfigError(f"the group has done {step} steps, more than the {steps} its "
                              "settings ask for")  # fmt: skip
        # every member's checkpoint holds the one global generator state: the last load stands
        step_fn = GroupStep(members[0].setup.model, members[0].setup.objective, config.particles,
                            [m.setup.model for m in members],
                            [m.run.config.lr for m in members])  # fmt: skip
        for i, m in enumerate(members):
            step_fn.optimiser.load_member(i, m.state.optimiser.state_dict())
        schedules = [m.setup.schedule for m in members]
        adaptive = schedules[0] is not None and schedules[0].adaptive
        read_every_step = adaptive or config.nonfinite == "stop"
        tally = Tally(members, device)
        active = torch.ones(len(members), dtype=torch.bool, device=device)
        partitions = None
        clock = time.perf_counter() - members[0].progress.seconds
        bar = tqdm(total=steps, initial=step, disable=quiet, desc=f"group of {len(members)}",
                   mininterval=0.5, dynamic_ncols=True)  # fmt: skip
        held.callback(bar.close)
        with single.StopRequest() as stop:
            while step < steps:
                x = torch.stack([m.setup.dataset.sample_batch(config.batch_size,
                                                              m.state.generators.data)
                                 for m in members])  # fmt: skip
                if partitions is None and schedules[0] is not None:  # made again when adapted
                    partitions = torch.stack([m.state.partition for m in members]).to(device)
                info = step_fn(x, partitions, active)
                if members[0].writer is None:  # after the first step: a GroupError writes nothing
                    for m in members:
                        m.writer = SummaryWriter(str(m.run.path / "events"), purge_step=step + 1)
                        held.callback(m.writer.close)
                tally.add(info, active, step + 1)
                step += 1
                if read_every_step:
                    if _read_step(members, info, active, schedules, config, step):
                        partitions = None
                    if not bool(active.any()):
                        break
                for m in members:
                    if m.stopped is None:
                        m.state = dataclasses.replace(m.state, step=step)
                bar.update()
                due_row = single.row_due(config, step, steps)
                interrupted = stop.signal is not None or step == stop_after
                due_checkpoint = single.checkpoint_due(config, step, steps)
                if not (due_row or due_checkpoint or interrupted):
                    continue
                tally.to_members(members)
                _stop_runaways(members, tally, active, config)
                for i, m in enumerate(members):
                    step_fn.to_model(i, m.setup.model)
                if due_row:
                    for m in members:
                        if m.stopped is None:
                            m.rows.append(single.log_row(config, m.setup, m.state, m.progress,
                                                         steps, clock, m.writer))  # fmt: skip
                    tally.reset_means()
                if due_checkpoint or interrupted:
                    seconds = time.perf_counter() - clock
                    for i, m in enumerate(members):
                        if m.stopped is not None:
                            continue
                        m.run.append_metrics(m.rows)
                        m.rows = []
                        m.progress.seconds = seconds
                        saved = single.checkpoint(m.state, m.progress, m.setup)
                        saved["optimiser"] = step_fn.optimiser.member_state(i, m.state.optimiser)
                        m.run.save_checkpoint(saved)
                if interrupted or not bool(active.any()):
                    break
        tally.to_members(members)
        summaries = []
        for m in members:
            if m.rows:
                m.run.append_metrics(m.rows)
            summary = single.summary_of(m.state, m.progress, steps, clock)
            if m.state.step == steps and m.stopped is None:
                m.run.write_summary(summary)
            summaries.append({**summary, "signal": stop.signal, "stopped": m.stopped})
        return summaries


def _read_step(members, info: GroupInfo, active: Tensor, schedules, config, step: int) -> bool:
    """The host's part of a step that needs it: adaptive schedules advance where the step was
    applied; ``nonfinite = "stop"`` takes a member out of the group at its first bad step.
    Returns whether a member's partition changed."""
    finite = info.finite.tolist()
    changed = False
    for i, m in enumerate(members):
        if m.stopped is not None:
            continue
        if finite[i]:
            if schedules[i] is not None and schedules[i].adaptive:
                state = schedules[i].update(m.state.schedule, info.log_weight[i])
                changed |= state.partition is not m.state.partition
                m.state = dataclasses.replace(m.state, schedule=state)
        elif config.nonfinite == "stop":
            where = single.last_checkpoint_text(m.run)
            m.stopped = (f"step {step}: the loss or a gradient is not finite; the step was not "
                         f"applied and the run left the group ({where})")  # fmt: skip
            active[i] = False
    return changed


def _stop_runaways(members, tally: Tally, active: Tensor, config) -> None:
    """Members whose parameters broke, or with too many non-finite steps in a row (as a single
    run stops), leave the group."""
    for i, broken_at in enumerate(tally.broken_at.tolist()):
        m = members[i]
        if m.stopped is None and broken_at:
            m.stopped = (f"step {int(broken_at)}: its parameters were no longer finite after the "
                         f"update (a learning rate of {m.run.config.lr:g} may be too large); the "
                         f"run left the group ({single.last_checkpoint_text(m.run)})")  # fmt: skip
            m.state = dataclasses.replace(m.state, step=int(broken_at))
            active[i] = False
    for i, row in enumerate(tally.in_a_row.tolist()):
        m = members[i]
        if m.stopped is None and row >= single.MAX_NONFINITE:
            m.stopped = (f"{int(row)} steps in a row were not finite (none was applied): the run "
                         f"left the group ({single.last_checkpoint_text(m.run)})")  # fmt: skip
            active[i] = False


__all__ = ["GroupError", "GroupStep", "StackedAdam", "check_group", "group_key", "train_group"]
