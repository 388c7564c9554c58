"""The on-disk cache of prepared datasets: one ``.npz`` per dataset, checked and written atomically.

Each entry stores its arrays, a SHA-256 of their bytes and a fingerprint of its source. A load
recomputes the checksum; an entry that is corrupt, truncated or from another source is rebuilt.
Writes go to a temporary file in the same folder, are fsynced, then renamed over the old entry,
so an interrupted preparation leaves the previous entry (or nothing) behind, never half a file.

The folder is ``$TVO_CACHE`` if set, else ``$XDG_CACHE_HOME/tvo``, else ``~/.cache/tvo``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tvo.files import write_atomic


def cache_dir() -> Path:
    if "TVO_CACHE" in os.environ:
        return Path(os.environ["TVO_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tvo"


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_entry(path: Path, fingerprint: str) -> tuple[dict[str, np.ndarray], str] | None:
    """The arrays and checksum of a valid entry, or ``None`` (missing, corrupt, other source)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files if not k.startswith("__")}
            stored, source = str(archive["__checksum__"]), str(archive["__fingerprint__"])
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile):
        warnings.warn(f"cache entry {path} is unreadable; rebuilding it", stacklevel=3)
        return None
    if source != fingerprint:
        return None
    if checksum(arrays) != stored:
        warnings.warn(f"cache entry {path} fails its checksum; rebuilding it", stacklevel=3)
        return None
    return arrays, stored


def cached(
    name: str, fingerprint: str, build: Callable[[], dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], str, Path]:
    """The arrays of cache entry ``name``, built by ``build()`` if missing or invalid.
    Returns ``(arrays, checksum, path)``."""
    path = cache_dir() / f"{name}.npz"
    entry = load_entry(path, fingerprint)
    if entry is not None:
        return entry[0], entry[1], path
    arrays = build()
    digest = checksum(arrays)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, __checksum__=digest, __fingerprint__=fingerprint, **arrays)

    write_atomic(path, write)
    return arrays, digest, path
