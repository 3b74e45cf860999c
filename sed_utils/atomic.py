"""Atomic writes: a file is either complete or absent, never half-written.

Why one module: every step of the series writes results that a later step (or a re-run) trusts
because they exist: a chunk table, a checkpoint, a results.json. Writing to a temporary name in the
same folder and renaming it with ``os.replace`` (atomic on one file system) means an interrupted
run leaves no file that looks finished. The temporary name carries the process id, so two runs
writing the same target never share one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_with(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(file_handle)`` on a temporary file, then rename it to ``path``.

    A file handle, not a name: ``np.save``/``np.savez`` append their extension to a bare name.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


def write_bytes(path: Path, data: bytes) -> None:
    write_with(path, lambda fh: fh.write(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any, **kwargs: Any) -> None:
    write_text(path, json.dumps(data, indent=2, **kwargs) + "\n")


def write_csv(df: Any, path: Path) -> None:
    """A pandas DataFrame as csv, without its index."""
    write_with(path, lambda fh: df.to_csv(fh, index=False))


def save_npz(path: Path, **arrays: Any) -> None:
    import numpy as np

    write_with(path, lambda fh: np.savez(fh, **arrays))


def save_npy(path: Path, array: Any) -> None:
    import numpy as np

    write_with(path, lambda fh: np.save(fh, array))


def torch_save(obj: Any, path: Path) -> None:
    import torch

    write_with(path, lambda fh: torch.save(obj, fh))
