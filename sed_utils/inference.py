"""Inference: the one forward loop, and class scores of sliding windows straight from a waveform.

Why one loop: training's validation, the validation scenes that pick the epoch and thresholds,
and the evaluation all ask the same question (logits of many inputs, in batches, in eval mode,
without gradients), so they all call :func:`predict_logits`; a fix or a speed-up lands everywhere.
Inputs are log-mels in dB (the :class:`~sed_utils.model.Detector` normalises them itself), or a
waveform for :func:`sliding_window_scores`, which cuts windows exactly like the training chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sed_utils.core.progress import tqdm
from sed_utils.features.logmel import cut_windows, window_starts
from sed_utils.frame_model import TIME_STRIDE, FrameDetector
from sed_utils.io.audio import resample
from sed_utils.model import Detector

__all__ = ["predict_logits", "predict_proba", "sigmoid", "sliding_window_scores", "frame_scores",
           "model_device", "to_device"]


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are (the CPU for a model without parameters).
    Used in notebooks 05, 06, through predict_logits."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _uses_channels_last(model: nn.Module) -> bool:
    """True when the model's first 4-d weight (its first conv) is stored channels-last."""
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last)
    return False


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A batch of features as float32 ``[B, 1, n_mels, frames]`` on ``device`` (training and inference;
    notebooks 05, 06)."""
    x = x.to(device, dtype=torch.float32, non_blocking=True)
    if x.dim() == 3:  # [B, n_mels, frames] -> [B, 1, n_mels, frames]
        x = x.unsqueeze(1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _inputs_of(batch: Any) -> torch.Tensor:
    """The input tensor of a collated batch, whether items were ``(x, y)`` or just ``x``."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _batches(data: Any, batch_size: int) -> tuple[Any, int]:
    """An iterable of input batches over a Dataset, tensor or array, and the number of items."""
    if isinstance(data, Dataset) and not isinstance(data, torch.Tensor):
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
        return (_inputs_of(b) for b in loader), len(data)  # type: ignore[arg-type]
    x = torch.as_tensor(np.asarray(data, dtype=np.float32)) if not isinstance(data, torch.Tensor) else data
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(
            "predict expects inputs shaped [N, 1, n_mels, frames] or [N, n_mels, frames], "
            f"got {tuple(x.shape)}"
        )
    return (x[i : i + batch_size] for i in range(0, len(x), batch_size)), len(x)


def _n_outputs(model: nn.Module) -> int:
    labels = getattr(model, "labels", None)
    if labels is not None:
        return len(labels)
    head = getattr(model, "fc", None) or getattr(getattr(model, "classifier", None), "fc", None)
    return int(getattr(head, "out_features", 0))


def predict_logits(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Logits ``[N, n_classes]`` of log-mel inputs, in eval mode, without gradients (notebooks 05, 06).
    For a :class:`~sed_utils.frame_model.FrameDetector` the frame logits ``[N, frames, n_classes]``
    (notebook 08).

    Args:
        model: a :class:`~sed_utils.model.Detector` (or any module mapping a batch to logits).
        data: a torch ``Dataset`` whose items are ``(x, y)`` or ``x``, or an array/tensor shaped
            ``[N, 1, n_mels, frames]`` (or ``[N, n_mels, frames]``), in dB for a Detector.
        batch_size: items per forward pass (memory vs. speed).
        device: where to run; default is where the model's weights already are.
        progress: show a tqdm bar over batches.

    The model's train/eval mode is restored afterwards, so training can validate mid-epoch.
    """
    dev = torch.device(device) if device is not None else model_device(model)
    model.to(dev)
    channels_last = _uses_channels_last(model)
    batches, n = _batches(data, batch_size)
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            total = (n + batch_size - 1) // batch_size
            for x in tqdm(batches, total=total, desc="predict", disable=not progress, leave=False):
                y = model(to_device(x, dev, channels_last))
                y = y[0] if isinstance(y, tuple) else y  # a frame model: (frame logits, clip probs)
                out.append(y.float().cpu().numpy())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, _n_outputs(model)), dtype=np.float32)
    return np.concatenate(out, axis=0)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed as torch does (so they match ``torch.sigmoid`` exactly).
    Used in notebooks 05, 06, through predict_proba."""
    return torch.sigmoid(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))).numpy()


def predict_proba(model: nn.Module, data: Any, **kwargs: Any) -> np.ndarray:
    """Sigmoid probabilities ``[N, n_classes]`` of :func:`predict_logits` (notebooks 05, 06)."""
    return sigmoid(predict_logits(model, data, **kwargs))


def sliding_window_scores(
    detector: Detector,
    audio: np.ndarray,
    sample_rate: int,
    hop_seconds: float,
    *,
    batch_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of window-long pieces slid over a clip every ``hop_seconds`` (notebook 06).

    Why: the model was trained on 1 s chunks, so its window (``detector.window_seconds``) is what
    it understands; sliding it by 250 ms instead of 1 s gives onsets/offsets 4x finer than the
    segment grid, which the event-based metric (200 ms collars) needs. Windows are cut by the same
    :func:`~sed_utils.features.logmel.cut_windows` and the same front end as training chunks, so the
    model sees no new kind of input. Audio at another rate is resampled to the detector's first.

    Returns:
        (times, scores): window CENTRES in seconds [n_windows], probabilities [n_windows, C].
    """
    sr = detector.sample_rate
    audio = resample(np.asarray(audio, dtype=np.float32).reshape(-1), int(sample_rate), sr)
    window = detector.window_seconds
    starts = window_starts(len(audio), sr, window, hop_seconds)
    device = model_device(detector)
    front_end = detector.logmel.to(device)
    parts = []
    # ``batch_size`` windows at a time: an hour slid every 250 ms is 14400 windows, 0.9 GB as one
    # array of waveforms; per batch it is a few MB, and each window's score is the same
    for i in range(0, len(starts), batch_size):
        waves = torch.from_numpy(cut_windows(audio, sr, starts[i:i + batch_size], int(round(window * sr))))
        with torch.inference_mode():
            feats = front_end(waves.to(device)).cpu()
        parts.append(predict_proba(detector, feats, batch_size=batch_size))
    return starts + window / 2.0, np.concatenate(parts, axis=0)


def frame_scores(
    detector: FrameDetector,
    audio: np.ndarray,
    sample_rate: int,
    *,
    block_seconds: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame probabilities of a whole recording from the frame model (notebook 08).

    The recording is processed in blocks of about ``block_seconds`` (a whole 10 s clip is one
    block), so an hour of audio never sits in memory as one spectrogram. Each block starts on an
    output-frame boundary, so the frames of consecutive blocks tile the recording without gaps;
    only the frames next to a block border lose some context.

    Returns:
        (boundaries, probs): frame ``j`` spans ``boundaries[j]`` to ``boundaries[j + 1]`` seconds
        (``[T + 1]``, the last one clipped to the recording's end); probabilities ``[T, C]``.
    """
    sr = detector.sample_rate
    audio = resample(np.asarray(audio, dtype=np.float32).reshape(-1), int(sample_rate), sr)
    frame_samples = TIME_STRIDE * detector.mel.hop_length
    n_frames = max(1, -(-len(audio) // frame_samples))  # ceil: a partial last frame still gets a score
    block = max(1, int(block_seconds * sr) // frame_samples) * frame_samples
    device = model_device(detector)
    out: list[np.ndarray] = []
    was_training = detector.training
    detector.eval()
    try:
        with torch.inference_mode():
            for start in range(0, max(len(audio), 1), block):
                piece = audio[start:start + block]
                if len(piece) < frame_samples:  # a sliver (or a tiny clip): pad to one frame
                    piece = np.pad(piece, (0, frame_samples - len(piece)))
                logits, _ = detector.forward_waveform(torch.from_numpy(piece)[None].to(device))
                wanted = -(-len(audio[start:start + block]) // frame_samples) or 1
                out.append(torch.sigmoid(logits[0, :wanted]).float().cpu().numpy())
    finally:
        detector.train(was_training)
    probs = np.concatenate(out)[:n_frames]
    bounds = np.arange(len(probs) + 1) * frame_samples / sr
    if len(audio) > (len(probs) - 1) * frame_samples:  # the last frame ends with the recording
        bounds[-1] = len(audio) / sr
    return bounds, probs
