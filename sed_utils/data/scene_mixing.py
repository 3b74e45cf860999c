"""How one scene is mixed from ESC-50 clips, and why its labels can be trusted (notebook 07).

:mod:`sed_utils.data.scenes` decides which clips, how many scenes and where they are cached; this
module holds the recipe itself: pure numpy on clips already in memory, no files read or written.

What a scene holds (all at ``cfg.audio.sample_rate``, 10 s):

* a background of 1-2 ambient clips (rain, wind, engine, ...; see
  :data:`sed_utils.data.esc50.AMBIENT_CATEGORIES`), looped to 10 s; it is never labelled, like
  DESED's backgrounds;
* 0-3 target events (the categories of ``cfg.classes``, labelled with their DESED names), each a
  random crop of a clip's sounding part, at a random onset and a random SNR over the background;
  about 10 % of the scenes have none, so "nothing to detect" is tested too;
* 0-2 distractor events from the other categories, NOT labelled: the model must ignore them
  (training scenes may ask for more: ``scenes.train_distractors``);
* training scenes only, and only when asked (``scenes.train_quiet_share``): a share of them with the
  background :data:`QUIET_BACKGROUND_DB` quieter, so targets and distractors sound as clean as a user's
  close-up recording.

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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SCENE_SECONDS",
    "SPLIT_GAP_SECONDS",
    "MIN_EVENT_SECONDS",
    "EMPTY_SCENE_PROB",
    "DEFAULT_DISTRACTORS",
    "PEAK",
    "BG_RMS",
    "QUIET_BACKGROUND_DB",
    "RECIPE_VERSION",
    "DESED_LIKE_VERSION",
    "Clip",
    "active_mask",
    "active_spans",
    "make_scene",
    "load_desed_stats",
]

#: Length of a scene, as DESED's clips.
SCENE_SECONDS = 10.0
#: A silence inside an event longer than this splits it into two labelled events.
SPLIT_GAP_SECONDS = 0.5
#: Shortest crop of an event (or the whole sounding part when it is shorter).
MIN_EVENT_SECONDS = 0.5
#: Share of scenes with no target event at all.
EMPTY_SCENE_PROB = 0.1
#: Distractor events per scene, low to high inclusive (training scenes: ``scenes.train_distractors``).
DEFAULT_DISTRACTORS = (0, 2)
#: Peak of the written scene (headroom below full scale, so 16-bit writing never clips).
PEAK = 0.9
#: Background loudness relative to the peak before the final normalisation (the SNRs set the rest).
BG_RMS = 0.02
#: The background of a quiet scene, in dB against its usual level (the events keep their levels).
QUIET_BACKGROUND_DB = -40.0
_FRAME_SECONDS = 0.025
_HOP_SECONDS = 0.010
_FADE_SECONDS = 0.005
#: Bump when the mixing recipe changes: the cache key then changes and old scenes are not reused.
RECIPE_VERSION = 1
#: the desed_like recipe's own version (2: spans under DESED_LIKE_MIN_SPAN_SECONDS are not labelled);
#: in its cache key only, so the uniform scenes keep theirs
DESED_LIKE_VERSION = 2
DESED_LIKE_MIN_SPAN_SECONDS = 0.02


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

    Notebook 07 labels events with it. Frames are 25 ms every 10 ms (the last one zero-padded).
    Digital silence (-100 dBFS and below) is never active, so an all-zero clip has no active sample.

    Args:
        audio: mono samples [N].
        sample_rate: their rate in Hz.
        silence_db: negative (e.g. -35: frames more than 35 dB below the loudest are silence).

    Returns:
        A boolean array [N].

    Raises:
        ValueError: ``silence_db`` is not negative.
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
    """Runs of True in ``mask`` as ``(start, stop)`` sample indices, gaps <= ``split_gap`` s bridged.

    Each run becomes one labelled event of a scene (notebook 07).

    Args:
        mask: per-sample activity [N], as :func:`active_mask` gives it.
        sample_rate: the rate of ``mask``'s samples in Hz.
        split_gap: the longest silence, in seconds, that does not split a run.

    Returns:
        The runs in order, ``stop`` exclusive; an empty list when nothing is active.
    """
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
class Clip:
    """A source clip, loaded once per build: audio, its active mask, and its metadata row (notebook 07)."""

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


def _loop_to(clip: Clip, n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
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
    clip: Clip, rng: np.random.Generator, sample_rate: int, max_samples: int
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


# --------------------------------------------------------------------------------------------
# The DESED-like recipe: label structure drawn from DESED's validation statistics
# --------------------------------------------------------------------------------------------
DESED_STATS_PATH = Path(__file__).with_name("desed_validation_stats.json")


def load_desed_stats(path: Path = DESED_STATS_PATH) -> dict:
    """The DESED validation label statistics the ``desed_like`` scenes follow (notebook 07).

    Derived by ``tools/desed_stats.py`` from DESED's *validation* labels only (MIT licence; the
    file says where from): the share of clips without a target class, how many target classes a
    clip holds, and per class how many events a clip holds and the quantiles of their lengths.
    DESED annotates every bark of a dog, so a Dog clip holds ~3.6 events of ~0.8 s, while a vacuum
    cleaner runs for most of a clip: the uniform recipe's "0-3 events of 0.5-5 s" looks nothing
    like that. DESED's test labels (public.tsv) are never read.
    """
    return json.loads(Path(path).read_text())


def _from_histogram(hist: dict[str, int], rng: np.random.Generator) -> int:
    values = np.array([int(k) for k in hist])
    weights = np.array(list(hist.values()), dtype=float)
    return int(rng.choice(values, p=weights / weights.sum()))


def _event_of_length(clip: Clip, samples: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """``samples`` of the clip's sounding part, starting on an active sample; repeated (a dog that
    keeps barking, water that keeps running) when the sounding part is shorter."""
    idx = np.flatnonzero(clip.mask)
    first, last = int(idx[0]), int(idx[-1]) + 1
    if samples < last - first:
        starts = idx[idx <= last - samples]
        start = int(rng.choice(starts)) if len(starts) else first
        return clip.audio[start:start + samples].astype(np.float64), clip.mask[start:start + samples], start
    reps = int(np.ceil(samples / (last - first)))
    x = np.tile(clip.audio[first:last].astype(np.float64), reps)[:samples]
    return x, np.tile(clip.mask[first:last], reps)[:samples], first


def _desed_like_targets(name: str, mix: np.ndarray, pool: list[Clip], desed_of: dict[str, str], stats: dict,
                        rng: np.random.Generator, snr_db: tuple[float, float], sample_rate: int,
                        sources: list[dict]) -> list[tuple[float, float, str]]:
    """Insert target events as DESED labels them: how many classes, events per class and their lengths
    drawn from ``stats``; one source clip per class and scene (the same dog barks again), at one SNR;
    events of one class never overlap. Returns the labels."""
    if rng.random() < stats["empty_share"]:
        return []
    by_label: dict[str, list[Clip]] = {}
    for clip in pool:
        if desed_of.get(clip.category):
            by_label.setdefault(desed_of[clip.category], []).append(clip)
    present = [lab for lab in by_label if stats["per_class"].get(lab, {}).get("clips", 0) > 0]
    if not present:
        return []
    weights = np.array([stats["per_class"][lab]["clips"] for lab in present], dtype=float)
    k = min(_from_histogram(stats["classes_per_clip"], rng), len(present))
    chosen = rng.choice(present, size=k, replace=False, p=weights / weights.sum())
    n, labels = len(mix), []
    for label in chosen:
        cls = stats["per_class"][str(label)]
        clip = by_label[str(label)][int(rng.integers(len(by_label[str(label)])))]
        snr, taken = float(rng.uniform(*snr_db)), []
        for _ in range(_from_histogram(cls["events_per_clip"], rng)):
            seconds = float(np.interp(rng.random(), np.linspace(0, 1, len(cls["duration_quantiles"])),
                                      cls["duration_quantiles"]))
            x, mask, src = _event_of_length(clip, min(n, max(1, int(seconds * sample_rate))), rng)
            for _try in range(20):  # a free place: events of one class do not overlap
                pos = int(rng.integers(0, n - len(x) + 1))
                if all(pos + len(x) <= a or pos >= b for a, b in taken):
                    break
            else:
                continue
            taken.append((pos, pos + len(x)))
            spans = _insert(mix, x, mask, pos, snr, sample_rate)
            # a crop can end on a sliver of the clip's active mask (a few samples): no event to label,
            # and rounded to ms its onset would equal its offset
            labels += [(round(a / sample_rate, 3), round(b / sample_rate, 3), str(label)) for a, b in spans
                       if b - a >= DESED_LIKE_MIN_SPAN_SECONDS * sample_rate]
            sources.append(_source_row(name, "target", clip, pos / sample_rate, (pos + len(x)) / sample_rate,
                                       str(label), (src / sample_rate, (src + len(x)) / sample_rate), snr))
    return labels


def _background(name: str, pools: dict[str, list[Clip]], rng: np.random.Generator, n: int,
                sample_rate: int, sources: list[dict]) -> np.ndarray:
    """1-2 ambient clips looped to the scene's length at a fixed low level (pink noise without any)."""
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
    return bg * (BG_RMS / max(_rms(bg), 1e-12))


def _insert(mix: np.ndarray, x: np.ndarray, mask: np.ndarray, pos: int, snr: float, sample_rate: int
            ) -> list[tuple[int, int]]:
    """Add event ``x`` at ``pos`` at ``snr`` dB over the background; its active spans in the scene."""
    gain = 10 ** (snr / 20) * BG_RMS / max(_rms(x[mask]), 1e-12)
    mix[pos : pos + len(x)] += _fade(x, sample_rate) * gain
    return [(pos + s0, pos + s1) for s0, s1 in active_spans(mask, sample_rate)]


def make_scene(
    index: int,
    pools: dict[str, list[Clip]],
    desed_of: dict[str, str],
    seed: int,
    snr_db: tuple[float, float],
    sample_rate: int,
    desed_stats: dict | None = None,
    *,
    distractors: tuple[int, int] = DEFAULT_DISTRACTORS,
    quiet_share: float = 0.0,
) -> tuple[np.ndarray, list[tuple[float, float, str]], list[dict]]:
    """Mix scene ``index``: audio, its labels, and the provenance rows of every clip used (notebook 07).

    Each scene draws from its own generator seeded by (seed, index), so a scene does not change
    when ``n_scenes`` changes, and scenes could be built in any order. With ``desed_stats`` (see
    :func:`load_desed_stats`) the target events follow DESED's label structure
    (:func:`_desed_like_targets`); without, the ``uniform`` recipe of the module docstring.

    Args:
        index: the scene's number: its name ``scene_<index:04d>.wav`` and, with ``seed``, its draws.
        pools: ``{"target" | "ambient" | "distractor": clips}``; an empty ambient pool gives a pink-noise
            background, an empty target or distractor pool places no such event.
        desed_of: ESC-50 category -> DESED label of the target categories.
        seed: the run's seed (one generator per ``(seed, index)``).
        snr_db: ``(low, high)``: each event's SNR over the background is drawn from it, in dB.
        sample_rate: the scene's rate in Hz.
        desed_stats: the statistics of the ``desed_like`` recipe; None: the ``uniform`` recipe.
        distractors: ``(low, high)``: how many distractor events, drawn from low to high inclusive.
        quiet_share: the probability that the background is :data:`QUIET_BACKGROUND_DB` quieter; drawn
            last, so the scene's events are those of its loud twin. At 0 nothing is drawn: the scenes
            stay byte for byte those of before.

    Returns:
        ``(audio, labels, sources)``: float32 audio [10 s * sample_rate], peak :data:`PEAK`; the
        labels as ``(onset s, offset s, DESED label)``, rounded to 1 ms, merged per class and sorted by
        onset; one provenance dict per clip used (role, source file, fold, span in scene and clip, SNR).
    """
    rng = np.random.default_rng([seed, index])
    n = int(round(SCENE_SECONDS * sample_rate))
    name = f"scene_{index:04d}.wav"
    sources: list[dict] = []
    low, high = distractors
    background = _background(name, pools, rng, n, sample_rate, sources)
    mix = background.copy()
    labels: list[tuple[float, float, str]] = []
    if desed_stats is not None:
        labels += _desed_like_targets(name, mix, pools["target"], desed_of, desed_stats, rng, snr_db,
                                      sample_rate, sources)
        roles = (("distractor", int(rng.integers(low, high + 1))),)
    else:
        n_targets = 0 if rng.random() < EMPTY_SCENE_PROB else int(rng.integers(1, 4))
        roles = (("target", n_targets), ("distractor", int(rng.integers(low, high + 1))))
    for role, count in roles:
        pool = pools[role]
        if not pool:
            continue
        for _ in range(count):
            clip = pool[int(rng.integers(len(pool)))]
            x, mask, src_start = _crop_event(clip, rng, sample_rate, n)
            snr = float(rng.uniform(*snr_db))
            pos = int(rng.integers(0, n - len(x) + 1))
            spans = _insert(mix, x, mask, pos, snr, sample_rate)
            label = desed_of.get(clip.category, "") if role == "target" else ""
            if label:
                labels += [(round(a / sample_rate, 3), round(b / sample_rate, 3), label) for a, b in spans]
            sources.append(
                _source_row(name, role, clip, pos / sample_rate, (pos + len(x)) / sample_rate, label,
                            (src_start / sample_rate, (src_start + len(x)) / sample_rate), snr)
            )
    if quiet_share > 0 and rng.random() < quiet_share:
        mix -= background * (1.0 - 10 ** (QUIET_BACKGROUND_DB / 20))
    peak = float(np.max(np.abs(mix)))
    mix = mix * (PEAK / peak) if peak > 0 else mix
    return mix.astype(np.float32), _merge_labels(labels) if labels else [], sources


def _source_row(
    scene: str,
    role: str,
    clip: Clip,
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
