"""The process-level CPU setting: it stops the page faults of an evaluation; it can be off."""

import platform
import subprocess
import sys

import pytest

from tvo import runtime

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# 20 evaluation chunks of 2500 particles after 20 to warm up; prints the minor page faults
FAULTS = """
import resource, sys, torch
from tvo.evaluate import estimate
from tvo.models import create
from tvo.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
x = torch.bernoulli(torch.full((100, 784), 0.13))
model = create("linear_1", data_mean=x.mean(0)).eval()
estimate(model, x, 500, chunk_size=25)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
estimate(model, x, 500, chunk_size=25)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's malloc")
def test_kept_memory_stops_the_page_faults_of_an_evaluation():
    # Each chunk frees and reallocates ~8 MB tensors; glibc's defaults hand them back to the
    # kernel and fault every page in again: about 114,000 faults in 20 chunks here, 5,700 a
    # chunk. Kept memory is reused: 2 to 3,849 faults in all over 12 runs (the heap sometimes
    # grows once more). Fewer than a tenth of the default's means no fault per chunk.
    default, kept = page_faults("default"), page_faults("keep")
    assert kept < default / 10


def test_environment_variable_turns_it_off(monkeypatch):
    def fail():
        raise AssertionError("keep_freed_memory must not be called")

    monkeypatch.setattr(runtime, "keep_freed_memory", fail)
    monkeypatch.setenv("TVO_KEEP_FREED_MEMORY", "0")
    assert runtime.configure_from_environment() is False


def test_environment_variable_must_be_0_or_1(monkeypatch):
    monkeypatch.setenv("TVO_KEEP_FREED_MEMORY", "yes")
    with pytest.raises(ValueError, match=r"TVO_KEEP_FREED_MEMORY must be 0 or 1, got 'yes'"):
        runtime.configure_from_environment()


def test_command_line_reports_a_bad_setting(monkeypatch, capsys):
    from tvo.cli import main

    monkeypatch.setenv("TVO_KEEP_FREED_MEMORY", "2")
    assert main(["data", "list"]) == 2
    assert "TVO_KEEP_FREED_MEMORY must be 0 or 1, got '2'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("idle", "cores", "expected"),
    [(None, 2, 2), (0.1, 2, 1), (0.6, 2, 1), (1.6, 2, 2), (2.0, 2, 2), (5.4, 8, 5), (9.0, 8, 8)],
)
def test_auto_threads_are_the_idle_cores(monkeypatch, idle, cores, expected):
    """``--threads auto``: the idle cores, rounded, at least one and at most the cores; all of
    them where /proc/stat cannot be read."""
    monkeypatch.setattr(runtime, "idle_cores", lambda interval=0.2: idle)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: cores)
    assert runtime.auto_threads() == expected


def test_idle_cores_are_measured_between_zero_and_the_cores():
    idle = runtime.idle_cores(0.05)
    if platform.system() != "Linux":
        assert idle is None
    else:
        assert 0 <= idle <= (runtime.os.cpu_count() or 1)


@pytest.mark.parametrize("value", ["0", "-1", "two", 1.5, True, 0])
def test_bad_thread_counts_are_refused(value):
    with pytest.raises(ValueError, match=r"--threads must be an integer ≥ 1 or auto"):
        runtime.set_threads(value)
