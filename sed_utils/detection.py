"""Detecting sound events in your own recordings (notebook 09, ``python -m sed_utils detect``).

One call does what notebooks 06 and 08 do step by step: read the file (any format, rate and
channel count, :func:`sed_utils.io.audio.read_recording`), score it with a trained model (the
frame model's 80 ms frames, or the chunk model's windows slid every 250 ms, read as a score
curve), smooth each class with its median filter, threshold it, turn each run of active
frames into an event with the highest score inside it, and drop the events shorter than the
class's minimum duration.

Where the thresholds come from, in this order (decided so that a copied checkpoint is enough):

1. ``thresholds`` / ``median_filters`` given by the caller (``--threshold Dog=0.4``);
2. the post-processing stored in the checkpoint by notebook 08 (``"events"``: per-class thresholds,
   median filters and minimum durations chosen for event-based F1 on validation scenes);
3. else the one stored by notebook 06 (``"segments"``: thresholds chosen for 1 s segments, with
   ``eval.median_filter_frames``) and a note saying that they were tuned for segments;
4. else a :class:`~sed_utils.core.errors.CheckpointError` saying which notebook stores them.

Nothing here was tuned on a test set: the stored values were chosen on validation data.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed_utils.checkpoint import TrainedModel, load_trained
from sed_utils.core import atomic
from sed_utils.core.errors import AudioError, CheckpointError, SedError
from sed_utils.core.progress import tqdm
from sed_utils.inference import frame_scores, sliding_window_scores
from sed_utils.io.audio import read_recording, resample
from sed_utils.postprocess import classwise_median_filter, curve_events, window_bounds

__all__ = ["AUDIO_SUFFIXES", "PostProcessing", "Detection", "DetectionBatch", "find_checkpoint",
           "load_model", "post_processing_of", "score_curve", "detect", "expand_inputs", "detect_files",
           "events_text", "write_events", "detection_logmel"]

#: File endings a folder is searched for (libsndfile's common formats).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")
#: Clips shorter than this are zero-padded to it: the chunk model's window, and enough context
#: for the frame model's first frames.
MIN_SECONDS = 1.0
EVENT_COLUMNS = ["filename", "onset", "offset", "event_label", "score"]


@dataclass(frozen=True)
class PostProcessing:
    """Per-class thresholds, median-filter lengths (in the curve's frames) and minimum event
    durations (seconds; 0 keeps every event), and where they came from (notebook 09)."""

    thresholds: np.ndarray
    median_filters: np.ndarray
    source: str
    stored: str = ""  # which stored choice it starts from: "events", "segments", or "" (the caller's)
    hop_seconds: float = 0.25  # the chunk model's sliding-window hop the choice was made with
    min_durations: float | np.ndarray = 0.0  # seconds, one or one per class; 0: keep every event


@dataclass
class Detection:
    """What :func:`detect` found in one recording (notebook 09): the events
    (``filename, onset, offset, event_label, score``), the score curve they come from (frame ``j``
    spans ``bounds[j]`` to ``bounds[j + 1]`` s), the 16 kHz mono audio it was computed on, and
    notes (padding, the threshold source)."""

    filename: str
    events: pd.DataFrame
    bounds: np.ndarray
    scores: np.ndarray
    labels: list[str]
    audio: np.ndarray
    sample_rate: int
    post: PostProcessing
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.audio) / float(self.sample_rate)


@dataclass
class DetectionBatch:
    """:func:`detect_files` over many files (notebook 09, the CLI): every event in one table, each
    file's :class:`Detection` (audio dropped to keep memory flat), and the files that failed, with why."""

    events: pd.DataFrame
    detections: list[Detection]
    failures: list[tuple[Path, str]]


# --------------------------------------------------------------------------------------------
# The model and its post-processing
# --------------------------------------------------------------------------------------------
def find_checkpoint(model: str | Path, kind: str | None = None) -> Path:
    """The checkpoint a path names (notebook 09): a ``.pt`` file itself, or in a run folder
    (``runs/scenes``) the frame model (``frame_model/best.pt``, the event detector) when there is
    one, else the chunk model (``model/best.pt``); ``kind`` (``"frame"`` / ``"chunk"``) picks one.
    A folder holding ``best.pt`` directly works too."""
    path = Path(model)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint file or run folder")
    folders = {"frame": "frame_model", "chunk": "model"}
    if kind is not None and kind not in folders:
        raise ValueError(f"kind must be 'frame' or 'chunk', got {kind!r}")
    order = [folders[kind]] if kind else ["frame_model", "model"]
    for candidate in [path / sub / "best.pt" for sub in order] + ([path / "best.pt"] if not kind else []):
        if candidate.is_file():
            return candidate
    wanted = " or ".join(f"{path / sub / 'best.pt'}" for sub in order)
    raise FileNotFoundError(f"{path}: no trained model found ({wanted}); train one first "
                            "(notebook 05 for the chunk model, notebook 08 for the frame model)")


def load_model(model: str | Path | TrainedModel, kind: str | None = None) -> TrainedModel:
    """A loaded model from a checkpoint file, a run folder, or a :class:`TrainedModel` as it is
    (notebook 09)."""
    if isinstance(model, TrainedModel):
        return model
    return load_trained(find_checkpoint(model, kind))


def _per_class(values: float | Mapping[str, float] | Sequence[float] | None, labels: list[str],
               base: np.ndarray, what: str) -> np.ndarray:
    """``values`` as one number per class over ``base``: one number for all, a mapping for some
    classes (the others keep ``base``), or a full sequence."""
    if values is None:
        return base
    out = base.astype(float).copy()
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(labels))
        if unknown:
            raise ValueError(f"{what}: unknown class(es) {unknown}; the model's classes are {labels}")
        for label, v in values.items():
            out[labels.index(label)] = float(v)
        return out
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        return np.full(len(labels), float(arr))
    if arr.shape != (len(labels),):
        raise ValueError(f"{what}: {len(arr)} values for {len(labels)} classes {labels}")
    return arr


def post_processing_of(trained: TrainedModel, thresholds: Any = None, median_filters: Any = None
                       ) -> PostProcessing:
    """The post-processing :func:`detect` applies: the caller's values over the checkpoint's stored
    choice (see the module docstring for the order) (notebook 09)."""
    labels = list(trained.labels)
    stored = trained.info.post_processing
    name = next((k for k in ("events", "segments") if stored.get(k)), "")
    chosen = stored[name] if name else None
    if chosen is None and thresholds is None:
        raise CheckpointError(
            f"{trained.info.path}: the checkpoint holds no thresholds. Evaluate it once (notebook 08's "
            "evaluate_event_model, or notebook 06's evaluate_run) to store the ones chosen on validation, "
            "or give thresholds (--threshold 0.5, or --threshold Dog=0.4 ...)")
    if chosen is not None:
        base_thr = np.asarray(chosen["event_thresholds"], dtype=float)
        base_filters = np.asarray(chosen["median_filters"], dtype=int)
        source = f"{chosen.get('by', 'stored in the checkpoint')}; chosen on {chosen.get('chosen_on', '?')}"
        hop = float(chosen.get("hop_seconds", 0.25))
        shortest = np.asarray(chosen.get("min_durations", np.zeros(len(labels))), dtype=float)
    else:
        base_thr, base_filters, source = np.full(len(labels), 0.5), np.ones(len(labels), dtype=int), "given"
        hop, shortest = 0.25, np.zeros(len(labels))
    thr = _per_class(thresholds, labels, base_thr, "thresholds")
    filters = _per_class(median_filters, labels, base_filters.astype(float), "median_filters").astype(int)
    if ((thr < 0) | (thr > 1)).any():
        raise ValueError(f"thresholds must lie in [0, 1], got {dict(zip(labels, thr.round(3), strict=True))}")
    if (filters < 1).any():
        raise ValueError(f"median filter lengths must be >= 1 frame, got {filters.tolist()}")
    if thresholds is not None or median_filters is not None:
        source += " (with the caller's overrides)" if chosen is not None else " by the caller"
    return PostProcessing(thr, filters, source, name, hop, shortest)


# --------------------------------------------------------------------------------------------
# One recording
# --------------------------------------------------------------------------------------------
def score_curve(trained: TrainedModel, audio: np.ndarray, sample_rate: int, *, hop_seconds: float = 0.25,
                clip_seconds: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(boundaries [T + 1] s, probabilities [T, C], float32) of a recording (notebooks 08, 09): the
    frame model's frames, or the chunk model's sliding windows (every ``hop_seconds``), each
    standing for the slice around its centre, the last to the end of the recording (or to
    ``clip_seconds`` when that is longer: a test clip a few ms short). Both run in bounded memory
    on long recordings. The one way both notebook 08's evaluation and ``detect`` read a model."""
    if trained.kind == "frame":
        bounds, probs = frame_scores(trained.detector, audio, sample_rate)
        return bounds, probs.astype(np.float32, copy=False)
    times, probs = sliding_window_scores(trained.detector, audio, sample_rate, hop_seconds)
    end = max(clip_seconds, len(audio) / float(sample_rate))
    return window_bounds(times, hop_seconds, end), probs.astype(np.float32, copy=False)


def _events_with_scores(bounds: np.ndarray, scores: np.ndarray, smooth: np.ndarray, post: PostProcessing,
                        labels: list[str], filename: str, seconds: float) -> pd.DataFrame:
    events = curve_events(bounds, smooth, post.thresholds, labels, 1, filename=filename,
                          min_durations=post.min_durations)
    if events.empty:
        return pd.DataFrame(columns=EVENT_COLUMNS).astype({"onset": float, "offset": float, "score": float})
    starts, ends = np.asarray(bounds)[:-1], np.asarray(bounds)[1:]
    best = []
    for ev in events.itertuples():
        inside = (starts >= ev.onset - 1e-9) & (ends <= ev.offset + 1e-9)
        best.append(float(scores[inside, labels.index(ev.event_label)].max()))
    events = events.assign(score=best)
    events["offset"] = events["offset"].clip(upper=seconds)  # padding never shows as event time
    events = events[events["offset"] > events["onset"]]
    return events[EVENT_COLUMNS].reset_index(drop=True)


def detect(audio_or_path: str | Path | np.ndarray, model: str | Path | TrainedModel, *,
           sample_rate: int | None = None, thresholds: Any = None, median_filters: Any = None,
           filename: str | None = None, kind: str | None = None) -> Detection:
    """Detect the model's sound events in one recording (notebook 09).

    Args:
        audio_or_path: an audio file (any format libsndfile reads), or samples ``[n]`` /
            ``[n, channels]`` with ``sample_rate``.
        model: a checkpoint file, a run folder (``runs/scenes``: the frame model if trained, else
            the chunk model; ``kind`` picks one) or a loaded :class:`TrainedModel`.
        thresholds: override: one value, ``{class: value}`` for some classes, or one per class.
        median_filters: override the median-filter lengths the same way (in curve frames).
        filename: the name written into the events table (default: the file's name, or "audio").

    Returns a :class:`Detection`. Raises :class:`~sed_utils.core.errors.AudioError` naming the file for
    audio that cannot be used (see :func:`sed_utils.io.audio.read_recording`).
    """
    trained = load_model(model, kind)
    sr = trained.detector.sample_rate
    if isinstance(audio_or_path, (str, Path)):
        rec = read_recording(Path(audio_or_path), sr)
        audio, name = rec.audio, filename or Path(audio_or_path).name
    else:
        if sample_rate is None:
            raise ValueError("detect(array): give sample_rate= (the samples' rate in Hz)")
        name = filename or "audio"
        data = np.asarray(audio_or_path, dtype=np.float32)
        if data.ndim == 2:
            data = data.mean(axis=1)
        if data.ndim != 1 or data.size == 0:
            raise AudioError(f"{name}: expected samples [n] or [n, channels], got shape {data.shape}")
        if not np.isfinite(data).all():
            raise AudioError(f"{name}: the samples hold NaN or infinite values")
        audio = resample(data, int(sample_rate), sr)
    post = post_processing_of(trained, thresholds, median_filters)
    notes = [f"thresholds: {post.source}"]
    if post.stored == "segments":
        notes.append("these thresholds were tuned for 1 s segments (notebook 06); notebook 08 stores "
                     "event-tuned ones")
    seconds = len(audio) / float(sr)
    if seconds < MIN_SECONDS:
        notes.append(f"{seconds:.2f} s is shorter than {MIN_SECONDS:.0f} s: zero-padded to that length")
        padded = np.pad(audio, (0, int(round(MIN_SECONDS * sr)) - len(audio)))
    else:
        padded = audio
    bounds, scores = score_curve(trained, padded, sr, hop_seconds=post.hop_seconds)
    if len(padded) > len(audio):  # the curve stops where the recording does, not where the padding does
        n = max(1, int(np.searchsorted(bounds[:-1], seconds, side="left")))
        bounds, scores = np.append(bounds[:n], seconds), scores[:n]
    smooth = classwise_median_filter(scores, post.median_filters)
    events = _events_with_scores(bounds, scores, smooth, post, list(trained.labels), name, seconds)
    return Detection(name, events, bounds, scores, list(trained.labels), audio, sr, post, notes)


def detection_logmel(trained: TrainedModel, audio: np.ndarray, max_seconds: float = 600.0) -> np.ndarray:
    """The log-mel (dB, ``[n_mels, frames]``) of the first ``max_seconds`` of ``audio`` through the
    model's own front end, for drawing the events over what the model heard (notebook 09)."""
    import torch

    sr = trained.detector.sample_rate
    piece = np.asarray(audio, dtype=np.float32)[: int(max_seconds * sr)]
    front_end = trained.detector.logmel.to("cpu")
    with torch.inference_mode():
        return front_end(torch.from_numpy(np.ascontiguousarray(piece))[None])[0].numpy()


# --------------------------------------------------------------------------------------------
# Many files (the CLI)
# --------------------------------------------------------------------------------------------
def expand_inputs(items: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files, folders (searched recursively for :data:`AUDIO_SUFFIXES`) and glob patterns -> the
    files, in order, without duplicates; and the items that matched nothing, with why (notebook 09)."""
    files: list[Path] = []
    missing: list[tuple[Path, str]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            files += found
            if not found:
                missing.append((p, f"folder holds no audio file ({', '.join(AUDIO_SUFFIXES)})"))
        elif p.is_file():
            files.append(p)
        elif glob.has_magic(str(item)):
            found = sorted(Path(f) for f in glob.glob(str(item), recursive=True) if Path(f).is_file())
            files += found
            if not found:
                missing.append((p, "pattern matches no file"))
        else:
            missing.append((p, "no such file or folder"))
    unique = list(dict.fromkeys(files))
    return unique, missing


def detect_files(items: Iterable[str | Path], model: str | Path | TrainedModel, *, progress: bool = True,
                 keep_audio: bool = False, on_detection: Callable[[Detection], None] | None = None,
                 **kwargs: Any) -> DetectionBatch:
    """:func:`detect` on every file of ``items`` (see :func:`expand_inputs`) with one loaded model
    (notebook 09, the CLI). A file that fails does not stop the batch: it is listed in
    ``failures`` with its reason. Filenames in the table are as given (relative paths kept), so two
    files of the same name in different folders stay apart. ``on_detection`` sees each file's
    :class:`Detection` with its audio (to draw it) before the audio is dropped, so memory stays
    that of one file."""
    trained = load_model(model, kwargs.pop("kind", None))
    files, failures = expand_inputs(items)
    detections, tables = [], []
    for path in tqdm(files, desc="detect", unit="file", disable=not progress):
        try:
            det = detect(path, trained, filename=str(path), **kwargs)
            if on_detection is not None:
                on_detection(det)
        except (SedError, OSError, ValueError) as e:
            failures.append((path, str(e)))
            continue
        if not keep_audio:
            det.audio = det.audio[:0]
        detections.append(det)
        tables.append(det.events)
    events = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=EVENT_COLUMNS)
    return DetectionBatch(events, detections, failures)


def events_text(events: pd.DataFrame, fmt: str = "tsv") -> str:
    """An events table as text (notebook 09, the CLI): ``tsv`` in the DCASE layout (``filename onset
    offset event_label``, then ``score``), which sed_eval (dcase_util) reads back, or ``json`` (a
    list of records)."""
    if fmt == "tsv":
        return events[EVENT_COLUMNS].to_csv(sep="\t", index=False, float_format="%.3f")
    if fmt == "json":
        numeric = ("onset", "offset", "score")
        records = [{k: (round(float(v), 3) if k in numeric else str(v)) for k, v in r.items()}
                   for r in events[EVENT_COLUMNS].to_dict(orient="records")]
        return json.dumps(records, indent=1) + "\n"
    raise ValueError(f"format must be 'tsv' or 'json', got {fmt!r}")


def write_events(path: Path, events: pd.DataFrame, fmt: str = "tsv") -> None:
    """:func:`events_text` written atomically: a reader never sees half a table (notebook 09)."""
    atomic.write_text(Path(path), events_text(events, fmt))
