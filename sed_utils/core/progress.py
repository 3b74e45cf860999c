"""Progress bars that stay readable in a saved notebook (every notebook).

In a live JupyterLab session ``tqdm.auto`` draws a widget bar, which is what a reader wants. A
notebook executed headless (``python -m sed_utils run``, papermill, CI) is saved without the
widgets' state, so every bar in the executed copy showed its first frame, "0%| 0/2000", although
the loop had finished. The runner sets :data:`PLAIN_PROGRESS_ENV` for the kernels it starts; then
the bars are plain text on stderr, whose last state ("100%| 2000/2000 [00:03]") is what the saved
copy shows. Text bars also update less often there, so executed notebooks stay small.

``tqdm.autonotebook``, not ``tqdm.auto``: the latter adds an asyncio mixin whose ``__init__`` calls
``iter()`` on what it wraps. On a DataLoader that starts a second, unused iterator every epoch: it
draws from the loader's random generator (so the shuffle order, and the weights, depended on whether
a bar was a widget or text) and, with workers, starts worker processes for nothing.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm import tqdm as _text_tqdm
from tqdm.autonotebook import tqdm as _auto_tqdm

__all__ = ["PLAIN_PROGRESS_ENV", "tqdm"]

#: Set to 1 for plain-text bars (the runner does, for the notebooks it executes).
PLAIN_PROGRESS_ENV = "SED_PLAIN_PROGRESS"


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.autonotebook.tqdm`` (a widget in JupyterLab, text elsewhere), or a text bar updated at
    most every 5 s when :data:`PLAIN_PROGRESS_ENV` is set (every notebook; see the module docstring)."""
    if os.environ.get(PLAIN_PROGRESS_ENV, "") not in ("", "0"):
        kwargs.setdefault("mininterval", 5.0)
        return _text_tqdm(*args, **kwargs)
    return _auto_tqdm(*args, **kwargs)
