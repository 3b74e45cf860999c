"""An example of *your own* dataset, written the way a user would have it (notebook 10).

Three ESC-50 categories the series never trained on (the demo profile: church bells, clock ticks and
birds of its synthetic ESC-50; the real ones: rooster, church bells and siren) become "your sounds":

- ``field/recNN.wav``: recordings of ``seconds`` s, a faint noise floor with 2-3 of the sounds at random
  places and levels, each recording with its Audacity label track ``recNN.txt`` (what a user labels by
  hand: where each sound is audible);
- ``clips/<category>/*.wav``: a few short clips per class, as a user collects them;
- ``negatives/negNN.wav``: recordings of other sounds (none of the classes);
- ``classes.txt``.

Every ESC-50 clip is used once, and none from the held-out fold (``folds.scenes_test``): no sound is
in two recordings, so the split by recording keeps the test recordings' sounds unheard in training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from sed_utils.config.settings import Config
from sed_utils.core import atomic
from sed_utils.data.demo_sounds import active_extent
from sed_utils.data.esc50 import esc50_root, load_esc50_meta
from sed_utils.io.audio import read_audio, write_wav
from sed_utils.labels.annotations import annotations_text

__all__ = ["example_categories", "write_example_dataset"]

NOISE_DBFS = -60.0


def example_categories(cfg: Config) -> list[str]:
    """The three ESC-50 categories that play "your sounds" (notebook 10): ones the series never trained
    on, present in the profile's ESC-50."""
    return ["church_bells", "clock_tick", "chirping_birds"] if cfg.synthetic else ["rooster", "church_bells",
                                                                                  "siren"]


def _pools(cfg: Config, categories: list[str], rng: np.random.Generator) -> dict[str, list[Path]]:
    meta = load_esc50_meta(esc50_root(cfg))
    meta = meta[~meta["fold"].isin(cfg.folds.scenes_test)]
    taken = set(categories) | set(cfg.esc50_categories)
    others = sorted(set(meta["category"]) - taken)
    pools = {c: list(rng.permutation(meta[meta["category"] == c]["path"].to_numpy())) for c in categories}
    pools["(other)"] = list(rng.permutation(meta[meta["category"].isin(others)]["path"].to_numpy()))
    return pools


def _recording(pools: dict[str, list], names: list[str], seconds: float, sr: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, pd.DataFrame]:
    """Noise with 2-3 sounds of ``names`` (drawn), each from a clip used once; their events."""
    x = (10 ** (NOISE_DBFS / 20)) * rng.standard_normal(int(seconds * sr)).astype(np.float32)
    events, free_from = [], 0.3
    for name in rng.choice(names, size=int(rng.integers(2, 4))):
        if not pools[name]:
            continue
        clip = read_audio(Path(pools[name].pop()), sr)
        a, b = active_extent(clip, sr)
        sound = clip[int(a * sr):int(b * sr)]
        room = seconds - 0.3 - free_from - len(sound) / sr
        if room <= 0:
            break
        onset = free_from + float(rng.uniform(0, min(room, seconds / 3)))
        gain = 10 ** (rng.uniform(-12, 0) / 20) * 0.5 / max(float(np.abs(sound).max()), 1e-6)
        start = int(onset * sr)
        x[start:start + len(sound)] += gain * sound
        events.append((onset, onset + len(sound) / sr, name))
        free_from = onset + len(sound) / sr + 0.5
    return x, pd.DataFrame(events, columns=["onset", "offset", "event_label"])


def write_example_dataset(cfg: Config, root: Path, categories: list[str] | None = None, *,
                          recordings: int = 14, seconds: float = 30.0, clips_per_class: int = 3,
                          negatives: int = 3, seed: int = 0) -> Path:
    """Write the example dataset into ``root`` (see the module docstring; notebook 10). A finished one is
    kept (its ``classes.txt`` is written last); a half-written one is replaced.

    Args:
        cfg: the profile (its ESC-50, sample rate and held-out fold).
        root: the dataset's folder.
        categories: the ESC-50 categories (default: :func:`example_categories`).
        recordings, seconds: how many field recordings, and how long.
        clips_per_class, negatives: short clips per class, and recordings without the classes.
        seed: the draw.

    Returns:
        ``root``.
    """
    root = Path(root)
    if (root / "classes.txt").is_file():
        return root
    if root.exists():
        shutil.rmtree(root)
    categories = list(categories or example_categories(cfg))
    rng = np.random.default_rng(seed)
    sr = cfg.audio.sample_rate
    pools = _pools(cfg, categories, rng)
    for c in categories:
        for path in [pools[c].pop() for _ in range(min(clips_per_class, len(pools[c]) // 2))]:
            target = root / "clips" / c / Path(path).with_suffix(".wav").name
            write_wav(target, read_audio(Path(path), sr), sr)
    for i in range(recordings):
        audio, events = _recording(pools, categories, seconds, sr, rng)
        write_wav(root / "field" / f"rec{i:02d}.wav", audio, sr)
        atomic.write_text(root / "field" / f"rec{i:02d}.txt",
                          annotations_text(events.assign(filename=f"rec{i:02d}.wav"), "audacity"))
    for i in range(negatives):
        audio, _ = _recording(pools, ["(other)"], seconds, sr, rng)
        write_wav(root / "negatives" / f"neg{i:02d}.wav", audio, sr)
    atomic.write_text(root / "classes.txt", "".join(f"{c}\n" for c in categories))
    return root
