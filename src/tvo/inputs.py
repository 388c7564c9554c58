"""What a run was trained with, recorded in each checkpoint and compared when the run is
resumed or evaluated, so that inputs changed between invocations are never used silently.

A checkpoint holds ``inputs = {"settings": …, "data": …}`` (``record``): the run's settings
that change what training computes (every ``TrainConfig`` field but those in
``FREE``: the length, how often it logs, evaluates and checkpoints, the device, ``compile``,
where the data are found) and the data's checksum (``tvo.data.Dataset.checksum``, over the
arrays' values for data given as files or tensors). ``check`` compares them with the run's
``config.json`` and data now, and the checkpoint's parameters with the model's shapes, and
raises a ``RunError`` naming what changed and how to go on:

- a hand-edited ``config.json`` (``lr``, ``partitions``, ``seed``, the model…): put the settings
  back, or train a new run with the new ones;
- data replaced under the same path (or other tensors given to ``tvo.fit(..., resume=True)``):
  give the data the run was trained on, or train a new run;
- a checkpoint whose parameters do not fit the model (a user's model file edited): the model
  of the run, or a new run.

A new setting of ``TrainConfig`` joins the record by itself (it is assumed to change training
unless it is added to ``FREE``). Checkpoints written before this record existed are
checked for their shapes only.
"""

from __future__ import annotations

import shlex

from tvo.config import TrainConfig
from tvo.data import Dataset
from tvo.runs import Run, RunError

# Settings that may differ between invocations of one run: they do not change what training
# computes (evaluations draw from generators of their own), or are checked another way (the
# data's path: its checksum; the length: Run.extend).
FREE = frozenset({"steps", "epochs", "eval_every", "eval_particles", "eval_images", "eval_split",
                  "log_every", "checkpoint_every", "device", "compile", "nonfinite", "preset",
                  "data", "data_root", "model_source"})  # fmt: skip


def settings(config: TrainConfig) -> dict:
    """The settings of ``config`` that change training (all but ``FREE``)."""
    return {k: v for k, v in config.to_dict().items() if k not in FREE}


def record(config: TrainConfig, dataset: Dataset) -> dict:
    """What a checkpoint keeps of its inputs: ``{"inputs": {"settings", "data"}}``, to be merged
    into the checkpoint's state."""
    return {"inputs": {"settings": settings(config), "data": dataset.checksum}}


def check(run: Run, saved: dict, config: TrainConfig, dataset: Dataset, model) -> None:
    """Refuse to continue (or evaluate) ``run`` from the checkpoint ``saved`` with inputs other
    than those it was trained with: a ``RunError`` naming the first difference found
    (settings, then data, then the parameters' shapes) and what to do. Nothing is written."""
    where = f"{run.path}: its checkpoint at step {saved.get('step', '?')}"
    new = _new_run(run)
    inputs = saved.get("inputs")
    if isinstance(inputs, dict):
        old, now = inputs.get("settings", {}), settings(config)
        changed = [k for k in sorted(set(old) | set(now)) if old.get(k) != now.get(k)]
        if changed:
            what = ", ".join(f"{k} {old.get(k)!r} → {now.get(k)!r}" for k in changed)
            raise RunError(
                f"{where} was trained with other settings than {run.path / 'config.json'} holds "
                f"now ({what}); nothing was changed. To continue it, put its settings back in "
                f"config.json; to train with the new ones, start a new run: {new}"
            )
        if inputs.get("data") not in (None, dataset.checksum):
            raise RunError(
                f"{where} was trained on other data than {dataset.source} holds now (checksum "
                f"{str(inputs['data'])[:12]}…, now {dataset.checksum[:12]}…); nothing was "
                "changed. To continue it, give it the data it was trained on; to train on these "
                f"data, start a new run: {new}"
            )
    check_parameters(run, saved, model)


def check_parameters(run: Run, saved: dict, model) -> None:
    """A ``RunError`` when the checkpoint's parameters do not fit ``model`` (names or
    shapes), instead of ``load_state_dict``'s size mismatch."""
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    kept = {k: tuple(getattr(v, "shape", ())) for k, v in saved.get("model", {}).items()}
    if have == kept:
        return
    missing, unexpected = sorted(set(have) - set(kept)), sorted(set(kept) - set(have))
    shapes = [f"{k} {list(kept[k])} → {list(have[k])}" for k in sorted(set(have) & set(kept))
              if have[k] != kept[k]]  # fmt: skip
    what = "; ".join(
        part
        for part in (
            f"shapes {', '.join(shapes[:3])}" if shapes else "",
            f"the model lacks {', '.join(unexpected[:3])}" if unexpected else "",
            f"the checkpoint lacks {', '.join(missing[:3])}" if missing else "",
        )
        if part
    )
    raise RunError(
        f"{run.path}: its checkpoint at step {saved.get('step', '?')} does not fit the model "
        f"built from {run.path / 'config.json'} ({what}): the model's settings or its code "
        f"changed since it was trained; nothing was changed. Put the model back as it was to "
        f"continue or evaluate it, or start a new run: {_new_run(run)}"
    )


def _new_run(run: Run) -> str:
    """How to train the new inputs instead: a new folder, or this one replaced."""
    return (f"tvo train with those settings and another --out, or --out "
            f"{shlex.quote(str(run.path))} --overwrite to replace this run (tvo.fit: "
            "overwrite=True)")  # fmt: skip
