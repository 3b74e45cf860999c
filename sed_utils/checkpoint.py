"""Checkpoints: a trained :class:`~sed_utils.model.Detector` saved with everything needed to use it.

Why self-contained: a checkpoint holds the weights of the front end, the normaliser (the training
statistics) and the ResNet18, plus the labels, sample rate, mel settings and window length the
detector was built with, and the training config. Loading it needs no config file, no dataset and
no knowledge of how the features were made: :func:`load_trained` is the one loader, used by the
evaluation (notebook 06) and by anyone running the model on their own audio.

Format: a dict saved with ``torch.save`` and read with ``weights_only=True`` (tensors, numbers,
strings, lists and dicts only, so loading cannot run code). ``format`` / ``format_version`` name
it; a file without them was written before the detector existed (a bare ResNet18 whose inputs were
normalised outside it) and is refused with a message saying what to delete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sed_utils.config import MelConfig
from sed_utils.core import atomic
from sed_utils.core.errors import CheckpointError
from sed_utils.frame_model import FrameDetector, build_frame_detector
from sed_utils.model import Detector, build_detector, pick_device

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointInfo",
    "TrainedModel",
    "save_checkpoint",
    "read_checkpoint",
    "checkpoint_info",
    "load_trained",
    "weights_digest",
    "store_post_processing",
]

FORMAT = "sed-tutorial-detector"
#: 2: the whole Detector (front end + normaliser + ResNet18). 1 (no ``format`` key): ResNet18 only.
FORMAT_VERSION = 2
_REQUIRED_KEYS = ("state_dict", "labels", "config", "sample_rate", "mel", "window_seconds", "epoch",
                  "valid_macro_f1")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its training run, without the weights (notebooks 05, 06)."""

    path: Path
    labels: list[str]
    config: dict[str, Any]
    epoch: int
    valid_macro_f1: float  # the kept epoch's macro F1 on the clean validation chunks (eval.threshold)
    selected_on: str = "chunks"  # what picked the epoch (train.select_on)
    best_score: float | None = None  # its score there (chunk F1, or validation-scene F1)
    seconds: float = 0.0
    complete: bool = False  # False while training is still running (a per-epoch save)
    pretrained_loaded: bool = False
    n_mels: int | None = None
    frames: int | None = None
    #: digest of the weights only: names the score caches, which must survive
    #: :func:`store_post_processing` rewriting the file
    weights_digest: str = ""
    #: name -> post-processing chosen on validation data (thresholds, median filters): ``"segments"``
    #: from notebook 06, ``"events"`` from notebook 08; :func:`sed_utils.detection.detect` reads it
    post_processing: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class TrainedModel:
    """A loaded checkpoint: the detector in eval mode and what its checkpoint says (notebooks 05, 06)."""

    detector: Detector | FrameDetector
    info: CheckpointInfo

    @property
    def kind(self) -> str:
        """``"chunk"`` (the 1 s window classifier of notebook 05) or ``"frame"`` (notebook 08)."""
        return getattr(self.detector, "kind", "chunk")

    @property
    def labels(self) -> list[str]:
        return self.detector.labels

    @property
    def weights_key(self) -> str:
        """What names this model's score caches (notebooks 06, 08): the stored weights digest, or
        for a model never saved, the digest of its weights now."""
        return self.info.weights_digest or weights_digest(self.detector.state_dict())


def save_checkpoint(path: Path, detector: Detector | FrameDetector, *, config: dict[str, Any], epoch: int,
                    valid_macro_f1: float, **meta: Any) -> None:
    """Write ``detector`` and its metadata to ``path`` atomically (training, notebook 05).

    ``meta`` holds the other :class:`CheckpointInfo` fields (``selected_on``, ``best_score``,
    ``seconds``, ``complete``, ``pretrained_loaded``, ``n_mels``, ``frames``).
    """
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in detector.state_dict().items()}
    atomic.torch_save(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": getattr(detector, "kind", "chunk"),
            "state_dict": state,
            "weights_digest": weights_digest(state),
            "labels": list(detector.labels),
            "sample_rate": detector.sample_rate,
            "mel": dataclasses.asdict(detector.mel),
            "window_seconds": detector.window_seconds,
            "config": config,
            "epoch": int(epoch),
            "valid_macro_f1": float(valid_macro_f1),
            **meta,
        },
        Path(path),
    )


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """16-hex digest of a state dict's names, shapes, dtypes and values (notebooks 05-09: it names
    the score caches). The weights, not the file: the file also holds the post-processing, which
    :func:`store_post_processing` rewrites without changing what the model computes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def store_post_processing(path: Path, name: str, post: dict[str, Any]) -> None:
    """Add (or replace) the post-processing ``name`` in the checkpoint ``path``, atomically
    (notebooks 06 and 08 store what they chose on validation; notebook 09 and ``detect`` use it).

    Why inside the checkpoint: a model file a user copies elsewhere must carry the thresholds it
    was tuned with, or every user would have to know where ``results.json`` lives. ``post`` holds
    json-able values only (lists, numbers, strings), so ``weights_only`` loading still works."""
    ckpt = read_checkpoint(Path(path))
    stored = dict(ckpt.get("post_processing") or {})
    stored[name] = json.loads(json.dumps(post))  # plain lists and numbers, or a clear TypeError here
    ckpt["post_processing"] = stored
    atomic.torch_save(ckpt, Path(path))


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict of ``path``, checked: readable, of this format and version, complete keys
    (notebooks 05, 06, through load_trained).

    Raises:
        FileNotFoundError: no file (the message says to train first).
        CheckpointError: damaged, not a checkpoint, or from an older version (the message says to
            delete the model folder and retrain).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here; train one first (notebook 05, train_model)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file (pickle, zip, EOF, runtime)
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(ckpt).__name__}")
    if ckpt.get("format") != FORMAT or ckpt.get("format_version") != FORMAT_VERSION:
        found = ckpt.get("format_version", 1) if "state_dict" in ckpt else "unknown"
        raise CheckpointError(
            f"{path}: checkpoint format {found}, this version of sed_utils reads format {FORMAT_VERSION} "
            "(a Detector with its log-mel front end and normaliser inside). It was written by an older "
            f"version: delete the folder {path.parent} and re-run notebook 05 (train_model) to retrain."
        )
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; it was not written by train_model")
    return ckpt


def checkpoint_info(ckpt: dict[str, Any], path: Path) -> CheckpointInfo:
    """The metadata of a checkpoint dict from :func:`read_checkpoint` (the one conversion; notebooks 05, 06,
    through load_trained)."""
    valid_f1 = float(ckpt["valid_macro_f1"])
    return CheckpointInfo(
        path=Path(path),
        labels=[str(x) for x in ckpt["labels"]],
        config=dict(ckpt["config"]),
        epoch=int(ckpt["epoch"]),
        valid_macro_f1=valid_f1,
        selected_on=str(ckpt.get("selected_on", "chunks")),
        best_score=float(ckpt.get("best_score", valid_f1)),
        seconds=float(ckpt.get("seconds", 0.0)),
        complete=bool(ckpt.get("complete", False)),
        pretrained_loaded=bool(ckpt.get("pretrained_loaded", False)),
        n_mels=ckpt.get("n_mels"),
        frames=ckpt.get("frames"),
        weights_digest=str(ckpt.get("weights_digest") or weights_digest(ckpt["state_dict"])),
        post_processing=dict(ckpt.get("post_processing") or {}),
    )


def _detector_from(ckpt: dict[str, Any], path: Path) -> Detector | FrameDetector:
    """Rebuild the Detector (or FrameDetector) a checkpoint was saved from and load its weights.

    ``model`` names which; a checkpoint written before the frame model existed has no ``model``
    key and holds a chunk Detector."""
    state = ckpt["state_dict"]
    kind = ckpt.get("model", "chunk")
    if kind not in ("chunk", "frame"):
        raise CheckpointError(f"{path}: unknown model kind {kind!r} (expected 'chunk' or 'frame')")
    build = build_frame_detector if kind == "frame" else build_detector
    try:
        detector = build(
            [str(x) for x in ckpt["labels"]], MelConfig(**ckpt["mel"]), int(ckpt["sample_rate"]),
            float(ckpt["window_seconds"]), state["normaliser.mean"], state["normaliser.std"],
        )
        detector.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        n = len(ckpt["labels"])
        raise CheckpointError(f"{path}: weights do not fit a {n}-class {kind} Detector ({e})") from e
    return detector


def load_trained(path: Path, device: torch.device | str | None = None) -> TrainedModel:
    """Load a checkpoint into a :class:`~sed_utils.model.Detector` in eval mode (notebooks 05, 06).

    ``device`` defaults to :func:`~sed_utils.model.pick_device` (CUDA, MPS, CPU). Raises as
    :func:`read_checkpoint` does, and :class:`CheckpointError` when the weights do not fit.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    detector = _detector_from(ckpt, path)
    detector.to(torch.device(device) if device is not None else pick_device()).eval()
    return TrainedModel(detector=detector, info=checkpoint_info(ckpt, path))
