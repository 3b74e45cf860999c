"""Foundations every stage uses: errors, complete-or-absent writes, cache keys, progress bars.

``errors`` (one base class, :class:`SedError`, and one subclass per kind of failure), ``atomic``
(writes that are complete or absent), ``keys`` (cache keys and digests), ``progress`` (tqdm bars
that stay readable in saved notebooks). Every notebook uses them, mostly through the other stages.
"""

from sed_utils.core.errors import (
    AudioError,
    CheckpointError,
    ConfigError,
    DatasetError,
    DownloadError,
    NotebookFailed,
    SedError,
)

__all__ = ["SedError", "ConfigError", "AudioError", "DatasetError", "DownloadError", "CheckpointError",
           "NotebookFailed"]
