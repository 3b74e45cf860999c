"""Cutting audio into model-sized pieces: ESC-50 training chunks and DESED evaluation segments.

The model sees 1 s of audio at a time (``cfg.chunking.chunk_seconds``). Two different cuts are made:

* **ESC-50 chunks** (training/validation). Each 5 s clip is cut into 1 s windows whose starts are
  shifted by ``hop_seconds`` (0, 0.25, 0.5, ...). Overlapping windows are a cheap form of
  oversampling: the same sound is seen at many positions inside the window. Chunks that are
  (nearly) silent are dropped, and chunks of the 45 other categories are added as *negatives*
  (label all zeros).
* **DESED segments** (evaluation). Each 10 s clip is cut into non-overlapping 1 s segments, the
  grid of DCASE's segment-based metric. A segment can hold several classes at once (multilabel)
  or none; both kinds are kept because the metric scores all of them.

Pure functions come first (easy to test by hand); the cached table builders follow. Tables are
written as csv under ``cfg.cache_dir / "chunks"`` with a key derived from every parameter that made
them, so re-running a notebook reads the table instead of re-reading 2000 clips.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sed_utils.core.atomic import write_csv
from sed_utils.core.errors import DatasetError
from sed_utils.core.keys import file_identity, frame_hash, params_key
from sed_utils.core.progress import tqdm
from sed_utils.data.desed import StrongLabelSet
from sed_utils.data.esc50 import add_target_labels, esc50_root, load_esc50_meta
from sed_utils.io.audio import cached_resampled

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "chunk_starts",
    "chunk_rms_db",
    "silent_chunks",
    "segment_labels",
    "build_esc50_chunks",
    "build_segments",
    "chunk_statistics",
]

# Time values (starts, ends) are rounded to this many decimals (1 µs): far below one sample at
# 16 kHz, but enough to make 0.1 * 3 == 0.3 when we compare and store them.
_TIME_DECIMALS = 6


# ------------------------------------------------------------------------------------------------
# Pure functions
# ------------------------------------------------------------------------------------------------
def chunk_starts(clip_seconds: float, chunk_seconds: float, hop_seconds: float) -> np.ndarray:
    """Start times (s) of every window ``[start, start + chunk)`` that fits inside the clip
    (notebook 03; notebooks 04, 05 through build_esc50_chunks).

    Starts are ``0, hop, 2 hop, ...`` while ``start + chunk <= clip``. Floating point would make
    ``(5 - 1) / 0.1`` come out as 39.999...; the count is therefore computed after rounding to
    1 µs, and starts are rounded the same way, so a 5 s clip with hop 0.1 gives exactly 41 starts
    ending at 4.0. A clip exactly one chunk long gives one chunk; a shorter clip gives none.

    Args:
        clip_seconds, chunk_seconds, hop_seconds: the clip's length, the window's length and the hop
            between starts, in seconds.

    Returns:
        float64 start times ``[n]`` in seconds (``n`` may be 0).

    Raises:
        ValueError: ``chunk_seconds`` or ``hop_seconds`` is not positive.
    """
    if chunk_seconds <= 0 or hop_seconds <= 0:
        raise ValueError(f"chunk_seconds and hop_seconds must be > 0, got {chunk_seconds}, {hop_seconds}")
    room = round(clip_seconds - chunk_seconds, _TIME_DECIMALS)
    if room < 0:
        return np.zeros(0, dtype=np.float64)
    n = int(math.floor(round(room / hop_seconds, _TIME_DECIMALS - 2))) + 1
    return np.round(np.arange(n, dtype=np.float64) * hop_seconds, _TIME_DECIMALS)


def chunk_rms_db(audio: np.ndarray, sample_rate: int, starts: np.ndarray, chunk_seconds: float) -> np.ndarray:
    """RMS level in dB (re full scale 1.0) of each window; digital silence (all zeros) gives ``-inf``
    (notebooks 03-05, through build_esc50_chunks).

    A window running past the end of ``audio`` is measured on the samples that exist.

    Args:
        audio: mono samples ``[N]``.
        sample_rate: their rate in Hz.
        starts: the windows' start times in seconds.
        chunk_seconds: the windows' length in seconds.

    Returns:
        float64 levels in dB, ``[len(starts)]``.
    """
    audio = np.asarray(audio, dtype=np.float64)
    n = int(round(chunk_seconds * sample_rate))
    out = np.empty(len(starts), dtype=np.float64)
    for i, start in enumerate(starts):
        a = int(round(float(start) * sample_rate))
        piece = audio[a : a + n]
        rms = math.sqrt(float(np.mean(piece * piece))) if piece.size else 0.0
        out[i] = 20.0 * math.log10(rms) if rms > 0 else -np.inf
    return out


def silent_chunks(rms_db: np.ndarray, silence_db: float) -> np.ndarray:
    """Which chunks of ONE clip count as silent: RMS more than ``|silence_db|`` dB below its loudest chunk
    (notebooks 03-05, through build_esc50_chunks).

    Why: ESC-50 clips are padded to 5 s with digital silence (and many sounds, a single bark, last
    well under a second). A silent window labelled "dog" teaches the model that quiet background
    noise is a dog. The threshold is relative to the clip's own loudest chunk, not absolute,
    because recording levels differ a lot between clips. Digital silence (``-inf``) is always
    silent; a clip that is silent everywhere has all its chunks marked silent.
    """
    rms_db = np.asarray(rms_db, dtype=np.float64)
    if rms_db.size == 0:
        return np.zeros(0, dtype=bool)
    loudest = float(np.max(rms_db))
    if not np.isfinite(loudest):
        return np.ones(rms_db.shape, dtype=bool)
    return rms_db < loudest - abs(float(silence_db))


def segment_labels(
    events: pd.DataFrame, n_segments: int, segment_seconds: float, labels: list[str]
) -> np.ndarray:
    """0/1 matrix ``[n_segments, n_labels]`` of which classes are active in each segment of ONE file
    (notebooks 03-06, through build_segments).

    Rule (identical to sed_eval's ``event_list_to_event_roll``, which DCASE's segment-based metric
    uses): an event ``[onset, offset)`` marks segments ``floor(onset / s)`` to ``ceil(offset / s) - 1``.
    So segment ``k = [k s, (k+1) s)`` is active when the event overlaps it with positive length:
    an event *ending* exactly on a boundary does not activate the next segment, one *starting*
    exactly on a boundary does. (As in sed_eval, a zero-length event strictly inside a segment
    marks that segment.) Events of classes not in ``labels`` are ignored; events running past the
    last segment are clipped.

    Args:
        events: the file's events: ``onset``, ``offset`` (seconds), ``event_label``.
        n_segments, segment_seconds: how many segments the file has, and their length in seconds.
        labels: the classes, in column order.

    Returns:
        int8 ``[n_segments, len(labels)]``.
    """
    roll = np.zeros((int(n_segments), len(labels)), dtype=np.int8)
    if len(events) == 0 or n_segments == 0:
        return roll
    index = {label: j for j, label in enumerate(labels)}
    for onset, offset, label in zip(events["onset"], events["offset"], events["event_label"], strict=True):
        j = index.get(label)
        if j is None:
            continue
        # Same arithmetic as sed_eval (x * 1 / float(s)), so the two agree to the last bit.
        first = int(math.floor(float(onset) * 1 / float(segment_seconds)))
        stop = int(math.ceil(float(offset) * 1 / float(segment_seconds)))
        first, stop = max(first, 0), min(stop, int(n_segments))
        if stop > first:
            roll[first:stop, j] = 1
    return roll


# ------------------------------------------------------------------------------------------------
# Cache helpers
# ------------------------------------------------------------------------------------------------
def _chunk_cache_path(cfg: Config, name: str, key: str) -> Path:
    return cfg.cache_dir / "chunks" / f"{name}-{key}.csv"


# ------------------------------------------------------------------------------------------------
# ESC-50 chunk table
# ------------------------------------------------------------------------------------------------
def _esc50_key(cfg: Config, meta: pd.DataFrame) -> str:
    files = meta[["filename", "fold", "category"]]
    c = cfg.chunking
    return params_key(
        {
            "table": "esc50-chunks-v1",
            "chunk_seconds": c.chunk_seconds,
            "hop_seconds": c.hop_seconds,
            "silence_db": c.silence_db,
            "negative_ratio": c.negative_ratio,
            "sample_rate": cfg.audio.sample_rate,
            "classes": list(cfg.classes.items()),
            "seed": cfg.seed,
            "files": frame_hash(files),
            "sources": file_identity(meta["path"]),  # size + mtime: a replaced clip is re-chunked
        }
    )


def _pick_negatives(table: pd.DataFrame, ratio: float, seed: int) -> np.ndarray:
    """Boolean ``kept`` for negative rows: per fold, ``round(ratio * kept target chunks)`` drawn at random.

    Per fold, so every union of folds (train = 1-4, valid = 5) has the same positive/negative
    balance. Seeded by ``(seed, fold)``: the same config always keeps the same negatives.
    """
    kept = np.zeros(len(table), dtype=bool)
    if ratio <= 0:
        return kept
    for fold, group in table.groupby("fold", sort=True):
        n_target = int((group["is_target"] & group["kept"]).sum())
        candidates = np.flatnonzero(
            (table["fold"].to_numpy() == fold) & ~table["is_target"].to_numpy() & ~table["silent"].to_numpy()
        )
        n = min(int(round(ratio * n_target)), len(candidates))
        if n > 0:
            rng = np.random.default_rng([int(seed), int(fold)])
            kept[rng.choice(candidates, size=n, replace=False)] = True
    return kept


def build_esc50_chunks(cfg: Config, *, progress: bool = True) -> pd.DataFrame:
    """Every candidate 1 s chunk of every ESC-50 clip, with silence and negative selection (cached).

    Columns: filename, path, fold, category, is_target, start, end, rms_db, silent, kept, and one
    0/1 column per DESED label (``cfg.desed_labels``; target clips one-hot, negatives all zero).
    ``kept`` is what training uses (``table[table.kept]``): non-silent target chunks, plus
    ``negative_ratio`` x as many non-silent negative chunks per fold. Everything else stays in
    the table (``kept=False``) so notebook 03 can show what was dropped and why.
    """

    meta = load_esc50_meta(esc50_root(cfg))
    meta = add_target_labels(meta, cfg.classes).sort_values("filename", kind="stable").reset_index(drop=True)
    key = _esc50_key(cfg, meta)
    target = _chunk_cache_path(cfg, "esc50", key)
    if target.is_file():
        return _read_table(target, cfg.desed_labels)

    c = cfg.chunking
    sr = cfg.audio.sample_rate
    labels = cfg.desed_labels
    rows: list[dict[str, Any]] = []
    audio_cache = cfg.cache_dir / "resampled"
    for rec in tqdm(
        meta.itertuples(index=False), total=len(meta), desc="ESC-50 chunks", disable=not progress
    ):
        audio = cached_resampled(Path(rec.path), sr, audio_cache)
        starts = chunk_starts(len(audio) / sr, c.chunk_seconds, c.hop_seconds)
        if len(starts) == 0:
            raise DatasetError(f"{rec.path}: clip is {len(audio) / sr:.3f} s, shorter than one chunk")
        rms = chunk_rms_db(audio, sr, starts, c.chunk_seconds)
        silent = silent_chunks(rms, c.silence_db)
        base = {
            "filename": rec.filename,
            "path": str(rec.path),
            "fold": int(rec.fold),
            "category": rec.category,
            "is_target": bool(rec.is_target),
        }
        onehot = {label: int(getattr(rec, label)) for label in labels}
        for s, r, q in zip(starts, rms, silent, strict=True):
            rows.append(
                {
                    **base,
                    "start": float(s),
                    "end": round(float(s) + c.chunk_seconds, _TIME_DECIMALS),
                    "rms_db": float(r),
                    "silent": bool(q),
                    **onehot,
                }
            )
    table = pd.DataFrame(rows)
    table["kept"] = table["is_target"] & ~table["silent"]
    table.loc[_pick_negatives(table, c.negative_ratio, cfg.seed), "kept"] = True
    table = table[
        [
            "filename",
            "path",
            "fold",
            "category",
            "is_target",
            "start",
            "end",
            "rms_db",
            "silent",
            "kept",
            *labels,
        ]
    ]
    write_csv(table, target)
    return _read_table(target, labels)  # exactly what a cache hit returns (same dtypes and floats)


def _read_table(path: Path, labels: list[str]) -> pd.DataFrame:
    table = pd.read_csv(
        path, dtype={"filename": str, "path": str, "category": str}, float_precision="round_trip"
    )
    for col in ("is_target", "silent", "kept"):
        if col in table:
            table[col] = table[col].astype(bool)
    for label in labels:
        table[label] = table[label].astype(int)
    return table


# ------------------------------------------------------------------------------------------------
# DESED segment table
# ------------------------------------------------------------------------------------------------
def build_segments(cfg: Config, ds: StrongLabelSet) -> pd.DataFrame:
    """Every file of a strongly labelled set cut into ``segment_seconds`` segments with their labels
    (cached; notebook 03 shows DESED's, notebooks 05-06 use the scenes' and the test set's).

    ``ds`` is DESED public eval, or any scenes of :func:`sed_utils.data.scenes.scene_set`: they
    share a layout, so one segmenter serves all of them.

    Columns: filename, path, start, end, n_active (how many target classes are active), and one
    0/1 column per DESED label. Segments with no target event are kept with an all-zero label:
    DCASE's segment-based metric scores them too (a false alarm there costs precision).
    """
    labels = cfg.desed_labels
    seg = cfg.chunking.segment_seconds
    events = ds.events.sort_values(["filename", "onset", "offset", "event_label"]).reset_index(drop=True)
    key = params_key(
        {
            "table": "desed-segments-v1",
            "segment_seconds": seg,
            "clip_seconds": ds.clip_seconds,
            "labels": labels,
            "files": sorted(ds.files),
            "events": frame_hash(events[["filename", "onset", "offset", "event_label"]]),
            "audio_dir": str(ds.audio_dir),
        }
    )
    target = _chunk_cache_path(cfg, "desed", key)
    if target.is_file():
        return _read_table(target, labels)

    n_seg = int(math.ceil(round(ds.clip_seconds / seg, _TIME_DECIMALS)))
    by_file = {name: group for name, group in events.groupby("filename", sort=False)}
    empty = events.iloc[0:0]
    parts = []
    for name in sorted(ds.files):
        roll = segment_labels(by_file.get(name, empty), n_seg, seg, labels)
        starts = np.round(np.arange(n_seg) * seg, _TIME_DECIMALS)
        part = pd.DataFrame(
            {
                "filename": name,
                "path": str(Path(ds.audio_dir) / name),
                "start": starts,
                "end": np.minimum(np.round(starts + seg, _TIME_DECIMALS), ds.clip_seconds),
                "n_active": roll.sum(axis=1).astype(int),
            }
        )
        for j, label in enumerate(labels):
            part[label] = roll[:, j].astype(int)
        parts.append(part)
    if not parts:
        raise DatasetError(f"{ds.audio_dir}: DESED set lists no files")
    table = pd.concat(parts, ignore_index=True)
    write_csv(table, target)
    return _read_table(target, labels)  # exactly what a cache hit returns (same dtypes and floats)


# ------------------------------------------------------------------------------------------------
# Statistics and figures
# ------------------------------------------------------------------------------------------------
def chunk_statistics(esc_table: pd.DataFrame, desed_table: pd.DataFrame, labels: list[str]) -> dict[str, Any]:
    """Counts behind notebook 03's figures.

    Args:
        esc_table: the ESC-50 chunk table (:func:`build_esc50_chunks`).
        desed_table: a segment table (:func:`build_segments`).
        labels: the target classes, label columns of both tables.

    Returns:
        A dict with:
        ``esc50_per_class``: DataFrame indexed by label with kept / silent_dropped chunk counts of
        each target class, plus a row ``negatives`` (kept, silent_dropped, unused = non-silent
        negatives not drawn);
        ``esc50_total``, ``esc50_kept``, ``esc50_silent_share`` (share of all candidate chunks that
        are silent);
        ``desed_segments``, ``desed_active`` (segments with >= 1 target class), ``desed_empty``,
        ``desed_multilabel`` (>= 2 classes), ``multilabel_share`` (of active segments),
        ``empty_share`` (of all segments), ``n_active_hist`` (Series: segments per number of
        active classes), ``desed_per_class`` (active segments per class), and ``cooccurrence``
        (DataFrame labels x labels: segments where both are active; diagonal = class total).
    """
    per_class = {}
    for label in labels:
        rows = esc_table[esc_table[label] == 1]
        per_class[label] = {
            "kept": int(rows["kept"].sum()),
            "silent_dropped": int(rows["silent"].sum()),
            "unused": 0,
        }
    neg = esc_table[~esc_table["is_target"]]
    per_class["negatives"] = {
        "kept": int(neg["kept"].sum()),
        "silent_dropped": int(neg["silent"].sum()),
        "unused": int((~neg["kept"] & ~neg["silent"]).sum()),
    }
    y = desed_table[labels].to_numpy(dtype=np.int64)
    n_active = y.sum(axis=1)
    active = int((n_active > 0).sum())
    multi = int((n_active >= 2).sum())
    return {
        "esc50_per_class": pd.DataFrame(per_class).T[["kept", "silent_dropped", "unused"]],
        "esc50_total": len(esc_table),
        "esc50_kept": int(esc_table["kept"].sum()),
        "esc50_silent_share": float(esc_table["silent"].mean()) if len(esc_table) else 0.0,
        "desed_segments": len(desed_table),
        "desed_active": active,
        "desed_empty": int((n_active == 0).sum()),
        "desed_multilabel": multi,
        "multilabel_share": multi / active if active else 0.0,
        "empty_share": float((n_active == 0).mean()) if len(n_active) else 0.0,
        "n_active_hist": pd.Series(n_active).value_counts().sort_index(),
        "desed_per_class": pd.Series(y.sum(axis=0), index=labels),
        "cooccurrence": pd.DataFrame(y.T @ y, index=labels, columns=labels),
    }
