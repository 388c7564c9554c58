"""The README's main job (scripts/demo.sh) runs end to end on the stand-in MNIST wheel."""

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image

ROOT = Path(__file__).resolve().parents[1]


def test_demo_script_trains_evaluates_and_plots(fake_wheel, tmp_path):
    run = tmp_path / "demo"
    env = {**os.environ, "TVO_CACHE": str(tmp_path / "cache"), "DEMO_STEPS": "30",
           "DEMO_TEST_IMAGES": "3", "DEMO_RUN": str(run), "DEMO_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    result = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "log p(x)" in result.stdout and "TVO lower" in result.stdout
    assert result.stdout.startswith("torch threads: 1 (DEMO_THREADS)")
    assert json.loads((run / "summary.json").read_text())["steps"] == 30
    for name in ("learning_curves.png", "samples.png", "integrand.png"):
        assert matplotlib.image.imread(run / "plots" / name).ndim == 3


def test_the_demo_passes_its_threads_to_every_command(tmp_path):
    """Issue 24, item 9: the demo states its threads and runs at them (a count tvo refuses
    stops it at the first command, before any file)."""
    env = {**os.environ, "DEMO_THREADS": "0", "DEMO_RUN": str(tmp_path / "demo"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    result = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2 and "--threads must be an integer ≥ 1" in result.stderr
    assert not (tmp_path / "demo").exists()
