"""sed_utils: the shared code of the sed-tutorial notebook series, one subpackage per stage.

Data flows one way through the stages, each importing only the stages before it
(``tests/test_layers.py`` enforces it; ``docs/architecture.md`` draws it):

``core`` -> ``config`` -> ``io`` -> ``data`` -> ``features`` -> ``labels`` -> ``metrics`` ->
``models`` -> ``train`` -> ``evaluate`` -> ``detection`` -> ``plots`` -> ``cli``.

Everything reads its knobs from :func:`sed_utils.config.load_config`. ``sed_utils.detect`` (events in
your own recordings, notebook 09) is :func:`sed_utils.detection.detect`, loaded on first use so that
``import sed_utils`` stays light (no torch).
"""

from importlib import import_module
from typing import Any

from sed_utils.config import Config, load_config

__all__ = ["Config", "load_config", "detect"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``sed_utils.detect``, imported lazily (PEP 562), so the package root does not import torch
    (notebook 09)."""
    if name == "detect":
        return import_module("sed_utils.detection").detect
    raise AttributeError(f"module 'sed_utils' has no attribute {name!r}")
