"""The :class:`Detector`: waveform -> log-mel -> normalised -> network, as one module (notebooks 05-09).

A detector is what training saves and everything else loads: the log-mel front end, the normaliser
with the TRAINING statistics and the network (:mod:`sed_utils.models.networks`), plus what it needs
to be used alone: its kind (``"chunk"``, ``"frame"``, ...; :mod:`sed_utils.models.kinds` says how
each is trained and read), the labels, the sample rate, the mel settings and the input window it was
trained on. PANNs' models own their front end the same way: a checkpoint goes from a waveform to
class scores with nothing outside it, and no caller can feed it features made another way.

Its output is the networks' one contract: ``{"clip_logits": [B, C]}``, plus ``"frame_logits"``
``[B, T', C]`` for a network that keeps time (:attr:`Detector.time_stride` mel frames per output frame).
A detector trained with outputs for more categories than it reports (``models.frame.targets: all``:
the other ESC-50 categories, :attr:`Detector.other_labels`) returns those as ``"other_clip_logits"``
and ``"other_frame_logits"``: the training loss reads them, everything else reads the ``C`` classes.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from sed_utils.config.settings import MelConfig
from sed_utils.features.logmel import LogMel, Normaliser

__all__ = ["Output", "Detector", "pick_device", "set_seed"]

#: The output contract of every network and detector: ``"clip_logits"`` always, ``"frame_logits"``
#: for networks that keep time.
Output = dict[str, torch.Tensor]


class Detector(nn.Module):
    """Waveform -> log-mel (dB) -> normalised -> network -> :data:`Output` (notebooks 05-09).

    ``forward`` takes log-mels in dB (``[B, n_mels, frames]`` or ``[B, 1, n_mels, frames]``), because
    training reads them from the feature cache; :meth:`features` is the front end for waveforms
    ``[B, samples]`` at :attr:`sample_rate`, and :meth:`forward_waveform` both. Built by
    :func:`sed_utils.models.kinds.build_detector`; saved and rebuilt by :mod:`sed_utils.models.checkpoint`.

    Args:
        logmel: the front end (:func:`sed_utils.features.build_logmel`).
        normaliser: ``(x - mean) / std`` with the training statistics.
        network: a module mapping ``[B, 1, n_mels, T]`` to :data:`Output`, with a ``time_stride``.
        kind: the registered model kind it was built as.
        labels, sample_rate, mel: what its outputs mean and what its front end computes.
        window_seconds: the input length it was trained on (1 s chunks, 10 s scenes).
        other_labels: categories the network has outputs for after ``labels``, trained but never
            reported (empty: the network's outputs are ``labels``).

    Attributes:
        precision: what :func:`sed_utils.models.predict` runs the forward pass in: ``"float32"`` (as
            built, and while it trains) or ``"bfloat16"`` (under ``torch.autocast``), set by
            :func:`sed_utils.models.load_trained` (:func:`sed_utils.models.precision.scoring_precision`).
    """

    def __init__(self, logmel: LogMel, normaliser: Normaliser, network: nn.Module, *, kind: str,
                 labels: list[str], sample_rate: int, mel: MelConfig, window_seconds: float,
                 other_labels: list[str] | tuple[str, ...] = ()):
        super().__init__()
        self.logmel = logmel
        self.normaliser = normaliser
        self.network = network
        self.kind = str(kind)
        self.labels = list(labels)
        self.sample_rate = int(sample_rate)
        self.mel = mel
        self.window_seconds = float(window_seconds)
        self.other_labels = list(other_labels)
        self.precision = "float32"

    @property
    def time_stride(self) -> int | None:
        """Mel frames per output frame, or None for a network with one answer per input window."""
        return getattr(self.network, "time_stride", None)

    @property
    def frame_seconds(self) -> float | None:
        """Seconds per output frame (80 ms for the frame model), or None (one answer per window)."""
        stride = self.time_stride
        return None if stride is None else stride * self.mel.hop_length / self.sample_rate

    def forward(self, features_db: torch.Tensor) -> Output:
        x = features_db.unsqueeze(1) if features_db.dim() == 3 else features_db
        out = self.network(self.normaliser(x))
        if not self.other_labels:
            return out
        n = len(self.labels)
        split = {}
        for name, logits in out.items():
            split[name], split[f"other_{name}"] = logits[..., :n], logits[..., n:]
        return split

    def features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel in dB ``[B, n_mels, frames]`` of waveforms ``[B, samples]`` (the cache's recipe)."""
        return self.logmel(waveforms)

    def forward_waveform(self, waveforms: torch.Tensor) -> Output:
        """:data:`Output` straight from waveforms ``[B, samples]``."""
        return self(self.features(waveforms))


def pick_device() -> torch.device:
    """The fastest device available: CUDA, then Apple MPS, then the CPU (notebooks 05, 08, 09)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch, and ask cuDNN for deterministic kernels (notebook 05; training).

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
