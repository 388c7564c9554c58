"""What a group of runs adds to training: the batched step under ``torch.func.vmap`` over an
explicit stacked state, and the stacked Adam. The loop is ``tvo.train.train``'s, the same
for a single run (a group of one) and a group of ``M``.

A small model cannot fill the machine: its step is bound by per-operation overhead. ``M`` runs
that share a model architecture, objective, ``S``, ``K`` and batch size pay that overhead once:
each parameter is one ``[M, …]`` tensor, the objective of every member is evaluated by one
batched call (``functional_call`` of the model under ``vmap``, ``randomness="different"``), and
``StackedAdam`` updates them together. Members differ in seed (their own batches),
learning rate, ``β1`` or partition, and adaptive schedule state.

The group's state, ``GroupState``, is a value like a single run's
``TrainState``: the stacked parameters, the Adam moments and counts, each
member's schedule state and data generator, the group's particle generator, and the counts of
skipped steps. A member's checkpoint is a view of it (``GroupStep.member_checkpoint``), in a
single run's format, so ``tvo eval``, ``plot``, ``compare`` and ``report`` cannot tell a member
from a single run.

Randomness: the particles of all members are drawn in one batched call from the group's own
generator (never the process's): a member's step computes its single run's loss and gradients
for the particles it is given (tests/test_ensemble.py, to 1e-10), but not from the particles its
single run would draw, so a member equals its single run in distribution, not bit for bit. A
group equals itself bit for bit: the same members, seeds and threads give the same numbers,
interrupted and resumed or not.

Where it sits: docs/architecture.md, "One run and a group".
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.func import functional_call, stack_module_state, vmap

from tvo.config import ConfigError, TrainConfig, differences
from tvo.objectives import Objective
from tvo.partitions import Schedule
from tvo.step import Generators, TrainState, drawing_from, training_loss

# The settings in which the members of a group may differ (everything else must be equal).
MEMBER_SETTINGS = ("seed", "lr", "beta1", "partition", "model_source")


def group_key(config: TrainConfig) -> tuple:
    """Runs with the same key can be trained as one group.

    Args:
        config: a run's settings; the key is every one of them but ``MEMBER_SETTINGS``, as
            sorted ``(name, repr(value))`` pairs.
    """
    values = dataclasses.asdict(config)
    return tuple(sorted((k, repr(v)) for k, v in values.items() if k not in MEMBER_SETTINGS))


@dataclass
class AdamMoments:
    """The stacked Adam's state: ``exp_avg`` and ``exp_avg_sq`` (``[M, …]`` per parameter) and
    each member's step count ``step_count`` ``[M]``."""

    exp_avg: dict[str, Tensor]
    exp_avg_sq: dict[str, Tensor]
    step_count: Tensor


class StackedAdam:
    """Adam (Kingma & Ba) over stacked parameters ``[M, …]``: each member ``m`` with its own
    learning rate ``lr[m]`` and step count ``t[m]``, updated as ``torch.optim.Adam`` updates it:
    ``p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)``. The moments are a value,
    ``AdamMoments`` (``init``), that ``step`` updates in place, as ``torch.optim``
    does.

    Each member is one call of torch's fused Adam kernel (``torch._fused_adam_``, what
    ``torch.optim.Adam(fused=True)`` calls) on its slices of the stacked tensors, in place: a
    fresh ``[M, …]`` tensor per operation of the formula cost ten times more on the CPU (36 ms
    against 3 ms for 16 ``linear_1`` members; the stacked tensors outgrow the caches). A member
    whose step is not ``applied`` is skipped by the kernel itself (its ``found_inf``), so that
    nothing waits for the device; its step count does not advance.

    Args:
        lr: each member's learning rate, in the order of the members (``M`` values).
        betas (tuple[float, float]): Adam's ``(β₁, β₂)``, the same for every member (default
            ``(0.9, 0.999)``, ``torch.optim.Adam``'s; not the TVO's ``beta1``).
        eps (float): the ``ε`` added to the denominator (default ``1e-8``).
    """

    def __init__(self, lr: list[float], betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps = [float(v) for v in lr], betas, eps

    def init(self, params: dict[str, Tensor]) -> AdamMoments:
        """Zero moments, the shapes of ``params``, and zero step counts ``[M]``.

        Args:
            params: the stacked parameters by name, ``[M, …]`` each.
        """
        device = next(iter(params.values())).device
        count = torch.zeros(len(self.lr), dtype=torch.float32, device=device)
        return AdamMoments({k: torch.zeros_like(p) for k, p in params.items()},
                           {k: torch.zeros_like(p) for k, p in params.items()}, count)  # fmt: skip

    @torch.no_grad()
    def step(self, params: dict[str, Tensor], moments: AdamMoments, grads: dict[str, Tensor],
             applied: Tensor) -> None:  # fmt: skip
        """One update of the members where ``applied`` ``[M]`` is true (``params`` and
        ``moments`` in place; an entry of either may be replaced by the same values in the
        gradient's memory layout, ``_in_layout``).

        Args:
            params: the stacked parameters by name, ``[M, …]`` each, updated in place.
            moments: the moments from ``init``, updated in place.
            grads: the gradients, under the names of ``params``, ``[M, …]`` each.
            applied: which members are updated, booleans ``[M]``; the others' parameters,
                moments and step counts stay as they are.
        """
        moments.step_count += applied
        skip = (~applied).float()  # the kernel's found_inf: 1.0 skips the member
        names = list(params)
        grads = {k: self._in_layout(k, grads[k], params, moments) for k in names}
        tensors = [[_contiguous_view(t[k]) for k in names]
                   for t in (params, grads, moments.exp_avg, moments.exp_avg_sq)]  # fmt: skip
        p_views, g_views, avg_views, sq_views = tensors
        for m, lr in enumerate(self.lr):
            torch._fused_adam_(
                [p[m] for p in p_views], [g[m] for g in g_views],
                [a[m] for a in avg_views], [v[m] for v in sq_views],
                [], [moments.step_count[m]] * len(names), lr=lr, beta1=self.betas[0],
                beta2=self.betas[1], weight_decay=0.0, eps=self.eps, amsgrad=False,
                maximize=False, found_inf=skip[m],
            )  # fmt: skip

    @staticmethod
    def _in_layout(name: str, grad: Tensor, params: dict, moments: AdamMoments) -> Tensor:
        """``grad`` in the memory layout of the parameter ``name``: the kernel pairs the
        elements of its four tensors by their place in memory (and is fast on contiguous ones
        alone: 1.0 against 3.5 ms on transposed ones, for 16 × 784 × 200). Autograd gives the
        gradient of a weight used in a batched product in a transposed layout; the first time,
        the parameter and its moments take that layout, and the kernel is given the four as
        contiguous views (``_contiguous_view``): this saves a copy of every such gradient
        at every step (5 ms of a 60 ms step of 16 ``linear_1`` members). A gradient of another
        layout is copied."""
        param = params[name]
        if grad.stride() == param.stride():
            return grad
        if not (_dense(grad) and grad.stride(0) == grad[0].numel()):
            return grad.contiguous(memory_format=torch.contiguous_format)

        def relayout(t: Tensor) -> Tensor:
            out = torch.empty_strided(t.shape, grad.stride(), dtype=t.dtype, device=t.device)
            return out.copy_(t)

        params[name] = relayout(param.detach()).requires_grad_(param.requires_grad)
        moments.exp_avg[name] = relayout(moments.exp_avg[name])
        moments.exp_avg_sq[name] = relayout(moments.exp_avg_sq[name])
        return grad

    @staticmethod
    def member_state(moments: AdamMoments, m: int, optimiser: torch.optim.Optimizer) -> dict:
        """Member ``m``'s moments in ``optimiser``'s (a ``torch.optim.Adam`` over the member's
        parameters, in the same order) state-dict format.

        Args:
            moments: the group's moments.
            m: the member's index in the group.
            optimiser: a ``torch.optim.Adam`` over the member's parameters, whose
                ``state_dict`` gives the format (its parameter groups are kept as they are).
        """
        state = optimiser.state_dict()
        step = moments.step_count[m].cpu()
        state["state"] = {
            i: {"step": step.clone(), "exp_avg": moments.exp_avg[k][m].clone(),
                "exp_avg_sq": moments.exp_avg_sq[k][m].clone()}
            for i, k in enumerate(moments.exp_avg)
        }  # fmt: skip
        return state

    @staticmethod
    def load_member(moments: AdamMoments, m: int, state: dict) -> None:
        """Member ``m``'s moments from a ``torch.optim.Adam`` state dict (of a checkpoint).

        Args:
            moments: the group's moments, member ``m``'s slices set in place.
            m: the member's index in the group.
            state: the state dict (``torch.optim.Adam.state_dict()``); a parameter it holds no
                state for (no step taken yet) keeps its moments.
        """
        saved = state["state"]
        for i, k in enumerate(moments.exp_avg):
            if i in saved:
                moments.exp_avg[k][m] = saved[i]["exp_avg"]
                moments.exp_avg_sq[k][m] = saved[i]["exp_avg_sq"]
                moments.step_count[m] = float(saved[i]["step"])


def _members_finite(t: Tensor) -> Tensor:
    """Whether every element of each member's slice of ``t`` ``[M, …]`` is finite, ``[M]``: the
    rule of ``tvo.step.all_finite``. Their 2-norms first (no ``flatten``, which copies a
    tensor of a transposed layout); the 2-norm of finite elements overflows beyond about 1e19,
    so where one is not finite the elements decide: on the CPU only then, elsewhere always
    (a branch would wait for the device)."""
    dims = tuple(range(1, t.dim()))
    if not dims:
        return torch.isfinite(t)
    finite = torch.isfinite(torch.linalg.vector_norm(t, dim=dims))
    if t.device.type == "cpu" and bool(finite.all()):
        return finite
    return torch.isfinite(t).all(dim=dims) if len(dims) == 1 else torch.isfinite(t).amin(dims)


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
class GroupState:
    """Everything a group step changes, for ``M`` members: ``params`` and ``buffers`` (each
    ``[M, …]``, the leaves ``StackedAdam`` updates), ``moments`` (Adam's), each member's
    ``schedules`` state and ``data`` generator, the group's ``particles`` generator, ``skipped``
    steps per member ``[M]`` (on the device) and which members are ``active`` ``[M]`` (a member
    that left the group is not updated)."""

    step: int
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    moments: AdamMoments
    schedules: list
    data: list[torch.Generator]
    particles: torch.Generator
    skipped: Tensor
    active: Tensor


@dataclass
class GroupInfo:
    """A group step's report, per member: ``loss`` ``[M]``, ``estimate`` ``[M, B]``,
    ``log_weight`` ``[M, S, B]``, whether the member's step was ``finite`` (applied where the
    member was active) and whether its parameters are ``broken`` (an element no longer
    finite)."""

    loss: Tensor
    estimate: Tensor
    log_weight: Tensor
    finite: Tensor
    broken: Tensor


class GroupStep:
    """``step(state, x) → (state, info)`` for ``M`` members at once, as ``tvo.step.Step``
    for one: one batched call of the objective for every member's batch ``x[m]`` ``[M, B, D]``
    and partition, one backward pass, one ``StackedAdam`` step, then the adaptive
    schedules' updates. ``template`` is one member's model (its structure; its own parameters
    are not used); ``lr`` the members' learning rates.

    Args:
        template: one member's model: its structure, and the function ``vmap`` calls with each
            member's stacked parameters (its own parameters are not used).
        objective: the objective every member's step minimises.
        num_particles: the number of particles ``S`` per data point.
        lr: each member's learning rate, in the order of the members (``M`` values).
        schedule: the partition's schedule, each member with its own state (default ``None``:
            ``objective.schedule``, itself ``None`` for an objective without a partition).
    """

    def __init__(self, template: nn.Module, objective: Objective, num_particles: int,
                 lr: list[float], schedule: Schedule | None = None):  # fmt: skip
        self.call = _Call(template, objective, num_particles)
        self.optimiser = StackedAdam(lr)
        self.schedule = schedule if schedule is not None else objective.schedule

        def member(params, buffers, x, partition):
            return functional_call(self.call, (params, buffers), (x, partition))

        self._checked = False  # whether a first call went through vmap
        self._members = vmap(member, in_dims=(0, 0, 0, 0), randomness="different")
        self._members_fixed = vmap(member, in_dims=(0, 0, 0, None), randomness="different")
        self._partitions: tuple[list, Tensor] | None = None  # stacked once per move

    def init(self, models: list[nn.Module], states: list[TrainState] | None = None,
             particles: torch.Generator | None = None) -> GroupState:  # fmt: skip
        """The group's state from its members' models and, when given, their single-run
        states (as ``tvo.train.start`` makes them: fresh or loaded from checkpoints; the
        moments of their optimisers are stacked). ``particles``: the group's generator (default:
        the first member's particle generator).

        Args:
            models: the members' models (one architecture), whose parameters and buffers are
                stacked ``[M, …]``.
            states: each member's single-run state (default ``None``: fresh states at step 0,
                member ``i``'s generators seeded with ``i``).
            particles: the group's particle generator (default ``None``: the first member's).
        """
        params, buffers = stack_module_state(models)
        params = {f"model.{k}": v for k, v in params.items()}
        buffers = {f"model.{k}": v for k, v in buffers.items()}
        moments = self.optimiser.init(params)
        device = next(iter(params.values())).device
        count = len(models)
        if states is None:
            states = [TrainState(0, m, None, None if self.schedule is None else
                                 self.schedule.init(), Generators.of_run(i, device))
                      for i, m in enumerate(models)]  # fmt: skip
        for i, state in enumerate(states):
            if state.optimiser is not None:
                self.optimiser.load_member(moments, i, state.optimiser.state_dict())
        skipped = torch.tensor([s.skipped for s in states], dtype=torch.float64, device=device)
        return GroupState(states[0].step, params, buffers, moments, [s.schedule for s in states],
                          [s.generators.data for s in states],
                          particles if particles is not None else states[0].generators.particles,
                          skipped, torch.ones(count, dtype=torch.bool, device=device))  # fmt: skip

    def losses(self, params: dict, buffers: dict, x: Tensor, partitions: Tensor | None):
        """Every member's ``(loss, estimate, log_weight)`` for its batch ``x[m]`` ``[M, B, D]``
        and partition ``partitions[m]`` (``None`` for objectives without one).

        The distributions' argument checks (``validate_args``) are off during the call: a member
        whose parameters are no longer finite would make them raise for the whole group (a
        single run's step is not finite then, and is skipped), and each check waits for the
        device.

        Args:
            params: the stacked parameters by name (``model.``-prefixed), ``[M, …]`` each.
            buffers: the stacked buffers by name, likewise.
            x: the members' batches, ``[M, B, D]``.
            partitions: the members' partitions, ``[M, K + 1]`` (``None`` for objectives
                without one).

        The result's shapes: ``loss`` ``[M]``, ``estimate`` ``[M, B]``, ``log_weight``
        ``[M, S, B]``.
        """
        fn = self._members if partitions is not None else self._members_fixed
        with _no_validation():
            if self._checked:
                return fn(params, buffers, x, partitions)
            try:
                result = fn(params, buffers, x, partitions)
            except (RuntimeError, NotImplementedError, ValueError, TypeError) as error:
                raise GroupError(
                    f"this model cannot be trained in a group: its step under torch.func.vmap "
                    f"failed ({type(error).__name__}: {str(error).splitlines()[0]}); train its "
                    "runs one at a time (tvo sweep --group 1)"
                ) from error
            self._checked = True
            return result

    def _stacked_partitions(self, state: GroupState) -> Tensor | None:
        if state.schedules[0] is None:
            return None
        current = [s.partition for s in state.schedules]
        cached = self._partitions
        if cached is None or any(a is not b for a, b in zip(cached[0], current)):
            device = next(iter(state.params.values())).device
            self._partitions = (current, torch.stack(current).to(device))
        return self._partitions[1]

    def __call__(self, state: GroupState, x: Tensor) -> tuple[GroupState, GroupInfo]:
        """One step; only active members whose step is finite are updated. With a fixed
        partition nothing here waits for the device (no host synchronisation); an adaptive
        schedule reads which members' steps were applied, to advance theirs.

        A step is finite when the member's loss and every element of its gradients are (as a
        single run's ``tvo.step.grads_finite``). A member whose parameters are no longer
        finite after the update (a learning rate so large that the update overflows) is
        ``broken``: its parameters are set to zero, so that it cannot make the group's next
        step raise, and the loop takes it out of the group."""
        partitions = self._stacked_partitions(state)
        with drawing_from(state.particles):
            loss, estimate, log_weight = self.losses(state.params, state.buffers, x, partitions)
        leaves = list(state.params.values())
        grads = torch.autograd.grad(loss.sum(), leaves, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]
        finite = torch.isfinite(loss)
        for g in grads:
            finite &= _members_finite(g)
        applied = finite & state.active
        self.optimiser.step(state.params, state.moments, dict(zip(state.params, grads)), applied)
        leaves = list(state.params.values())  # the optimiser may have given them a new layout
        broken = torch.zeros_like(finite)
        with torch.no_grad():
            for p in leaves:
                broken |= ~_members_finite(p)
            broken &= state.active
            if p.device.type != "cpu" or bool(broken.any()):  # a free check on the CPU
                for p in leaves:
                    p.masked_fill_(broken.view((-1,) + (1,) * (p.dim() - 1)), 0.0)
        info = GroupInfo(loss.detach(), estimate.detach(), log_weight.detach(), finite, broken)
        schedules = state.schedules
        if self.schedule is not None and self.schedule.adaptive:
            done = applied.tolist()
            schedules = [self.schedule.update(s, info.log_weight[i]) if done[i] else s
                         for i, s in enumerate(schedules)]  # fmt: skip
        skipped = state.skipped + (~finite & state.active)
        return dataclasses.replace(state, step=state.step + 1, schedules=schedules,
                                   skipped=skipped), info  # fmt: skip

    @torch.no_grad()
    def to_model(self, state: GroupState, m: int, model: nn.Module) -> nn.Module:
        """Member ``m``'s parameters and buffers put into ``model`` (returned).

        Args:
            state: the group's state.
            m: the member's index in the group.
            model: a model of the members' architecture, loaded in place.
        """
        model.load_state_dict({k[len("model."):]: v[m] for k, v in
                               {**state.params, **state.buffers}.items()})  # fmt: skip
        return model

    def member_checkpoint(self, state: GroupState, m: int, model: nn.Module,
                          optimiser: torch.optim.Optimizer) -> dict:  # fmt: skip
        """Member ``m``'s view of the group's state, in a single run's checkpoint format
        (``tvo.step.state_dict``; ``model`` and ``optimiser`` are the member's objects, which
        give the formats): its parameters, Adam moments, schedule state, data generator and the
        group's particle generator.

        Args:
            state: the group's state.
            m: the member's index in the group.
            model: the member's model, given member ``m``'s parameters and buffers in place.
            optimiser: the member's ``torch.optim.Adam`` over ``model``'s parameters, whose
                state dict gives the format of the moments.
        """
        from tvo.step import state_dict

        self.to_model(state, m, model)
        view = TrainState(state.step, model, optimiser, state.schedules[m],
                          Generators(state.particles, state.data[m]),
                          int(state.skipped[m].item()))  # fmt: skip
        saved = state_dict(view, self.schedule)
        saved["optimiser"] = self.optimiser.member_state(state.moments, m, optimiser)
        return saved


def check_group(runs) -> None:
    """Runs can share a group when every setting but those of ``MEMBER_SETTINGS`` is
    equal; otherwise a ``ConfigError`` names the settings that differ.

    Args:
        runs (list[tvo.runs.Run]): the runs, each compared with the first.
    """
    first = runs[0].config
    for run in runs[1:]:
        differ = differences(first, run.config, keep=MEMBER_SETTINGS)
        if differ:
            raise ConfigError(
                f"{run.path} cannot join the group of {runs[0].path}: they differ in "
                f"{', '.join(differ)} (members may differ only in {', '.join(MEMBER_SETTINGS)})"
            )


def train_group(runs, quiet: bool = False, stop_after: int | None = None) -> list[dict]:
    """``tvo.train.train`` of ``runs`` as one group (kept for the name the README and
    earlier versions used).

    Args:
        runs (list[tvo.runs.Run]): the runs to train together (their settings may differ only in
            ``MEMBER_SETTINGS``).
        quiet: no progress bar; a printed line per evaluation instead (default ``False``).
        stop_after: end after this step, as an interruption would, checkpoint included (default
            ``None``: train to the runs' length).

    Returns:
        Each run's summary, as ``tvo.train.train_runs`` gives it.
    """
    from tvo.train import train_runs

    return train_runs(runs, quiet=quiet, stop_after=stop_after)


__all__ = ["GroupError", "GroupState", "GroupStep", "StackedAdam", "check_group", "group_key",
           "train_group"]  # fmt: skip
