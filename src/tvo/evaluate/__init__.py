"""Evaluation: many-particle estimates (``estimate``), exact answers by
enumeration (``exact``), annealed importance sampling and bidirectional Monte
Carlo (``ais``) along annealing paths (``paths``), tempered SMC
(``smc``), with their Markov kernels (``kernels``), and
the evaluation of a trained run (``run``)."""

from tvo.evaluate.ais import AISEstimate, BDMCEstimate, ais, annealing_schedule, bdmc
from tvo.evaluate.estimate import (
    CPU_CHUNK_ROWS,
    Evaluation,
    default_chunk_size,
    estimate,
    estimate_integrand,
)
from tvo.evaluate.exact import exact_integrand, exact_log_marginal, exact_log_weights, exact_tvo
from tvo.evaluate.kernels import (
    HMC,
    Cycle,
    DiscreteGibbs,
    DiscreteMH,
    FlipMH,
    IndependentMH,
    SBNSweep,
)
from tvo.evaluate.smc import SMCEstimate, smc

__all__ = [
    "CPU_CHUNK_ROWS",
    "HMC",
    "AISEstimate",
    "BDMCEstimate",
    "Cycle",
    "DiscreteGibbs",
    "DiscreteMH",
    "Evaluation",
    "FlipMH",
    "IndependentMH",
    "SBNSweep",
    "SMCEstimate",
    "ais",
    "annealing_schedule",
    "bdmc",
    "default_chunk_size",
    "estimate",
    "estimate_integrand",
    "exact_integrand",
    "exact_log_marginal",
    "exact_log_weights",
    "exact_tvo",
    "smc",
]
