"""Progress bars that stay readable in a saved notebook (every notebook).

In a live JupyterLab session ``tqdm.auto`` draws a widget bar, which is what a reader wants. A
notebook executed headless (``python -m sed_utils run``, papermill, CI) is saved without the
widgets' state, so every bar in the executed copy showed its first frame, "0%| 0/2000", although
the loop had finished. The runner sets :data:`PLAIN_PROGRESS_ENV` for the kernels it starts; then
the bars are plain text on stderr, whose last state ("100%| 2000/2000 [00:03]") is what the saved
copy shows. A plain bar writes only its start and its end: a saved copy of a 14-minute training
held over 200 stored fragments of bars updated every 5 s; one line per loop is what a reader needs.

``tqdm.autonotebook``, not ``tqdm.auto``: the latter adds an asyncio mixin whose ``__init__`` calls
``iter()`` on what it wraps. On a DataLoader that starts a second, unused iterator every epoch: it
draws from the loader's random generator (so the shuffle order, and the weights, depended on whether
a bar was a widget or text) and, with workers, starts worker processes for nothing.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from tqdm import TqdmExperimentalWarning
from tqdm import tqdm as _text_tqdm

with warnings.catch_warnings():  # its import warns "experimental" into every notebook's first output
    warnings.simplefilter("ignore", TqdmExperimentalWarning)
    from tqdm.autonotebook import tqdm as _auto_tqdm

__all__ = ["PLAIN_PROGRESS_ENV", "tqdm"]

#: Set to 1 for plain-text bars (the runner does, for the notebooks it executes).
PLAIN_PROGRESS_ENV = "SED_PLAIN_PROGRESS"


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.autonotebook.tqdm`` (a widget in JupyterLab, text elsewhere), or a text bar that writes
    its start and end only when :data:`PLAIN_PROGRESS_ENV` is set (every notebook; see the module
    docstring)."""
    if os.environ.get(PLAIN_PROGRESS_ENV, "") not in ("", "0"):
        kwargs.setdefault("mininterval", float("inf"))
        return _text_tqdm(*args, **kwargs)
    return _auto_tqdm(*args, **kwargs)
