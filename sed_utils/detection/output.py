"""Writing what ``detect`` found (notebook 09, the command line), in the layout the next tool reads.

- ``tsv``: the DCASE table (``filename onset offset event_label score``), which sed_eval (dcase_util)
  and DESED_task read; ``json``: the same as records.
- ``audacity`` (a label track: File > Import > Labels) and ``raven`` (a selection table: File > Open
  Selection Table), one recording per file (:mod:`sed_utils.labels.annotations`, which reads them back).
- ``weak``: DCASE's weak-label tsv (which classes sound in each file).
- ``scores``: the score curve, one tsv per recording (``onset offset <class>...``), the layout
  sed_scores_eval reads (a folder of ``<recording>.tsv``) to compute PSDS without thresholds.

One file for the whole batch (:func:`events_text`), or one per recording (:func:`per_file_path`,
:func:`detection_text`): beside the recording, or in a folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sed_utils.core import atomic
from sed_utils.detection.recordings import Detection
from sed_utils.labels.annotations import EVENT_COLUMNS, annotations_text

__all__ = ["FORMATS", "ONE_RECORDING_FORMATS", "SUFFIXES", "events_text", "write_events", "scores_text",
           "detection_text", "per_file_path"]

#: ``dcase`` is ``tsv`` by its other name (the DCASE strong-label table).
FORMATS = ("tsv", "dcase", "json", "audacity", "raven", "weak", "scores")
#: Layouts that hold one recording: written per file only.
ONE_RECORDING_FORMATS = ("audacity", "raven", "scores")
#: The name a per-recording output gets after the recording's stem (Raven's own naming; a scores file is
#: ``<recording>.tsv``, as sed_scores_eval names them in a folder).
SUFFIXES = {"tsv": ".events.tsv", "dcase": ".events.tsv", "json": ".events.json", "audacity": ".labels.txt",
            "raven": ".Table.1.selections.txt", "weak": ".weak.tsv", "scores": ".tsv"}


def events_text(events: pd.DataFrame, fmt: str = "tsv", *, files: list[str] | None = None) -> str:
    """An events table as text (notebook 09, the CLI).

    Args:
        events: :data:`EVENT_COLUMNS` and ``score``.
        fmt: ``tsv`` (or ``dcase``), ``json``, ``weak``; ``audacity`` or ``raven`` for one recording's events.
        files: every recording scored, so the ``tsv`` and ``weak`` tables list those without events too
            (a name-only row, as DESED's tables mark a recording without events).

    Raises:
        ValueError: an unknown format, ``scores`` (a curve, not events: :func:`scores_text`), or several
            recordings for a one-recording layout.
    """
    if fmt == "json":
        numeric = ("onset", "offset", "score")
        records = [{k: (round(float(v), 3) if k in numeric else str(v)) for k, v in r.items()}
                   for r in events[[*EVENT_COLUMNS, "score"]].to_dict(orient="records")]
        return json.dumps(records, indent=1) + "\n"
    if fmt == "scores":
        raise ValueError("--format scores writes each recording's score curve: one file per recording "
                         "(--per-file)")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    return annotations_text(events, "dcase" if fmt == "tsv" else fmt, files=files or ())


def scores_text(det: Detection) -> str:
    """One recording's score curve in sed_scores_eval's layout: ``onset offset <class>...``, a row per
    frame (or window) of the curve (notebook 09, ``detect --format scores``)."""
    table = pd.DataFrame(det.scores, columns=det.labels)
    table.insert(0, "offset", det.bounds[1:])
    table.insert(0, "onset", det.bounds[:-1])
    return table.to_csv(sep="\t", index=False, float_format="%.6g")


def detection_text(det: Detection, fmt: str) -> str:
    """One recording's output in ``fmt`` (notebook 09, ``detect --per-file``)."""
    if fmt == "scores":
        return scores_text(det)
    return events_text(det.events, fmt, files=[det.filename])


def per_file_path(recording: Path, fmt: str, out_dir: Path | None = None) -> Path:
    """Where ``detect --per-file`` writes a recording's output (notebook 09).

    Args:
        recording: the audio file.
        fmt: the output's layout (its suffix: :data:`SUFFIXES`).
        out_dir: the folder for the outputs; None: beside the recording.

    Returns:
        ``<out_dir or the recording's folder>/<stem><suffix>``.
    """
    recording = Path(recording)
    return (out_dir if out_dir is not None else recording.parent) / (recording.stem + SUFFIXES[fmt])


def write_events(path: Path, events: pd.DataFrame, fmt: str = "tsv", *,
                 files: list[str] | None = None) -> None:
    """:func:`events_text` written atomically: a reader never sees half a table (notebook 09).

    Args:
        path: the file to write (replaced if it exists).
        events: the events, with the columns of :data:`EVENT_COLUMNS` and ``score``.
        fmt: as in :func:`events_text`.
        files: every recording scored (see :func:`events_text`).

    Raises:
        ValueError: an unknown format (nothing is written).
    """
    atomic.write_text(Path(path), events_text(events, fmt, files=files))
