"""Exception types shared by the data modules.

Why a separate module: the loaders (``esc50``, ``desed``), the audio reader and the download code all
raise them, and tests/notebooks catch them, without importing each other.
Every message names the file and what is wrong, so a reader can fix the input without a debugger.
"""

from __future__ import annotations


class AudioError(ValueError):
    """An audio file that is missing, unreadable or empty; the message names the file."""


class DatasetError(ValueError):
    """A dataset (metadata table, label file, audio folder) that cannot be used as it is."""
