"""The switch between the series' two test sets: DESED public eval, or held-out ESC-50 scenes.

Why a module of its own: every later step (chunking in notebook 03, evaluation in notebook 06)
asks for "the test set" without caring which one it is. Both come back as a
:class:`~sed_utils.data.desed.StrongLabelSet` through the same loader, so the code downstream is
the same for both; only this module knows that ``cfg.test_set`` exists. It sits above the DESED
loader and the scenes, so neither has to import the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sed_utils.data.desed import StrongLabelSet, load_desed_eval
from sed_utils.data.scenes import scene_set

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = ["describe_test_set", "load_test_set"]


def load_test_set(cfg: Config, strict: bool = True, *, progress: bool = True) -> StrongLabelSet:
    """The evaluation set ``cfg.test_set`` names, as a :class:`StrongLabelSet` either way
    (notebooks 02, 03, 06).

    ``"desed"``: DESED public eval (``strict`` refuses damaged label rows). ``"scenes"``: the
    ``test`` role of :func:`sed_utils.data.scenes.scene_set`, ``cfg.scenes.test`` 10 s scenes
    mixed from the held-out ESC-50 fold(s) ``cfg.folds.scenes_test`` (built on first use, then
    cached), for users without DESED.

    Args:
        cfg: names the test set and gives its settings.
        strict: DESED only: raise on damaged label rows instead of excluding and listing them.
        progress: scenes only: show a progress bar while they are mixed.

    Returns:
        The test set's clips and strong labels.

    Raises:
        DatasetError: DESED's files are missing or damaged (see
            :func:`~sed_utils.data.desed.load_desed`), or the scenes cannot be built.
    """
    if cfg.test_set == "scenes":
        return scene_set(cfg, "test", progress=progress)
    return load_desed_eval(cfg, strict=strict)


def describe_test_set(cfg: Config) -> str:
    """How figures and tables name what was evaluated, honest about synthetic data and scenes
    (notebook 06)."""
    if cfg.synthetic:
        return "SYNTHETIC demo data"
    if cfg.test_set == "scenes":
        return f"held-out ESC-50 scenes (fold {', '.join(map(str, cfg.folds.scenes_test))})"
    return "DESED public eval"
