"""The one training loop, for every model kind: fit, validate, keep the best, resume (notebooks 05, 08).

What :func:`train` does, and why:

- Loss: the kind's (:mod:`sed_utils.models.kinds`): binary cross-entropy with logits, one yes/no per
  class (multilabel), on clips, or on frames plus clips.
- AdamW (``train.lr``, ``train.weight_decay``) with a cosine schedule per batch
  (``train.lr_schedule``): large steps first, ever smaller ones later, so the last epochs settle.
- Model selection: after each epoch the model scores every validation set of its data (validation
  folds only; the test set is never looked at): loss, and macro F1 of the targets
  (segments or frames), each class at its best threshold. The set named by ``models.<kind>.select_on``
  keeps the epoch (``"scenes"``: the validation scenes; ``"chunks"``: the clean validation chunks).
  ``train.patience`` > 0 stops after that many epochs without a better score.
- Outputs (``cfg.paths``): ``best.pt`` written at every improvement and marked complete at the end
  (see :mod:`sed_utils.models.checkpoint`), ``history.csv`` (one row per epoch), and ``last.pt``, the
  whole training state after each epoch: an interrupted run (Ctrl-C, a closed laptop) resumes from its
  last finished epoch with the same result as an uninterrupted one. A finished run with the same
  training key (:func:`training_key`) is returned without training.

The loop reads as its steps: :func:`fit_epoch` (one pass over the training data, which notebook 05
writes out by hand), :func:`validate`, :func:`train`'s loop over epochs. torchrun: :mod:`.distributed`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from sed_utils.config.settings import Config, key_view
from sed_utils.core import atomic
from sed_utils.core.errors import CheckpointError
from sed_utils.core.progress import tqdm
from sed_utils.metrics.f1 import macro_f1_at_chosen_thresholds
from sed_utils.models.checkpoint import (
    CheckpointInfo,
    checkpoint_info,
    init_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from sed_utils.models.curves import predict, sigmoid, to_device
from sed_utils.models.detector import Detector, pick_device, set_seed
from sed_utils.models.kinds import ModelKind, build_detector, get_kind, settings_of
from sed_utils.models.precision import autocast, resolve_precision, scoring_precision
from sed_utils.train import distributed
from sed_utils.train.data import TrainingData, training_data
from sed_utils.train.examples import ExampleDataset, Examples, seed_worker

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "EarlyStopping", "training_key", "fit_epoch", "validate", "train"]

STATE_FORMAT = "sed-tutorial-training-state"


@dataclass
class TrainResult:
    """What :func:`train` produced, or what a skipped re-run found on disk (notebooks 05, 08).

    ``resumed_from`` is the last finished epoch an interrupted run was resumed after (0: from scratch).
    """

    history: pd.DataFrame
    info: CheckpointInfo
    skipped: bool = False
    resumed_from: int = 0

    @property
    def checkpoint(self) -> Path:
        return self.info.path

    @property
    def best_epoch(self) -> int:
        return self.info.epoch

    @property
    def best_score(self) -> float:
        return self.info.best_score

    @property
    def selected_on(self) -> str:
        return self.info.selected_on

    @property
    def seconds(self) -> float:
        return self.info.seconds


@dataclass
class EarlyStopping:
    """Track the best validation score and say when to stop (notebook 05).

    An epoch counts as better only if its score is strictly higher, so the earliest of equally good
    epochs is kept. ``patience <= 0`` disables stopping early.
    """

    patience: int
    best_score: float = float("-inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = field(default=False, repr=False)

    def step(self, epoch: int, score: float) -> bool:
        """Record an epoch's score; return True when it is a new best."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            return True
        self.bad_epochs += 1
        if self.patience > 0 and self.bad_epochs >= self.patience:
            self.stopped = True
        return False

    @property
    def should_stop(self) -> bool:
        return self.stopped


def training_key(cfg: Config, kind: str | ModelKind) -> str:
    """Exactly the config that decides the model ``kind`` trains into, as text: equal keys, equal models
    (notebooks 05, 08 re-run without training; the benchmarks).

    It holds the kind's ``models.<kind>``, the shared ``train`` and ``augment``, the features, classes,
    sample rate, seed, data, the training and validation folds of the test set in use, the validation
    scenes and what the kind's examples are made with (all of ``chunking`` for chunk examples, its
    silence level for scenes), and with ``train.init_from`` the starting checkpoint's weights digest.
    It also holds ``scenes.train_*`` and ``eval.precision`` (the validation's arithmetic) when not default.
    Other evaluation settings, the test folds and the other kinds' settings never retrain.
    """
    k = get_kind(kind)
    chunking = dataclasses.asdict(cfg.chunking)
    view = {
        "kind": k.name, "model": key_view("models", settings_of(cfg, k)),
        "train": key_view("train", cfg.train),
        "augment": key_view("augment", cfg.augment), "features": key_view("features", cfg.features),
        "sample_rate": cfg.audio.sample_rate, "classes": cfg.classes, "seed": cfg.seed,
        "data_root": str(cfg.data_root), "synthetic": cfg.synthetic, "scene_recipe": cfg.scene_recipe,
        "folds": {"train": list(cfg.train_folds), "valid": list(cfg.valid_folds)},
        "valid_scenes": {"n": cfg.scenes.valid, "seed": cfg.scenes.seed},
        "chunking": chunking if k.examples == "chunks" else {"silence_db": chunking["silence_db"]},
    }
    scenes = key_view("scenes", cfg.scenes)
    extra = {"train_scenes": {n: v for n, v in scenes.items() if n.startswith("train_")},
             "validated_in": cfg.eval.precision if cfg.eval.precision != "auto" else None}
    view.update({n: v for n, v in extra.items() if v})  # neutral values: the keys of earlier models stay
    if cfg.train.init_from:  # the starting weights: a checkpoint retrained at that path trains anew
        view["init_weights"] = read_checkpoint(Path(cfg.train.init_from))["weights_digest"]
    return json.dumps(view, sort_keys=True, default=str)


def _targets_to(targets: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: t.to(device, dtype=torch.float32, non_blocking=True) for name, t in targets.items()}


def fit_epoch(model: nn.Module, loader: DataLoader, optimiser: torch.optim.Optimizer, schedule: Any = None, *,
              loss_fn: Any, device: torch.device | str = "cpu", channels_last: bool = False,
              precision: str = "float32", desc: str = "", progress: bool = True) -> float:
    """One pass over ``loader``, one optimiser step per batch (and a ``schedule`` step, when given)
    (notebook 05 writes this loop out by hand and checks that both give the same weights).

    Args:
        model: the detector; its output dict goes to ``loss_fn``.
        loader: batches of ``(x, targets)`` (:class:`~sed_utils.train.ExampleDataset`).
        optimiser, schedule: the optimiser and an optional per-batch learning-rate schedule.
        loss_fn: ``(output, targets) -> scalar`` (the kind's loss with its settings).
        device, channels_last: where the batches go, and their memory layout (faster convolutions
            on CPU and CUDA; the arithmetic's meaning is unchanged).
        precision: ``"float32"``, or ``"bfloat16"``: the forward pass under ``torch.autocast`` (matrix
            products and convolutions in bfloat16, the loss and the weights in float32; on a CPU with
            AVX512-BF16 or AMX, and on recent GPUs, much faster).
        desc, progress: the progress bar.

    Returns:
        The mean training loss over the epoch's items.
    """
    device = torch.device(device)
    model.train()
    total, n = 0.0, 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False)
    for x, targets in bar:
        x, targets = to_device(x, device, channels_last), _targets_to(targets, device)
        optimiser.zero_grad(set_to_none=True)
        with autocast(precision, device):
            loss = loss_fn(model(x), targets)
        loss.backward()
        optimiser.step()
        if schedule is not None:
            schedule.step()
        total += float(loss.detach()) * len(x)
        n += len(x)
        bar.set_postfix(loss=f"{total / n:.4f}", refresh=False)  # shown at the next update: no extra redraws
    return total / max(n, 1)


def validate(model: Detector, valid: dict[str, Examples], loss_fn: Any, labels: list[str], select: str,
             batch_size: int) -> dict[str, float]:
    """The epoch's validation scores (notebooks 05, 08, through :func:`train`).

    Per validation set: ``valid_<set>_loss`` (the kind's loss) and ``valid_<set>_f1``, the macro F1 of
    its targets (frames when the set has frame targets, else clips), each class at its best
    threshold; and ``valid_f1_<label>`` per class on the selection set ``select``. Uses
    :func:`sed_utils.models.predict`, the loop the evaluation uses, in the model's ``precision``.

    Args:
        model: the detector being trained (its train/eval mode is restored afterwards).
        valid: the validation sets by name.
        loss_fn: ``(output, targets) -> scalar`` (the kind's loss with its settings).
        labels: the classes, in output order.
        select: the name of the set that selects the epoch.
        batch_size: items per forward pass.

    Returns:
        ``{column: value}``: the entries above, one row of the training history.
    """
    row: dict[str, float] = {}
    for name, examples in valid.items():
        out = predict(model, np.asarray(examples.features, dtype=np.float32), batch_size=batch_size)
        targets = {"clip": np.asarray(examples.clip, dtype=np.float32)}
        if examples.frames is not None:
            targets["frames"] = np.asarray(examples.frames, dtype=np.float32)
        with torch.no_grad():
            row[f"valid_{name}_loss"] = float(loss_fn({k: torch.from_numpy(v) for k, v in out.items()},
                                                      {k: torch.from_numpy(v) for k, v in targets.items()}))
        if examples.frames is not None:
            n = min(out["frame_logits"].shape[1], targets["frames"].shape[1])
            probs = sigmoid(out["frame_logits"][:, :n]).reshape(-1, len(labels))
            truth = targets["frames"][:, :n].reshape(-1, len(labels))
        else:
            probs, truth = sigmoid(out["clip_logits"]), targets["clip"]
        f1, per_class, _ = macro_f1_at_chosen_thresholds(truth, probs)
        row[f"valid_{name}_f1"] = f1
        if name == select:
            row.update({f"valid_f1_{lab}": float(v) for lab, v in zip(labels, per_class, strict=True)})
    return row


@dataclass
class _Run:
    """What one training run holds while it loops."""

    kind: ModelKind
    model: Detector
    net: nn.Module  # what fit_epoch steps: the model, or the model in DistributedDataParallel
    optimiser: torch.optim.Optimizer
    schedule: Any
    loader: DataLoader
    dataset: ExampleDataset
    device: torch.device
    channels_last: bool
    precision: str
    loss_fn: Any
    select: str
    meta: dict[str, Any]


def _start(cfg: Config, k: ModelKind, data: TrainingData, key: str, dev: torch.device) -> _Run:
    """Seed, build the loader, the detector and the optimiser (in that order: it fixes the random draws)."""
    tc, settings = cfg.train, settings_of(cfg, k)
    set_seed(cfg.seed)
    # channels_last: ~15% faster per step on 2 CPU cores (measured), CUDA's fast path; patchy on MPS (off)
    channels_last = bool(tc.channels_last) and dev.type in ("cpu", "cuda")
    if distributed.rank() > 0:  # each process its own augmentation draws
        data.train.seed = int(np.random.SeedSequence([cfg.seed, distributed.rank()]).generate_state(1)[0])
    data.train.reseed()
    train_set: Any = data.train
    if settings.max_train_chunks > 0 and len(train_set) > settings.max_train_chunks:
        keep = np.random.default_rng(cfg.seed).permutation(len(train_set))[:settings.max_train_chunks]
        train_set = Subset(train_set, sorted(int(i) for i in keep))
    options: dict[str, Any] = dict(num_workers=tc.num_workers, pin_memory=dev.type == "cuda")
    if tc.num_workers > 0:
        options.update(worker_init_fn=seed_worker, persistent_workers=True)
    share = distributed.sampler(train_set, cfg.seed)  # torchrun: this process's share
    loader = DataLoader(train_set, batch_size=settings.batch_size, shuffle=share is None, sampler=share,
                        generator=torch.Generator().manual_seed(cfg.seed), **options)
    model = build_detector(k, cfg.desed_labels, cfg.features, cfg.audio.sample_rate, data.window_seconds,
                           data.mean, data.std, pretrained=tc.pretrained,
                           other_labels=data.other_labels).to(dev)
    if tc.init_from:
        init_from_checkpoint(model, Path(tc.init_from))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.epochs * len(loader))
                if tc.lr_schedule == "cosine" else None)
    select = settings.select_on if k.examples == "chunks" else "scenes"
    if select not in data.valid:
        raise ValueError(f"{k.name}: select_on {select!r} is not one of its validation sets "
                         f"{list(data.valid)}")
    meta = {"config": cfg.to_dict(), "key": key, "selected_on": select,
            "pretrained_loaded": bool(getattr(model.network, "pretrained_loaded", False))}
    precision = resolve_precision(settings.precision, dev)
    meta["precision"] = precision
    model.precision = scoring_precision(precision, cfg.eval.precision, dev)  # validated as it is scored
    return _Run(k, model, distributed.wrap(model, dev), optimiser, schedule, loader, data.train, dev,
                channels_last, precision, partial(k.loss, settings=settings), select, meta)


def _save_state(path: Path, run: _Run, epoch: int, rows: list[dict], stopper: EarlyStopping,
                seconds: float) -> None:
    """The whole training state after ``epoch``, so an interrupted run resumes exactly here."""
    atomic.torch_save({
        "format": STATE_FORMAT, "key": run.meta["key"], "epoch": epoch, "seconds": seconds, "history": rows,
        "model": {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()},
        "optimiser": run.optimiser.state_dict(),
        "schedule": run.schedule.state_dict() if run.schedule is not None else None,
        "stopper": dataclasses.asdict(stopper), "torch_rng": torch.get_rng_state(),
        "loader_rng": run.loader.generator.get_state(), "data_rng": run.dataset.rng_state()}, path)


def _resume(path: Path, run: _Run) -> tuple[int, list[dict], EarlyStopping, float] | None:
    """Restore the state :func:`_save_state` wrote, if it belongs to this run (same training key)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT or state.get("key") != run.meta["key"]:
            return None
        run.model.load_state_dict(state["model"])
        run.optimiser.load_state_dict(state["optimiser"])
        if run.schedule is not None:
            run.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        run.loader.generator.set_state(state["loader_rng"])
        run.dataset.set_rng_state(state["data_rng"])
    except (RuntimeError, KeyError, TypeError, ValueError, OSError, EOFError) as e:
        log.warning(f"Not resuming from {path} ({type(e).__name__}: {e}); training from the start.")
        return None
    stopper = EarlyStopping(**state["stopper"])
    return int(state["epoch"]), list(state["history"]), stopper, float(state["seconds"])


def _report(run: _Run, epoch: int, epochs: int, row: dict[str, Any], improved: bool) -> None:
    sets = "  ".join(f"{name} loss {row[f'valid_{name}_loss']:.4f} F1 {row[f'valid_{name}_f1']:.3f}"
                     for name in sorted(n[6:-3] for n in row if n.startswith("valid_") and n.endswith("_f1")
                                        and not n.startswith("valid_f1_")))
    log.info(f"{run.kind.name} epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f}  valid {sets}"
             f"{'  (best so far, saved)' if improved else ''}  [{row['seconds']:.1f} s]")


def _fit(cfg: Config, k: ModelKind, data: TrainingData, key: str, *, progress: bool,
         device: torch.device) -> TrainResult:
    """The epoch loop: fit, validate, keep the best, save the state; then the final checkpoint (under
    torchrun: validated and saved by process 0, see :mod:`sed_utils.train.distributed`)."""
    main, progress = distributed.is_main(), progress and distributed.is_main()
    run = _start(cfg, k, data, key, device)
    settings, paths = settings_of(cfg, k), cfg.paths
    best_path, last_path = paths.checkpoint(k.name), paths.last_state(k.name)
    stopper, rows, done, seconds = EarlyStopping(cfg.train.patience), [], 0, 0.0
    if best_path.is_file() and last_path.is_file():  # without best.pt there is nothing to resume to
        resumed = _resume(last_path, run)
        if resumed is not None:
            done, rows, stopper, seconds = resumed
            log.info(f"Resuming {k.name} training after epoch {done} of {settings.epochs} ({last_path}).")
        else:  # a restore that failed halfway may have changed the run: start it afresh
            run = _start(cfg, k, data, key, device)
    batch = settings.batch_size * 2
    for epoch in range(done + 1, settings.epochs + 1):
        if stopper.should_stop:
            break
        t0 = time.perf_counter()
        if hasattr(run.loader.sampler, "set_epoch"):  # torchrun: a new share of the examples each epoch
            run.loader.sampler.set_epoch(epoch)
        loss = fit_epoch(run.net, run.loader, run.optimiser, run.schedule, loss_fn=run.loss_fn,
                         device=run.device, channels_last=run.channels_last, precision=run.precision,
                         desc=f"{k.name} epoch {epoch}/{settings.epochs}", progress=progress)
        distributed.check_replicas(run.model, f"after epoch {epoch}")
        row: dict[str, Any] = distributed.broadcast(main and {  # process 0's (its train loss: its share's)
            "epoch": epoch, "train_loss": loss,
            **validate(run.model, data.valid, run.loss_fn, cfg.desed_labels, run.select, batch),
            "lr": float(run.optimiser.param_groups[0]["lr"]), "seconds": time.perf_counter() - t0})
        rows.append(row)
        seconds += row["seconds"]
        improved = stopper.step(epoch, row[f"valid_{run.select}_f1"])
        if main:
            if improved:
                save_checkpoint(best_path, run.model, epoch=epoch, best_score=stopper.best_score,
                                complete=False, seconds=seconds, **run.meta)
            atomic.write_csv(pd.DataFrame(rows), paths.history(k.name))
            _save_state(last_path, run, epoch, rows, stopper, seconds)
        if progress:
            _report(run, epoch, settings.epochs, row, improved)
        if stopper.should_stop and progress:
            log.info(f"Early stopping: no better validation {run.select} F1 for {cfg.train.patience} epochs; "
                     f"keeping epoch {stopper.best_epoch}.")
    # Marked complete last: a run interrupted before this point resumes (or retrains) next time.
    if main:
        run.model.load_state_dict(read_checkpoint(best_path)["state_dict"])
        save_checkpoint(best_path, run.model, epoch=stopper.best_epoch, best_score=stopper.best_score,
                        seconds=seconds, complete=True, **run.meta)
        last_path.unlink(missing_ok=True)
    distributed.barrier()  # the others read what process 0 wrote
    return TrainResult(pd.DataFrame(rows), checkpoint_info(read_checkpoint(best_path), best_path),
                       resumed_from=done)


def _finished(cfg: Config, k: ModelKind, key: str) -> TrainResult | None:
    """The saved result of ``k`` if it is complete and was trained with exactly this key."""
    ckpt_path, hist_path = cfg.paths.checkpoint(k.name), cfg.paths.history(k.name)
    if not (ckpt_path.is_file() and hist_path.is_file()):
        return None
    try:
        info = checkpoint_info(read_checkpoint(ckpt_path), ckpt_path)
        history = pd.read_csv(hist_path)
    except CheckpointError as e:
        log.warning(f"Not reusing the saved model ({e}); training again.")
        return None
    except (OSError, ValueError):
        return None  # damaged: train again
    if not info.complete or info.key != key:
        return None
    return TrainResult(history=history, info=info, skipped=True)


def train(cfg: Config, kind: str | ModelKind, *, data: TrainingData | None = None, progress: bool = True,
          device: torch.device | str | None = None, reuse_from: Config | None = None) -> TrainResult:
    """Train a model of ``kind``, keep its best epoch, save it (notebooks 05, 07, 08; the benchmarks).

    Args:
        cfg: the config (``train``, ``models.<kind>``, ``augment``, the folds, the seed).
        kind: a registered model kind or its name (``"chunk"``, ``"frame"``).
        data: its :class:`~sed_utils.train.TrainingData` (None: :func:`sed_utils.train.training_data`).
        progress: a progress bar per epoch and a summary line per epoch.
        device: default :func:`~sed_utils.models.pick_device` (CUDA, MPS, CPU).
        reuse_from: another config (notebook 07: notebook 05's) whose finished model is copied into this
            config's run folder instead of training, when its :func:`training_key` is this one's (the
            same folds, recipe and seed: the same model).

    Returns:
        A :class:`TrainResult`. A finished run with the same :func:`training_key` in ``cfg.paths`` is
        returned without training (``skipped=True``): delete the folder or change the config to train
        again. An interrupted run resumes after its last finished epoch (``resumed_from``). One
        training per model folder at a time: a second run waits for the first
        (:func:`sed_utils.core.locks.folder_lock`), then returns its model. Under ``torchrun
        --nproc_per_node=N`` the N processes train one model together (:mod:`sed_utils.train.distributed`).

    Raises:
        ValueError: ``data`` was built for another kind, or a training set is empty.
    """
    k = get_kind(kind)
    key = training_key(cfg, k)
    dev = distributed.setup(torch.device(device) if device is not None else pick_device())
    done = _finished(cfg, k, key)
    if done is None and reuse_from is not None:
        with distributed.main_first():
            done = _adopt(reuse_from, cfg, k, key) if distributed.is_main() else _finished(cfg, k, key)
    if done is None:  # one training per model folder: a second run waits, then finds the model finished
        with distributed.lock_on_main(cfg.paths.model_dir(k.name), f"training the {k.name} model"):
            if distributed.broadcast(_finished(cfg, k, key) is None):  # process 0's view decides
                return _train_locked(cfg, k, key, data, progress, dev)
            done = _finished(cfg, k, key)
    log.info(f"Found a finished {k.name} model trained with this exact config: {done.checkpoint} (epoch "
             f"{done.best_epoch}, validation {done.selected_on} F1 {done.best_score:.3f}). Skipping "
             "training; delete that folder or change the config to retrain.")
    return done


def _adopt(source: Config, cfg: Config, k: ModelKind, key: str) -> TrainResult | None:
    """``source``'s finished ``k`` model copied into ``cfg``'s run folder when it was trained with
    exactly ``key``; None otherwise."""
    found = _finished(source, k, key)
    if found is None:
        return None
    with distributed.lock_on_main(cfg.paths.model_dir(k.name), f"copying the {k.name} model"):
        for src, dst in ((source.paths.history(k.name), cfg.paths.history(k.name)),
                         (source.paths.checkpoint(k.name), cfg.paths.checkpoint(k.name))):
            atomic.write_bytes(dst, src.read_bytes())
    log.info(f"Reusing the {k.name} model of {found.checkpoint}: it was trained with exactly this config "
             f"(folds {list(cfg.train_folds)} / {list(cfg.valid_folds)}), so training again would repeat it.")
    return _finished(cfg, k, key)


def _train_locked(cfg: Config, k: ModelKind, key: str, data: TrainingData | None, progress: bool,
                  device: torch.device) -> TrainResult:
    if data is None:
        with distributed.main_first():  # the caches are built once, then read
            data = training_data(cfg, k, progress=progress and distributed.is_main())
    if data.kind != k.name:
        raise ValueError(f"train({k.name!r}): the data was built for the {data.kind!r} model")
    if len(data.train) == 0 or any(len(v) == 0 for v in data.valid.values()):
        raise ValueError(f"{k.name}: an empty training or validation set; check the folds "
                         f"{cfg.train_folds} / {cfg.valid_folds} and the scene counts")
    cfg.paths.model_dir(k.name).mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    try:
        return _fit(cfg, k, data, key, progress=progress, device=device)
    finally:
        torch.set_num_threads(old_threads)
