"""The README's main job runs end to end (on the tiny stand-in wheel) and leaves its outputs."""

import json
import runpy
import sys
from pathlib import Path

import matplotlib.image
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_sbn.py"


def run_example(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    return exit_info.value.code


def test_main_job_trains_evaluates_and_plots(fake_wheel, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TVO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert run_example(monkeypatch, "--steps", "30", "--test-images", "3", "--out", str(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["test_images"] == 3
    assert summary["elbo"] <= summary["tvo_lower"] <= summary["log_px"] <= summary["tvo_upper"]
    for name in ("learning_curve.png", "samples.png"):
        assert matplotlib.image.imread(out / name).ndim == 3
    assert "test log p(x) =" in capsys.readouterr().out
    # A second run into the same folder is refused and leaves the first run untouched.
    before = (out / "summary.json").read_text()
    assert run_example(monkeypatch, "--steps", "5", "--out", str(out)) == 2
    assert (out / "summary.json").read_text() == before
