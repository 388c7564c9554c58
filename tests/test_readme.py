"""The README's quickstart runs as written (with fewer steps) and its model learns."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_runs_and_learns(capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "range(2000)" in code
    torch.manual_seed(0)
    namespace = {}
    exec(code.replace("range(2000)", "range(300)"), namespace)
    log_px = float(re.search(r"tensor\((-?[0-9.]+)", capsys.readouterr().out).group(1))
    # 64 independent pixels with p = 0.3 have entropy 64·H(0.3) = 39.09 nats; an untrained model
    # (all logits 0) scores 64·log 2 = 44.36. 300 steps must close most of that gap; the mean
    # over 100 images has a standard deviation of about 0.34 nats around −39.09.
    assert -40.5 < log_px < -38.0


def test_readme_adaptive_schedule_loop_moves_the_partition(capsys):
    """The README's second block, run after the first (it reuses its model and data): with the
    moments schedule moving every 100 updates, the last of 300 steps has just moved it."""
    first, second = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[:2]
    assert "range(2000)" in second and "schedule.update" in second
    torch.manual_seed(0)
    namespace = {}
    exec(first.replace("range(2000)", "range(10)"), namespace)
    exec(second.replace("range(2000)", "range(300)"), namespace)
    state, objective = namespace["state"], namespace["objective"]
    start = objective.schedule.init().partition
    assert state.count == 0 and not torch.equal(state.partition, start)
    assert state.partition[0] == 0 and state.partition[-1] == 1
    assert (state.partition[1:] > state.partition[:-1]).all()
