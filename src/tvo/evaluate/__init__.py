"""Evaluation: many-particle estimates (:mod:`~tvo.evaluate.estimate`), exact answers by
enumeration (:mod:`~tvo.evaluate.exact`), and the evaluation of a trained run
(:mod:`~tvo.evaluate.run`)."""

from tvo.evaluate.estimate import (
    CPU_CHUNK_ROWS,
    Evaluation,
    default_chunk_size,
    estimate,
    estimate_integrand,
)
from tvo.evaluate.exact import exact_integrand, exact_log_marginal, exact_log_weights, exact_tvo

__all__ = [
    "CPU_CHUNK_ROWS",
    "Evaluation",
    "default_chunk_size",
    "estimate",
    "estimate_integrand",
    "exact_integrand",
    "exact_log_marginal",
    "exact_log_weights",
    "exact_tvo",
]
