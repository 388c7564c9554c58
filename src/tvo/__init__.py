"""tvo: the thermodynamic variational objective and its family for deep generative models.

The public API, by name:

- partitions: ``partition``; schedules as explicit state (``init``, ``update``) in
  ``tvo.partitions``: fixed, ``moments`` and ``gp-bandit`` (``tvo.bandit``), the TVO's
  as ``TVO(schedule=...).schedule``;
- objectives (call as ``objective(model, x, num_particles)``): ``TVO``, ``ELBO``,
  ``VAE``, ``IWAE``, ``Reinforce``, ``VIMCO``, ``RWS``,
  ``WakeSleep``, ``InferenceCompilation``, ``OVIS``, ``Renyi``, and for
  continuous latents ``DReG``, ``TVOReparam`` and ``RenyiPathwise``;
- pure functions on ``[S, B]`` log-weights: ``tvo.functional``;
- models: ``Model`` (the convenience base class) and ``tvo.models``;
- the trainer: ``fit`` (a run folder like ``tvo train``'s, for any model), ``load``
  (a trained run's model), ``check_model`` (a model against the protocol);
- the training step: ``Step`` and ``TrainState`` (``tvo.step``);
- evaluation: ``estimate``, annealed importance sampling ``ais`` and bidirectional Monte
  Carlo ``bdmc``, tempered SMC ``smc``, and the exact answers in ``tvo.evaluate``;
- gradient diagnostics: ``gradient_stats`` (mean, variance and SNR of an estimator's
  gradient for θ and φ, ``tvo.diagnostics``);
- CPU speed: ``tvo.runtime.keep_freed_memory`` (the command line calls it).
"""

from tvo import functional
from tvo.diagnostics import gradient_stats
from tvo.evaluate import Evaluation, ais, bdmc, estimate, exact_log_marginal, exact_tvo, smc
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

__version__ = "0.3.0"

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
    "smc",
]
