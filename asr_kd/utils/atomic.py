"""Write files so that a killed job never leaves a half-written output behind.

Everything is written to a temporary file in the destination directory and moved into place
with :func:`os.replace`, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    ``suffix`` is kept on the temporary name for writers that choose their format by
    extension (``np.save`` appends ``.npy`` otherwise).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; outputs should get the permissions a plain open() would give.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """``open()`` for writing that only makes ``path`` appear once the block succeeded."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Atomically write ``obj`` as JSON."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=indent, sort_keys=False)
        f.write("\n")


def write_with(path: str | os.PathLike, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Atomically create ``path`` by calling ``writer(tmp_path)``."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)


def replace_dir(out_dir: str | os.PathLike, fill: Callable[[Path], None]) -> None:
    """Create ``out_dir`` atomically: ``fill(tmp_dir)`` writes its content, then it is renamed
    over any previous ``out_dir`` (a failed ``fill`` leaves the old directory untouched and
    nothing new behind)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        fill(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
