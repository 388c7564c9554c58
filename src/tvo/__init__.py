"""tvo: the thermodynamic variational objective and its family for deep generative models.

The public API, by name:

- partitions: :func:`partition`; schedules as explicit state (``init``, ``update``) in
  :mod:`tvo.partitions`: fixed, ``moments`` and ``gp-bandit`` (:mod:`tvo.bandit`), the TVO's
  as ``TVO(schedule=...).schedule``;
- objectives (call as ``objective(model, x, num_particles)``): :class:`TVO`, :class:`ELBO`,
  :class:`VAE`, :class:`IWAE`, :class:`Reinforce`, :class:`VIMCO`, :class:`RWS`,
  :class:`WakeSleep`, :class:`InferenceCompilation`, :class:`OVIS`, :class:`Renyi`, and for
  continuous latents :class:`DReG`, :class:`TVOReparam` and :class:`RenyiPathwise`;
- pure functions on ``[S, B]`` log-weights: :mod:`tvo.functional`;
- models: :class:`Model` (the convenience base class) and :mod:`tvo.models`;
- the trainer: :func:`fit` (a run folder like ``tvo train``'s, for any model), :func:`load`
  (a trained run's model), :func:`check_model` (a model against the protocol);
- the training step: :class:`Step` and :class:`TrainState` (:mod:`tvo.step`);
- evaluation: :func:`estimate`, annealed importance sampling :func:`ais` and bidirectional Monte
  Carlo :func:`bdmc`, and the exact answers in :mod:`tvo.evaluate`;
- gradient diagnostics: :func:`gradient_stats` (mean, variance and SNR of an estimator's
  gradient for θ and φ, :mod:`tvo.diagnostics`);
- CPU speed: :func:`tvo.runtime.keep_freed_memory` (the command line calls it).
"""

from tvo import functional
from tvo.diagnostics import gradient_stats
from tvo.evaluate import Evaluation, ais, bdmc, estimate, exact_log_marginal, exact_tvo
from tvo.fit import Fit, fit, load
from tvo.models import GenerativeModel, Model
from tvo.models.check import check_model
from tvo.objectives import (
    ELBO,
    IWAE,
    OBJECTIVES,
    OVIS,
    RWS,
    TVO,
    VAE,
    VIMCO,
    DReG,
    InferenceCompilation,
    Objective,
    Output,
    Reinforce,
    Renyi,
    RenyiPathwise,
    TVOReparam,
    WakeSleep,
)
from tvo.partitions import partition
from tvo.step import Step, StepInfo, TrainState

__version__ = "0.2.0"

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
    "Evaluation",
    "Fit",
    "GenerativeModel",
    "InferenceCompilation",
    "Model",
    "Objective",
    "Output",
    "Reinforce",
    "Renyi",
    "RenyiPathwise",
    "Step",
    "StepInfo",
    "TVOReparam",
    "TrainState",
    "WakeSleep",
    "__version__",
    "ais",
    "bdmc",
    "check_model",
    "estimate",
    "exact_log_marginal",
    "exact_tvo",
    "fit",
    "functional",
    "gradient_stats",
    "load",
    "partition",
]
