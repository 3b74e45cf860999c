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
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error remove it
    (every notebook: under the writers below and feature_cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path``, on error it goes.

    For results that are a folder of files (the scenes of notebook 07): readers trust a folder that
    exists, so it must appear whole. An older folder at ``path`` is removed only once the new one is
    complete (the caller decides that replacing it is right).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_with(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(file_handle)`` on a temporary file, then rename it to ``path``
    (every notebook, under the writers below).

    A file handle, not a name: ``np.save``/``np.savez`` append their extension to a bare name.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically
    (notebook 01's demo archives; under write_text and write_json)."""
    write_with(path, lambda fh: fh.write(data))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically
    (under write_json: notebooks 01, 06; the benchmarks)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any, **kwargs: Any) -> None:
    """Write ``data`` as indented JSON, atomically
    (notebook 01's dataset markers, notebook 06's results.json, the runner's timings)."""
    write_text(path, json.dumps(data, indent=2, **kwargs) + "\n")


def write_csv(df: Any, path: Path) -> None:
    """A pandas DataFrame as csv, without its index
    (notebooks 03-06: the chunk and segment tables; notebook 05's training history)."""
    write_with(path, lambda fh: df.to_csv(fh, index=False))


def save_npz(path: Path, **arrays: Any) -> None:
    """Save ``arrays`` into one ``.npz`` at ``path``, atomically
    (notebook 05's validation predictions, notebook 06's window scores)."""
    import numpy as np

    write_with(path, lambda fh: np.savez(fh, **arrays))


def save_npy(path: Path, array: Any) -> None:
    """Save ``array`` as ``.npy`` at ``path``, atomically
    (notebooks 03-07: the audio cache of cached_resampled; notebook 06's segment probabilities)."""
    import numpy as np

    write_with(path, lambda fh: np.save(fh, array))


def torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path``, atomically (notebook 05, through save_checkpoint)."""
    import torch

    write_with(path, lambda fh: torch.save(obj, fh))


#: The temporary names :func:`atomic_path` (``name.<pid>.tmp``) and :func:`atomic_dir`
#: (``.name.<pid>.tmp``) give.
_TEMPORARY = re.compile(r".+\.(\d+)\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files and folders of writers that were killed (TERM, KILL, a power cut)
    before they could clean up, under ``folder`` (notebook 01 and ``download``, through
    ``sed_utils.data.prepare_datasets``, before a series runs).

    A temporary is stale when the process its name carries no longer runs on this machine; those of
    live processes (another run writing now) are left alone. Resumable downloads (``.part``) are not
    temporaries and stay.

    Args:
        folder: searched recursively; a missing folder holds nothing.

    Returns:
        What was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.rglob("*.tmp"), key=lambda p: len(p.parts), reverse=True):
        match = _TEMPORARY.match(path.name)
        if match is None or _alive(int(match.group(1))) or not path.exists():
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
