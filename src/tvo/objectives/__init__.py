"""Objectives, one module per family; each a pure function of ``[S, B]`` tensors and a small
class that declares its sampling mode and settings (``Objective``).

``OBJECTIVES`` is the registry by name; ``objective_class`` looks one up with a clear
error; ``make_objective`` builds a run's objective from its config.
"""

from tvo.objectives.base import Objective, Output, Terms
from tvo.objectives.elbo import ELBO, VAE, elbo, vae
from tvo.objectives.iwae import IWAE, VIMCO, DReG, Reinforce, dreg, iwae, reinforce, vimco
from tvo.objectives.ovis import OVIS, ovis_asymptotic, ovis_mc
from tvo.objectives.renyi import Renyi, RenyiPathwise, renyi, renyi_pathwise
from tvo.objectives.tvo import TVO, TVOReparam, TVOTerms, tvo, tvo_reparam
from tvo.objectives.wake_sleep import (
    RWS,
    InferenceCompilation,
    WakeSleep,
    inference_compilation,
    rws,
    wake_sleep,
)

_CLASSES = (TVO, TVOReparam, ELBO, VAE, IWAE, DReG, Reinforce, VIMCO, RWS, WakeSleep,
            InferenceCompilation, OVIS, Renyi, RenyiPathwise)  # fmt: skip
OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in _CLASSES}


def objective_class(name: str) -> type[Objective]:
    """The objective class called ``name``; ``ValueError`` naming the valid ones otherwise."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}: expected one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def make_objective(config) -> Objective:
    """The objective of ``config``, with the settings of it that apply (the TVO's adaptive
    schedules are seeded by the run's seed).

    Args:
        config (tvo.config.TrainConfig): a run's settings.
    """
    cls = objective_class(config.objective)
    settings = {name: getattr(config, name) for name in cls.applicable(config.to_dict())}
    return cls.from_settings(seed=config.seed, **settings)


__all__ = [
    "ELBO",
    "IWAE",
    "OBJECTIVES",
    "OVIS",
    "RWS",
    "TVO",
    "VAE",
    "VIMCO",
    "DReG",
    "InferenceCompilation",
    "Objective",
    "Output",
    "Reinforce",
    "Renyi",
    "RenyiPathwise",
    "TVOReparam",
    "TVOTerms",
    "Terms",
    "WakeSleep",
    "dreg",
    "elbo",
    "inference_compilation",
    "iwae",
    "make_objective",
    "objective_class",
    "ovis_asymptotic",
    "ovis_mc",
    "reinforce",
    "renyi",
    "renyi_pathwise",
    "rws",
    "tvo",
    "tvo_reparam",
    "vae",
    "vimco",
    "wake_sleep",
]
