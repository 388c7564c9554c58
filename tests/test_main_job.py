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
           "DEMO_TEST_IMAGES": "3", "DEMO_RUN": str(run),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    result = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "log p(x)" in result.stdout and "TVO lower" in result.stdout
    assert json.loads((run / "summary.json").read_text())["steps"] == 30
    for name in ("learning_curves.png", "samples.png", "integrand.png"):
        assert matplotlib.image.imread(run / "plots" / name).ndim == 3
