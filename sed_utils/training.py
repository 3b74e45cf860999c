"""Training the detector: a d2l-style ``fit`` over small steps, epoch selection, checkpoints.

What :func:`train_model` does, and why:

- Loss: ``BCEWithLogitsLoss``, one independent yes/no per class (multilabel: a dog can bark while
  water runs), computed from logits for numerical stability (see :mod:`sed_utils.model`).
- Model selection: after each epoch the model is scored on the ESC-50 VALIDATION fold(s)
  (``cfg.valid_folds``): macro F1 of the clean chunks at ``cfg.eval.threshold``, and, with
  ``train.select_on: scenes`` (the default), macro F1 of the validation scenes' 1 s segments at
  their own best thresholds, which picks the epoch. The test set is never looked at here.
- Outputs (``cfg.run_dir / "model"``): ``best.pt`` (the whole :class:`~sed_utils.model.Detector`,
  see :mod:`sed_utils.checkpoint`), ``history.csv`` (one row per epoch) and
  ``valid_predictions.npz`` (validation-chunk probabilities of the kept epoch).
- Re-running with the same config returns the saved result instead of training again.

The loop reads as the steps it is made of: :func:`fit_epoch` (one pass over the training data),
:func:`validate` (the scores that pick the epoch), and :func:`train_model`'s loop over epochs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from sed_utils.checkpoint import (
    CheckpointInfo,
    checkpoint_info,
    read_checkpoint,
    save_checkpoint,
)
from sed_utils.config import Config
from sed_utils.core import atomic
from sed_utils.core.errors import CheckpointError
from sed_utils.core.progress import tqdm
from sed_utils.dataset import DataBundle
from sed_utils.inference import predict_logits, predict_proba, sigmoid, to_device
from sed_utils.metrics.f1 import macro_f1, macro_f1_at_chosen_thresholds
from sed_utils.model import Detector, build_detector, pick_device, set_seed

__all__ = [
    "CHECKPOINT_NAME",
    "EarlyStopping",
    "TrainResult",
    "fit_epoch",
    "validate",
    "score_scenes",
    "train_model",
    "training_key",
]

CHECKPOINT_NAME = "best.pt"
HISTORY_NAME = "history.csv"
PREDICTIONS_NAME = "valid_predictions.npz"


@dataclass
class TrainResult:
    """What a training run produced, or what a skipped re-run found on disk (notebook 05)."""

    history: pd.DataFrame
    info: CheckpointInfo
    skipped: bool = False  # True when a finished run with the same config was found and reused

    @property
    def checkpoint(self) -> Path:
        return self.info.path

    @property
    def best_epoch(self) -> int:
        return self.info.epoch

    @property
    def best_valid_macro_f1(self) -> float:
        return self.info.valid_macro_f1

    @property
    def best_score(self) -> float | None:
        return self.info.best_score

    @property
    def selected_on(self) -> str:
        return self.info.selected_on

    @property
    def seconds(self) -> float:
        return self.info.seconds

    @property
    def pretrained_loaded(self) -> bool:
        return self.info.pretrained_loaded


@dataclass
class EarlyStopping:
    """Track the best validation score and say when to stop (notebook 05).

    An epoch counts as better only if its score is strictly higher, so the earliest of equally
    good epochs is kept. ``patience <= 0`` disables stopping early.
    """

    patience: int
    best_score: float = float("-inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    _stopped: bool = field(default=False, repr=False)

    def step(self, epoch: int, score: float) -> bool:
        """Record an epoch's score; return True when it is a new best."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        if self.patience > 0 and self.bad_epochs >= self.patience:
            self._stopped = True
        return False

    @property
    def should_stop(self) -> bool:
        return self._stopped


# Config parts that cannot change a trained model: a re-run that changes only these (say an
# evaluation collar in notebook 06, or the download mirror) reuses the checkpoint instead of
# retraining for minutes. ``eval.threshold`` stays in: validation F1, hence early stopping, uses it.
_NOT_TRAINING = ("profile", "runs_root", "download", "frame")  # frame: the other model's knobs


def _normalised_config(d: dict[str, Any]) -> str:
    """A canonical text form of the training-relevant part of a config dict.

    Tuples and lists compare equal after a save/load; keys in ``_NOT_TRAINING`` and every ``eval``
    key but ``threshold`` are left out (see above), except ``valid_scenes`` and ``scenes_seed``
    when the validation scenes select the epoch (``train.select_on: scenes``).
    """
    view = {k: v for k, v in d.items() if k not in _NOT_TRAINING}
    if view.get("scene_recipe", "uniform") == "uniform":  # the default: older keys still match
        view.pop("scene_recipe", None)
    if isinstance(view.get("eval"), dict):
        kept = {"threshold": view["eval"].get("threshold")}
        if (view.get("train") or {}).get("select_on") == "scenes":  # the validation scenes pick the epoch
            kept.update({k: view["eval"].get(k) for k in ("valid_scenes", "scenes_seed")})
        view["eval"] = kept
    return json.dumps(view, sort_keys=True, default=str)


def training_key(cfg: Config) -> str:
    """The training-relevant part of ``cfg`` as text: two configs with equal keys train the same model
    (notebook 05 re-runs, the benchmarks)."""
    return _normalised_config(cfg.to_dict())


def _restart_augmentation(dataset: Any) -> None:
    """Make a dataset's on-the-fly augmentation start its random stream afresh.

    ``ChunkDataset`` keeps one numpy Generator across calls (in the main process), so a second
    ``train_model`` on the same bundle would otherwise see different augmentations than the first
    and the "same seed, same history" promise would break inside one notebook session.
    """
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    reseed = getattr(dataset, "reseed", None)
    if callable(reseed):
        reseed()
    elif hasattr(dataset, "_rng"):
        dataset._rng = None


def _seed_worker(worker_id: int) -> None:
    """Seed numpy in DataLoader workers (torch seeds python/torch there, not numpy)."""
    np.random.seed(torch.initial_seed() % 2**32)


def score_scenes(model: nn.Module, scenes: tuple[np.ndarray, np.ndarray], batch_size: int) -> float:
    """Macro F1 over the validation scenes' 1 s segments, each class at its own best threshold (notebook 05).

    ``scenes`` is ``(log-mels in dB [N, n_mels, frames], y [N, C])`` (``DataBundle.valid_scenes``).
    Why this selects the epoch by default: the clean validation chunks reward a model that is sure
    of isolated sounds, and their F1 peaks early; the scenes ask what the test asks (a sound over
    a background, partly in a segment).
    """
    x, y = scenes
    probs = predict_proba(model, x, batch_size=batch_size * 2)
    return macro_f1_at_chosen_thresholds(y, probs)[0]


def _finished_result(out_dir: Path, cfg: Config) -> TrainResult | None:
    """The saved result in ``out_dir`` if it is complete and was trained with exactly ``cfg``."""
    ckpt_path, hist_path = out_dir / CHECKPOINT_NAME, out_dir / HISTORY_NAME
    if not (ckpt_path.is_file() and hist_path.is_file() and (out_dir / PREDICTIONS_NAME).is_file()):
        return None
    try:
        ckpt = read_checkpoint(ckpt_path)
        history = pd.read_csv(hist_path)
    except CheckpointError as e:
        print(f"Not reusing the saved model ({e}); training again.")
        return None
    except (OSError, ValueError):
        return None  # damaged: train again
    info = checkpoint_info(ckpt, ckpt_path)
    if not info.complete or _normalised_config(info.config) != _normalised_config(cfg.to_dict()):
        return None
    return TrainResult(history=history, info=info, skipped=True)


def _check_bundle(cfg: Config, bundle: DataBundle) -> None:
    labels = list(getattr(bundle, "labels", cfg.desed_labels))
    if labels != cfg.desed_labels:
        raise ValueError(f"dataset labels {labels} differ from cfg.desed_labels {cfg.desed_labels}")
    if len(bundle.train) == 0:
        raise ValueError(
            f"the training set is empty: check the training folds {cfg.train_folds} and the chunking"
        )
    if len(bundle.valid) == 0:
        raise ValueError(f"the validation set is empty: check the validation folds {cfg.valid_folds}")
    if cfg.train.select_on == "scenes" and getattr(bundle, "valid_scenes", None) is None:
        raise ValueError("train.select_on is 'scenes' but the bundle has no validation scenes: "
                         "build it with sed_utils.dataset.build_datasets(cfg)")


def train_model(
    cfg: Config,
    bundle: DataBundle,
    out_dir: Path | None = None,
    *,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train a :class:`~sed_utils.model.Detector` on ``bundle.train``, keep the best epoch, save it
    (notebook 05).

    Args:
        cfg: the config; ``cfg.train`` holds the optimiser and loop settings, ``cfg.seed`` the seed,
            ``cfg.eval.threshold`` the threshold of the validation chunks' macro F1.
        bundle: a :class:`sed_utils.dataset.DataBundle` (``train``, ``valid``, ``mean``, ``std``,
            ``labels``, ``valid_scenes``); items are ``(x[1, n_mels, frames] in dB, y[n_labels])``.
        out_dir: where to write ``best.pt``, ``history.csv``, ``valid_predictions.npz``
            (default ``cfg.run_dir / "model"``).
        progress: tqdm bar per epoch and a summary line per epoch.
        device: default :func:`~sed_utils.model.pick_device` (CUDA, MPS, CPU).

    Returns:
        A :class:`TrainResult`. If ``out_dir`` already holds a finished run trained with exactly
        this config, it is returned without training (``skipped=True``): delete the folder or
        change the config to train again.
    """
    out_dir = Path(out_dir) if out_dir is not None else cfg.run_dir / "model"
    done = _finished_result(out_dir, cfg)
    if done is not None:
        print(
            f"Found a finished model trained with this exact config: {done.checkpoint} "
            f"(epoch {done.best_epoch}, valid macro F1 {done.best_valid_macro_f1:.3f}). "
            "Skipping training; delete that folder or change the config to retrain."
        )
        return done
    _check_bundle(cfg, bundle)
    out_dir.mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    try:
        return _fit(cfg, bundle, out_dir, progress=progress, device=device)
    finally:
        torch.set_num_threads(old_threads)


@dataclass
class _Run:
    """Everything one training run holds while it loops: model, optimiser, loaders, bookkeeping."""

    model: Detector
    optimiser: torch.optim.Optimizer
    schedule: Any
    train_loader: DataLoader
    device: torch.device
    channels_last: bool
    meta: dict[str, Any]
    loss_fn: nn.Module = field(default_factory=nn.BCEWithLogitsLoss)


def _loader_options(cfg: Config, device: torch.device) -> dict[str, Any]:
    options: dict[str, Any] = dict(num_workers=cfg.train.num_workers, pin_memory=device.type == "cuda")
    if cfg.train.num_workers > 0:
        options.update(worker_init_fn=_seed_worker, persistent_workers=True)
    return options


def _start_run(cfg: Config, bundle: DataBundle, device: Any) -> _Run:
    """Seed, build the loaders, the detector and the optimiser (in that order: it fixes the random draws)."""
    tc = cfg.train
    set_seed(cfg.seed)
    dev = torch.device(device) if device is not None else pick_device()
    # channels_last measured ~15% faster per step on 2 CPU cores (and is the fast path on CUDA);
    # MPS support for it is patchy, so it is left off there.
    channels_last = bool(tc.channels_last) and dev.type in ("cpu", "cuda")
    train_set = bundle.train
    _restart_augmentation(train_set)
    if tc.max_train_chunks > 0 and len(train_set) > tc.max_train_chunks:
        keep = np.random.default_rng(cfg.seed).permutation(len(train_set))[: tc.max_train_chunks]
        train_set = Subset(train_set, sorted(int(i) for i in keep))
    train_loader = DataLoader(train_set, batch_size=tc.batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(cfg.seed), **_loader_options(cfg, dev))
    x0 = bundle.valid[0][0]
    model = build_detector(list(cfg.desed_labels), cfg.mel, cfg.audio.sample_rate, cfg.chunking.chunk_seconds,
                           bundle.mean, bundle.std, pretrained=tc.pretrained)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    # cosine: large steps first, ever smaller ones later, so the last epochs settle instead of
    # jumping around a minimum (validation scores then vary less from epoch to epoch)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=tc.epochs * len(train_loader))
                if tc.lr_schedule == "cosine" else None)
    meta = {"config": cfg.to_dict(), "n_mels": int(x0.shape[-2]), "frames": int(x0.shape[-1]),
            "pretrained_loaded": bool(model.classifier.pretrained_loaded), "selected_on": tc.select_on}
    return _Run(model, optimiser, schedule, train_loader, dev, channels_last, meta)


def fit_epoch(model: nn.Module, loader: DataLoader, optimiser: torch.optim.Optimizer, schedule: Any = None,
              *, device: torch.device | str = "cpu", channels_last: bool = False,
              loss_fn: nn.Module | None = None, desc: str = "", progress: bool = True) -> float:
    """One pass over ``loader``, one optimiser step per batch (and a ``schedule`` step, when given);
    returns the mean training loss (notebook 05, which writes the same loop out by hand and checks
    that both give the same weights).

    The loop is the textbook one: forward, binary cross-entropy with logits (``loss_fn``, default
    ``BCEWithLogitsLoss``), backward, step. ``channels_last`` only changes the memory layout of the
    inputs (faster convolutions on CPU and CUDA), not the arithmetic's meaning."""
    loss_fn = loss_fn if loss_fn is not None else nn.BCEWithLogitsLoss()
    device = torch.device(device)
    model.train()
    total, n = 0.0, 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for x, y in bar:
        x = to_device(x, device, channels_last)
        y = y.to(device, dtype=torch.float32, non_blocking=True)
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimiser.step()
        if schedule is not None:
            schedule.step()
        total += float(loss.detach()) * len(y)
        n += len(y)
        bar.set_postfix(loss=f"{total / n:.4f}", refresh=False)  # shown at the next update: no extra redraws
    return total / max(n, 1)


def _targets_of(dataset: Any) -> np.ndarray:
    """The 0/1 targets of a labelled dataset: its ``labels`` array, or read item by item."""
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return np.asarray(labels, dtype=np.float32)
    return np.stack([np.asarray(dataset[i][1], dtype=np.float32) for i in range(len(dataset))])


def validate(run: _Run, cfg: Config, bundle: DataBundle) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """The epoch's validation scores (chunks: loss and F1; scenes: F1), with the chunks' probabilities
    and targets (notebook 05, through train_model). Uses :func:`sed_utils.inference.predict_logits`,
    the loop the evaluation uses."""
    batch = cfg.train.batch_size
    logits = predict_logits(run.model, bundle.valid, batch_size=batch * 2)
    targets = _targets_of(bundle.valid)
    with torch.no_grad():
        loss = float(run.loss_fn(torch.from_numpy(logits), torch.from_numpy(targets)))
    probs = sigmoid(logits)
    f1, per_class = macro_f1(targets, probs, cfg.eval.threshold)
    row = {"valid_loss": loss, "valid_macro_f1": f1}
    row.update({f"valid_f1_{lab}": float(v) for lab, v in zip(cfg.desed_labels, per_class, strict=True)})
    if bundle.valid_scenes is not None:
        row["valid_scenes_f1"] = score_scenes(run.model, bundle.valid_scenes, batch)
    return row, probs, targets


def _report(epoch: int, row: dict[str, Any], improved: bool, epochs: int) -> None:
    on_scenes = f"  scenes F1 {row['valid_scenes_f1']:.3f}" if "valid_scenes_f1" in row else ""
    print(
        f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}  valid loss {row['valid_loss']:.4f}  "
        f"valid macro F1 {row['valid_macro_f1']:.3f}{on_scenes}"
        f"{'  (best so far, saved)' if improved else ''}  "
        f"[{row['seconds']:.1f} s]"
    )


def _fit(cfg: Config, bundle: DataBundle, out_dir: Path, *, progress: bool, device: Any) -> TrainResult:
    """The epoch loop: fit, validate, keep the best, save; then the final checkpoint and predictions."""
    run = _start_run(cfg, bundle, device)
    tc, ckpt_path = cfg.train, out_dir / CHECKPOINT_NAME
    stopper = EarlyStopping(tc.patience)
    rows: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    start = time.perf_counter()
    for epoch in range(1, tc.epochs + 1):
        t0 = time.perf_counter()
        train_loss = fit_epoch(run.model, run.train_loader, run.optimiser, run.schedule, device=run.device,
                               channels_last=run.channels_last, loss_fn=run.loss_fn,
                               desc=f"epoch {epoch}/{tc.epochs}", progress=progress)
        row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
        scores, probs, targets = validate(run, cfg, bundle)
        row.update(scores, lr=float(run.optimiser.param_groups[0]["lr"]))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        score = row["valid_scenes_f1"] if tc.select_on == "scenes" else row["valid_macro_f1"]
        improved = stopper.step(epoch, score)
        if improved:
            best = {"state": {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()},
                    "probs": probs, "targets": targets, "f1": row["valid_macro_f1"]}
            save_checkpoint(ckpt_path, run.model, epoch=epoch, valid_macro_f1=row["valid_macro_f1"],
                            best_score=score, complete=False, **run.meta)
        if progress:
            _report(epoch, row, improved, tc.epochs)
        atomic.write_csv(pd.DataFrame(rows), out_dir / HISTORY_NAME)
        if stopper.should_stop:
            if progress:
                print(f"Early stopping: no better validation {tc.select_on} F1 for {tc.patience} epochs; "
                      f"keeping epoch {stopper.best_epoch}.")
            break
    atomic.save_npz(out_dir / PREDICTIONS_NAME, probs=best["probs"].astype(np.float32),
                    labels=best["targets"].astype(np.float32), class_names=np.asarray(cfg.desed_labels))
    # Written last, with complete=True: a run interrupted before this point is retrained next time.
    run.model.load_state_dict(best["state"])
    seconds = time.perf_counter() - start
    save_checkpoint(ckpt_path, run.model, epoch=stopper.best_epoch, valid_macro_f1=best["f1"],
                    best_score=stopper.best_score, seconds=seconds, complete=True, **run.meta)
    info = checkpoint_info(read_checkpoint(ckpt_path), ckpt_path)
    return TrainResult(history=pd.DataFrame(rows), info=info)
