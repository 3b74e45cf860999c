"""One writer per folder: a lock file that says who holds it, so two runs never build the same thing at once.

Why: every step trusts what it finds finished (an extracted dataset, a scene folder, a checkpoint). Two
runs started together would both see "not finished" and build it twice, each deleting or replacing
what the other is still reading (a second ``download`` removed the first one's good archive; a second
scene build replaced the folder the first was reading). With the lock, the second run waits for the
first, then finds the work finished and skips it.

How: ``fcntl.flock`` on ``<folder>/.sed.lock``. The kernel releases it when its process ends, however
it ends, so a lock is never stale; the file itself holds the holder's pid, host, start time and what
it is doing, for the message a waiting run prints, and for the note when a run takes over from a
holder that was killed. Within one process the lock is re-entrant (downloading inside a series run
that already holds it). Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sed_utils.core.errors import LockError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "LockError", "folder_lock", "lock_holder"]

log = logging.getLogger(__name__)

LOCK_NAME = ".sed.lock"
#: How often a waiting run tries again, and how often it repeats that it is waiting, in seconds.
POLL_SECONDS, REMIND_SECONDS = 0.5, 60.0

_held: dict[Path, int] = {}  # folder -> depth, for the re-entrant case


def lock_holder(folder: Path) -> dict[str, Any] | None:
    """What ``folder``'s lock file says about its last holder (pid, host, started, what), or None
    (notebook 01's messages; tests)."""
    try:
        data = json.loads((Path(folder) / LOCK_NAME).read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another run"
    return (f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('what', 'working')}, "
            f"since {holder.get('started', '?')})")


@contextmanager
def folder_lock(folder: Path, what: str, *, wait_seconds: float | None = None) -> Iterator[None]:
    """Hold ``folder``'s lock while the block runs (notebooks 01-08: downloads, scene building, training).

    A run that finds the lock held says by whom, once a minute, and waits; the holder's lock goes when
    its process ends, also when it is killed (then the next holder notes that it took over).

    Args:
        folder: the folder written (created if missing).
        what: what the holder does, in words, for the others' messages.
        wait_seconds: give up after this long with :class:`LockError`; None waits as long as it takes.

    Raises:
        LockError: still held by another run after ``wait_seconds``.
    """
    folder = Path(folder).resolve()
    if fcntl is None or _held.get(folder):
        _held[folder] = _held.get(folder, 0) + 1
        try:
            yield
        finally:
            _held[folder] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, folder, what, wait_seconds)
        before = lock_holder(folder)  # a holder that finished cleared the file: one found here was killed
        if before:
            log.warning("%s: taking over from %s, which stopped without finishing", folder, _describe(before))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
              "started": datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        _held[folder] = 1
        try:
            yield
        finally:
            _held.pop(folder, None)
            os.ftruncate(fd, 0)  # finished cleanly: no holder to report
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, folder: Path, what: str, wait_seconds: float | None) -> None:
    start = last_said = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        start = start if start is not None else now
        holder = _describe(lock_holder(folder))
        if wait_seconds is not None and now - start >= wait_seconds:
            raise LockError(f"{folder}: in use by {holder}; gave up after {now - start:.0f} s")
        if last_said is None or now - last_said >= REMIND_SECONDS:
            log.warning("%s: in use by %s; waiting before %s (Ctrl-C stops)", folder, holder, what)
            last_said = now
        time.sleep(POLL_SECONDS)
