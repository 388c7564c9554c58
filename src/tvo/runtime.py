"""Process-level settings that make the CPU path faster: what they change, and how to undo them.

glibc's ``malloc`` hands large blocks back to the kernel when they are freed (``mmap`` for blocks
above a threshold, trimming the top of the heap above another). An evaluation chunk frees and
reallocates the same few megabyte-sized tensors every time; depending on what the process
allocated before, glibc returns them and each page is faulted in again. After 200 training
steps of ``linear_1`` an evaluation of 500 images made about 540,000 page faults and took 2.2 s
instead of 1.6 s (benchmarks/RESULTS.md); in a fresh ``tvo eval`` process it made no difference.
``keep_freed_memory`` raises both thresholds, so freed blocks stay in the process and are
reused. The price: the process keeps its peak memory until it exits, which the ``tvo`` command
(one training run or evaluation per process) does anyway.

The command line calls it at start; a library user calls it once, or not at all. The
environment variable ``TVO_KEEP_FREED_MEMORY=0`` turns it off for the command line.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

# Torch threads of a tvo command unless --threads says otherwise: "auto" is the cores that are
# idle when the command starts (at least one). Chosen by measurement (benchmarks/threads.py, the
# table in benchmarks/RESULTS.md): on 2 cores two threads trained 1.3 to 1.7 times faster than
# one when idle and 1.9 to 3.2 times slower beside a busy process; auto matched the better.
DEFAULT_THREADS = "auto"
THREADS_HELP = ("torch threads, or auto: the cores idle when the command starts, at least one. "
                "Default: a new run auto, recorded in its config.json; --resume, eval and plot "
                "the run's recorded count (numbers differ between thread counts); other "
                "commands auto")  # fmt: skip

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest on 64-bit: blocks above it are still mapped
TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Keep freed blocks of up to 32 MB in the process instead of returning them to the kernel
    (glibc only). Returns whether the setting took effect; ``False`` on other C libraries and
    systems, where nothing is changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def configure_from_environment() -> bool:
    """What the command line does at start: ``keep_freed_memory`` unless
    ``TVO_KEEP_FREED_MEMORY`` is ``0``. Returns whether it was applied."""
    value = os.environ.get("TVO_KEEP_FREED_MEMORY", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"TVO_KEEP_FREED_MEMORY must be 0 or 1, got {value!r}")
    return value == "1" and keep_freed_memory()


def idle_cores(interval: float = 0.2) -> float | None:
    """How many cores were idle over the next ``interval`` seconds (from ``/proc/stat``), or
    ``None`` where that cannot be read."""
    import time

    def sample():
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, all

    try:
        idle, total = sample()
        time.sleep(interval)
        idle2, total2 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total2 <= total:
        return None
    return (os.cpu_count() or 1) * (idle2 - idle) / (total2 - total)


def auto_threads() -> int:
    """The idle cores, rounded, at least one; all cores where they cannot be measured."""
    idle = idle_cores()
    cores = os.cpu_count() or 1
    return cores if idle is None else max(1, min(cores, round(idle)))


def check_threads(threads) -> None:
    """Raise ``ValueError`` for a ``--threads`` value ``set_threads`` would refuse, before
    anything is done (``None``: not given)."""
    if threads is None or threads == "auto":
        return
    if isinstance(threads, str) and threads.isdigit():
        threads = int(threads)
    if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        return
    raise ValueError(f"--threads must be an integer ≥ 1 or auto, got {threads!r}")


def set_threads(threads) -> int | None:
    """``torch.set_num_threads``: a count, ``"auto"`` (``auto_threads``), or ``None`` to leave
    torch's default. Returns the count set. Raises ``ValueError`` for anything else."""
    if threads is None:
        return None
    if threads == "auto":
        threads = auto_threads()
    elif isinstance(threads, str) and threads.isdigit():
        threads = int(threads)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be an integer ≥ 1 or auto, got {threads!r}")
    torch.set_num_threads(threads)
    return threads


def available_memory(device: torch.device) -> int | None:
    """Bytes free for tensors on ``device``: the GPU's free memory, or the system's available
    memory (``MemAvailable`` of ``/proc/meminfo``); ``None`` where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: float, what: str, device: torch.device) -> None:
    """Raise ``MemoryError`` naming ``what`` when its estimated ``needed`` bytes exceed what
    ``device`` has available (a rough estimate: it is there to refuse settings that could
    never fit, before anything is written, not to plan memory)."""
    available = available_memory(device)
    if available is not None and needed > available:
        raise MemoryError(
            f"{what} would need about {_size(needed)}, more than the {_size(available)} "
            f"available on {torch.device(device)}"
        )


def _size(count: float) -> str:
    """A number of bytes for a message: ``37 GiB``, ``64 MiB``."""
    return f"{count / 2**30:,.0f} GiB" if count >= 2**30 else f"{count / 2**20:,.0f} MiB"
