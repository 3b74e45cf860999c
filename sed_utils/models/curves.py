"""Running a detector: the one forward loop over many inputs, and a recording's score curve.

Why one loop: training's validation, the evaluation and ``detect`` all ask the same question (outputs
of many inputs, in batches, in eval mode, without gradients), so they all call :func:`predict`; a
fix or a speed-up lands everywhere. Inputs are log-mels in dB (the
:class:`~sed_utils.models.detector.Detector` normalises them itself).

A recording becomes a **score curve** (frame boundaries in seconds ``[T + 1]``, probabilities
``[T, C]``) in one of two ways, chosen by the model kind (:mod:`sed_utils.models.kinds`):

- :func:`frame_curve` for a network that keeps time: the recording in blocks, each block's frames
  laid end to end (the frame model: one score every 80 ms);
- :func:`window_curve` for a network with one answer per window: windows of the training length slid
  every ``hop`` seconds, each standing for the hop around its centre (the chunk model: 1 s windows
  every 250 ms). Windows are cut by the same :func:`~sed_utils.features.cut_windows` and the same
  front end as training chunks, so the model sees no new kind of input.

Both run in bounded memory on long recordings (an hour is never one spectrogram).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sed_utils.core.progress import tqdm
from sed_utils.features.logmel import cut_windows, window_starts
from sed_utils.io.audio import resample
from sed_utils.labels.grid import TimeGrid
from sed_utils.models.detector import Detector
from sed_utils.models.precision import autocast

__all__ = ["model_device", "to_device", "predict", "predict_proba", "sigmoid", "window_curve", "frame_curve"]


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are (the CPU for a model without parameters; notebooks 05, 06)."""
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
    notebooks 05, 08).

    Args:
        x: features ``[B, n_mels, frames]`` or ``[B, 1, n_mels, frames]``.
        device: where the batch goes.
        channels_last: store it channels-last (as a channels-last model's weights are).
    """
    x = x.to(device, dtype=torch.float32, non_blocking=True)
    if x.dim() == 3:  # [B, n_mels, frames] -> [B, 1, n_mels, frames]
        x = x.unsqueeze(1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _batches(data: Any, batch_size: int) -> tuple[Any, int]:
    """An iterable of input batches over a Dataset (items ``(x, targets)`` or ``x``) or an array."""
    if isinstance(data, Dataset) and not isinstance(data, torch.Tensor):
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
        return (b[0] if isinstance(b, (list, tuple)) else b for b in loader), len(data)  # type: ignore[arg-type]
    x = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data, dtype=np.float32))
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"predict expects inputs shaped [N, 1, n_mels, frames] or [N, n_mels, frames], "
                         f"got {tuple(x.shape)}")
    return (x[i:i + batch_size] for i in range(0, len(x), batch_size)), len(x)


def predict(model: nn.Module, data: Any, *, batch_size: int = 128, device: torch.device | str | None = None,
            progress: bool = False) -> dict[str, np.ndarray]:
    """Every output of ``model`` for many inputs, in eval mode, without gradients (notebooks 05, 06, 08).

    Args:
        model: a :class:`~sed_utils.models.detector.Detector` (or any module returning an output dict).
        data: a torch ``Dataset`` whose items are ``(x, targets)`` or ``x``, or an array/tensor shaped
            ``[N, 1, n_mels, frames]`` or ``[N, n_mels, frames]`` (dB for a Detector).
        batch_size: items per forward pass (memory vs. speed).
        device: where to run; default is where the model's weights already are.
        progress: show a tqdm bar over batches.

    Returns:
        ``{"clip_logits": [N, C], "frame_logits": [N, T', C] (networks that keep time)}`` as float32
        arrays, the forward pass in the model's ``precision`` (a :class:`Detector` attribute:
        ``"bfloat16"`` runs it under ``torch.autocast``; absent: float32). The model's train/eval mode
        is restored afterwards (validation runs mid-training).
    """
    dev = torch.device(device) if device is not None else model_device(model)
    model.to(dev)
    channels_last = _uses_channels_last(model)
    batches, n = _batches(data, batch_size)
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    try:
        with torch.inference_mode(), autocast(getattr(model, "precision", "float32"), dev):
            total = (n + batch_size - 1) // batch_size
            for x in tqdm(batches, total=total, desc="predict", disable=not progress, leave=False):
                for name, value in model(to_device(x, dev, channels_last)).items():
                    parts.setdefault(name, []).append(value.float().cpu().numpy())
    finally:
        model.train(was_training)
    if not parts:
        n_classes = len(getattr(model, "labels", [])) or 0
        return {"clip_logits": np.zeros((0, n_classes), dtype=np.float32)}
    return {name: np.concatenate(values, axis=0) for name, values in parts.items()}


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, computed as torch does (so they match ``torch.sigmoid`` exactly;
    notebooks 05, 08)."""
    return torch.sigmoid(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))).numpy()


def predict_proba(model: nn.Module, data: Any, output: str = "clip_logits", **kwargs: Any) -> np.ndarray:
    """Sigmoid probabilities of one output of :func:`predict` (``"clip_logits"``: ``[N, C]``,
    ``"frame_logits"``: ``[N, T', C]``; notebooks 05, 08).

    Args:
        model, data: as :func:`predict` takes them.
        output: which output to turn into probabilities.
        kwargs: ``batch_size``, ``device`` and ``progress`` of :func:`predict`.

    Returns:
        float32 probabilities, of the output's shape.

    Raises:
        KeyError: the model gives no such output.
    """
    return sigmoid(predict(model, data, **kwargs)[output])


Audio = np.ndarray | Iterable[np.ndarray]


def _blocks_of(audio: Audio, sample_rate: int, detector: Detector) -> Iterator[np.ndarray]:
    """``audio`` as consecutive float32 mono blocks at the detector's rate: an array (resampled first) is
    one block; an iterable of blocks (``detect`` streaming a file) must already be at that rate."""
    if isinstance(audio, np.ndarray):
        mono = np.asarray(audio, dtype=np.float32).reshape(-1)
        yield resample(mono, int(sample_rate), detector.sample_rate)
        return
    if int(sample_rate) != detector.sample_rate:
        raise ValueError(f"blocks of audio must come at the detector's rate ({detector.sample_rate} Hz), "
                         f"got {sample_rate} Hz")
    for block in audio:
        yield np.asarray(block, dtype=np.float32).reshape(-1)


def _checked_batch_size(batch_size: int | None, default: int) -> int:
    """``batch_size``, or ``default`` for None; a ValueError for less than 1."""
    if batch_size is None:
        return default
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch size {batch_size!r}: give a whole number, 1 or more")
    return int(batch_size)


def window_curve(detector: Detector, audio: Audio, sample_rate: int, hop_seconds: float, *,
                 end_seconds: float = 0.0, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The score curve of a model with one answer per window: windows of ``detector.window_seconds``
    every ``hop_seconds``, each standing for the hop around its centre (notebooks 06, 09).

    The windows are scored as the audio arrives: whenever ``batch_size`` windows lie wholly inside what
    has been read, they go through the model and the samples before the next window are dropped; the
    last windows (zero-padded past the end, :func:`~sed_utils.features.window_starts`) once the length
    is known. An hour read in blocks is never held whole.

    Args:
        detector: a detector whose network gives ``clip_logits`` per window.
        audio: mono samples at ``sample_rate`` (resampled to the detector's rate first), or an iterable
            of consecutive blocks at the detector's rate.
        hop_seconds: the sliding hop (``postprocess.window_hop_seconds``).
        end_seconds: where the last slice ends when that is later than the recording's end (a test
            clip a few ms short of its nominal length).
        batch_size: windows per forward pass (None: 128; an hour slid every 250 ms is 14400 windows:
            0.9 GB as one array of waveforms, a few MB per batch).

    Returns:
        (boundaries ``[T + 1]`` in seconds, probabilities ``[T, C]`` float32).
    """
    batch_size = _checked_batch_size(batch_size, 128)
    sr = detector.sample_rate
    window = detector.window_seconds
    n_window = int(round(window * sr))
    device = model_device(detector)
    front_end = detector.logmel.to(device)
    parts: list[np.ndarray] = []

    def score(buffer: np.ndarray, offset: int, starts: np.ndarray) -> None:
        """Windows at ``starts`` (s), cut from ``buffer``, whose first sample is sample ``offset``."""
        waves = torch.from_numpy(cut_windows(buffer, sr, starts - offset / sr, n_window))
        with torch.inference_mode():
            feats = front_end(waves.to(device)).cpu()
        parts.append(predict_proba(detector, feats, batch_size=batch_size))

    buffer, offset, total, done = np.zeros(0, np.float32), 0, 0, 0  # offset: buffer[0]'s sample index
    for block in _blocks_of(audio, sample_rate, detector):
        buffer = np.concatenate([buffer, block]) if len(buffer) else block  # no copy of a whole array
        total += len(block)
        ready = window_starts(total, sr, window, hop_seconds)  # these windows need no sample after total
        ready = ready[np.round(ready * sr).astype(np.int64) + n_window <= total]
        while len(ready) - done >= batch_size:
            score(buffer, offset, ready[done:done + batch_size])
            done += batch_size
            keep_from = int(round(done * hop_seconds * sr))
            buffer, offset = buffer[keep_from - offset:], keep_from
    starts = window_starts(total, sr, window, hop_seconds)
    for i in range(done, len(starts), batch_size):
        score(buffer, offset, starts[i:i + batch_size])
    grid = TimeGrid.of_windows(detector.labels, starts + window / 2.0, hop_seconds,
                               max(float(end_seconds), total / sr))
    return grid.bounds, np.concatenate(parts, axis=0).astype(np.float32, copy=False)


def frame_curve(detector: Detector, audio: Audio, sample_rate: int, hop_seconds: float = 0.0, *,
                end_seconds: float = 0.0, block_seconds: float | None = None,
                batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The score curve of a network that keeps time: its frames, the recording processed in blocks of
    about ``block_seconds`` (notebooks 08, 09).

    Each block starts on an output-frame boundary, so the frames of consecutive blocks tile the
    recording without gaps; only the frames next to a block border lose some context. A whole 10 s
    clip is one block. By default a block is 60 s, or the detector's training window (10 s scenes)
    when its front end measures dB re each input's loudest bin (``features.reference: max``): each
    block is then scaled as the training scenes were, and a loud sound mutes only its own block.
    Blocks are scored as the audio arrives, so an hour read in blocks is never held whole.
    ``hop_seconds`` is ignored (the network's frames are the grid); the last frame ends with the
    recording (or at ``end_seconds`` when that is later). The network runs in the detector's
    ``precision``, the front end in float32 (as :func:`predict`).

    Args:
        detector: a detector whose network keeps time (a ``time_stride``).
        audio: mono samples at ``sample_rate`` (resampled to the detector's rate first), or an iterable
            of consecutive blocks at the detector's rate.
        sample_rate: their rate in Hz.
        block_seconds: about how long a block is (None: the default above).
        batch_size: blocks per forward pass (None: 1). Each block is its own input (its own loudest bin),
            so the curve does not depend on it; more blocks at once use a GPU better and cost memory.

    Returns:
        (boundaries ``[T + 1]`` in seconds, probabilities ``[T, C]`` float32).

    Raises:
        ValueError: the detector's network has no frames (``time_stride`` None).
    """
    if detector.time_stride is None:
        raise ValueError(f"frame_curve: the {detector.kind} network has no frames (time_stride None); "
                         "read it with window_curve")
    sr = detector.sample_rate
    frame_samples = detector.time_stride * detector.mel.hop_length
    if block_seconds is None:
        block_seconds = detector.window_seconds if detector.mel.reference == "max" else 60.0
    block = max(1, int(block_seconds * sr) // frame_samples) * frame_samples
    batch_size = _checked_batch_size(batch_size, 1)
    device = model_device(detector)
    out: list[np.ndarray] = []
    full: list[np.ndarray] = []  # whole blocks waiting for a batch

    def score(pieces: list[np.ndarray]) -> None:
        """Pieces of one length, as one batch."""
        wanted = -(-len(pieces[0]) // frame_samples) or 1
        waves = torch.from_numpy(np.stack(pieces))
        if waves.shape[1] < frame_samples:  # a sliver (or a tiny clip): pad to one frame
            waves = torch.nn.functional.pad(waves, (0, frame_samples - waves.shape[1]))
        features = detector.features(waves.to(device))
        with autocast(detector.precision, device):
            logits = detector(features)["frame_logits"]
        out.extend(torch.sigmoid(logits[:, :wanted]).float().cpu().numpy())

    was_training = detector.training
    detector.eval()
    buffer, total = np.zeros(0, np.float32), 0
    try:
        with torch.inference_mode():
            for piece in _blocks_of(audio, sample_rate, detector):
                buffer = np.concatenate([buffer, piece]) if len(buffer) else piece
                total += len(piece)
                while len(buffer) >= block:
                    full.append(np.ascontiguousarray(buffer[:block]))
                    buffer = buffer[block:]
                    if len(full) == batch_size:
                        score(full)
                        full = []
            if full:
                score(full)
            if len(buffer) or not out:
                score([np.ascontiguousarray(buffer)])
    finally:
        detector.train(was_training)
    n_frames = max(1, -(-total // frame_samples))  # ceil: a partial last frame still gets a score
    probs = np.concatenate(out)[:n_frames]
    grid = TimeGrid.regular(detector.labels, frame_samples / sr, len(probs),
                            end=max(float(end_seconds), total / sr))
    return grid.bounds, probs.astype(np.float32, copy=False)
