"""Checkpoints: a trained :class:`~sed_utils.models.detector.Detector` saved with everything needed to use it.

Why self-contained: a checkpoint holds the weights of the front end, the normaliser (the training
statistics) and the network, plus the kind, labels, sample rate, mel settings and input window the
detector was built with, the training config and, once evaluated, the **post-processing chosen on
validation data** (:class:`~sed_utils.labels.grid.PostProcessing`). Loading it needs no config file,
no dataset and no knowledge of how the features were made: :func:`load_trained` is the one loader
(the evaluation, notebook 09, ``detect``), and a copied file detects exactly as it did here.

Format: a dict saved with ``torch.save`` and read with ``weights_only=True`` (tensors, numbers,
strings, lists and dicts only, so loading cannot run code). ``format`` / ``format_version`` name it.
Version 3 holds any registered model kind; a file of an earlier version (version 2: a chunk model
in ``model/`` or a frame model in ``frame_model/``) is refused with what to delete and re-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sed_utils.config.settings import MelConfig
from sed_utils.core import atomic
from sed_utils.core.errors import CheckpointError
from sed_utils.labels.grid import PostProcessing
from sed_utils.models.detector import Detector, pick_device
from sed_utils.models.kinds import build_detector, get_kind
from sed_utils.models.precision import scoring_precision

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointInfo", "TrainedModel", "save_checkpoint", "read_checkpoint",
           "init_from_checkpoint",
           "checkpoint_info", "load_trained", "weights_digest", "store_post_processing"]

FORMAT = "sed-tutorial-detector"
#: 3: any registered model kind, one post-processing. 2: two stacks (chunk / frame); 1: a bare ResNet18.
FORMAT_VERSION = 3
_REQUIRED_KEYS = ("kind", "state_dict", "labels", "config", "sample_rate", "mel", "window_seconds", "epoch",
                  "best_score")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its model and training run, without the weights (notebooks 05-09).

    ``best_score`` is the kept epoch's validation score on ``selected_on`` (macro F1 of the
    validation examples, each class at its best threshold); ``complete`` is False while training
    is still running (a save at each improvement); ``key`` is the training key (what in the config
    made this model, :func:`sed_utils.train.training_key`); ``weights_digest`` names the score caches;
    ``post_processing`` is what the evaluation chose on validation data (None until evaluated);
    ``precision`` what the training computed in (``models.<kind>.precision`` as this machine resolved it).
    """

    path: Path
    kind: str
    labels: list[str]
    config: dict[str, Any]
    epoch: int
    best_score: float
    selected_on: str = "scenes"
    seconds: float = 0.0
    complete: bool = False
    pretrained_loaded: bool = False
    key: str = ""
    weights_digest: str = ""
    post_processing: PostProcessing | None = None
    precision: str = "float32"


@dataclass
class TrainedModel:
    """A loaded checkpoint: the detector in eval mode and what its checkpoint says (notebooks 05-09)."""

    detector: Detector
    info: CheckpointInfo

    @property
    def kind(self) -> str:
        """The registered model kind (``"chunk"``, ``"frame"``, ...)."""
        return self.detector.kind

    @property
    def labels(self) -> list[str]:
        return self.detector.labels

    @property
    def weights_key(self) -> str:
        """What names this model's score caches: the stored weights digest, or for a model never
        saved, the digest of its weights now."""
        return self.info.weights_digest or weights_digest(self.detector.state_dict())


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """16-hex digest of a state dict's names, shapes, dtypes and values (it names the score caches;
    notebooks 05-09). The weights, not the file: the file also holds the post-processing, which
    :func:`store_post_processing` rewrites without changing what the model computes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def save_checkpoint(path: Path, detector: Detector, *, config: dict[str, Any], epoch: int, best_score: float,
                    **meta: Any) -> None:
    """Write ``detector`` and its metadata to ``path`` atomically (training; notebooks 05, 08).

    Args:
        path: the file (``runs/<profile>/<kind>/best.pt``).
        detector: the model; its kind, labels, rate, mel settings and window are stored with it.
        config: the training config (``Config.to_dict()``).
        epoch, best_score: the kept epoch and its validation score.
        meta: the other :class:`CheckpointInfo` fields (``selected_on``, ``seconds``, ``complete``,
            ``pretrained_loaded``, ``key``, ``precision``).
    """
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in detector.state_dict().items()}
    atomic.torch_save({
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": detector.kind, "state_dict": state,
        "weights_digest": weights_digest(state), "labels": list(detector.labels),
        "other_labels": list(detector.other_labels),
        "sample_rate": detector.sample_rate, "mel": dataclasses.asdict(detector.mel),
        "window_seconds": detector.window_seconds, "config": config, "epoch": int(epoch),
        "best_score": float(best_score), **meta}, Path(path))


def store_post_processing(path: Path, post: PostProcessing) -> None:
    """Store the post-processing chosen on validation in the checkpoint ``path``, atomically
    (notebooks 06, 08 store it; notebook 09 and ``detect`` use it).

    Why inside the checkpoint: a model file a user copies elsewhere must carry the thresholds it was
    tuned with, or every user would have to know where the results live. Plain lists and numbers,
    so ``weights_only`` loading still works.

    Raises:
        CheckpointError: as :func:`read_checkpoint`, or ``post`` is for other classes than the model's.
    """
    ckpt = read_checkpoint(Path(path))
    if list(post.labels) != [str(x) for x in ckpt["labels"]]:
        raise CheckpointError(f"{path}: post-processing for {list(post.labels)}, but the model's classes are "
                              f"{list(ckpt['labels'])}")
    ckpt["post_processing"] = post.to_dict()
    atomic.torch_save(ckpt, Path(path))


def _format_problem(path: Path, ckpt: dict[str, Any]) -> str:
    """Why a checkpoint dict is not of this format and version, and what to do about it."""
    if "format" in ckpt and ckpt["format"] != FORMAT:
        return f"{path}: a {ckpt['format']!r} file, not a sed-tutorial checkpoint ({FORMAT!r})"
    found = ckpt.get("format_version", 1) if "state_dict" in ckpt else "unknown"
    if isinstance(found, int) and found > FORMAT_VERSION:
        return (f"{path}: checkpoint format {found}, written by a newer sed_utils than this one (format "
                f"{FORMAT_VERSION}): update sed_utils to load it")
    # an earlier version kept its models in <run folder>/model and <run folder>/frame_model
    where = (f"delete the run folder {path.parent.parent} (its model/ and frame_model/ folders)"
             if path.parent.name in ("model", "frame_model") else f"delete {path}")
    return (f"{path}: checkpoint format {found}, this version of sed_utils reads format {FORMAT_VERSION} "
            f"(one detector for every model kind). It was written by an earlier version: {where} and "
            "re-run notebooks 05 and 08.")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict of ``path``, checked: readable, of this format and version, complete keys
    (notebooks 05-09, through load_trained).

    Raises:
        FileNotFoundError: no file (the message says to train first).
        CheckpointError: damaged, not a checkpoint, or from an earlier version (the message says what
            to delete and which notebooks to re-run).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here; train one first (notebook 05 or 08, "
                                "sed_utils.train.train)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file (pickle, zip, EOF, runtime)
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(ckpt).__name__}")
    if ckpt.get("format") != FORMAT or ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(_format_problem(path, ckpt))
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; it was not written by sed_utils' "
                              "training")
    return ckpt


def checkpoint_info(ckpt: dict[str, Any], path: Path) -> CheckpointInfo:
    """The metadata of a checkpoint dict from :func:`read_checkpoint` (notebooks 05-09, through
    load_trained)."""
    post = ckpt.get("post_processing")
    return CheckpointInfo(
        path=Path(path), kind=str(ckpt["kind"]), labels=[str(x) for x in ckpt["labels"]],
        config=dict(ckpt["config"]), epoch=int(ckpt["epoch"]), best_score=float(ckpt["best_score"]),
        selected_on=str(ckpt.get("selected_on", "scenes")), seconds=float(ckpt.get("seconds", 0.0)),
        complete=bool(ckpt.get("complete", False)), pretrained_loaded=bool(ckpt.get("pretrained_loaded",
                                                                                    False)),
        key=str(ckpt.get("key", "")),
        weights_digest=str(ckpt.get("weights_digest") or weights_digest(ckpt["state_dict"])),
        post_processing=PostProcessing.from_dict(post) if post else None,
        precision=str(ckpt.get("precision", "float32")))


def _detector_from(ckpt: dict[str, Any], path: Path) -> Detector:
    """Rebuild the detector a checkpoint was saved from (its registered kind) and load its weights."""
    state = ckpt["state_dict"]
    try:
        kind = get_kind(str(ckpt["kind"]))
    except KeyError as e:
        raise CheckpointError(f"{path}: {e.args[0]} (register that kind before loading its "
                              "checkpoint)") from e
    try:
        detector = build_detector(kind, [str(x) for x in ckpt["labels"]], MelConfig(**ckpt["mel"]),
                                  int(ckpt["sample_rate"]), float(ckpt["window_seconds"]),
                                  state["normaliser.mean"], state["normaliser.std"],
                                  other_labels=[str(x) for x in ckpt.get("other_labels", [])])
        detector.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: weights do not fit a {len(ckpt['labels'])}-class {kind.name} "
                              f"detector ({e})") from e
    return detector


def load_trained(path: Path, device: torch.device | str | None = None,
                 precision: str = "auto") -> TrainedModel:
    """Load a checkpoint into its detector, in eval mode (notebooks 05-09, ``detect``).

    Args:
        path: a ``best.pt`` written by training.
        device: default :func:`~sed_utils.models.detector.pick_device` (CUDA, MPS, CPU).
        precision: ``eval.precision``: ``"auto"`` scores a model trained in bfloat16 in bfloat16 where
            ``device`` runs it natively, ``"float32"`` always in float32; the result is the detector's
            ``precision`` (:func:`~sed_utils.models.precision.scoring_precision`).

    Raises:
        FileNotFoundError, CheckpointError: as :func:`read_checkpoint`, and when the weights do not
            fit the kind's network.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    detector = _detector_from(ckpt, path)
    dev = torch.device(device) if device is not None else pick_device()
    detector.to(dev).eval()
    info = checkpoint_info(ckpt, path)
    detector.precision = scoring_precision(info.precision, precision, dev)
    return TrainedModel(detector=detector, info=info)


def _is_output_layer(name: str) -> bool:
    """A parameter of a layer with one output per class (``fc``, ``frame_head``, ``attention_head``)."""
    return name.split(".")[-2] in ("fc", "frame_head", "attention_head")


def init_from_checkpoint(model: Detector, path: Path) -> None:
    """Fine-tuning (``train.init_from``; notebook 10, ``train --init``): the network weights of ``path`` (a
    checkpoint) that fit ``model`` by name and shape, its output layers only when its classes are
    ``model``'s (same names, same order); the rest keeps its fresh initialisation. The front end and the
    normaliser stay the new data's.

    Raises:
        CheckpointError: ``path`` cannot be read, or none of its network weights fits.
    """
    try:
        ckpt = read_checkpoint(path)
    except (FileNotFoundError, CheckpointError, KeyError) as e:
        raise CheckpointError(f"train.init_from {path}: cannot start from it ({e})") from e
    own, stored = model.state_dict(), ckpt["state_dict"]
    same_classes = list(ckpt.get("labels", [])) == list(model.labels)
    fits = {k: v for k, v in stored.items()  # an output layer only for the very same classes, in order
            if k.startswith("network.") and k in own and own[k].shape == v.shape
            and (same_classes or not _is_output_layer(k))}
    if not fits:
        raise CheckpointError(f"train.init_from {path}: none of its network weights fits this model")
    model.load_state_dict(fits, strict=False)
    fresh = sorted({k.rsplit(".", 1)[0] for k in own if k.startswith("network.") and k not in fits})
    log.info(f"Starting from {path}: {len(fits)} weight tensors loaded" + (f"; fresh: {', '.join(fresh)}"
                                                                           if fresh else ""))
