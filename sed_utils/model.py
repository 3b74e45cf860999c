"""The model: a torchvision ResNet18 adapted to 1-channel log-mel spectrograms, inside a :class:`Detector`.

:class:`Detector` is what training saves and inference loads: the log-mel front end, the
normaliser with the training statistics and the ResNet18, as one ``nn.Module`` (PANNs' models
own their front end the same way). A checkpoint therefore says everything needed to go from a
waveform to class probabilities, and no caller can feed it features made another way.

Why ResNet18: a log-mel spectrogram is an image of sound (frequency up, time across), and a small
image CNN learns the local time-frequency patterns (a bark's harmonic stack, an alarm's steady
tones) well. Two changes make it fit our data:

- ``conv1`` takes 1 input channel instead of RGB: a spectrogram has one value per pixel. With
  ImageNet weights the new filter is the mean of the three RGB filters, so the pretrained edge
  detectors still respond the same way to a grey image.
- ``fc`` outputs ``n_classes`` LOGITS (no sigmoid). The sigmoid is applied by
  ``torch.nn.BCEWithLogitsLoss`` during training (it fuses sigmoid and log with the log-sum-exp
  trick, which is numerically stable where ``log(sigmoid(x))`` underflows) and by
  :func:`sed_utils.inference.predict_proba` at inference. One independent sigmoid per class, not a
  softmax, because sounds co-occur (multilabel).
"""

from __future__ import annotations

import os
import random
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from sed_utils.config import MelConfig
from sed_utils.features.logmel import LogMel, Normaliser, build_logmel

__all__ = [
    "build_resnet18",
    "Detector",
    "build_detector",
    "count_parameters",
    "describe_model",
    "pick_device",
    "set_seed",
    "cached_weights_path",
]


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet ResNet18 weights: from the torch hub cache if present, else downloaded.

    ``Weights.get_state_dict`` already looks in ``$TORCH_HOME/hub/checkpoints`` first, so a file
    copied there by hand (offline machines) is used without any network access.
    """
    return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)


def cached_weights_path() -> Path:
    """Where torch hub keeps (or would keep) the ImageNet ResNet18 file; copy it there when offline
    (notebooks 05, 06, through build_resnet18)."""
    url = ResNet18_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def build_resnet18(n_classes: int, *, pretrained: bool = False) -> nn.Module:
    """A ResNet18 with a 1-channel ``conv1`` and a ``Linear(512, n_classes)`` head producing logits
    (notebooks 05, 06, through build_detector).

    Args:
        n_classes: number of outputs (one per DESED label).
        pretrained: start from ImageNet weights when they can be loaded (hub cache or download).
            Offline the download fails fast; the model then starts from random initialisation and
            a message says so, because a tutorial run should not die for want of a nice-to-have.

    Returns:
        The model, with attribute ``pretrained_loaded`` (bool): whether ImageNet weights are in it.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    model = resnet18(weights=None)
    loaded = False
    if pretrained:
        try:
            state = _imagenet_state_dict()
        except (urllib.error.URLError, OSError, RuntimeError) as e:
            msg = (
                f"ImageNet weights could not be downloaded ({type(e).__name__}: {e}); "
                "training from random initialisation. To use them offline, copy "
                f"{os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url)} to {cached_weights_path()}."
            )
            print(msg)  # print, not logging: notebook readers must see it, and only once
        else:
            model.load_state_dict(state)
            loaded = True

    old = model.conv1
    conv1 = nn.Conv2d(
        1,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        bias=old.bias is not None,
    )
    if loaded:
        with torch.no_grad():
            # Mean over RGB: a grey image x in all three channels gives the same response as before.
            conv1.weight.copy_(old.weight.mean(dim=1, keepdim=True))
    model.conv1 = conv1
    model.fc = nn.Linear(model.fc.in_features, n_classes)
    model.pretrained_loaded = loaded
    return model


class Detector(nn.Module):
    """Waveform -> log-mel (dB) -> normalised -> ResNet18 -> one logit per class.

    ``forward`` takes log-mel features in dB (``[B, n_mels, frames]`` or ``[B, 1, n_mels,
    frames]``), because training reads them from the feature cache; :meth:`features` is the front
    end for waveforms ``[B, samples]`` at :attr:`sample_rate`, and :meth:`forward_waveform` both.
    The attributes (labels, sample rate, mel settings, window length) are saved with the weights
    by :mod:`sed_utils.checkpoint`, which rebuilds the module from them (notebooks 05, 06).
    """

    def __init__(self, logmel: LogMel, normaliser: Normaliser, classifier: nn.Module, *,
                 labels: list[str], sample_rate: int, mel: MelConfig, window_seconds: float):
        super().__init__()
        self.logmel = logmel
        self.normaliser = normaliser
        self.classifier = classifier
        self.labels = list(labels)
        self.sample_rate = int(sample_rate)
        self.mel = mel
        self.window_seconds = float(window_seconds)

    def forward(self, features_db: torch.Tensor) -> torch.Tensor:
        x = features_db.unsqueeze(1) if features_db.dim() == 3 else features_db
        return self.classifier(self.normaliser(x))

    def features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel in dB ``[B, n_mels, frames]`` of waveforms ``[B, samples]`` (the cache's recipe)."""
        return self.logmel(waveforms)

    def forward_waveform(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, n_classes]`` straight from waveforms ``[B, samples]``."""
        return self(self.features(waveforms))


def build_detector(
    labels: list[str],
    mel: MelConfig,
    sample_rate: int,
    window_seconds: float,
    mean: float | np.ndarray = 0.0,
    std: float | np.ndarray = 1.0,
    *,
    pretrained: bool = False,
) -> Detector:
    """A :class:`Detector` for ``labels``: front end from ``mel``, normaliser from the TRAINING
    ``mean``/``std``, and :func:`build_resnet18` (notebook 05; training and the checkpoint loader)."""
    return Detector(
        build_logmel(mel, sample_rate),
        Normaliser(mean, std),
        build_resnet18(len(labels), pretrained=pretrained),
        labels=labels,
        sample_rate=sample_rate,
        mel=mel,
        window_seconds=window_seconds,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (notebook 05's model summary)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe_model(model: nn.Module, input_shape: tuple[int, ...]) -> pd.DataFrame:
    """One row per top-level block: its output shape for one input and its parameter count (notebook 05).

    Shows how the spectrogram shrinks on its way through the network (each stage halves time and
    frequency, 32x overall) before global average pooling turns it into 512 numbers, and where
    the parameters are. ``input_shape`` is one item's shape, e.g. ``(1, 64, 101)``.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        child.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name, child in model.named_children()
    ]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows = [
        {
            "block": name,
            "output shape": " x ".join(str(d) for d in shapes.get(name, ())),
            "parameters": sum(p.numel() for p in child.parameters()),
        }
        for name, child in model.named_children()
    ]
    return pd.DataFrame(rows)


def pick_device() -> torch.device:
    """The fastest device available: CUDA, then Apple MPS, then the CPU
    (notebook 05; notebook 06 through load_trained)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch, and ask cuDNN for deterministic kernels
    (notebook 05, directly and through train_model).

    On the CPU this makes a run repeatable bit for bit; on a GPU some kernels stay
    non-deterministic, so expect small differences there. ``cudnn.benchmark`` is switched off
    because its kernel choice depends on timing.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
