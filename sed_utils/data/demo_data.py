"""The demo profile's SYNTHETIC ESC-50 and DESED file sets, their archives and the local mirror.

Notebook 01 on the demo profile "downloads" these archives through ``file://`` with the real download
code, so every notebook runs its real code path offline in minutes (numbers on this data say the code
works, NOT how well a model detects real sounds). The sounds come from
:mod:`sed_utils.data.demo_sounds`; this module only lays them out as the upstream archives would, and
knows nothing of the download code, so :mod:`sed_utils.data.registry` can build the mirror without an
import circle. Same config, same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import soundfile as sf

from sed_utils.core import atomic
from sed_utils.core.keys import sha256_file
from sed_utils.data.demo_sounds import _band_noise, active_extent, synth_event
from sed_utils.data.desed import DESED_CLIP_SECONDS
from sed_utils.data.esc50 import ESC50_CLIP_SECONDS

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "ESC50_DEMO_IDS",
    "DEMO_NEGATIVES",
    "DESED_DEMO_OTHERS",
    "MIRROR_FILES",
    "esc50_demo_files",
    "desed_demo_files",
    "make_demo_mirror",
    "mirror_dir",
    "DEMO_RECORDING_EVENTS",
    "write_demo_recording",
]

GENERATOR_VERSION = 3  # bump when a recipe changes, so existing mirrors are rebuilt
MIRROR_FILES = ("ESC-50-master.zip", "DESEDpublic_eval.tar.gz")
# Real ESC-50 target ids (meta/esc50.csv), so the demo csv looks like upstream's.
ESC50_DEMO_IDS = {
    "dog": 0,
    "cat": 5,
    "rain": 10,
    "chirping_birds": 14,
    "pouring_water": 17,
    "vacuum_cleaner": 36,
    "clock_alarm": 37,
    "clock_tick": 38,
    "engine": 44,
    "church_bells": 46,
}
ESC10 = {"dog", "rain", "sea_waves", "crying_baby", "clock_tick", "sneezing", "helicopter", "chainsaw",
         "rooster", "crackling_fire"}
# Negative ESC-50 categories of the demo: "none of the five" examples for the model.
DEMO_NEGATIVES = ("rain", "clock_tick", "chirping_birds", "church_bells", "engine")
# Non-target DESED classes that appear in the demo scenes (the model has to stay silent on them).
DESED_DEMO_OTHERS = ("Speech", "Dishes")
ESC50_FOLDS = (1, 2, 3, 4, 5)  # the dataset's own structure, not a training choice
ESC50_CLIPS_PER_FOLD = 3
DESED_N_CLIPS = 24
# (min, max) event length in seconds in the demo scenes; continuous sounds last longer.
DESED_EVENT_SECONDS = {
    "dog": (0.5, 3.0),
    "cat": (0.6, 2.5),
    "clock_alarm": (1.0, 4.0),
    "pouring_water": (2.0, 6.0),
    "vacuum_cleaner": (3.0, 8.0),
    "Speech": (0.5, 4.0),
    "Dishes": (0.3, 2.0),
}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip timestamps; tar uses mtime 0: same bytes every run


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------
def _wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1).astype(np.float32), sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _check_categories(cfg: Config) -> None:
    missing = [c for c in cfg.esc50_categories if c not in ESC50_DEMO_IDS]
    if missing:
        raise ValueError(
            f"config.yml classes {missing} have no synthetic demo recipe; the demo generator knows "
            f"{', '.join(c for c in ESC50_DEMO_IDS if c not in DEMO_NEGATIVES)}"
        )


def _esc50_clip(category: str, sr: int, rng: np.random.Generator, partial: bool) -> np.ndarray:
    n = int(ESC50_CLIP_SECONDS * sr)
    gain = 10 ** (rng.uniform(-9, 0) / 20)
    if not partial:
        return synth_event(category, ESC50_CLIP_SECONDS, sr, rng) * gain
    # Like many real ESC-50 clips: the sound in part of the clip, padded with digital silence or
    # very quiet noise; chunking's silence dropping has something to drop.
    dur = rng.uniform(1.0, 3.0)
    start = int(rng.uniform(0, ESC50_CLIP_SECONDS - dur) * sr)
    quiet = rng.random() < 0.5
    clip = (rng.standard_normal(n) * 1e-4).astype(np.float32) if quiet else np.zeros(n, np.float32)
    ev = synth_event(category, dur, sr, rng) * gain
    clip[start:start + len(ev)] += ev[: n - start]
    return clip


def esc50_demo_files(cfg: Config) -> dict[str, bytes]:
    """All files of the demo ``ESC-50-master.zip`` (archive path -> bytes), in archive order.

    Packed by :func:`make_demo_mirror` (notebook 01).
    """
    _check_categories(cfg)
    sr = cfg.audio.sample_rate
    categories = list(cfg.esc50_categories) + [c for c in DEMO_NEGATIVES if c not in cfg.esc50_categories]
    rows, audio = [], {}
    for category in categories:
        target = ESC50_DEMO_IDS[category]
        for fold in ESC50_FOLDS:
            src = 900000 + target * 100 + fold  # one source recording per (category, fold), like upstream
            for j in range(ESC50_CLIPS_PER_FOLD):
                take = "ABC"[j]
                name = f"{fold}-{src}-{take}-{target}.wav"
                rng = np.random.default_rng([cfg.seed, GENERATOR_VERSION, target, fold, j])
                audio[name] = _wav_bytes(_esc50_clip(category, sr, rng, partial=(j == 2)), sr)
                rows.append((name, fold, target, category, str(category in ESC10), str(src), take))
    rows.sort()
    csv = "filename,fold,target,category,esc10,src_file,take\n" + "".join(
        ",".join(str(v) for v in row) + "\n" for row in rows
    )
    files = {"ESC-50-master/LICENSE": _LICENSE.encode(), "ESC-50-master/meta/esc50.csv": csv.encode()}
    for name in sorted(audio):
        files[f"ESC-50-master/audio/{name}"] = audio[name]
    return files


@dataclass(frozen=True)
class _Event:
    onset: float
    offset: float
    label: str  # DESED label
    category: str  # synth recipe


def _scene_events(index: int, cfg: Config, rng: np.random.Generator) -> list[_Event]:
    """Events of demo scene ``index``: 0 = silent, 1-3 = only Speech/Dishes, others 1-4 targets."""
    labels = cfg.desed_labels
    if index == 0:
        return []
    picks: list[str] = []
    if index <= 3:
        picks = [DESED_DEMO_OTHERS[i % 2] for i in range(index, index + int(rng.integers(1, 3)))]
    else:
        n_targets = int(rng.integers(1, 5))
        picks = [labels[index % len(labels)]] + [labels[int(rng.integers(len(labels)))] for _ in
                                                  range(n_targets - 1)]
        if rng.random() < 0.5:
            picks.append(DESED_DEMO_OTHERS[int(rng.integers(2))])
    events: list[_Event] = []
    for label in picks:
        category = cfg.classes.get(label, label)
        lo, hi = DESED_EVENT_SECONDS.get(category, (0.3, 5.0))
        for _ in range(20):  # events of one class never overlap (DESED annotates them as one event)
            dur = round(rng.uniform(lo, hi), 3)
            onset = round(rng.uniform(0, DESED_CLIP_SECONDS - dur), 3)
            ev = _Event(onset, round(onset + dur, 3), label, category)
            if not any(e.label == label and e.onset < ev.offset and ev.onset < e.offset for e in events):
                events.append(ev)
                break
    return sorted(events, key=lambda e: (e.onset, e.label))


def desed_demo_files(cfg: Config) -> dict[str, bytes]:
    """All files of the demo ``DESEDpublic_eval.tar.gz`` (archive path -> bytes), in archive order.

    Packed by :func:`make_demo_mirror` (notebook 01).

    The tsv follows DESED exactly: tab separated, header ``filename onset offset event_label``,
    times with 3 decimals. The silent clip is not listed in it (as in DESED's public.tsv, a clip
    without events simply has no rows): the loader finds it in the audio folder.
    """
    _check_categories(cfg)
    sr = cfg.audio.sample_rate
    n = int(DESED_CLIP_SECONDS * sr)
    lines = ["filename\tonset\toffset\tevent_label"]
    audio = {}
    for i in range(DESED_N_CLIPS):
        name = f"synthetic_{i:03d}_0_10.wav"
        rng = np.random.default_rng([cfg.seed, GENERATOR_VERSION, 1000 + i])
        scene = (_band_noise(n, sr, 50, 4000, rng) * 0.002).astype(np.float32)  # room noise, ~-54 dBFS
        rows = []
        for ev in _scene_events(i, cfg, rng):
            start = int(round(ev.onset * sr))
            sound = synth_event(ev.category, ev.offset - ev.onset, sr, rng) * 10 ** (rng.uniform(-8, 0) / 20)
            scene[start:start + len(sound)] += sound[: n - start]
            # label what is audible: a bark train drawn for 2 s may fall silent at 1.7 s
            first, last = active_extent(sound, sr)
            rows.append((round(ev.onset + first, 3), round(ev.onset + last, 3), ev.label))
        lines += [f"{name}\t{a:.3f}\t{b:.3f}\t{lab}" for a, b, lab in sorted(rows)]
        peak = np.abs(scene).max()
        if peak > 0.99:
            scene *= 0.99 / peak
        audio[name] = _wav_bytes(scene, sr)
    files = {"dataset/metadata/eval/public.tsv": ("\n".join(lines) + "\n").encode(),
             "dataset/LICENSE": _LICENSE.encode()}
    for name in sorted(audio):
        files[f"dataset/audio/eval/public/{name}"] = audio[name]
    return files


_LICENSE = """SYNTHETIC DEMO DATA - not the real dataset.

Generated by sed_utils/demo_data.py of the sed-tutorial series for its `demo` profile: simple
synthetic sounds (barks, meows, beeps, ...) laid out like the real ESC-50 / DESED archives so the
notebooks can run end to end offline. No real recordings are included. Results obtained on this
data only show that the code runs; they say nothing about real sound event detection.
Public domain (CC0 1.0).
"""


# ----------------------------------------------------------------------------------------------
# Archives and the mirror
# ----------------------------------------------------------------------------------------------
def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        dirs: set[str] = set()
        for path in files:
            parts = path.split("/")[:-1]
            for k in range(1, len(parts) + 1):
                d = "/".join(parts[:k]) + "/"
                if d not in dirs:  # directory entries, like upstream's GitHub zip
                    dirs.add(d)
                    info = zipfile.ZipInfo(d, date_time=FIXED_TIME)
                    info.external_attr = (0o40755 << 16) | 0x10
                    zf.writestr(info, b"")
            info = zipfile.ZipInfo(path, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[path])
    return buf.getvalue()


def _tar_gz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=1) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, data in files.items():
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def mirror_dir(cfg: Config) -> Path:
    """Where the demo archives are written (``cfg.data_root / "mirror"``): notebook 01's demo source."""
    return cfg.data_root / "mirror"


def _params(cfg: Config) -> dict:
    return {"generator_version": GENERATOR_VERSION, "seed": cfg.seed, "sample_rate": cfg.audio.sample_rate,
            "classes": cfg.classes}


def _valid_archives(out: Path, params: dict) -> set[str]:
    """Archives in ``out`` that were made with ``params`` and still match ``SHA256SUMS``."""
    sums, meta = out / "SHA256SUMS", out / "GENERATOR.json"
    if not (sums.is_file() and meta.is_file()):
        return set()
    try:
        if json.loads(meta.read_text()) != params:
            return set()
    except ValueError:
        return set()
    valid = set()
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name in MIRROR_FILES and (out / name).is_file() and sha256_file(out / name) == digest:
            valid.add(name)
    return valid


def make_demo_mirror(cfg: Config) -> Path:
    """Write the SYNTHETIC demo archives and ``SHA256SUMS`` to :func:`mirror_dir`; return the folder.

    Notebook 01 calls it on the demo profile, as does :func:`sed_utils.data.registry.prepare_datasets`.

    Skips the work when the archives are there, match ``SHA256SUMS`` and were made with the same
    parameters (``GENERATOR.json``: seed, sample rate, classes, recipe version); a damaged archive
    alone is rebuilt. Same config, same bytes: zip/tar timestamps, owners and member order are
    fixed, so the checksums are stable and the download code can verify the "download" exactly as
    it verifies upstream files.
    """
    out = mirror_dir(cfg)
    params = _params(cfg)
    valid = _valid_archives(out, params)
    if valid == set(MIRROR_FILES):
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / "SHA256SUMS").unlink(missing_ok=True)  # written last: its presence marks a complete mirror
    builders = {
        "ESC-50-master.zip": lambda: _zip_bytes(esc50_demo_files(cfg)),
        "DESEDpublic_eval.tar.gz": lambda: _tar_gz_bytes(desed_demo_files(cfg)),
    }
    lines = []
    for name in MIRROR_FILES:
        if name in valid:
            digest = sha256_file(out / name)
        else:
            data = builders[name]()
            atomic.write_bytes(out / name, data)
            digest = hashlib.sha256(data).hexdigest()
        lines.append(f"{digest}  {name}")
    atomic.write_bytes(out / "GENERATOR.json", (json.dumps(params, indent=1, sort_keys=True) + "\n").encode())
    atomic.write_bytes(out / "SHA256SUMS", ("\n".join(lines) + "\n").encode())
    return out


# --------------------------------------------------------------------------------------------
# A "recording of your own" for notebook 09 on the demo profile
# --------------------------------------------------------------------------------------------
#: (synthetic category, onset s, duration s) of :func:`write_demo_recording`; Speech is not a target
DEMO_RECORDING_EVENTS = (("dog", 2.0, 1.5), ("Speech", 5.0, 2.0), ("clock_alarm", 8.0, 2.5),
                         ("pouring_water", 12.5, 3.0), ("dog", 17.0, 1.0))


def write_demo_recording(path: Path, classes: dict[str, str], *, seconds: float = 20.0,
                         sample_rate: int = 44100, seed: int = 0) -> pd.DataFrame:
    """Write a 20 s STEREO 44.1 kHz FLAC of synthetic sounds over a faint background and return its
    reference events in DESED labels (``classes``: DESED label -> ESC-50 category) (notebook 09).

    Why this shape: a user's recording is rarely 16 kHz mono WAV, so the demo's stand-in is not
    either; the detector must resample and down-mix it. Speech is placed too, unlabelled: a sound
    the model should ignore. Same seed, same bytes.

    Args:
        path: the FLAC file to write (atomically); its name is the events' ``filename``.
        classes: DESED label -> ESC-50 category; sounds of other categories are mixed in unlabelled.
        seconds, sample_rate: the recording's length and rate; the sounds sit at the fixed times of
            :data:`DEMO_RECORDING_EVENTS` (the last ends at 18 s: a shorter recording is a ValueError).
        seed: the random draws of the background and of the sounds.

    Returns:
        The reference events: ``filename, onset, offset, event_label``, in seconds rounded to 1 ms,
        each the heard extent of its sound (:func:`~sed_utils.data.demo_sounds.active_extent`).
    """
    needed = max(onset + length for _, onset, length in DEMO_RECORDING_EVENTS)
    if seconds < needed:
        raise ValueError(f"write_demo_recording: seconds={seconds} is shorter than its last sound's end "
                         f"({needed} s)")
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    mix = 0.01 * _band_noise(n, sample_rate, 60.0, 6000.0, rng)
    desed_of = {esc: desed for desed, esc in classes.items()}
    rows = []
    for category, onset, length in DEMO_RECORDING_EVENTS:
        sound = synth_event(category, length, sample_rate, rng)
        a = int(round(onset * sample_rate))
        mix[a:a + len(sound)] += 0.8 * sound[: n - a]
        if category in desed_of:
            start, end = active_extent(sound, sample_rate)
            rows.append((Path(path).name, round(onset + start, 3), round(onset + end, 3), desed_of[category]))
    stereo = np.stack([mix, 0.9 * mix + 0.005 * rng.standard_normal(n)], axis=1)
    stereo = (stereo * (0.9 / np.abs(stereo).max())).astype(np.float32)
    atomic.write_with(Path(path),
                      lambda fh: sf.write(fh, stereo, sample_rate, format="FLAC", subtype="PCM_16"))
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
