"""Sweeps: a grid of runs from one TOML file (``tvo.sweep.plan``), its units of work (a run,
or a group of runs trained together) run by an executor: local processes
(``tvo.sweep.local``, the default) or Ray tasks on a cluster (``tvo.sweep.ray``, needs
``pip install 'tvo[ray]'``); finished runs are skipped and unfinished ones resumed."""

from tvo.sweep.local import run
from tvo.sweep.plan import (
    EVALUATION_DEFAULTS,
    TOP_KEYS,
    Sweep,
    load,
    prepare,
    run_name,
    status,
    units,  # fmt: skip
)
from tvo.sweep.worker import work

__all__ = ["EVALUATION_DEFAULTS", "TOP_KEYS", "Sweep", "load", "prepare", "run", "run_name",
           "status", "units", "work"]  # fmt: skip
