"""Every exception the package raises on purpose, under one base class :class:`SedError`.

Why one module at the bottom of the package: every layer raises these (the config loader, the
audio reader, the dataset loaders, the download code, the checkpoint loader, the runner) and the
notebooks, the CLI and the tests catch them, so they must not live in any one of those layers.
Why one base class: ``except SedError`` catches "the input is wrong, and the message says how"
without also catching the programming errors (a ``TypeError`` in our own code) that should
surface with their traceback. Every message names the file, key or URL and what is wrong.

Each class also derives from the built-in it refines (``ValueError`` for bad values,
``RuntimeError`` for failed operations), so code written against the built-ins keeps working.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "SedError",
    "ConfigError",
    "AudioError",
    "DatasetError",
    "DownloadError",
    "CheckpointError",
    "LockError",
    "NotebookFailed",
]


class SedError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message
    (every notebook)."""


class ConfigError(SedError, ValueError):
    """A config file, profile or override that cannot be used; the message says which key
    (every notebook, through load_config)."""


class AudioError(SedError, ValueError):
    """An audio file that is missing, unreadable or empty; the message names the file
    (notebooks 02-07, through read_audio)."""


class DatasetError(SedError, ValueError):
    """A dataset (metadata table, label file, audio folder) that cannot be used as it is
    (every notebook: the dataset loaders and checks)."""


class DownloadError(SedError, RuntimeError):
    """A download, checksum, archive or extracted dataset that cannot be used
    (notebooks 01, 02, through fetch_all).

    The message names the URL or file, the problem, and what to do about it. ``reason`` is a short
    machine-readable tag (``http``, ``not_found``, ``network``, ``truncated``, ``checksum``,
    ``stalled``, ``archive``, ``unsafe``, ``disk_full``, ``io``, ``content``, ``usage``) for callers
    that react differently; ``detail`` the problem alone, without the advice (a caller that acts on the
    problem, e.g. by removing the archive, gives its own).
    """

    def __init__(self, message: str, *, reason: str = "", url: str | None = None, detail: str = ""):
        super().__init__(message)
        self.reason = reason
        self.url = url
        self.detail = detail or message


class LockError(SedError, RuntimeError):
    """Another run holds a folder this one must write, and did not let go in the time given
    (notebooks 01-08, through :func:`sed_utils.core.locks.folder_lock`)."""


class CheckpointError(SedError, RuntimeError):
    """A checkpoint file that cannot be used (corrupt, incomplete, older format, wrong model).
    Raised in notebooks 05, 06, through load_trained."""


class NotebookFailed(SedError, RuntimeError):
    """A notebook raised in one of its cells; the message names the notebook and the cell
    (no notebook: raised by the runner)."""

    def __init__(self, notebook: Path, cell_index: int | None, cell_source: str, error: str, output: Path):
        self.notebook = notebook
        self.cell_index = cell_index
        where = f"code cell {cell_index}" if cell_index is not None else "an unknown cell"
        first_line = cell_source.strip().splitlines()[0] if cell_source.strip() else ""
        super().__init__(
            f"{notebook.name} failed in {where} ({first_line!r}):\n{error}\n"
            f"The executed copy with the traceback is {output}"
        )
