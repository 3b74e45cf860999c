"""Training the frame-level model on strongly labelled scenes (notebook 08).

The same shape as :mod:`sed_utils.training` (a loop over :func:`fit_frame_epoch` and
:func:`validate_frames`), with what a frame model needs:

- Data: ``frame.train_scenes`` 10 s scenes mixed from the TRAINING folds (their event timings are
  known exactly, so every 80 ms frame has a target) and the validation scenes of ``cfg.valid_folds``
  (``eval.valid_scenes``), never the test set.
- Negatives (``frame.negative_clips`` > 0): that many 10 s examples per epoch made of the training
  folds' ESC-50 clips of the other 45 classes, all targets zero (see
  :class:`~sed_utils.frame_dataset.FrameDataset`); the normalisation statistics stay the scenes'.
- Loss: binary cross-entropy on every frame (strong labels) plus ``frame.weak_weight`` x the
  cross-entropy of the attention-pooled clip output against the clip's labels (weak labels). The
  weak term trains the pooling, so the clip output can be used on its own, and it pulls the frame
  outputs of a clip towards "something of class c is in here".
- Epoch selection: frame-level macro F1 on the validation scenes, each class at its best threshold
  (cheap, and it measures what the events are made of); the event post-processing is chosen
  afterwards, on the same validation scenes, by :mod:`sed_utils.frame_evaluation`.
- Outputs (``cfg.run_dir / "frame_model"``): ``best.pt`` (the whole
  :class:`~sed_utils.frame_model.FrameDetector`, see :mod:`sed_utils.checkpoint`), ``history.csv``.
  Re-running with the same config returns the saved result.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from sed_utils.checkpoint import CheckpointInfo, checkpoint_info, read_checkpoint, save_checkpoint
from sed_utils.config import Config
from sed_utils.core import atomic
from sed_utils.core.errors import CheckpointError
from sed_utils.core.progress import tqdm
from sed_utils.data.scenes import scene_set
from sed_utils.features.logmel import normalization_stats
from sed_utils.frame_dataset import FrameData, FrameDataset, clip_frame_data, negative_clip_features
from sed_utils.frame_model import FrameDetector, build_frame_detector
from sed_utils.inference import predict_logits, sigmoid
from sed_utils.metrics.f1 import macro_f1_at_chosen_thresholds
from sed_utils.model import pick_device, set_seed
from sed_utils.training import training_key

__all__ = ["FRAME_MODEL_DIR", "FrameTrainResult", "frame_training_data", "fit_frame_epoch", "validate_frames",
           "train_frame_model", "frame_checkpoint_path"]

FRAME_MODEL_DIR = "frame_model"
CHECKPOINT_NAME = "best.pt"
HISTORY_NAME = "history.csv"


def frame_checkpoint_path(cfg: Config) -> Path:
    """Where :func:`train_frame_model` keeps the frame model of ``cfg`` (notebook 08)."""
    return cfg.run_dir / FRAME_MODEL_DIR / CHECKPOINT_NAME


@dataclass
class FrameTrainResult:
    """What :func:`train_frame_model` returns (notebook 08): per-epoch history, the checkpoint's
    info, and whether a finished run was reused."""

    history: pd.DataFrame
    info: CheckpointInfo
    skipped: bool = False


def frame_key(cfg: Config) -> str:
    """The config keys that decide the frame model: the chunk model's training keys plus ``frame``
    but its post-processing candidates (notebook 08 re-runs skip training when it is unchanged)."""
    post_processing = ("median_filters", "min_durations")
    frame = {k: v for k, v in cfg.to_dict()["frame"].items() if k not in post_processing}
    if not frame.get("negative_clips"):  # added later: at its default 0 the models trained before stay valid
        frame.pop("negative_clips", None)
    view = {"base": training_key(cfg), "frame": frame}
    return json.dumps(view, sort_keys=True, default=str)


def frame_training_data(cfg: Config, *, progress: bool = True) -> tuple[FrameData, FrameData]:
    """(training scenes, validation scenes) as :class:`~sed_utils.frame_dataset.FrameData`
    (notebook 08). Both are mixed from ESC-50 folds that the test set does not use."""
    train = scene_set(cfg, "train", n_scenes=cfg.frame.train_scenes, progress=progress)
    valid = scene_set(cfg, "valid", progress=progress)
    return (clip_frame_data(cfg, train, "frame-train", progress=progress),
            clip_frame_data(cfg, valid, "frame-valid", progress=progress))


def _frame_loss(frame_logits: torch.Tensor, clip_probs: torch.Tensor, frames: torch.Tensor,
                clips: torch.Tensor, weak_weight: float) -> torch.Tensor:
    strong = nn.functional.binary_cross_entropy_with_logits(frame_logits, frames)
    return strong + weak_weight * nn.functional.binary_cross_entropy(clip_probs, clips)


def fit_frame_epoch(model: FrameDetector, loader: DataLoader, optimiser: torch.optim.Optimizer, schedule: Any,
                    weak_weight: float, device: torch.device, desc: str = "", progress: bool = True) -> float:
    """One pass over the training scenes; returns the mean loss (notebook 08, through train_frame_model)."""
    model.train()
    total, n = 0.0, 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for x, frames, clips in bar:
        x, frames, clips = x.to(device), frames.to(device), clips.to(device)
        optimiser.zero_grad(set_to_none=True)
        frame_logits, clip_probs = model(x)
        n_out = min(frame_logits.shape[1], frames.shape[1])
        loss = _frame_loss(frame_logits[:, :n_out], clip_probs, frames[:, :n_out], clips, weak_weight)
        loss.backward()
        optimiser.step()
        schedule.step()
        total += float(loss.detach()) * len(x)
        n += len(x)
        bar.set_postfix(loss=f"{total / n:.4f}", refresh=False)  # shown at the next update: no extra redraws
    return total / max(n, 1)


def validate_frames(model: FrameDetector, valid: FrameData,
                    batch_size: int) -> tuple[dict[str, float], np.ndarray]:
    """Frame-level macro F1 of the validation scenes (each class at its best threshold) and their
    frame probabilities ``[N, T', C]`` (notebook 08, through train_frame_model)."""
    feats = np.asarray(valid.features, dtype=np.float32)
    probs = sigmoid(predict_logits(model, feats, batch_size=batch_size))
    n_out = min(probs.shape[1], valid.targets.shape[1])
    probs, targets = probs[:, :n_out], valid.targets[:, :n_out]
    flat_t, flat_p = targets.reshape(-1, targets.shape[-1]), probs.reshape(-1, probs.shape[-1])
    f1, _ = macro_f1_at_chosen_thresholds(flat_t, flat_p)
    with torch.no_grad():
        loss = float(nn.functional.binary_cross_entropy(torch.from_numpy(flat_p).clamp(1e-7, 1 - 1e-7),
                                                        torch.from_numpy(flat_t)))
    return {"valid_frame_loss": loss, "valid_frame_f1": f1}, probs


def _finished(out_dir: Path, cfg: Config) -> FrameTrainResult | None:
    ckpt_path, hist_path = out_dir / CHECKPOINT_NAME, out_dir / HISTORY_NAME
    if not (ckpt_path.is_file() and hist_path.is_file()):
        return None
    try:
        ckpt = read_checkpoint(ckpt_path)
        history = pd.read_csv(hist_path)
    except (CheckpointError, OSError, ValueError):
        return None
    info = checkpoint_info(ckpt, ckpt_path)
    if not info.complete or ckpt.get("frame_key") != frame_key(cfg):
        return None
    return FrameTrainResult(history=history, info=info, skipped=True)


def train_frame_model(cfg: Config, *, progress: bool = True, device: torch.device | str | None = None,
                      data: tuple[FrameData, FrameData] | None = None) -> FrameTrainResult:
    """Train the frame model of notebook 08 and keep its best epoch (see the module docstring).

    ``data`` is ``(train, valid)`` from :func:`frame_training_data` (built when None). A finished
    run with the same config is returned without training (``skipped=True``).
    """
    out_dir = cfg.run_dir / FRAME_MODEL_DIR
    done = _finished(out_dir, cfg)
    if done is not None:
        print(f"Found a finished frame model trained with this exact config: {done.info.path} "
              f"(epoch {done.info.epoch}). Skipping training; delete that folder to retrain.")
        return done
    train, valid = data if data is not None else frame_training_data(cfg, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    try:
        return _fit_frames(cfg, train, valid, out_dir, progress=progress, device=device)
    finally:
        torch.set_num_threads(old_threads)


def _fit_frames(cfg: Config, train: FrameData, valid: FrameData, out_dir: Path, *, progress: bool,
                device: Any) -> FrameTrainResult:
    fc = cfg.frame
    set_seed(cfg.seed)
    dev = torch.device(device) if device is not None else pick_device()
    mean, std = normalization_stats(train.features)
    negatives = negative_clip_features(cfg, progress=progress) if fc.negative_clips > 0 else None
    dataset = FrameDataset(train, augment=cfg.augment, seed=cfg.seed, fill_db=mean, negatives=negatives,
                           negative_items=fc.negative_clips)
    loader = DataLoader(dataset, batch_size=fc.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    model = build_frame_detector(list(cfg.desed_labels), cfg.mel, cfg.audio.sample_rate, train.clip_seconds,
                                 mean, std, pretrained=cfg.train.pretrained).to(dev)
    optimiser = torch.optim.AdamW(model.parameters(), lr=fc.lr, weight_decay=fc.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=fc.epochs * len(loader))
    meta = {"config": cfg.to_dict(), "frame_key": frame_key(cfg), "selected_on": "valid_frame_f1",
            "n_mels": int(train.features.shape[1]), "frames": int(train.features.shape[2]),
            "pretrained_loaded": bool(model.classifier.pretrained_loaded)}
    rows: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -1.0}
    start = time.perf_counter()
    for epoch in range(1, fc.epochs + 1):
        t0 = time.perf_counter()
        loss = fit_frame_epoch(model, loader, optimiser, schedule, fc.weak_weight, dev,
                               f"frame epoch {epoch}/{fc.epochs}", progress)
        scores, _ = validate_frames(model, valid, fc.batch_size * 2)
        rows.append({"epoch": epoch, "train_loss": loss, **scores, "seconds": time.perf_counter() - t0})
        improved = scores["valid_frame_f1"] > best["score"]
        if improved:
            best = {"score": scores["valid_frame_f1"], "epoch": epoch,
                    "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
        if progress:
            print(f"frame epoch {epoch}/{fc.epochs}: train loss {loss:.4f}  valid frame loss "
                  f"{scores['valid_frame_loss']:.4f}  valid frame F1 {scores['valid_frame_f1']:.3f}"
                  f"{'  (best so far)' if improved else ''}  [{rows[-1]['seconds']:.1f} s]")
        atomic.write_csv(pd.DataFrame(rows), out_dir / HISTORY_NAME)
    model.load_state_dict(best["state"])
    ckpt_path = out_dir / CHECKPOINT_NAME
    save_checkpoint(ckpt_path, model, epoch=best["epoch"], valid_macro_f1=best["score"],
                    best_score=best["score"], seconds=time.perf_counter() - start, complete=True, **meta)
    info = checkpoint_info(read_checkpoint(ckpt_path), ckpt_path)
    return FrameTrainResult(history=pd.DataFrame(rows), info=info)
