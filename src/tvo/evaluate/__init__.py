"""Evaluation: many-particle estimates (:mod:`~tvo.evaluate.estimate`), exact answers by
enumeration (:mod:`~tvo.evaluate.exact`), annealed importance sampling and bidirectional Monte
Carlo (:mod:`~tvo.evaluate.ais`) with their Markov kernels (:mod:`~tvo.evaluate.kernels`), and
the evaluation of a trained run (:mod:`~tvo.evaluate.run`)."""

from tvo.evaluate.ais import AISEstimate, BDMCEstimate, ais, annealing_schedule, bdmc
from tvo.evaluate.estimate import (
    CPU_CHUNK_ROWS,
    Evaluation,
    default_chunk_size,
    estimate,
    estimate_integrand,
)
from tvo.evaluate.exact import exact_integrand, exact_log_marginal, exact_log_weights, exact_tvo
from tvo.evaluate.kernels import HMC, Cycle, FlipMH, IndependentMH, SBNSweep

__all__ = [
    "CPU_CHUNK_ROWS",
    "HMC",
    "AISEstimate",
    "BDMCEstimate",
    "Cycle",
    "Evaluation",
    "FlipMH",
    "IndependentMH",
    "SBNSweep",
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
]
