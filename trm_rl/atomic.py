"""Atomic file writes: a file is either its old content or its new content, never a mix.

Each writer writes a temporary file in the target's folder (same file system), flushes it to
disk and moves it over the target with :func:`os.replace`, which is atomic on POSIX and
Windows. A process killed mid-save leaves the previous file intact and, at worst, a stray
``.<name>.*.tmp`` file next to it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, move it to ``path``.

    The file gets the permissions a newly created file would (``0o666`` less the umask).
    The block writes the new content to the yielded path by any means (e.g. SB3's
    ``model.save(tmp)``); the file keeps the yielded name, so writers that add a suffix
    must be given a path that already has it. On an exception the temporary file is removed
    and ``path`` is left untouched.

    Raises:
        FileNotFoundError: the block wrote nothing to the yielded path.
    """
    path = Path(path)
    descriptor, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
    os.close(descriptor)
    temporary = Path(name)
    os.chmod(temporary, 0o666 & ~_umask())
    try:
        yield temporary
        if not temporary.is_file():
            raise FileNotFoundError(f"nothing was written to {temporary} for {path}")
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
