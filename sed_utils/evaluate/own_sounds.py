"""A detector of your own sounds, trained, chosen and tested on your own data (``python -m sed_utils train
DATA --out runs/mine``; notebook 10 to come).

The series' own recipe on a user's dataset (:mod:`sed_utils.labels.own_dataset`): the doctor must pass;
the recordings are split by recording; the frame model (notebook 08) trains on windows of the training
recordings (10 s long, the scenes' length, every 5 s; a negative's windows have all-zero targets) with
the frame targets of the events inside them, and on scenes mixed from the training clips (a folder of
clips, weak labels) the way notebook 07 mixes ESC-50 (:func:`sed_utils.data.scene_mixing.make_scene`:
each clip's sounding part at a random place and SNR over the training negatives, labelled where it
sounds; :data:`SCENES_PER_CLIP` per clip); it picks its epoch on the validation windows (the validation
clips one padded window each); the post-processing (thresholds, median filters, minimum durations)
is chosen on the validation recordings' score curves, as notebooks 06 and 08 choose it; the test
recordings give the report (event F1, segment F1, PSDS1, per class), written to ``report.json``. The
checkpoint carries the classes and the chosen post-processing: ``detect --run runs/mine`` uses it as it is.

The run's config is the ``scenes`` profile's (the model, the augmentation, the candidates of the
post-processing; ``profile=`` picks another) with the user's classes; ``overrides`` change it
(``-p models.frame.epochs=3``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sed_utils.config import load_config
from sed_utils.config.settings import Config
from sed_utils.core import atomic
from sed_utils.core.keys import digest, file_identity, frame_hash
from sed_utils.data.scene_mixing import SCENE_SECONDS, Clip, active_mask, make_scene
from sed_utils.evaluate.choose import choose_post_processing
from sed_utils.evaluate.curves import model_curves
from sed_utils.features.logmel import normalization_stats
from sed_utils.io.audio import read_audio, write_wav
from sed_utils.labels.grid import events_of_curves
from sed_utils.labels.own_dataset import OwnDataset, split_recordings
from sed_utils.metrics.f1 import EVENT_COLUMNS, event_metrics, segment_metrics
from sed_utils.metrics.psds import psds
from sed_utils.models.checkpoint import load_trained, store_post_processing
from sed_utils.models.detector import pick_device
from sed_utils.models.kinds import get_kind
from sed_utils.train import ExampleDataset, TrainingData, distributed, train
from sed_utils.train.data import window_examples

__all__ = ["OwnRun", "own_config", "own_windows", "clip_scenes", "train_own"]

KIND = "frame"
#: Training scenes mixed per training clip.
SCENES_PER_CLIP = 4
#: The SNR range of a clip over the negatives it is mixed into, in dB (notebook 07's default).
CLIP_SNR_DB = (0.0, 15.0)


@dataclass
class OwnRun:
    """What :func:`train_own` made (notebook 10): the config, split, checkpoint and test report."""

    cfg: Config
    split: pd.Series
    checkpoint: Path
    report: dict[str, Any]


def own_config(dataset: OwnDataset, out: Path, overrides: list[str] | None = None, seed: int = 0,
               split: pd.Series | None = None, profile: str = "scenes") -> Config:
    """The run's config: ``profile``'s settings (``scenes``: those of real data; ``demo``: a few epochs)
    with ``dataset``'s classes, its run folder ``out`` and its feature cache inside it (notebook 10).

    The data's identity (every recording's name, size and time, the events, the split) names the cache
    folder, which is part of the training key: the same data trains once (a re-run reuses the model),
    changed data trains again.

    Args:
        dataset: the checked dataset; out: the run folder (``runs/mine``).
        overrides: ``key=value`` changes (``models.frame.epochs=3``); seed: the training's seed.
        split: the split (default: :func:`split_recordings` with ``seed``).
        profile: the config profile whose settings are used.
    """
    out = Path(out).resolve()
    split = split if split is not None else split_recordings(dataset, seed=seed)
    names = list(dataset.recordings["filename"])
    identity = digest("own-data-v1", names, file_identity(dataset.root / n for n in names),
                      frame_hash(dataset.events[["filename", "onset", "offset", "event_label"]]),
                      split.to_dict())
    cache = out / "cache" / identity
    base = load_config(profile, [*(overrides or []), f"seed={seed}"])
    # set here, not as an override: $SED_DATA_ROOT (the series' data) would win over one
    return dataclasses.replace(base, profile=out.name, runs_root=out.parent, data_root=cache, synthetic=False,
                               classes={c: c for c in dataset.classes})


def own_windows(dataset: OwnDataset, names: list[str], window_seconds: float) -> pd.DataFrame:
    """The training windows of the recordings ``names`` (notebook 10): every ``window_seconds / 2``
    from 0, the last one ending at the recording's end (shorter recordings: one window, padded).

    Args:
        dataset: the dataset; names: its recordings to cut; window_seconds: the windows' length.

    Returns:
        ``filename, path, start, end``, in the order of ``names``.
    """
    seconds, rows = dataset.seconds, []
    for name in names:
        length = seconds[name]
        starts = np.arange(0.0, max(length - window_seconds, 0.0) + 1e-9, window_seconds / 2)
        if length > window_seconds and starts[-1] < length - window_seconds:
            starts = np.append(starts, length - window_seconds)
        rows += [(name, str(dataset.root / name), float(s), float(s) + window_seconds) for s in starts]
    return pd.DataFrame(rows, columns=["filename", "path", "start", "end"])


def clip_scenes(cfg: Config, dataset: OwnDataset, names: list[str], *, seed: int = 0
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scenes mixed from the clips among ``names`` over the negatives among them (pink noise when there
    are none), :data:`SCENES_PER_CLIP` per clip, written once under the run's cache (notebook 10).

    Args:
        cfg: the run's config (its data root is the data's own cache); dataset: the dataset;
        names: the training recordings; seed: the mix's seed.

    Returns:
        ``(windows, events)``: the scenes as ``filename, path, start, end`` and their labels.
    """
    kinds = dataset.kinds
    sr, silence = cfg.audio.sample_rate, cfg.chunking.silence_db
    clip_names = [n for n in names if kinds[n] == "clip"]
    if not clip_names:
        return pd.DataFrame(columns=["filename", "path", "start", "end"]), pd.DataFrame(columns=EVENT_COLUMNS)
    label_of = dataset.events.drop_duplicates("filename").set_index("filename")["event_label"]

    def clip(name: str, category: str) -> Clip:
        audio = read_audio(dataset.root / name, sr)
        return Clip(name, 0, category, audio, active_mask(audio, sr, silence))

    pools = {"target": [clip(n, label_of[n]) for n in clip_names],
             "ambient": [clip(n, "") for n in names if kinds[n] == "negative"], "distractor": []}
    # everything the mix depends on names its folder (the data's identity is already in data_root)
    folder = cfg.data_root / f"clip_scenes-{digest(seed, sr, silence, SCENES_PER_CLIP, CLIP_SNR_DB)}"
    rows, events = [], []
    for i in range(SCENES_PER_CLIP * len(clip_names)):
        path = folder / f"scene_{i:04d}.wav"
        audio, labels, _ = make_scene(i, pools, {c: c for c in dataset.classes}, seed, CLIP_SNR_DB, sr)
        if not path.is_file():  # the folder names the data and the mix: written once
            write_wav(path, audio, sr)
        name = f"{folder.name}/{path.name}"
        rows.append((name, str(path), 0.0, float(SCENE_SECONDS)))
        events += [(name, a, b, label) for a, b, label in labels]
    return (pd.DataFrame(rows, columns=["filename", "path", "start", "end"]),
            pd.DataFrame(events, columns=EVENT_COLUMNS))


def _segments(events: pd.DataFrame, seconds: dict[str, float], labels: list[str],
              step: float) -> pd.DataFrame:
    """1 s segments of each recording with 0/1 label columns (a class is on when an event overlaps)."""
    rows = []
    for name, length in seconds.items():
        mine = events[events["filename"] == name]
        for k in range(max(1, math.ceil(length / step - 1e-9))):
            a, b = k * step, min((k + 1) * step, length)
            on = set(mine[(mine["onset"] < b) & (mine["offset"] > a)]["event_label"])
            rows.append({"filename": name, "start": a, "end": b, **{lab: int(lab in on) for lab in labels}})
    return pd.DataFrame(rows)


def _curves(cfg: Config, trained: Any, dataset: OwnDataset, names: list[str], progress: bool, desc: str):
    curves = model_curves(cfg, trained, {n: dataset.root / n for n in names}, 0.0, progress=progress,
                          desc=desc)
    seconds = dataset.seconds
    return curves, {n: seconds[n] for n in names}


def _report(cfg: Config, trained: Any, post: Any, dataset: OwnDataset, names: list[str],
            progress: bool) -> dict[str, Any]:
    """Event F1, segment F1, PSDS1 and per-class numbers on the test recordings."""
    labels = cfg.desed_labels
    curves, seconds = _curves(cfg, trained, dataset, names, progress, "test recordings")
    reference = dataset.events[dataset.events["filename"].isin(names)][["filename", "onset", "offset",
                                                                        "event_label"]]
    estimated = events_of_curves(curves, labels, post.thresholds, median_filters=post.median_filters,
                                 min_durations=post.min_durations)
    collars = {"t_collar": cfg.eval.onset_collar, "percentage_of_length": cfg.eval.offset_collar_ratio}
    events = event_metrics(reference, estimated, names, labels, **collars)
    segments = segment_metrics(reference, estimated, names, labels,
                               segment_seconds=cfg.chunking.segment_seconds,
                               clip_seconds=max(seconds.values()))
    area = psds(curves, reference, seconds, labels, "psds1")
    return {"recordings": len(names), "minutes": sum(seconds.values()) / 60,
            "event_f1": events["macro"]["f1"], "segment_f1": segments["macro"]["f1"], "psds1": area["value"],
            "per_class": {lab: {"event_f1": events["class_wise"][lab]["f1"],
                                "segment_f1": segments["class_wise"][lab]["f1"]} for lab in labels},
            "post_processing": post.to_dict()}


def train_own(dataset: OwnDataset, out: Path, *, overrides: list[str] | None = None, seed: int = 0,
              profile: str = "scenes", progress: bool = True, device: Any = None) -> OwnRun:
    """Train, choose and test a frame model on a user's dataset (see the module docstring; notebook 10,
    ``python -m sed_utils train``).

    Args:
        dataset: from :func:`~sed_utils.labels.own_dataset.scan_dataset`; its fatal problems stop here.
        out: the run folder (checkpoint, history, report.json, feature cache).
        overrides: config changes (see :func:`own_config`); seed: the split's and the training's seed.
        profile: whose settings train (``scenes`` for real data, ``demo`` for a quick look).
        progress: progress bars; device: where to train (default: the fastest there is).

    Returns:
        An :class:`OwnRun`. Under ``torchrun`` the processes train together; the post-processing and the
        report are process 0's (the others return an empty ``report``).

    Raises:
        DatasetError: the doctor's fatal problems, one line each.
    """
    dataset.check()
    split = split_recordings(dataset, seed=seed)
    cfg = own_config(dataset, out, overrides, seed, split, profile)
    k = get_kind(KIND)
    window = float(SCENE_SECONDS)  # the frame model's input: the scenes' length
    frame_seconds = k.time_stride * cfg.features.hop_length / cfg.audio.sample_rate
    names = {s: list(split[split == s].index) for s in ("train", "valid", "test")}
    events = dataset.events[EVENT_COLUMNS]
    kinds = dataset.kinds
    distributed.setup(torch.device(device) if device is not None else pick_device())
    progress = progress and distributed.is_main()
    with distributed.main_first():  # torchrun: process 0 writes the scenes and caches, the others read them
        scenes, scene_events = clip_scenes(cfg, dataset, names["train"], seed=seed)
        train_windows = own_windows(dataset, [n for n in names["train"] if kinds[n] != "clip"], window)
        train_events = pd.concat([events, scene_events], ignore_index=True)
        examples = {"train": window_examples(cfg, pd.concat([train_windows, scenes], ignore_index=True),
                                             train_events, "own-train", frame_seconds, k.time_stride,
                                             progress=progress),
                    "valid": window_examples(cfg, own_windows(dataset, names["valid"], window), events,
                                             "own-valid", frame_seconds, k.time_stride, progress=progress)}
    mean, std = normalization_stats(examples["train"].features)
    dataset_train = ExampleDataset(examples["train"], augment=cfg.augment, seed=cfg.seed, fill_db=mean)
    data = TrainingData(KIND, dataset_train, {"scenes": examples["valid"]}, mean, std, window)
    result = train(cfg, KIND, data=data, progress=progress, device=device)
    if not distributed.is_main():  # the choice and the report are process 0's
        return OwnRun(cfg, split, result.checkpoint, {})
    trained = load_trained(result.checkpoint, device, precision=cfg.eval.precision)
    curves, seconds = _curves(cfg, trained, dataset, names["valid"], progress, "validation recordings")
    reference = events[events["filename"].isin(names["valid"])]
    segments = _segments(reference, seconds, cfg.desed_labels, cfg.chunking.segment_seconds)
    post, _ = choose_post_processing(cfg, curves, reference, segments,
                                     f"{len(names['valid'])} validation recordings of {dataset.root.name}")
    store_post_processing(result.checkpoint, post)
    report = _report(cfg, trained, post, dataset, names["test"], progress)
    report["split"] = {s: len(v) for s, v in names.items()}
    atomic.write_json(cfg.run_dir / "report.json", report)
    return OwnRun(cfg, split, result.checkpoint, report)
