"""``benchmarks/gpu_check.sh``, the GPU check of the ensemble trainer, on its CPU path: it runs
the device tests and times single and group steps, writing what it measured into ``$OUT``."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"model", "objective", "S", "K", "members", "device", "single_ms", "group_ms", "speedup",
        "peak_mb"}  # fmt: skip


def test_the_gpu_check_runs_on_the_cpu_and_writes_its_results(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    command = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--quick"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "env.json").read_text())["device"] == "cpu"
    assert " passed" in (tmp_path / "tests.log").read_text()
    assert "failed" not in (tmp_path / "tests.log").read_text()
    for model in ("linear_1", "gaussian"):
        rows = [json.loads(line) for line in (tmp_path / f"ensemble-{model}.jsonl").open()]
        assert [r["members"] for r in rows] == [1, 2]
        for row in rows:
            assert KEYS <= row.keys() and row["model"] == model and row["device"] == "cpu"
            speedup = row["members"] * row["single_ms"] / row["group_ms"]  # of rounded times
            assert abs(row["speedup"] - speedup) < 1e-3 * speedup + 2e-3
