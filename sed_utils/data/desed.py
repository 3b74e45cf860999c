"""DESED public eval: strong labels (who sounds when) for 10 s clips, read and validated.

DESED ("Domestic Environment Sound Event Detection") is the DCASE task-4 dataset. Its public eval
set has 692 ten-second clips; each row of ``public.tsv`` is one event: ``filename onset offset
event_label`` (seconds). Events of different classes may overlap, so a moment can carry several
labels at once (multilabel). This project evaluates on 5 of its 10 classes; events of the other 5
(Speech, Dishes, ...) are not targets, and a clip that has only such events is a perfectly valid
clip with *no target events*, which the model must leave silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sed_utils.core.errors import DatasetError

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "DESED_LABELS",
    "DatasetError",
    "StrongLabelSet",
    "desed_root",
    "desed_audio_dir",
    "desed_tsv",
    "load_desed",
    "load_desed_eval",
]

#: A DESED clip is (at most) 10 s: the demo generator writes them so and the content check expects it.
DESED_CLIP_SECONDS = 10.0
DESED_LABELS = [
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
]
EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]
# Offsets up to this far past the clip end are clipped to it (DESED has one 11 s clip, labelled to
# 11.000); anything further is a unit or typing error and reported.
OFFSET_TOLERANCE_SECONDS = 1.0
AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass
class StrongLabelSet:
    """Clips with strong labels (who sounds when), in DESED's layout: ready for segmenting and evaluation
    (notebooks 02-07: the test set and the scenes).

    DESED public eval is one; the scenes mixed from ESC-50 (:mod:`sed_utils.data.scenes`) are
    written in the same layout and load into the same class, so everything downstream runs the
    same code on both.

    Attributes:
        events: events of the target ``labels`` only (filename, onset, offset, event_label).
        all_events: events of every DESED class (for exploration: what else happens in a clip).
        files: every audio file name of the set, sorted, INCLUDING files with no target event.
        audio_dir: folder holding the audio files.
        clip_seconds: nominal clip length; offsets slightly beyond are clipped to it.
        labels: the target labels (model output order).
        problems: bad rows excluded when loaded with ``strict=False`` (empty when strict).
        n_clipped: how many offsets were clipped to ``clip_seconds``.
    """

    events: pd.DataFrame
    all_events: pd.DataFrame
    files: list[str]
    audio_dir: Path
    clip_seconds: float = 10.0
    labels: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    n_clipped: int = 0

    def path(self, filename: str) -> Path:
        """Absolute path of one clip."""
        return self.audio_dir / filename

    def events_of(self, filename: str, all_labels: bool = False) -> pd.DataFrame:
        """Events of one clip (target labels only unless ``all_labels``)."""
        table = self.all_events if all_labels else self.events
        return table[table["filename"] == filename].reset_index(drop=True)

    @property
    def files_without_target_events(self) -> list[str]:
        """Clips where none of the target classes sounds (they still count in evaluation)."""
        with_events = set(self.events["filename"])
        return [f for f in self.files if f not in with_events]


def desed_root(cfg: Config) -> Path:
    """Root of the extracted DESED public eval archive (``.../DESEDpublic_eval/dataset``).
    Used in notebook 02, and in notebooks 03, 06 through load_desed_eval."""
    return cfg.data_root / "DESEDpublic_eval" / "dataset"


def desed_audio_dir(root: Path) -> Path:
    """Audio folder inside :func:`desed_root`
    (notebook 01's content check; notebooks 02, 03, 06 through load_desed_eval)."""
    return Path(root) / "audio" / "eval" / "public"


def desed_tsv(root: Path) -> Path:
    """Strong-label file inside :func:`desed_root`
    (notebook 01's content check; notebooks 02, 03, 06 through load_desed_eval)."""
    return Path(root) / "metadata" / "eval" / "public.tsv"


def _read_tsv(tsv: Path) -> pd.DataFrame:
    if not tsv.is_file():
        raise DatasetError(f"{tsv}: DESED label file not found")
    try:
        raw = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DatasetError(f"{tsv}: not a readable tab-separated file ({e})") from e
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in EVENT_COLUMNS if c not in raw.columns]
    if missing:
        raise DatasetError(f"{tsv}: missing column(s) {missing}; found {list(raw.columns)}")
    return raw[EVENT_COLUMNS].apply(lambda col: col.str.strip())


def _check_row(
    name: str, onset_s: str, offset_s: str, label: str, clip_seconds: float
) -> tuple[str | None, float, float]:
    """Validate one event row; returns (problem or None, onset, offset)."""
    if not name:
        return "empty filename", np.nan, np.nan
    if label not in DESED_LABELS:
        return f"unknown event_label {label!r} (DESED labels: {', '.join(DESED_LABELS)})", np.nan, np.nan
    try:
        onset, offset = float(onset_s), float(offset_s)
    except ValueError:
        return f"onset/offset not numbers ({onset_s!r}, {offset_s!r})", np.nan, np.nan
    if not (np.isfinite(onset) and np.isfinite(offset)):
        return f"onset/offset missing or not finite ({onset_s!r}, {offset_s!r})", onset, offset
    if onset < 0:
        return f"negative onset {onset}", onset, offset
    if offset <= onset:
        return f"offset {offset} is not after onset {onset}", onset, offset
    if onset >= clip_seconds:
        return f"onset {onset} is at or past the clip end ({clip_seconds} s)", onset, offset
    if offset > clip_seconds + OFFSET_TOLERANCE_SECONDS + 1e-9:
        return f"offset {offset} is far past the clip end ({clip_seconds} s)", onset, offset
    return None, onset, offset


def _read_rows(
    raw: pd.DataFrame, on_disk: set[str], audio_dir: Path, clip_seconds: float
) -> tuple[list[tuple[str, float, float, str]], set[str], list[str], int]:
    """Check every row: (good events, files the tsv lists, problems by line, offsets clipped)."""
    problems: list[str] = []
    rows: list[tuple[str, float, float, str]] = []
    listed: set[str] = set()
    missing_lines: dict[str, list[int]] = {}
    n_clipped = 0
    for i, (name, onset_s, offset_s, label) in enumerate(raw.itertuples(index=False, name=None)):
        line = i + 2  # 1-based, after the header
        if name and name not in on_disk:
            missing_lines.setdefault(name, []).append(line)
            continue
        if name and not label and not onset_s and not offset_s:
            listed.add(name)  # a clip without events
            continue
        if name and not label:
            # an empty label with times: still "no event here", but say so
            problems.append(f"line {line}: {name}: times without an event_label (row ignored)")
            listed.add(name)
            continue
        problem, onset, offset = _check_row(name, onset_s, offset_s, label, clip_seconds)
        if problem:
            problems.append(f"line {line}: {name or '<no filename>'}: {problem}")
            if name:
                listed.add(name)
            continue
        if offset > clip_seconds:
            offset = clip_seconds
            n_clipped += 1
        listed.add(name)
        rows.append((name, onset, offset, label))
    for name, lines in missing_lines.items():
        problems.append(f"line(s) {_fmt_lines(lines)}: {name}: audio file missing from {audio_dir}")
    problems.sort(key=_line_key)

    return rows, listed, problems, n_clipped


def load_desed(
    tsv: Path,
    audio_dir: Path,
    labels: list[str],
    *,
    clip_seconds: float = 10.0,
    strict: bool = True,
) -> StrongLabelSet:
    """Read and validate a DESED strong-label tsv against its audio folder (notebook 01's content check,
    notebooks 02, 03, 06 for DESED, notebooks 04-07 for the scenes through load_scenes).

    Bad rows (unknown label, bad times... see below) raise one :class:`DatasetError` naming the tsv
    and every bad line when ``strict``; otherwise they are excluded AND listed in
    ``StrongLabelSet.problems`` (reported, never silently dropped). Bad rows: offset <= onset,
    onset < 0, onset at/after the clip end, offset far past it, non-numeric/NaN times, a label outside
    :data:`DESED_LABELS`, an empty filename, an empty label with times, a file named in the tsv but
    missing from ``audio_dir``.

    Not errors: a row with an empty ``event_label`` and empty times (DESED's way to list a clip
    without events), audio files absent from the tsv (clips without events), offsets up to
    ``OFFSET_TOLERANCE_SECONDS`` past ``clip_seconds`` (clipped to it).

    Args:
        tsv: the strong-label file (tab-separated, with a ``filename onset offset event_label`` header).
        audio_dir: the folder of its ``.wav``/``.flac`` files.
        labels: the target classes, each a DESED label; ``events`` keeps only these.
        clip_seconds: the clips' nominal length in seconds.
        strict: raise on bad rows instead of excluding and listing them.

    Returns:
        A :class:`StrongLabelSet`; its ``files`` are the files the tsv lists or ``audio_dir`` holds.

    Raises:
        DatasetError: a target label is not a DESED label; the tsv is missing, unreadable or lacks a
            column; ``audio_dir`` is not a folder; or (when ``strict``) the tsv has bad rows.
    """
    tsv, audio_dir = Path(tsv), Path(audio_dir)
    bad_labels = [lab for lab in labels if lab not in DESED_LABELS]
    if bad_labels:
        raise DatasetError(f"target labels {bad_labels} are not DESED labels ({', '.join(DESED_LABELS)})")
    raw = _read_tsv(tsv)
    if not audio_dir.is_dir():
        raise DatasetError(f"{audio_dir}: DESED audio folder not found (labels: {tsv})")
    on_disk = {p.name for p in audio_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()}

    rows, listed, problems, n_clipped = _read_rows(raw, on_disk, audio_dir, clip_seconds)

    if problems and strict:
        shown = "\n  ".join(problems[:20]) + ("\n  ..." if len(problems) > 20 else "")
        raise DatasetError(f"{tsv}: {len(problems)} bad row(s):\n  {shown}")

    all_events = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    all_events = all_events.sort_values(["filename", "onset", "offset", "event_label"], kind="stable")
    all_events = all_events.reset_index(drop=True)
    events = all_events[all_events["event_label"].isin(labels)].reset_index(drop=True)
    files = sorted(listed | on_disk)
    return StrongLabelSet(
        events=events,
        all_events=all_events,
        files=files,
        audio_dir=audio_dir,
        clip_seconds=float(clip_seconds),
        labels=list(labels),
        problems=problems,
        n_clipped=n_clipped,
    )


def _fmt_lines(lines: list[int]) -> str:
    return ", ".join(str(n) for n in lines[:10]) + (" ..." if len(lines) > 10 else "")


def _line_key(problem: str) -> int:
    digits = problem.split(":", 1)[0].split()[-1].split(",")[0]
    return int(digits) if digits.isdigit() else 0


def load_desed_eval(cfg: Config, strict: bool = True) -> StrongLabelSet:
    """The DESED public eval set of ``cfg`` with ``cfg.desed_labels`` as targets
    (notebooks 02, 03, 06, through load_test_set)."""
    root = desed_root(cfg)
    return load_desed(desed_tsv(root), desed_audio_dir(root), cfg.desed_labels, strict=strict)
