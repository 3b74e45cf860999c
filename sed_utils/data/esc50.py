"""ESC-50: the metadata table, validated, and the target/negative labels of this project.

ESC-50 is 2000 five-second clips, 50 categories x 40 clips, split by the authors into 5 folds so
that clips cut from the same source recording stay in one fold. We train on some folds and validate
on another (``cfg.folds``); never mixing folds is what keeps the validation score honest.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sed_utils.config import ESC50_FOLDS
from sed_utils.core.errors import DatasetError

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "AMBIENT_CATEGORIES",
    "DatasetError",
    "ESC50_COLUMNS",
    "ambient_categories",
    "esc50_root",
    "load_esc50_meta",
    "add_target_labels",
]

ESC50_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
#: Every ESC-50 clip is 5 s (Piczak 2015): the demo generator writes them so, the content check
#: expects it, and the negative clips are read as 5 s long.
ESC50_CLIP_SECONDS = 5.0

#: ESC-50 categories that sound like a steady background (rain, wind, engines, ...). They are the
#: backgrounds of the held-out scenes (:mod:`sed_utils.data.scenes`) and, from the TRAINING folds only,
#: what the background augmentation lays under training chunks (:mod:`sed_utils.features.augment`).
AMBIENT_CATEGORIES = (
    "rain",
    "wind",
    "sea_waves",
    "crackling_fire",
    "crickets",
    "insects",
    "engine",
    "airplane",
    "train",
    "helicopter",
)


def ambient_categories(targets: list[str] | tuple[str, ...]) -> list[str]:
    """:data:`AMBIENT_CATEGORIES` minus the target categories (a target is never a background;
    notebooks 04-07: scene backgrounds, the background augmentation)."""
    return [c for c in AMBIENT_CATEGORIES if c not in set(targets)]


def esc50_root(cfg: Config) -> Path:
    """Where notebook 01 extracts ESC-50 (the upstream ``ESC-50-master`` folder)."""
    return cfg.data_root / "ESC-50-master"


def load_esc50_meta(root: Path) -> pd.DataFrame:
    """Read ``root/meta/esc50.csv``, check it, and add ``path`` (absolute path of each clip).
    Used in notebook 02; in notebooks 01, 03-07 through check_esc50, build_esc50_chunks and build_scenes.

    Checks: the csv exists and has the 7 upstream columns; ``fold`` and ``target`` are integers,
    ``fold`` one of 1-5;
    every listed clip exists in ``root/audio`` (a half-extracted archive would otherwise surface
    much later as a confusing read error). The audio extension is taken from the csv (``.wav``);
    when only a ``.flac`` of the same stem exists (a re-encoded copy) that one is used.
    """
    root = Path(root)
    csv = root / "meta" / "esc50.csv"
    if not csv.is_file():
        raise DatasetError(f"{csv}: ESC-50 metadata not found (is the archive extracted into {root}?)")
    try:
        meta = pd.read_csv(csv, dtype={"filename": str, "category": str, "src_file": str, "take": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DatasetError(f"{csv}: not a readable csv ({e})") from e
    missing_cols = [c for c in ESC50_COLUMNS if c not in meta.columns]
    if missing_cols:
        raise DatasetError(f"{csv}: missing column(s) {missing_cols}; found {list(meta.columns)}")
    for col in ("fold", "target"):
        values = pd.to_numeric(meta[col], errors="coerce")
        bad = meta.index[values.isna() | (values != values.round())]
        if len(bad):
            lines = [int(i) + 2 for i in bad[:10]]  # +1 header, +1 one-based
            raise DatasetError(f"{csv}: column {col!r} must hold integers; bad value(s) on line(s) {lines}")
        meta[col] = values.astype(int)
    bad_fold = meta.index[~meta["fold"].between(1, ESC50_FOLDS)]
    if len(bad_fold):  # a clip of fold 9 would silently drop out of every split
        lines = [int(i) + 2 for i in bad_fold[:10]]
        raise DatasetError(f"{csv}: column 'fold' must be 1-{ESC50_FOLDS} (ESC-50 has {ESC50_FOLDS} folds); "
                           f"got {sorted(set(meta.loc[bad_fold, 'fold']))[:5]} on line(s) {lines}")
    if meta["filename"].isna().any():
        lines = [int(i) + 2 for i in meta.index[meta["filename"].isna()][:10]]
        raise DatasetError(f"{csv}: empty filename on line(s) {lines}")
    meta["esc10"] = meta["esc10"].astype(str).str.lower().eq("true")

    audio_dir = root / "audio"
    paths: list[Path] = []
    missing: list[str] = []
    for name in meta["filename"]:
        p = audio_dir / name
        if not p.is_file():
            alt = p.with_suffix(".flac")
            if alt.is_file():
                p = alt
            else:
                missing.append(name)
        paths.append(p.resolve())
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DatasetError(
            f"{csv}: {len(missing)} listed audio file(s) missing from {audio_dir}: {shown}"
        )
    meta["path"] = paths
    return meta


def negative_clips(meta: pd.DataFrame, targets: list[str] | tuple[str, ...],
                   folds: tuple[int, ...] | list[int]) -> pd.DataFrame:
    """The clips of ``folds`` whose category is not one of ``targets`` (notebook 08): sounds that
    hold none of the five classes. The frame model can train on the training folds' ones, and the
    held-out fold's ones count false alarms.

    Args:
        meta: the ESC-50 metadata, as :func:`load_esc50_meta` reads it.
        targets: the ESC-50 categories of the target classes (``cfg.esc50_categories``).
        folds: the ESC-50 folds (1-5) to take clips from.

    Returns:
        The matching rows of ``meta``, with its columns and index.
    """
    return meta[meta["fold"].isin(list(folds)) & ~meta["category"].isin(list(targets))]


def add_target_labels(meta: pd.DataFrame, classes: dict[str, str]) -> pd.DataFrame:
    """Return a copy with ``is_target`` and one 0/1 column per DESED label (``classes`` order; notebook 02,
    and notebooks 03-05 through build_esc50_chunks).

    ``classes`` maps DESED label -> ESC-50 category (``cfg.classes``). A clip of a target category
    gets a 1 in its label's column; clips of the other categories are the negatives: all zeros,
    which teaches the model that "none of the five" is a valid answer.
    """
    known = set(meta["category"])
    unknown = [cat for cat in classes.values() if cat not in known]
    if unknown:
        # A warning, not an error: a hand-made subset table may lack a class on purpose, but a
        # typo in config.yml would otherwise give a class with no positives without a word.
        warnings.warn(f"ESC-50 metadata has no clips of {unknown} (from cfg.classes)", stacklevel=2)
    out = meta.copy()
    for label, category in classes.items():
        out[label] = (out["category"] == category).astype(int)
    out["is_target"] = out["category"].isin(list(classes.values()))
    return out
