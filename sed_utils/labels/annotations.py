"""Annotation files in the layouts practitioners use, read and written (notebook 09, ``detect --format``).

Every layout is read into, and written from, one events table: ``filename onset offset event_label``
(seconds; a ``score`` column where the events came from a model). The layouts:

- ``dcase``: DCASE's strong-label tsv, as DESED ships it: a header, tabs, one event per row. A row with a
  file name and nothing else names a recording without events (a negative; :attr:`Annotations.files`
  keeps it).
- ``weak``: DCASE's weak-label tsv: ``filename event_labels``, the labels comma-separated, no times
  (read as events spanning NaN..NaN: which classes sound, not when).
- ``audacity``: an Audacity label track (File > Export > Labels): ``start end label``, tabs, no header, one
  recording per file; the ``\\ low high`` lines of spectral selections are skipped; an empty track is a
  recording without events.
- ``raven``: a Raven selection table (tab-separated, a header holding ``Begin Time (s)`` and ``End Time
  (s)``, the label in a column whose name varies: see :data:`RAVEN_LABEL_COLUMNS`); one recording per
  table unless it has a ``Begin File`` column. Raven lists a selection once per view (waveform and
  spectrogram): one row per ``Selection`` is kept. CRLF line ends and a UTF-8 byte-order mark are read.

Audacity and Raven name no recording inside the file: the reader takes ``filename=``, or the label
file's own name up to ``.Table.`` / its suffix (Raven saves ``rec.Table.1.selections.txt``), so a table
next to ``rec.wav`` reads as ``rec``. Errors name the file and the line.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sed_utils.core.errors import DatasetError
from sed_utils.metrics.f1 import EVENT_COLUMNS

__all__ = ["EVENT_COLUMNS", "ANNOTATION_FORMATS", "RAVEN_LABEL_COLUMNS", "Annotations", "read_annotations",
           "annotations_text", "guess_format"]

ANNOTATION_FORMATS = ("dcase", "weak", "audacity", "raven")
#: Label columns a Raven table may use, tried in this order (Raven lets the user name it).
RAVEN_LABEL_COLUMNS = ("Annotation", "Label", "label", "Class", "class", "Species", "species", "Sound",
                       "Category", "Type", "event_label")
RAVEN_BEGIN, RAVEN_END = "Begin Time (s)", "End Time (s)"


@dataclass
class Annotations:
    """What an annotation file says (notebook 09; the own-sounds training reads through it).

    Attributes:
        events: one row per event, :data:`EVENT_COLUMNS` (+ ``score`` when the file has one); a weak
            label's onset and offset are NaN.
        files: every recording the file names, with or without events, in the file's order.
        path: the file read; format: its layout (one of :data:`ANNOTATION_FORMATS`).
    """

    events: pd.DataFrame
    files: list[str]
    path: Path
    format: str
    lines: list[int] = field(default_factory=list)  # each event's line in the file (1-based)


def guess_format(text: str) -> str:
    """The layout of an annotation file from its first line (notebook 09): a Raven header, a DCASE
    header (strong or weak), or else Audacity's header-less ``start end label``."""
    first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    cols = first.split("\t")
    if RAVEN_BEGIN in cols:
        return "raven"
    if cols[:2] == ["filename", "event_labels"]:
        return "weak"
    if cols[:1] == ["filename"]:
        return "dcase"
    return "audacity"


def _number(value: str, path: Path, line: int, what: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DatasetError(f"{path} line {line}: {what} {value!r} is not a number of seconds") from None
    if not math.isfinite(x):
        raise DatasetError(f"{path} line {line}: {what} {value!r} is not a finite number of seconds")
    return x


def _recording_name(path: Path) -> str:
    name = path.name
    return name.split(".Table.")[0] if ".Table." in name else path.stem


def _rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, tab-separated cells) of each non-blank line; CRLF and a BOM tolerated."""
    lines = text.lstrip("\ufeff").splitlines()
    return [(i + 1, ln.split("\t")) for i, ln in enumerate(lines) if ln.strip()]


def _read_dcase(rows: list[tuple[int, list[str]]], path: Path) -> tuple[list[tuple], list[str], list[int]]:
    header = [c.strip() for c in rows[0][1]]
    missing = [c for c in EVENT_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{path} line 1: the header lacks {missing} (a DCASE tsv has {EVENT_COLUMNS})")
    at = {c: header.index(c) for c in header}
    events, files, lines = [], [], []
    for line, cells in rows[1:]:
        cells = cells + [""] * (len(header) - len(cells))
        name = cells[at["filename"]].strip()
        if not name:
            raise DatasetError(f"{path} line {line}: no filename")
        files.append(name)
        onset, offset, label = (cells[at[c]].strip() for c in EVENT_COLUMNS[1:])
        if not (onset or offset or label):
            continue  # a recording without events
        if not label:
            raise DatasetError(f"{path} line {line}: an event without a label")
        score = [_number(cells[at["score"]], path, line, "score")] if "score" in at else []
        events.append((name, _number(onset, path, line, "onset"), _number(offset, path, line, "offset"),
                       label, *score))
        lines.append(line)
    return events, files, lines


def _read_weak(rows: list[tuple[int, list[str]]], path: Path) -> tuple[list[tuple], list[str], list[int]]:
    events, files, lines = [], [], []
    for line, cells in rows[1:]:
        name = cells[0].strip()
        if not name:
            raise DatasetError(f"{path} line {line}: no filename")
        files.append(name)
        for label in (x.strip() for x in (cells[1] if len(cells) > 1 else "").split(",")):
            if label:
                events.append((name, math.nan, math.nan, label))
                lines.append(line)
    return events, files, lines


def _read_audacity(rows: list[tuple[int, list[str]]], path: Path,
                   name: str) -> tuple[list[tuple], list[str], list[int]]:
    events, lines = [], []
    for line, cells in rows:
        if cells[0].strip() == "\\":
            continue  # a spectral selection's "\ low high" line
        if len(cells) < 2:
            raise DatasetError(f"{path} line {line}: expected 'start<TAB>end<TAB>label' (Audacity labels)")
        label = cells[2].strip() if len(cells) > 2 else ""
        if not label:
            raise DatasetError(f"{path} line {line}: a label without text")
        events.append((name, _number(cells[0], path, line, "start"), _number(cells[1], path, line, "end"),
                       label))
        lines.append(line)
    return events, [name], lines


def _read_raven(rows: list[tuple[int, list[str]]], path: Path, name: str,
                label_column: str | None) -> tuple[list[tuple], list[str], list[int]]:
    header = [c.strip() for c in rows[0][1]]
    at = {c: i for i, c in enumerate(header)}
    if RAVEN_END not in at:
        raise DatasetError(f"{path} line 1: a Raven table needs {RAVEN_BEGIN!r} and {RAVEN_END!r} columns")
    wanted = [label_column] if label_column else list(RAVEN_LABEL_COLUMNS)
    column = next((c for c in wanted if c in at), None)
    if column is None:
        raise DatasetError(f"{path} line 1: no label column: tried {wanted}; the columns are {header} "
                           "(give label_column=)")
    events, lines, seen, files = [], [], set(), [] if "Begin File" in at else [name]
    for line, cells in rows[1:]:
        cells = cells + [""] * (len(header) - len(cells))
        selection = cells[at["Selection"]].strip() if "Selection" in at else str(line)
        recording = Path(cells[at["Begin File"]].strip()).stem if "Begin File" in at else name
        if (recording, selection) in seen:
            continue  # the same selection in another view
        seen.add((recording, selection))
        if recording not in files:
            files.append(recording)
        label = cells[at[column]].strip()
        if not label:
            raise DatasetError(f"{path} line {line}: selection {selection} has no {column!r}")
        score = [_number(cells[at["Score"]], path, line, "Score")] if "Score" in at else []  # detect's own
        events.append((recording, _number(cells[at[RAVEN_BEGIN]], path, line, RAVEN_BEGIN),
                       _number(cells[at[RAVEN_END]], path, line, RAVEN_END), label, *score))
        lines.append(line)
    return events, files, lines


def read_annotations(path: Path, fmt: str | None = None, *, filename: str | None = None,
                     label_column: str | None = None) -> Annotations:
    """Read an annotation file in any of :data:`ANNOTATION_FORMATS` (notebook 09).

    Args:
        path: the file.
        fmt: its layout; None guesses it from the first line (:func:`guess_format`).
        filename: the recording an Audacity or Raven file annotates (default: the file's own name
            up to ``.Table.`` or its suffix).
        label_column: a Raven table's label column (default: the first of :data:`RAVEN_LABEL_COLUMNS`).

    Returns:
        :class:`Annotations`.

    Raises:
        DatasetError: an unreadable or empty file, an unknown layout, a missing column, a time that is
            not a number, an event without a label: naming the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from e
    rows = _rows(text)
    fmt = fmt or guess_format(text)
    if not rows and fmt != "audacity":
        raise DatasetError(f"{path}: the file is empty")
    name = filename or _recording_name(path)
    if fmt == "dcase":
        events, files, lines = _read_dcase(rows, path)
    elif fmt == "weak":
        events, files, lines = _read_weak(rows, path)
    elif fmt == "audacity":
        events, files, lines = _read_audacity(rows, path, name)
    elif fmt == "raven":
        events, files, lines = _read_raven(rows, path, name, label_column)
    else:
        raise DatasetError(f"{path}: unknown annotation format {fmt!r}; one of {ANNOTATION_FORMATS}")
    columns = EVENT_COLUMNS + (["score"] if events and len(events[0]) == 5 else [])
    table = pd.DataFrame(events, columns=columns).astype({"onset": float, "offset": float})
    return Annotations(table, list(dict.fromkeys(files)), path, fmt, lines)


def _one_recording(events: pd.DataFrame, fmt: str) -> None:
    names = events["filename"].unique()
    if len(names) > 1:
        raise ValueError(f"an {fmt} file holds one recording; these events come from {len(names)} "
                         "(write one file per recording: detect --per-file)")


def annotations_text(events: pd.DataFrame, fmt: str, *, files: Sequence[str] = (),
                     label_column: str = "Annotation", high_hz: float = 8000.0) -> str:
    """An events table as the text of an annotation file (notebook 09, ``detect --format``).

    Args:
        events: :data:`EVENT_COLUMNS`, and ``score`` if any (written by ``dcase`` and ``raven``).
        fmt: one of :data:`ANNOTATION_FORMATS`; ``audacity`` and ``raven`` take one recording's events.
        files: recordings to list even without events (``dcase`` and ``weak``: a row with the name only).
        label_column: the label column a Raven table gets.
        high_hz: a Raven selection's upper frequency (its box spans 0 Hz to this: the band the model
            heard, half its sample rate).

    Returns:
        The file's text; times with 3 decimals (6 for Audacity, as it writes them).

    Raises:
        ValueError: an unknown format, or several recordings for a one-recording layout.
    """
    scored = "score" in events.columns
    if fmt == "dcase":
        cols = EVENT_COLUMNS + (["score"] if scored else [])
        empty = pd.DataFrame({"filename": [f for f in files if f not in set(events["filename"])]})
        table = pd.concat([events[cols], empty], ignore_index=True) if len(empty) else events[cols]
        return table.to_csv(sep="\t", index=False, float_format="%.3f")
    if fmt == "weak":
        labels = events.groupby("filename", sort=False)["event_label"].agg(lambda s: ",".join(sorted(set(s))))
        names = list(dict.fromkeys([*events["filename"], *files]))
        out = io.StringIO()
        out.write("filename\tevent_labels\n")
        for name in names:
            out.write(f"{name}\t{labels.get(name, '')}\n")
        return out.getvalue()
    if fmt == "audacity":
        _one_recording(events, fmt)
        return "".join(f"{r.onset:.6f}\t{r.offset:.6f}\t{r.event_label}\n" for r in events.itertuples())
    if fmt == "raven":
        _one_recording(events, fmt)
        head = ["Selection", "View", "Channel", RAVEN_BEGIN, RAVEN_END, "Low Freq (Hz)", "High Freq (Hz)",
                label_column] + (["Score"] if scored else [])
        lines = ["\t".join(head)]
        for i, r in enumerate(events.itertuples(), start=1):
            score = [f"{r.score:.3f}"] if scored else []
            lines.append("\t".join([str(i), "Spectrogram 1", "1", f"{r.onset:.3f}", f"{r.offset:.3f}", "0.0",
                                    f"{high_hz:.1f}", str(r.event_label), *score]))
        return "\n".join(lines) + "\n"
    raise ValueError(f"annotation format must be one of {ANNOTATION_FORMATS}, got {fmt!r}")

