"""Held-out scenes: 10 s DESED-style soundscapes mixed from REAL clips of a held-out ESC-50 fold.

Why: DESED public eval is the series' real test set, but it is a large download and its domain
(YouTube recordings) differs from ESC-50's. These scenes let a reader evaluate event detection on
real audio without DESED, and separate two questions: how well the model detects events in
ESC-50's own domain (these scenes, *in-domain*) and how well that carries over to other recordings
(DESED, *out-of-domain*). The scenes are only fair if their fold stayed out of training AND
validation: they come from ``cfg.folds.scenes_test`` while a model meant for them trains on
``cfg.folds.scenes_train`` and validates on ``cfg.folds.scenes_valid``. Every source clip is
checked to belong to the requested folds, and listed in ``sources.csv`` next to the scenes.

What a scene holds (all at ``cfg.audio.sample_rate``, 10 s):

* a background of 1-2 ambient clips (rain, wind, engine, ...; see :data:`AMBIENT_CATEGORIES`),
  looped to 10 s; it is never labelled, like DESED's backgrounds;
* 0-3 target events (the categories of ``cfg.classes``, labelled with their DESED names), each a
  random crop of a clip's sounding part, at a random onset and a random SNR over the background;
  about 10 % of the scenes have none, so "nothing to detect" is tested too;
* 0-2 distractor events from the other categories, NOT labelled: the model must ignore them.

How the labels stay honest. An ESC-50 clip is 5 s, but the sound in it is often shorter (a bark
then silence, padded to 5 s). Labelling the whole inserted clip would mark seconds of silence as
"Dog", and a model that is right would be scored wrong. So each clip is analysed with an energy
threshold first: 25 ms frames every 10 ms, a frame is *active* when its RMS is within
``cfg.chunking.silence_db`` dB (the series' single notion of silence, -35 dB by default) of the
clip's loudest frame. Leading and trailing inactive frames are cut off before the clip is
inserted, the random crop starts on an active frame and is trimmed again, and the label is where
the inserted sound's active part lies in the scene: ``onset = insert position + first active
sample``, to the end of the last active frame. Silences inside an event longer than
:data:`SPLIT_GAP_SECONDS` split it into two labelled events (two barks 2 s apart are two events,
as a human annotator would mark them). Overlapping events of one class are merged into one label
(DESED never lists one class twice at the same time). The scene is peak-normalised at the end,
which scales everything together and so moves no label.

Layout written (DESED's, so :func:`sed_utils.desed.load_desed` and everything downstream reads
the scenes unchanged)::

    out_dir/audio/scene_0000.wav ...   16-bit PCM, 10 s
    out_dir/public.tsv                 filename, onset, offset, event_label (3 decimals, tab separated;
                                       a scene without target events has one row with empty fields,
                                       as in DESED's validation.tsv)
    out_dir/sources.csv                provenance: every clip used, its role, fold, span and SNR
    out_dir/params.json                the parameters and the cache key
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sed_utils.audio import cached_resampled, read_audio, write_wav
from sed_utils.chunking import params_key
from sed_utils.errors import DatasetError
from sed_utils.esc50 import AMBIENT_CATEGORIES, ambient_categories, esc50_root, load_esc50_meta

if TYPE_CHECKING:
    from sed_utils.config import Config
    from sed_utils.desed import DesedSet

__all__ = [
    "AMBIENT_CATEGORIES",
    "SCENE_SECONDS",
    "active_mask",
    "active_spans",
    "build_scenes",
    "scene_labels_path",
    "scene_sources_path",
    "load_scenes",
    "validation_scenes",
    "training_scenes",
    "load_scene_sources",
    "label_statistics",
    "pick_example_scene",
    "plot_scene",
    "plot_label_statistics",
]

#: Length of a scene, as DESED's clips.
SCENE_SECONDS = 10.0
#: A silence inside an event longer than this splits it into two labelled events.
SPLIT_GAP_SECONDS = 0.5
#: Shortest crop of an event (or the whole sounding part when it is shorter).
MIN_EVENT_SECONDS = 0.5
#: Share of scenes with no target event at all.
EMPTY_SCENE_PROB = 0.1
#: Peak of the written scene (headroom below full scale, so 16-bit writing never clips).
PEAK = 0.9
#: Background loudness relative to the peak before the final normalisation (the SNRs set the rest).
_BG_RMS = 0.02
_FRAME_SECONDS = 0.025
_HOP_SECONDS = 0.010
_FADE_SECONDS = 0.005
#: Bump when the mixing recipe changes: the cache key then changes and old scenes are not reused.
_RECIPE_VERSION = 1


# --------------------------------------------------------------------------------------------
# Energy analysis: where the sound in a clip actually is
# --------------------------------------------------------------------------------------------
def _frame_rms_db(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, int]:
    """RMS in dB of 25 ms frames every 10 ms (the last frame is zero-padded)."""
    win = max(1, int(round(_FRAME_SECONDS * sample_rate)))
    hop = max(1, int(round(_HOP_SECONDS * sample_rate)))
    n_frames = max(1, int(np.ceil(max(len(audio) - win, 0) / hop)) + 1)
    padded = np.zeros((n_frames - 1) * hop + win, dtype=np.float64)
    padded[: len(audio)] = audio
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop][:n_frames]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10)), win, hop


def active_mask(audio: np.ndarray, sample_rate: int, silence_db: float) -> np.ndarray:
    """Per-sample boolean: True where a frame within ``silence_db`` dB of the loudest frame covers it.

    ``silence_db`` is negative (e.g. -35: frames more than 35 dB below the loudest are silence).
    Digital silence (below -100 dBFS) is never active, so an all-zero clip has no active sample.
    """
    if silence_db >= 0:
        raise ValueError(f"silence_db must be negative (dB below the loudest frame), got {silence_db}")
    audio = np.asarray(audio, dtype=np.float64)
    mask = np.zeros(len(audio), dtype=bool)
    if len(audio) == 0:
        return mask
    db, win, hop = _frame_rms_db(audio, sample_rate)
    threshold = max(float(db.max()) + silence_db, -100.0)
    for i in np.flatnonzero(db > threshold):
        mask[i * hop : i * hop + win] = True
    return mask


def active_spans(
    mask: np.ndarray, sample_rate: int, split_gap: float = SPLIT_GAP_SECONDS
) -> list[tuple[int, int]]:
    """Runs of True in ``mask`` as ``(start, stop)`` sample indices, gaps <= ``split_gap`` s bridged."""
    if not mask.any():
        return []
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    max_gap = int(round(split_gap * sample_rate))
    merged = [runs[0]]
    for start, stop in runs[1:]:
        if start - merged[-1][1] <= max_gap:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return merged


# --------------------------------------------------------------------------------------------
# Building blocks of a scene
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Clip:
    """A source clip, loaded once per build: audio, its active mask, and its metadata row."""

    filename: str
    fold: int
    category: str
    audio: np.ndarray
    mask: np.ndarray


def _fade(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """5 ms linear fade in and out, so a crop does not click (too short to move a label)."""
    n = min(int(_FADE_SECONDS * sample_rate), len(x) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float64)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _loop_to(clip: _Clip, n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """The clip's sounding part, repeated with 50 ms crossfades and cut to ``n`` samples."""
    idx = np.flatnonzero(clip.mask)
    x = clip.audio[idx[0] : idx[-1] + 1].astype(np.float64) if len(idx) else clip.audio.astype(np.float64)
    xf = min(int(0.05 * sample_rate), len(x) // 4)
    out = x.copy()
    while len(out) < n + len(x):  # one spare period so a random start still covers n samples
        if xf > 0:
            ramp = np.linspace(0.0, 1.0, xf)
            joint = out[-xf:] * (1 - ramp) + x[:xf] * ramp
            out = np.concatenate([out[:-xf], joint, x[xf:]])
        else:
            out = np.concatenate([out, x])
    start = int(rng.integers(0, max(1, len(out) - n)))
    return out[start : start + n]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _crop_event(
    clip: _Clip, rng: np.random.Generator, sample_rate: int, max_samples: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """A random-length crop of the clip's sounding part, trimmed to active samples at both ends.

    Returns the crop, its active mask (from the whole clip's analysis, so a quiet tail is not
    promoted to "sound" by re-normalising the threshold) and its start in the source clip.
    """
    idx = np.flatnonzero(clip.mask)
    first, last = int(idx[0]), int(idx[-1]) + 1
    length = last - first
    min_len = min(length, int(MIN_EVENT_SECONDS * sample_rate))
    dur = min(int(rng.integers(min_len, length + 1)), max_samples)  # a clip longer than a scene is cut
    # start on an active sample, so the crop holds sound from its first sample
    candidates = idx[idx <= last - dur] if dur < length else np.array([first])
    start = int(rng.choice(candidates)) if len(candidates) else first
    stop = min(start + dur, last)
    sub_mask = clip.mask[start:stop]
    sub_idx = np.flatnonzero(sub_mask)
    start, stop = start + int(sub_idx[0]), start + int(sub_idx[-1]) + 1
    return clip.audio[start:stop].astype(np.float64), clip.mask[start:stop], start


def _merge_labels(rows: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Merge overlapping or touching events of the same label; sort by onset then label."""
    out: list[tuple[float, float, str]] = []
    for label in sorted({r[2] for r in rows}):
        spans = sorted((r[0], r[1]) for r in rows if r[2] == label)
        cur = list(spans[0])
        for on, off in spans[1:]:
            if on <= cur[1]:
                cur[1] = max(cur[1], off)
            else:
                out.append((cur[0], cur[1], label))
                cur = [on, off]
        out.append((cur[0], cur[1], label))
    return sorted(out, key=lambda r: (r[0], r[2]))


def _pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise: the fallback background when the folds hold no ambient clip."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def _make_scene(
    index: int,
    pools: dict[str, list[_Clip]],
    desed_of: dict[str, str],
    seed: int,
    snr_db: tuple[float, float],
    sample_rate: int,
) -> tuple[np.ndarray, list[tuple[float, float, str]], list[dict]]:
    """Mix scene ``index``: audio, its labels, and the provenance rows of every clip used.

    Each scene draws from its own generator seeded by (seed, index), so a scene does not change
    when ``n_scenes`` changes, and scenes could be built in any order.
    """
    rng = np.random.default_rng([seed, index])
    n = int(round(SCENE_SECONDS * sample_rate))
    name = f"scene_{index:04d}.wav"
    sources: list[dict] = []

    # background: 1-2 ambient clips at a fixed low level
    bg = np.zeros(n, dtype=np.float64)
    if pools["ambient"]:
        n_bg = int(rng.integers(1, 3))
        picks = rng.choice(len(pools["ambient"]), size=min(n_bg, len(pools["ambient"])), replace=False)
        for k, p in enumerate(picks):
            clip = pools["ambient"][int(p)]
            layer = _loop_to(clip, n, rng, sample_rate)
            gain_db = 0.0 if k == 0 else float(rng.uniform(-6.0, 0.0))
            bg += layer / max(_rms(layer), 1e-9) * 10 ** (gain_db / 20)
            sources.append(_source_row(name, "background", clip, 0.0, SCENE_SECONDS, "", None, None))
    else:
        bg = _pink_noise(n, rng)
        sources.append(
            {"scene": name, "role": "background", "source": "pink_noise", "fold": -1, "category": "",
             "event_label": "", "onset": 0.0, "offset": SCENE_SECONDS, "src_start": np.nan,
             "src_end": np.nan, "snr_db": np.nan}
        )
    bg *= _BG_RMS / max(_rms(bg), 1e-12)
    mix = bg.copy()

    n_targets = 0 if rng.random() < EMPTY_SCENE_PROB else int(rng.integers(1, 4))
    n_distractors = int(rng.integers(0, 3))
    labels: list[tuple[float, float, str]] = []
    for role, count in (("target", n_targets), ("distractor", n_distractors)):
        pool = pools[role]
        if not pool:
            continue
        for _ in range(count):
            clip = pool[int(rng.integers(len(pool)))]
            x, mask, src_start = _crop_event(clip, rng, sample_rate, n)
            snr = float(rng.uniform(*snr_db))
            gain = 10 ** (snr / 20) * _BG_RMS / max(_rms(x[mask]), 1e-12)
            pos = int(rng.integers(0, n - len(x) + 1))
            mix[pos : pos + len(x)] += _fade(x, sample_rate) * gain
            label = desed_of.get(clip.category, "") if role == "target" else ""
            if label:
                for s0, s1 in active_spans(mask, sample_rate):
                    on, off = (pos + s0) / sample_rate, (pos + s1) / sample_rate
                    labels.append((round(on, 3), round(off, 3), label))
            sources.append(
                _source_row(name, role, clip, pos / sample_rate, (pos + len(x)) / sample_rate, label,
                            (src_start / sample_rate, (src_start + len(x)) / sample_rate), snr)
            )
    peak = float(np.max(np.abs(mix)))
    mix = mix * (PEAK / peak) if peak > 0 else mix
    return mix.astype(np.float32), _merge_labels(labels) if labels else [], sources


def _source_row(
    scene: str,
    role: str,
    clip: _Clip,
    onset: float,
    offset: float,
    label: str,
    src_span: tuple[float, float] | None,
    snr: float | None,
) -> dict:
    return {
        "scene": scene,
        "role": role,
        "source": clip.filename,
        "fold": clip.fold,
        "category": clip.category,
        "event_label": label,
        "onset": round(onset, 3),
        "offset": round(offset, 3),
        "src_start": round(src_span[0], 3) if src_span else np.nan,
        "src_end": round(src_span[1], 3) if src_span else np.nan,
        "snr_db": round(snr, 2) if snr is not None else np.nan,
    }


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def scene_labels_path(out_dir: Path) -> Path:
    """The strong-label table of a scene folder (DESED's ``public.tsv`` format)."""
    return Path(out_dir) / "public.tsv"


def scene_sources_path(out_dir: Path) -> Path:
    """The provenance table of a scene folder: one row per clip used (background, target, distractor)."""
    return Path(out_dir) / "sources.csv"


def load_scene_sources(out_dir: Path) -> pd.DataFrame:
    """Read ``sources.csv`` (which clip went where, from which fold, at which SNR)."""
    path = scene_sources_path(out_dir)
    if not path.is_file():
        raise DatasetError(f"{path}: scene provenance not found (build the scenes with build_scenes)")
    return pd.read_csv(path, keep_default_na=False, na_values=[""],
                       dtype={"event_label": str, "category": str, "source": str})


def _select_pools(
    meta: pd.DataFrame, folds: tuple[int, ...], targets: list[str], csv_name: str
) -> dict[str, pd.DataFrame]:
    """Split the requested folds' clips into target, ambient and distractor pools."""
    rows = meta[meta["fold"].isin(folds)]
    if rows.empty:
        present = sorted(set(meta["fold"]))
        raise DatasetError(f"{csv_name}: no clips in fold(s) {list(folds)}; folds present: {present}")
    ambient = ambient_categories(targets)
    pools = {
        "target": rows[rows["category"].isin(targets)],
        "ambient": rows[rows["category"].isin(ambient)],
        "distractor": rows[~rows["category"].isin(targets) & ~rows["category"].isin(ambient)],
    }
    if pools["target"].empty:
        raise DatasetError(f"{csv_name}: fold(s) {list(folds)} hold no clip of the targets {targets}")
    for name, pool in pools.items():  # the guarantee the whole module rests on: nothing else leaks in
        leaked = sorted(set(pool["fold"]) - set(folds))
        if leaked:
            raise DatasetError(f"{csv_name}: {name} pool holds fold(s) {leaked}, asked for {list(folds)}")
    return pools



def build_scenes(
    cfg: Config,
    *,
    n_scenes: int = 100,
    folds: tuple[int, ...] | None = None,
    out_dir: Path | None = None,
    seed: int | None = None,
    snr_db: tuple[float, float] = (0.0, 15.0),
    progress: bool = True,
) -> Path:
    """Mix ``n_scenes`` 10 s scenes from ESC-50 clips of ``folds`` (default ``cfg.folds.scenes_test``).

    Writes DESED's layout under ``out_dir`` (default ``cfg.cache_dir/scenes/fold<folds>-<key>``)
    and returns it. The key hashes every parameter and the list of source clips, so the same call
    returns the finished folder at once, and a changed parameter builds a new one. The folder is
    written under a temporary name and renamed when complete: it is either whole or absent.
    Deterministic: the same parameters give byte-identical files.

    An explicit ``out_dir`` built with other parameters is rebuilt; an ``out_dir`` that exists but
    was not written by this function is refused (nothing of the user's is deleted).
    """
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be at least 1, got {n_scenes}")
    lo, hi = float(snr_db[0]), float(snr_db[1])
    if lo > hi:
        raise ValueError(f"snr_db must be (low, high) with low <= high, got {snr_db}")
    folds = tuple(sorted(int(f) for f in (folds if folds is not None else cfg.folds.scenes_test)))
    seed = int(cfg.seed if seed is None else seed)
    sr = int(cfg.audio.sample_rate)
    targets = cfg.esc50_categories
    desed_of = {cat: label for label, cat in cfg.classes.items()}

    root = esc50_root(cfg)
    meta = load_esc50_meta(root)
    csv_name = str(root / "meta" / "esc50.csv")
    pools_meta = _select_pools(meta, folds, targets, csv_name)

    params = {
        "recipe": _RECIPE_VERSION,
        "n_scenes": int(n_scenes),
        "folds": list(folds),
        "seed": seed,
        "snr_db": [lo, hi],
        "sample_rate": sr,
        "classes": cfg.classes,
        "silence_db": float(cfg.chunking.silence_db),
        "ambient": list(AMBIENT_CATEGORIES),
        "recipe_constants": [SPLIT_GAP_SECONDS, MIN_EVENT_SECONDS, EMPTY_SCENE_PROB, PEAK, _BG_RMS],
        "clips": sorted(
            f"{r.filename}|{r.fold}|{r.category}" for p in pools_meta.values() for r in p.itertuples()
        ),
    }
    key = params_key(params)
    if out_dir is None:
        out_dir = cfg.cache_dir / "scenes" / f"fold{'-'.join(map(str, folds))}-{key}"
    out_dir = Path(out_dir)
    params_path = out_dir / "params.json"
    if out_dir.exists():
        if params_path.is_file():
            try:
                if json.loads(params_path.read_text()).get("key") == key:
                    return out_dir  # finished earlier with the same parameters
            except json.JSONDecodeError:
                pass  # a damaged marker: rebuild below
        elif any(out_dir.iterdir()):
            raise DatasetError(
                f"{out_dir}: exists, is not empty and was not written by build_scenes (no params.json); "
                "choose another out_dir"
            )

    # Load every clip once: with the mask, trimming and SNRs need no second read.
    resample_cache = cfg.cache_dir / "resampled"
    pools: dict[str, list[_Clip]] = {}
    for role, frame in pools_meta.items():
        clips = []
        for r in frame.itertuples():
            audio = cached_resampled(Path(r.path), sr, resample_cache)
            mask = active_mask(audio, sr, cfg.chunking.silence_db)
            if mask.any():  # an all-silent clip has nothing to insert
                clips.append(_Clip(r.filename, int(r.fold), r.category, audio, mask))
        pools[role] = clips
    if not pools["target"]:
        raise DatasetError(f"{csv_name}: every target clip of fold(s) {list(folds)} is silent")
    if not pools["ambient"]:
        warnings.warn(
            f"{csv_name}: fold(s) {list(folds)} hold no ambient clip ({', '.join(AMBIENT_CATEGORIES)}); "
            "the scenes get a pink-noise background instead",
            stacklevel=2,
        )

    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "audio").mkdir(parents=True)
    try:
        label_rows: list[tuple[str, str, str, str]] = []
        source_rows: list[dict] = []
        for i in tqdm(range(n_scenes), desc="mixing scenes", disable=not progress):
            audio, labels, sources = _make_scene(i, pools, desed_of, seed, (lo, hi), sr)
            name = f"scene_{i:04d}.wav"
            write_wav(tmp / "audio" / name, audio, sr)
            if labels:
                label_rows += [(name, f"{on:.3f}", f"{off:.3f}", lab) for on, off, lab in labels]
            else:
                label_rows.append((name, "", "", ""))
            source_rows += sources
        with open(scene_labels_path(tmp), "w", newline="") as fh:
            fh.write("filename\tonset\toffset\tevent_label\n")
            fh.writelines("\t".join(row) + "\n" for row in label_rows)
        pd.DataFrame(source_rows).to_csv(scene_sources_path(tmp), index=False, float_format="%.3f")
        used = {int(f) for f in pd.DataFrame(source_rows)["fold"] if int(f) >= 0}
        if not used <= set(folds):  # belt and braces: the pools were checked, so were the results
            raise DatasetError(f"{out_dir}: scenes used clips of fold(s) {sorted(used - set(folds))}")
        summary = {k: v for k, v in params.items() if k != "clips"}
        summary.update(key=key, n_clips=len(params["clips"]))
        (tmp / "params.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        if out_dir.exists():
            shutil.rmtree(out_dir)  # only reached for a folder of ours with other parameters
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def load_scenes(cfg: Config, out_dir: Path) -> DesedSet:
    """Load built scenes exactly like DESED public eval (same loader, same checks)."""
    from sed_utils.desed import load_desed  # imported here: desed pulls in nothing scenes needs to build

    out_dir = Path(out_dir)
    tsv = scene_labels_path(out_dir)
    return load_desed(tsv, out_dir / "audio", cfg.desed_labels, clip_seconds=SCENE_SECONDS)


def validation_scenes(cfg: Config, *, progress: bool = True) -> DesedSet:
    """``cfg.eval.valid_scenes`` scenes mixed from the VALIDATION fold(s), for choosing thresholds.

    Why: a threshold chosen on clean validation chunks is too strict for a sound over rain or an
    engine, so recall collapses on real recordings. Scenes mixed from the validation fold look
    like the test recordings while holding only clips the model was never trained on and that
    the test set never holds (``cfg.valid_folds``: fold 4 for ``test_set: scenes``, whose test
    scenes come from fold 5; fold 5 for ``test_set: desed``). They use seed
    ``cfg.eval.scenes_seed + 1``, so their layout (event counts, positions, SNRs) is not a copy
    of the test scenes' either.
    """
    if cfg.eval.valid_scenes < 1:
        raise ValueError(f"eval.valid_scenes is {cfg.eval.valid_scenes}: no validation scenes requested")
    out_dir = build_scenes(cfg, n_scenes=cfg.eval.valid_scenes, folds=tuple(cfg.valid_folds),
                           seed=cfg.eval.scenes_seed + 1, progress=progress)
    return load_scenes(cfg, out_dir)


def training_scenes(cfg: Config, *, progress: bool = True) -> DesedSet:
    """``cfg.train.train_scenes`` scenes mixed from the TRAINING fold(s), as extra training data.

    Why: a 1 s chunk of a clean ESC-50 clip is not what the model meets at test time; a 1 s
    segment of a scene is (a sound over a background, often only partly inside the segment,
    next to sounds it must ignore), and its label follows the evaluation's own rule (a class is
    active in a segment if any part of an event overlaps it). This is the DCASE baseline's recipe
    too (it trains on synthetic soundscapes). Only ``cfg.train_folds`` are used; seed
    ``cfg.eval.scenes_seed + 2`` (the validation scenes use + 1, the test scenes + 0).
    """
    if cfg.train.train_scenes < 1:
        raise ValueError(f"train.train_scenes is {cfg.train.train_scenes}: no training scenes requested")
    out_dir = build_scenes(cfg, n_scenes=cfg.train.train_scenes, folds=tuple(cfg.train_folds),
                           seed=cfg.eval.scenes_seed + 2, progress=progress)
    return load_scenes(cfg, out_dir)


# --------------------------------------------------------------------------------------------
# Looking at the scenes (notebook 07)
# --------------------------------------------------------------------------------------------
def label_statistics(cfg: Config, out_dir: Path) -> pd.DataFrame:
    """Per DESED label: events, scenes holding it, mean and total seconds (every target label listed).

    Why a table of all labels: a class with no event in the scenes breaks class-wise metrics
    (sed_eval's error rate explodes), so it is better seen here than discovered in an evaluation.
    """
    ds = load_scenes(cfg, out_dir)
    ev = ds.events.assign(seconds=ds.events["offset"] - ds.events["onset"])
    rows = []
    for label in cfg.desed_labels:
        mine = ev[ev["event_label"] == label]
        rows.append({
            "event_label": label,
            "events": len(mine),
            "scenes": mine["filename"].nunique(),
            "mean_seconds": round(float(mine["seconds"].mean()), 3) if len(mine) else 0.0,
            "total_seconds": round(float(mine["seconds"].sum()), 3),
        })
    return pd.DataFrame(rows)


def pick_example_scene(cfg: Config, out_dir: Path) -> str:
    """A scene worth showing: most distinct labels, then one with a distractor, then the first by name."""
    ds = load_scenes(cfg, out_dir)
    src = load_scene_sources(out_dir)
    n_labels = ds.events.groupby("filename")["event_label"].nunique()
    has_distractor = set(src.loc[src["role"] == "distractor", "scene"])
    return min(ds.files, key=lambda f: (-int(n_labels.get(f, 0)), f not in has_distractor, f))


def plot_scene(cfg: Config, out_dir: Path, filename: str, ax=None):
    """Log-mel spectrogram of one scene above its labels, its unlabelled distractors and background.

    The distractor lane shows what the model hears but must NOT report; the labels' edges sit on
    the sounds' edges because of the energy trim (see the module docstring).
    """
    import librosa
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    sr = cfg.audio.sample_rate
    audio = read_audio(out_dir / "audio" / filename, sr)
    mel = librosa.feature.melspectrogram(
        y=audio, sr=sr, n_fft=cfg.mel.n_fft, win_length=cfg.mel.win_length, hop_length=cfg.mel.hop_length,
        n_mels=cfg.mel.n_mels, fmin=cfg.mel.f_min, fmax=cfg.mel.f_max, pad_mode="reflect",
    )
    db = librosa.power_to_db(mel, ref=np.max, top_db=cfg.mel.top_db)
    ds = load_scenes(cfg, out_dir)
    labels = ds.events_of(filename)
    src = load_scene_sources(out_dir)
    src = src[src["scene"] == filename]
    distractors = src[src["role"] == "distractor"]
    background = ", ".join(src[src["role"] == "background"]["category"].fillna("").replace("", "pink noise"))

    lanes = [lab for lab in cfg.desed_labels if lab in set(labels["event_label"])] + ["distractor (no label)"]
    if ax is None:
        fig, (ax_spec, ax_lab) = plt.subplots(
            2, 1, figsize=(10, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 0.4 + 0.35 * len(lanes)]}
        )
    else:
        ax_spec, ax_lab = ax
        fig = ax_spec.figure
    extent = (0, len(audio) / sr, 0, db.shape[0])
    ax_spec.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=extent)
    ax_spec.set_ylabel("mel bin")
    ax_spec.set_title(f"{filename} - background: {background}")
    colors = plt.get_cmap("tab10")
    for row in labels.itertuples():
        k = lanes.index(row.event_label)
        ax_lab.broken_barh([(row.onset, row.offset - row.onset)], (k + 0.1, 0.8), color=colors(k))
        for x in (row.onset, row.offset):
            ax_spec.axvline(x, color=colors(k), lw=1.2, ls="--")
    for row in distractors.itertuples():
        ax_lab.broken_barh([(row.onset, row.offset - row.onset)], (len(lanes) - 0.9, 0.8),
                           facecolor="lightgrey", edgecolor="grey", hatch="//")
        ax_lab.text(row.onset, len(lanes) - 0.5, f" {row.category}", va="center", fontsize=8)
    ax_lab.set_yticks([k + 0.5 for k in range(len(lanes))], lanes)
    ax_lab.set_ylim(len(lanes), 0)  # first label on top, as in the legend order
    ax_lab.set_xlim(0, SCENE_SECONDS)
    ax_lab.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def plot_label_statistics(cfg: Config, out_dir: Path):
    """Three panels: events per class, event durations per class, target events per scene."""
    import matplotlib.pyplot as plt

    ds = load_scenes(cfg, out_dir)
    stats = label_statistics(cfg, out_dir)
    ev = ds.events.assign(seconds=ds.events["offset"] - ds.events["onset"])
    per_scene = ev.groupby("filename").size().reindex(ds.files, fill_value=0)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].barh(stats["event_label"], stats["events"], color="tab:blue")
    axes[0].set_xlabel("labelled events")
    axes[0].invert_yaxis()
    present = [lab for lab in cfg.desed_labels if (ev["event_label"] == lab).any()]
    if present:
        axes[1].boxplot([ev.loc[ev["event_label"] == lab, "seconds"] for lab in present], vert=False)
        axes[1].set_yticks(range(1, len(present) + 1), present)
        axes[1].invert_yaxis()
    axes[1].set_xlabel("event duration (s)")
    counts = per_scene.value_counts().sort_index()
    axes[2].bar(counts.index.astype(str), counts.values, color="tab:green")
    axes[2].set_xlabel("labelled events in a scene")
    axes[2].set_ylabel("scenes")
    fig.suptitle(f"{len(ds.files)} scenes, {len(ev)} labelled events")
    fig.tight_layout()
    return fig

