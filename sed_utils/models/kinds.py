"""The model kinds: one registry entry per kind says how it is built, trained and read (notebooks 05, 08).

Everything else in the package is the same for every kind: one :class:`~sed_utils.models.detector.Detector`,
one training loop (:mod:`sed_utils.train`), one evaluation (:mod:`sed_utils.evaluate`), one ``detect``.
What differs is declared here, once:

=============  ==========================================  ==========================================
               ``chunk`` (notebook 05)                     ``frame`` (notebook 08)
=============  ==========================================  ==========================================
network        :class:`ResNetTagger`: one answer per 1 s   :class:`FrameResNet`: 80 ms frames + an
               window                                      attention-pooled clip answer
examples       ``"chunks"``: 1 s ESC-50 chunks and the 1 s  ``"scenes"``: whole 10 s training scenes
               segments of training scenes, clip targets   with frame targets (strong labels)
loss           :func:`clip_loss`: BCE of the clip logits   :func:`frame_loss`: BCE of every frame +
                                                           ``weak_weight`` x BCE of the clip logits
curve          :func:`window_curve`: windows slid by       :func:`frame_curve`: the network's frames
               ``postprocess.window_hop_seconds``
=============  ==========================================  ==========================================

The validation score that keeps an epoch is the same for every kind: macro F1 of the validation
examples' targets (segments or frames), each class at its best threshold (:mod:`sed_utils.train.loop`).

Adding a kind (say the ResNet18 trunk with a recurrent head): write its network (a module returning
the :data:`~sed_utils.models.detector.Output` dict, with a ``time_stride``) and :func:`register` a
:class:`ModelKind`; config.yml may give it a ``models.<name>`` section (else ``settings`` applies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sed_utils.config.settings import Config, MelConfig, ModelConfig
from sed_utils.features.logmel import Normaliser, build_logmel
from sed_utils.models.curves import frame_curve, window_curve
from sed_utils.models.detector import Detector, Output
from sed_utils.models.networks import FrameResNet, FrameResNetGRU, ResNetTagger

__all__ = ["EXAMPLES", "ModelKind", "register", "get_kind", "kind_names", "settings_of", "clip_loss",
           "frame_loss", "build_detector", "score_curve"]

#: The training examples a kind can ask for (built by :mod:`sed_utils.train.examples`).
EXAMPLES = ("chunks", "scenes")
Targets = dict[str, torch.Tensor]  # "clip": [B, C]; "frames": [B, T', C] for scene examples


def _bce(out: Output, name: str, target: torch.Tensor, n_frames: int | None = None) -> torch.Tensor:
    """Mean BCE of the output ``name`` against ``target`` over the reported classes, plus, when the
    targets also hold the detector's other categories (``targets: all``), the mean BCE of
    ``"other_<name>"`` against those columns: a loss of its own, so the classes' gradients keep the
    scale they have in a model of the classes alone (one mean over 50 columns divided them by 10,
    and cost the first such model 0.10 PSDS1). ``n_frames`` cuts both to that many frames."""
    logits = out[name] if n_frames is None else out[name][:, :n_frames]
    target = target if n_frames is None else target[:, :n_frames]
    c = logits.shape[-1]
    loss = nn.functional.binary_cross_entropy_with_logits(logits, target[..., :c])
    if target.shape[-1] > c and f"other_{name}" in out:
        other = out[f"other_{name}"] if n_frames is None else out[f"other_{name}"][:, :n_frames]
        loss = loss + nn.functional.binary_cross_entropy_with_logits(other, target[..., c:])
    return loss


def clip_loss(out: Output, targets: Targets, settings: ModelConfig) -> torch.Tensor:
    """Binary cross-entropy of the clip logits against the clip targets, one yes/no per class
    (multilabel), computed from logits for numerical stability (notebook 05).

    Args:
        out: the network's output; its ``"clip_logits"`` ``[B, C]`` are used (and
            ``"other_clip_logits"`` when the targets have columns for them too).
        targets: ``"clip"``: 0/1 ``[B, C]`` (or ``[B, C + K]``: every trained output).
        settings: not used (every kind's loss takes the kind's settings).

    Returns:
        The mean BCE over items and classes (plus that of the other categories), a scalar tensor.
    """
    return _bce(out, "clip_logits", targets["clip"])


def frame_loss(out: Output, targets: Targets, settings: ModelConfig) -> torch.Tensor:
    """BCE of every frame (strong labels) + ``settings.weak_weight`` x BCE of the clip logits (weak
    labels; it trains the attention pooling and pulls a clip's frames towards "class c is in here")
    (notebook 08). Frames are compared over the shorter of output and targets.

    Args:
        out: the network's output: ``"frame_logits"`` ``[B, T', C]`` and ``"clip_logits"`` ``[B, C]``
            (and the ``"other_"`` outputs, read when the targets are wider than ``C``).
        targets: ``"frames"`` 0/1 ``[B, T', C]`` and ``"clip"`` 0/1 ``[B, C]`` (or ``C + K`` columns).
        settings: gives ``weak_weight``.

    Returns:
        A scalar tensor: the mean frame BCE plus ``weak_weight`` x the mean clip BCE (each plus that of
        the other categories when targeted).
    """
    n = min(out["frame_logits"].shape[1], targets["frames"].shape[1])
    strong = _bce(out, "frame_logits", targets["frames"], n_frames=n)
    return strong + settings.weak_weight * clip_loss(out, targets, settings)


@dataclass(frozen=True)
class ModelKind:
    """How one kind of model is built, trained and read (notebooks 05, 08; see the module docstring).

    Args:
        name: the kind's name: its ``models.<name>`` config section and its run folder.
        network: the network class (or factory): ``network(n_classes, pretrained=...)`` returns a module
            giving the output dict; its ``time_stride`` attribute (mel frames per output frame, None
            for one answer per window) is read without building it.
        examples: its training examples, one of :data:`EXAMPLES`.
        loss: ``(output, targets, settings) -> scalar``.
        curve: ``(detector, audio, sample_rate, hop_seconds, end_seconds=) -> (bounds, probs)``.
        settings: its training settings when config.yml has no ``models.<name>`` section.
        about: one line for tables and messages.
    """

    name: str
    network: Callable[..., nn.Module]
    examples: str
    loss: Callable[[Output, Targets, ModelConfig], torch.Tensor]
    curve: Callable[..., tuple[np.ndarray, np.ndarray]]
    settings: ModelConfig = field(default_factory=ModelConfig)
    about: str = ""

    @property
    def time_stride(self) -> int | None:
        """Mel frames per output frame of the kind's network (None: one answer per input window)."""
        return getattr(self.network, "time_stride", None)


_REGISTRY: dict[str, ModelKind] = {}


def register(kind: ModelKind, *, replace: bool = False) -> ModelKind:
    """Add ``kind`` to the registry and return it (the built-in kinds of notebooks 05 and 08 below; a new
    kind's own module).

    Raises:
        ValueError: an unknown ``examples`` value, or the name is taken (unless ``replace``).
    """
    if kind.examples not in EXAMPLES:
        raise ValueError(f"model kind {kind.name!r}: examples must be one of {EXAMPLES}, "
                         f"got {kind.examples!r}")
    if kind.name in _REGISTRY and not replace:
        raise ValueError(f"model kind {kind.name!r} is registered already")
    _REGISTRY[kind.name] = kind
    return kind


def get_kind(kind: str | ModelKind) -> ModelKind:
    """The registered kind of that name (a :class:`ModelKind` is returned as it is; every notebook).

    Raises:
        KeyError: no kind of that name, with the names there are.
    """
    if isinstance(kind, ModelKind):
        return kind
    if kind not in _REGISTRY:
        raise KeyError(f"no model kind {kind!r}; registered: {kind_names()}")
    return _REGISTRY[kind]


def kind_names() -> list[str]:
    """The registered kinds' names, in registration order (notebook 09, the command line)."""
    return list(_REGISTRY)


def settings_of(cfg: Config, kind: str | ModelKind) -> ModelConfig:
    """The training settings of ``kind``: config.yml's ``models.<name>``, else the kind's own defaults
    (notebooks 05, 08)."""
    k = get_kind(kind)
    return cfg.models.get(k.name, k.settings)


def build_detector(kind: str | ModelKind, labels: list[str], mel: MelConfig, sample_rate: int,
                   window_seconds: float, mean: Any = 0.0, std: Any = 1.0, *,
                   pretrained: bool = False, other_labels: list[str] | tuple[str, ...] = ()) -> Detector:
    """A :class:`~sed_utils.models.detector.Detector` of ``kind`` (notebooks 05, 08; the checkpoint loader).

    Args:
        kind: a registered kind or its name.
        labels: the classes, in output order.
        mel, sample_rate: the front end's settings.
        window_seconds: the input length it trains on.
        mean, std: the TRAINING features' statistics (scalars or per mel band).
        pretrained: ImageNet weights for the ResNet18 trunk when they can be loaded.
        other_labels: categories trained as outputs after ``labels`` but never reported
            (``models.<kind>.targets: all``).
    """
    k = get_kind(kind)
    network = k.network(len(labels) + len(other_labels), pretrained=pretrained)
    return Detector(build_logmel(mel, sample_rate), Normaliser(mean, std), network, kind=k.name,
                    labels=labels, sample_rate=sample_rate, mel=mel, window_seconds=window_seconds,
                    other_labels=other_labels)


def score_curve(detector: Detector, audio: np.ndarray, sample_rate: int, *, hop_seconds: float = 0.25,
                end_seconds: float = 0.0, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The score curve of a recording, read the way the detector's kind is read (notebooks 06, 08, 09):
    ``(boundaries [T + 1] in seconds, probabilities [T, C])``. The one way the evaluation and ``detect``
    score audio.

    Args:
        detector: the model; its kind decides how it is read.
        audio: mono samples at ``sample_rate`` (resampled to the detector's rate first).
        sample_rate: their rate in Hz.
        hop_seconds: the window hop of kinds read through windows (ignored by kinds with frames).
        end_seconds: where the last frame ends when that is later than the recording's end.
        batch_size: inputs per forward pass: windows of a kind read through windows (default 128),
            blocks of a kind with frames (default 1); the scores do not depend on it.

    Returns:
        ``(boundaries [T + 1] in seconds, probabilities [T, C] float32)``.
    """
    return get_kind(detector.kind).curve(detector, audio, sample_rate, hop_seconds, end_seconds=end_seconds,
                                         batch_size=batch_size)


register(ModelKind(
    name="chunk", network=ResNetTagger, examples="chunks",
    loss=clip_loss, curve=window_curve, settings=ModelConfig(),
    about="ResNet18 on 1 s windows, one score per class and window (notebook 05)"))
register(ModelKind(
    name="frame", network=FrameResNet, examples="scenes",
    loss=frame_loss, curve=frame_curve,
    settings=ModelConfig(epochs=6, batch_size=16, train_scenes=1000),
    about="ResNet18 trunk keeping time, one score per class every 80 ms (notebook 08)"))
register(ModelKind(
    name="crnn", network=FrameResNetGRU, examples="scenes",
    loss=frame_loss, curve=frame_curve,
    settings=ModelConfig(epochs=6, batch_size=16, train_scenes=1000),
    about="the frame model with a bidirectional GRU over its frames (a CRNN, as the DCASE baselines)"))
