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
