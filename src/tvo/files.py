"""Atomic file writes: the one way the library writes a file that must never be half-written."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename it to ``path``.

    A crash at any moment leaves either the old ``path`` or the new one, never a mixture; the
    temporary file is removed if ``write`` fails. The file gets the usual umask permissions.
    A failure to write is an ``OSError`` naming ``path`` (a full disk as ``ENOSPC``, also when
    the writer, torch's serialiser say, reports it as something else).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            write(tmp_path)
        except OSError as error:
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        except RuntimeError as error:  # torch.save: "[enforce fail at inline_container.cc…]"
            full = shutil.disk_usage(path.parent).free < 1 << 20
            code = errno.ENOSPC if full else errno.EIO
            raise OSError(code, os.strerror(code) if full else str(error), str(path)) from error
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
