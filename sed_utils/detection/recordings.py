"""Detecting sound events in your own recordings (notebook 09, ``python -m sed_utils detect``).

One call does what the evaluation does for a test set: read the file (any format, rate and channel
count, :func:`sed_utils.io.audio.read_recording`), score it with a trained model
(:func:`sed_utils.models.score_curve`: the frame model's 80 ms frames, or the chunk model's windows slid
every 250 ms), smooth each class with its median filter, threshold it, turn each run of active frames
into an event with the highest score inside it, and drop the events shorter than the class's minimum
duration (:meth:`sed_utils.labels.TimeGrid.decode`).

Where the post-processing comes from, so that a copied checkpoint is enough: the one the evaluation
chose on validation data and stored in the checkpoint (notebooks 06, 08), with the caller's
``thresholds`` / ``median_filters`` over it (``--threshold Dog=0.4``); a checkpoint never evaluated
needs thresholds from the caller, or a :class:`~sed_utils.core.errors.CheckpointError` says which
notebook stores them. Nothing here was tuned on a test set.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed_utils.config.runs import RunPaths
from sed_utils.core.errors import AudioError, CheckpointError, SedError
from sed_utils.core.progress import tqdm
from sed_utils.io.audio import AUDIO_SUFFIXES, Tap, check_sample_rate, check_samples, open_recording, resample
from sed_utils.labels.grid import PostProcessing, TimeGrid
from sed_utils.models.checkpoint import TrainedModel, load_trained
from sed_utils.models.curves import model_device
from sed_utils.models.kinds import kind_names, score_curve

__all__ = ["AUDIO_SUFFIXES", "PREFERRED_KINDS", "EVENT_COLUMNS", "Detection", "DetectionBatch",
           "find_checkpoint", "load_model", "level_note", "array_samples", "text_name", "post_processing_of",
           "detect", "expand_inputs", "detect_files", "detection_logmel"]

#: Which model of a run folder ``detect`` uses when none is named: the event detector first.
PREFERRED_KINDS = ("frame", "chunk")
#: Clips shorter than this are zero-padded to it: the chunk model's window, and enough context for
#: the frame model's first frames.
MIN_SECONDS = 1.0
EVENT_COLUMNS = ["filename", "onset", "offset", "event_label", "score"]
#: A recording whose loudest sample lies below this (dBFS) gets a note: the training scenes peak at
#: -1 dBFS, and a model with absolute log-mels (``features.reference: absolute``) may not hear it.
QUIET_PEAK_DBFS = -30.0
#: Below this peak a recording holds next to no signal (16-bit quantisation is at -96 dBFS).
SILENT_PEAK_DBFS = -90.0


@dataclass
class Detection:
    """What :func:`detect` found in one recording (notebook 09).

    Args:
        filename: the name written into the events.
        events: ``filename, onset, offset, event_label, score`` (the highest score inside the event).
        bounds, scores: the score curve the events come from (frame ``j`` spans ``bounds[j]`` to
            ``bounds[j + 1]`` s; scores ``[T, C]``).
        labels: the classes; audio, sample_rate: the 16 kHz mono samples scored (empty when not kept).
        post: the post-processing applied; source: where it came from, in words.
        notes: what a user should know about this file (padding, ...).
        seconds: the recording's length (all of it, also when only its start is kept in ``audio``).
        path: the file scored (None for samples).
    """

    filename: str
    events: pd.DataFrame
    bounds: np.ndarray
    scores: np.ndarray
    labels: list[str]
    audio: np.ndarray
    sample_rate: int
    post: PostProcessing
    seconds: float
    source: str = ""
    notes: list[str] = field(default_factory=list)
    path: Path | None = None


@dataclass
class DetectionBatch:
    """:func:`detect_files` over many files (notebook 09, the CLI): every event in one table, each
    file's :class:`Detection` (audio dropped to keep memory flat), and the files that failed, with why."""

    events: pd.DataFrame
    detections: list[Detection]
    failures: list[tuple[Path, str]]


def find_checkpoint(model: str | Path, kind: str | None = None) -> Path:
    """The checkpoint a path names (notebook 09): a ``.pt`` file itself; in a run folder
    (``runs/scenes``) the model of ``kind``, or without one the first of :data:`PREFERRED_KINDS` (then
    any other registered kind) that is trained; a folder holding ``best.pt`` directly works too.

    Raises:
        FileNotFoundError: no such file or folder, or no trained model in it (the message says which
            notebook trains one).
        ValueError: ``kind`` is not a registered model kind.
    """
    path = Path(model)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint file or run folder")
    names = kind_names()
    if kind is not None and kind not in names:
        raise ValueError(f"kind must be one of {names}, got {kind!r}")
    order = [kind] if kind else [*PREFERRED_KINDS, *(n for n in names if n not in PREFERRED_KINDS)]
    candidates = [RunPaths(path).checkpoint(k) for k in order] + ([path / "best.pt"] if not kind else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    wanted = " or ".join(str(RunPaths(path).checkpoint(k)) for k in order)
    raise FileNotFoundError(f"{path}: no trained model found ({wanted}); train one first (notebook 05 for "
                            "the "
                            "chunk model, notebook 08 for the frame model)")


def load_model(model: str | Path | TrainedModel, kind: str | None = None,
               device: str | None = None) -> TrainedModel:
    """A loaded model from a checkpoint file, a run folder, or a :class:`TrainedModel` as it is
    (notebook 09).

    Args:
        model: a ``.pt`` file, a run folder (see :func:`find_checkpoint`) or a loaded model.
        kind: which model of a run folder (default: its frame model if trained).
        device: ``"cpu"``, ``"cuda"``, ... (default: the fastest there is; a loaded model stays where it is).
    """
    if isinstance(model, TrainedModel):
        return model
    return load_trained(find_checkpoint(model, kind), device)


def _per_class(values: float | Mapping[str, float] | Sequence[float] | None, labels: list[str],
               base: Sequence[float], what: str) -> np.ndarray:
    """``values`` as one number per class over ``base``: one number for all, a mapping for some classes
    (the others keep ``base``), or a full sequence."""
    out = np.asarray(base, dtype=float).copy()
    if values is None:
        return out
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


def post_processing_of(trained: TrainedModel, thresholds: Any = None, median_filters: Any = None,
                       min_durations: Any = None) -> tuple[PostProcessing, str]:
    """The post-processing :func:`detect` applies: the caller's values over the checkpoint's stored
    choice (notebook 09, the CLI).

    Args:
        trained: the model; thresholds, median_filters, min_durations: one value, ``{class: value}`` for
            some classes, or one per class (filters in the curve's frames, durations in seconds).

    Returns:
        (the post-processing, where it came from in words).

    Raises:
        CheckpointError: no stored choice and no thresholds given.
        ValueError: a threshold outside [0, 1], a filter below 1 frame or even, a negative or infinite
            minimum duration, an unknown class.
    """
    labels = list(trained.labels)
    stored = trained.info.post_processing
    if stored is None and thresholds is None:
        raise CheckpointError(
            f"{trained.info.path}: the checkpoint holds no post-processing. Evaluate it once (notebook 06 or "
            "08, "
            "sed_utils.evaluate.evaluate) to store the one chosen on validation, or give thresholds "
            "(--threshold 0.5, or --threshold Dog=0.4 ...)")
    n = len(labels)
    base = stored or PostProcessing(tuple(labels), (0.5,) * n, (1,) * n, (0.0,) * n, (0.5,) * n)
    thr = _per_class(thresholds, labels, base.thresholds, "thresholds")
    filters = _per_class(median_filters, labels, base.median_filters, "median_filters").astype(int)
    shortest = _per_class(min_durations, labels, base.min_durations, "min_durations")
    if not ((thr >= 0) & (thr <= 1)).all():  # written so that NaN fails too
        raise ValueError(f"thresholds must lie in [0, 1], got {dict(zip(labels, thr.round(3), strict=True))}")
    if ((filters < 1) | (filters % 2 == 0)).any():
        raise ValueError(f"median filter lengths must be odd numbers of frames >= 1 (1: no filter; an even "
                         f"one has no middle frame and shifts the events), got {filters.tolist()}")
    if not ((shortest >= 0) & np.isfinite(shortest)).all():
        raise ValueError(f"minimum durations must be seconds >= 0, got {shortest.tolist()}")
    source = (f"chosen on {stored.chosen_on or 'validation data'} (stored in the checkpoint)" if stored
              else "given")
    if stored is not None and any(v is not None for v in (thresholds, median_filters, min_durations)):
        source += ", with the caller's overrides"
    return dataclasses.replace(base, thresholds=tuple(map(float, thr)),
                               median_filters=tuple(map(int, filters)),
                               min_durations=tuple(map(float, shortest))), source


def _events_with_scores(grid: TimeGrid, scores: np.ndarray, post: PostProcessing, filename: str,
                        seconds: float) -> pd.DataFrame:
    """The events of one curve, each with the highest raw score inside it, cut at the recording's end."""
    events = post.decode(grid, scores, filename)
    if events.empty:
        return pd.DataFrame(columns=EVENT_COLUMNS).astype({"onset": float, "offset": float, "score": float})
    starts, ends = grid.bounds[:-1], grid.bounds[1:]
    best = [float(scores[(starts >= ev.onset - 1e-9) & (ends <= ev.offset + 1e-9),
                         grid.labels.index(ev.event_label)]
                  .max()) for ev in events.itertuples()]
    events = events.assign(score=best)
    events["offset"] = events["offset"].clip(upper=seconds)  # padding never shows as event time
    return events[events["offset"] > events["onset"]][EVENT_COLUMNS].reset_index(drop=True)


def array_samples(samples: np.ndarray, sample_rate: float, name: str = "audio") -> np.ndarray:
    """Samples given as an array, as float32 mono scaled to full scale 1.0 (notebook 09, through
    :func:`detect`), checked as a file's samples are.

    Layouts: ``[n]``; two dimensions are ``[channels, n]`` or ``[n, channels]``, the shorter axis being
    the channels (what ``soundfile`` and ``librosa`` return both occur), and the channels are averaged.
    Integer PCM is scaled by its type's full scale (int16 / 32768; unsigned 8-bit around 128), floats
    are taken as they are.

    Args:
        samples: the array; sample_rate: its rate in Hz; name: what error messages call it.

    Returns:
        float32 mono samples ``[n]`` at ``sample_rate``.

    Raises:
        AudioError: naming ``name``: more than two dimensions or no samples, a sample rate outside
            1 kHz-768 kHz, NaN / infinite / absurdly large samples
            (:func:`sed_utils.io.audio.check_samples`).
    """
    data = np.asarray(samples)
    rate = check_sample_rate(name, sample_rate)
    if data.ndim == 2:
        data = data.T if data.shape[0] < data.shape[1] else data  # -> [n, channels]
    if data.ndim not in (1, 2) or data.size == 0:
        raise AudioError(f"{name}: expected samples [n], [channels, n] or [n, channels], got shape "
                         f"{data.shape}")
    if data.dtype.kind == "u":
        full = float(np.iinfo(data.dtype).max) / 2 + 0.5
        data = (data.astype(np.float64) - full) / full
    elif data.dtype.kind == "i":
        data = data.astype(np.float64) / (float(np.iinfo(data.dtype).max) + 1)
    elif data.dtype.kind != "f":
        raise AudioError(f"{name}: samples of type {data.dtype} are not audio (expected float or integer "
                         "PCM)")
    check_samples(name, data, rate)
    mono = data.mean(axis=1) if data.ndim == 2 else data
    return mono.astype(np.float32)


def _padded(blocks: Iterable[np.ndarray], tap: Tap, min_samples: int) -> Iterator[np.ndarray]:
    """``blocks`` (read through ``tap``), then zeros up to ``min_samples`` (a clip shorter than the model's
    context)."""
    yield from blocks
    if tap.n < min_samples:
        yield np.zeros(min_samples - tap.n, np.float32)


def text_name(path: str | Path) -> str:
    """A path as text that can be written anywhere: a name that is not valid UTF-8 (Latin-1 names on old
    disks reach Python with surrogates) keeps its odd bytes as ``\\xe9`` escapes (notebook 09, the CLI:
    the events' ``filename``)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _source(audio_or_path: str | Path | np.ndarray, sample_rate: int | None, rate: int,
            filename: str | None) -> tuple[Iterable[np.ndarray], str]:
    """The recording's mono blocks at ``rate`` (a file is read as it is scored) and the name to write."""
    if isinstance(audio_or_path, (str, Path)):
        return open_recording(Path(audio_or_path), rate)[1], filename or text_name(Path(audio_or_path).name)
    if sample_rate is None:
        raise ValueError("detect(array): give sample_rate= (the samples' rate in Hz)")
    name = filename or "audio"
    return [resample(array_samples(audio_or_path, sample_rate, name), int(sample_rate), rate)], name


def level_note(audio: np.ndarray, reference: str, *, peak: float | None = None) -> str | None:
    """What a user should know about a recording's level, or None (notebook 09, through :func:`detect`).

    Args:
        audio: the mono samples scored (unused when ``peak`` is given).
        reference: the model's ``features.reference`` (``"absolute"`` or ``"max"``).
        peak: the recording's largest absolute sample, when known without the samples.
    """
    if peak is None:
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    peak_db = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_db < SILENT_PEAK_DBFS:
        return f"peak {peak_db:.0f} dBFS: the recording holds next to no signal"
    if peak_db < QUIET_PEAK_DBFS and reference == "absolute":
        return (f"peak {peak_db:.0f} dBFS, quiet: this model reads absolute levels and heard its training "
                f"scenes near -1 dBFS, so it may miss quiet sounds; raise the gain, or use a model trained "
                f"with features.reference=max (level-invariant)")
    return None


def detect(audio_or_path: str | Path | np.ndarray, model: str | Path | TrainedModel, *,
           sample_rate: int | None = None, thresholds: Any = None, median_filters: Any = None,
           min_durations: Any = None, filename: str | None = None, kind: str | None = None,
           keep_audio: bool | float = True, batch_size: int | None = None,
           device: str | None = None) -> Detection:
    """Detect the model's sound events in one recording (notebook 09).

    A file is scored as it is decoded, block by block (:func:`sed_utils.io.audio.open_recording`):
    with ``keep_audio=False`` an hour costs the model's blocks, not the hour's samples.

    Args:
        audio_or_path: an audio file (any format libsndfile reads), or samples with ``sample_rate``
            (``[n]``, ``[channels, n]`` or ``[n, channels]``; float or integer PCM: see
            :func:`array_samples`).
        model: a checkpoint file, a run folder (``runs/scenes``: see :func:`find_checkpoint`; ``kind``
            picks a model) or a loaded :class:`TrainedModel`.
        thresholds, median_filters, min_durations: overrides (see :func:`post_processing_of`).
        filename: the name written into the events table (default: the file's name, or "audio").
        keep_audio: keep the 16 kHz mono samples in the result (to listen, or draw them); a number keeps
            that many seconds from the start (a figure of an hour draws its first minutes); False: its
            ``audio`` is empty.
        batch_size: model inputs per forward pass (see :func:`sed_utils.models.kinds.score_curve`): speed
            and memory only, the events do not change.
        device: where a model loaded from a file runs (see :func:`load_model`; a loaded model stays put).

    Returns:
        A :class:`Detection`.

    Raises:
        AudioError: audio that cannot be used, naming the file (see
            :func:`sed_utils.io.audio.read_recording`).
        CheckpointError: a model without stored post-processing and no thresholds given.
    """
    trained = load_model(model, kind, device)
    sr = trained.detector.sample_rate
    post, source = post_processing_of(trained, thresholds, median_filters, min_durations)
    blocks, name = _source(audio_or_path, sample_rate, sr, filename)
    kept_seconds = (np.inf if keep_audio else 0.0) if isinstance(keep_audio, bool) else float(keep_audio)
    tap = Tap(blocks, keep=kept_seconds * sr)
    bounds, scores = score_curve(trained.detector, _padded(tap, tap, int(round(MIN_SECONDS * sr))), sr,
                                 hop_seconds=post.window_hop_seconds, batch_size=batch_size)
    seconds, audio = tap.n / float(sr), tap.audio
    notes = [note for note in [level_note(audio, trained.detector.mel.reference, peak=tap.peak)] if note]
    if seconds < MIN_SECONDS:  # the curve stops where the recording does, not where the padding does
        notes.append(f"{seconds:.2f} s is shorter than {MIN_SECONDS:.0f} s: zero-padded to that length")
        n = max(1, int(np.searchsorted(bounds[:-1], seconds, side="left")))
        bounds, scores = np.append(bounds[:n], seconds), scores[:n]
    grid = TimeGrid(tuple(trained.labels), np.asarray(bounds, dtype=float))
    events = _events_with_scores(grid, scores, post, name, seconds)
    path = Path(audio_or_path) if isinstance(audio_or_path, (str, Path)) else None
    return Detection(name, events, grid.bounds, scores, list(trained.labels), audio, sr, post, seconds,
                     source, notes, path)


def detection_logmel(trained: TrainedModel, audio: np.ndarray, max_seconds: float = 600.0) -> np.ndarray:
    """The log-mel (dB, ``[n_mels, frames]``) of the first ``max_seconds`` of ``audio`` through the model's
    own front end, for drawing the events over what the model heard (notebook 09).

    Args:
        trained: the model; its front end runs where the model is (and stays there).
        audio: mono samples ``[n]`` at the model's sample rate (a :class:`Detection`'s ``audio``).
        max_seconds: how much of the recording to compute, from its start.

    Returns:
        float32 log-mel in dB, ``[n_mels, frames]``, on the CPU.
    """
    import torch

    sr = trained.detector.sample_rate
    piece = np.ascontiguousarray(np.asarray(audio, dtype=np.float32)[: int(max_seconds * sr)])
    piece = torch.from_numpy(piece)
    device = model_device(trained.detector)
    with torch.inference_mode():
        return trained.detector.logmel(piece[None].to(device))[0].cpu().numpy()


def expand_inputs(items: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files, folders (searched recursively for :data:`AUDIO_SUFFIXES`) and glob patterns -> the files,
    in order, each once (two paths to the same file, e.g. ``a.wav`` and ``./x/../a.wav``, keep the first
    as given); and the items that matched nothing, with why (notebook 09, the CLI)."""
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
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values()), missing


def file_names(files: Sequence[Path], names: str = "basename", unique: bool = True) -> dict[Path, str]:
    """The name each file gets in an events table (notebook 09, the CLI): its name alone (``"basename"``,
    as DESED's tables name recordings) or its path as given (``"path"``), as printable text
    (:func:`text_name`).

    Args:
        files: the files; names: ``"basename"`` or ``"path"``.
        unique: refuse two files of the same name (a table of several files could not tell them apart).

    Raises:
        ValueError: an unknown ``names``, or two files of the same name when ``unique``.
    """
    if names not in ("basename", "path"):
        raise ValueError(f"names must be 'basename' or 'path', got {names!r}")
    out = {f: text_name(f.name if names == "basename" else f) for f in files}
    seen: dict[str, Path] = {}
    for f, name in out.items():
        if name in seen and unique:
            raise ValueError(f"{seen[name]} and {f} share the name {name!r}: the table could not tell them "
                             "apart; name them by path (--names path, or names='path')")
        seen[name] = f
    return out


def detect_files(items: Iterable[str | Path], model: str | Path | TrainedModel, *, progress: bool = True,
                 keep_audio: bool = False, on_detection: Callable[[Detection], None] | None = None,
                 seen_seconds: float = np.inf, names: str = "basename", unique_names: bool = True,
                 **kwargs: Any) -> DetectionBatch:
    """:func:`detect` on every file of ``items`` (see :func:`expand_inputs`) with one loaded model
    (notebook 09, the CLI).

    A file that fails does not stop the batch: it is listed in ``failures`` with its reason. The table
    names each file by its name alone, as DESED's tables do (``names="path"``: as given, relative paths
    kept); two files of the same name in different folders are then refused before any is decoded. Each
    file is scored as it is decoded and its samples are not kept, unless
    ``keep_audio``; ``on_detection`` sees each file's :class:`Detection` with its audio (to draw it),
    dropped afterwards, so memory stays that of one file. ``kwargs`` go to :func:`detect`.

    Args:
        items: files, folders and glob patterns (see :func:`expand_inputs`).
        model: a checkpoint file, a run folder (``kind=`` in ``kwargs`` picks its model) or a loaded
            :class:`TrainedModel`; loaded once for all files.
        progress: show a progress bar over the files.
        keep_audio: keep each :class:`Detection`'s audio in the result.
        on_detection: called with each file's :class:`Detection`; an error it raises fails that file.
        seen_seconds: how much of each file's audio, from the start, ``on_detection`` sees (the CLI's
            figures draw the first 10 minutes: an hour's samples are then never held).
        names: ``"basename"`` or ``"path"``: how the table names the files.
        unique_names: refuse two files of the same name (False when each file's events are written apart,
            as ``detect --per-file`` does).
        kwargs: ``thresholds``, ``median_filters``, ``min_durations``, ``batch_size``, ``kind``, ``device``,
            as :func:`detect` takes them.

    Returns:
        A :class:`DetectionBatch`: the events of every file (:data:`EVENT_COLUMNS`), the detections,
        and the failures as ``(path, reason)`` (items that matched nothing first).

    Raises:
        FileNotFoundError, CheckpointError: the model cannot be found or loaded (before any file).
        ValueError: two files of the same name with ``names="basename"`` (before any file).
    """
    trained = load_model(model, kwargs.pop("kind", None), kwargs.pop("device", None))
    files, failures = expand_inputs(items)
    name_of = file_names(files, names, unique_names)
    detections, tables = [], []
    for path in tqdm(files, desc="detect", unit="file", disable=not progress):
        try:
            keep = True if keep_audio else seen_seconds if on_detection is not None else False
            det = detect(path, trained, filename=name_of[path], keep_audio=keep, **kwargs)
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
