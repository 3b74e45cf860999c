"""Evaluation benchmark: real-time factor of inference over 10 s clips, segment grid vs sliding window.

The evaluation reads the chunk model as a score curve: 1 s windows every
``cfg.postprocess.window_hop_seconds`` (37 windows per 10 s DESED clip at 0.25 s), from which both the
events and the 1 s segment scores come. The 1 s segment grid (10 windows, a hop of one segment) is the
same curve with ``postprocess.window_hop_seconds = 1.0``, as the original project scored segments (the
ablation's first rows). Both go through :func:`sed_utils.models.window_curve` here (the function the
evaluation and ``detect`` call for the chunk model), which reads nothing from caches: read audio ->
log-mel -> normalise -> model.

DESED audio is not available on the benchmark machine, so the clips are 10 s excerpts made by
concatenating two real ESC-50 clips. Compute per clip depends only on its length, not on content.
The model has random weights (the cost of a forward pass does not depend on the weights).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from common import column, log, median, spread, timed

from sed_utils.config import Config
from sed_utils.data.esc50 import esc50_root, load_esc50_meta
from sed_utils.io.audio import read_audio, resample
from sed_utils.models import build_detector, window_curve

CLIP_SECONDS = 10.0
DESED_PUBLIC_EVAL_CLIPS = 692


def _make_excerpts(cfg: Config, n: int, out_dir: Path, rate: int) -> list[Path]:
    """``n`` 10 s WAVs at ``rate``, each two random ESC-50 clips back to back (seeded)."""
    meta = load_esc50_meta(esc50_root(cfg))
    rng = np.random.default_rng(cfg.seed)
    sr = cfg.audio.sample_rate
    need = int(round(CLIP_SECONDS * sr))
    paths = []
    for i in range(n):
        picks = rng.choice(len(meta), size=2, replace=False)
        audio = np.concatenate([read_audio(Path(meta["path"].iloc[j]), sr) for j in picks])
        audio = np.pad(audio, (0, max(0, need - len(audio))))[:need]
        if rate != sr:
            audio = resample(audio, sr, rate)
        path = out_dir / f"excerpt_{i:03d}_{rate}.wav"
        sf.write(str(path), np.clip(audio, -1, 1), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def run(cfg: Config, *, repeats: int, quick: bool) -> dict[str, Any]:
    n_clips = 5 if quick else 20
    detector = build_detector("chunk", cfg.desed_labels, cfg.features, cfg.audio.sample_rate,
                              cfg.chunking.chunk_seconds, -14.0, 21.0)
    if cfg.train.channels_last:  # as a trained checkpoint is used (predict_proba follows the weights)
        detector.to(memory_format=torch.channels_last)
    detector.eval()
    hop, seg_hop = cfg.postprocess.window_hop_seconds, cfg.chunking.segment_seconds

    with tempfile.TemporaryDirectory(prefix="sed_bench_eval_") as tmp:
        log(f"eval: writing {n_clips} 10 s excerpts (2 ESC-50 clips each) at 16 kHz and 44.1 kHz")
        clips16 = _make_excerpts(cfg, n_clips, Path(tmp), cfg.audio.sample_rate)
        clips44 = _make_excerpts(cfg, n_clips, Path(tmp), 44100)
        variants = {
            f"1 s segment grid (hop {seg_hop:g} s), 16 kHz WAV": (seg_hop, clips16),
            f"sliding window (hop {hop:g} s), 16 kHz WAV": (hop, clips16),
            f"sliding window (hop {hop:g} s), 44.1 kHz WAV (resampled on read)": (hop, clips44),
        }
        windows: dict[str, int] = {}

        def score(hop_seconds: float, path: Path, name: str) -> None:
            sr = cfg.audio.sample_rate
            # a 10 s clip's windows fit in one batch of window_curve's default size
            _, probs = window_curve(detector, read_audio(path, sr), sr, hop_seconds)
            windows[name] = len(probs)

        log("eval: warm-up")
        for name, (vhop, clips) in variants.items():
            score(vhop, clips[0], name)
        # Per clip, variants in turn: a burst of background load lands on one clip of each variant,
        # and the median over all clips x repeats ignores it.
        times: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(repeats):
            for i in range(n_clips):
                for name, (vhop, clips) in variants.items():
                    times[name].append(timed(lambda vhop=vhop, p=clips[i], name=name: score(vhop, p, name)))
            log(f"eval: repeat {r + 1}/{repeats}: " + ", ".join(
                f"{sum(ts[-n_clips:]):.2f} s" for ts in times.values()) + f" for {n_clips} clips")

    rows = []
    for name, ts in times.items():
        sec = median(ts)
        rows.append({
            "variant": name,
            "windows_per_clip": windows[name],
            "seconds_per_clip": sec,
            "ms_per_window": sec / windows[name] * 1000.0,
            "rtf": CLIP_SECONDS / sec,
            "desed_minutes": DESED_PUBLIC_EVAL_CLIPS * sec / 60.0,
            "spread": spread([sum(ts[k * n_clips : (k + 1) * n_clips]) for k in range(repeats)]),
            "times": ts,
        })
    return {
        "title": "4. Evaluation: real-time factor over 10 s clips",
        "description": (
            f"Read a 10 s WAV, cut 1 s windows, log-mel, normalise, ResNet18 (random weights, eval + "
            f"inference_mode, a clip's windows in one batch, channels_last={cfg.train.channels_last}) via "
            f"window_curve. {n_clips} clips x {repeats} repeats, variants in turn per clip; "
            "median seconds per clip. "
            "RTF = seconds of audio scored per second of compute (higher is faster)."
        ),
        "columns": [
            column("variant", "path"),
            column("windows_per_clip", "windows / clip", "{}"),
            column("seconds_per_clip", "s / clip", "{:.3f}"),
            column("ms_per_window", "ms / window", "{:.1f}"),
            column("rtf", "RTF (x real time)", "{:.1f}"),
            column("desed_minutes", f"est. min, DESED eval ({DESED_PUBLIC_EVAL_CLIPS} clips)", "{:.1f}"),
            column("spread", "spread", "{:.0%}"),
        ],
        "rows": rows,
        "summary": {"clips": n_clips},
        "notes": [
            "DESED audio is not available on the benchmark machine: the 10 s clips are two real ESC-50 clips "
            "concatenated (compute depends on length, not content). The 44.1 kHz row shows the cost of "
            "resampling when eval audio is not stored at the model's 16 kHz.",
            "In the notebooks the score curves are cached by the model's weights and the audio "
            "(cfg.curve_cache): this is the cost of a first, uncached run.",
        ],
    }
