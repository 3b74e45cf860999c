"""The arithmetic a model runs in: ``models.<kind>.precision`` for its training, ``eval.precision`` for
its scoring (notebooks 05-08, ``detect``; README, "bfloat16 training").

``"float32"`` everywhere; ``"bfloat16"``: the forward pass under ``torch.autocast`` (convolutions and
matrix products in bfloat16, weights, optimiser and loss in float32); ``"auto"``: bfloat16 where the
hardware runs it natively (a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX-BF16 instructions,
read from Linux's ``/proc/cpuinfo``), float32 elsewhere. On a CPU without those instructions bfloat16
is emulated and slower than float32, which is why the chunk and frame models' default is ``auto`` and
not ``bfloat16``. The training key holds the setting (``auto``), not what it resolved to, so a finished
model is reused as it is on another machine; its checkpoint records what it was trained in
(``CheckpointInfo.precision``).

Scoring (``eval.precision``, :func:`scoring_precision`): a model is scored in the arithmetic it was
trained in where this machine runs it natively, so a model trained in bfloat16 is also read in bfloat16
(the forward pass twice as fast on such a CPU), a float32 model and any model on other hardware in
float32.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sed_utils.config.settings import SCORING_PRECISIONS

__all__ = ["autocast", "cpu_has_bfloat16", "resolve_precision", "scoring_precision"]

#: CPU flags (Linux ``/proc/cpuinfo``) that mean bfloat16 arithmetic in hardware.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes in bfloat16 natively (no notebook; :func:`resolve_precision`).

    Args:
        cpuinfo: the file listing the CPU's flags; missing (not Linux) or unreadable means no.

    Returns:
        True when a ``flags`` line names one of :data:`BFLOAT16_CPU_FLAGS`.
    """
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return any(flag in line.split() for flag in BFLOAT16_CPU_FLAGS)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """What a training on ``device`` computes in for the configured ``precision`` (no notebook; the
    training loop, :func:`scoring_precision`).

    Args:
        precision: ``"float32"``, ``"bfloat16"`` or ``"auto"`` (``models.<kind>.precision``).
        device: where the training runs.

    Returns:
        ``"float32"`` or ``"bfloat16"``. Autocast to bfloat16 exists on the CPU and CUDA only: on any
        other device (MPS) the result is float32 whatever was asked.
    """
    if device.type not in ("cpu", "cuda"):
        return "float32"
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_has_bfloat16() else "float32"


def scoring_precision(trained_in: str, setting: str, device: torch.device) -> str:
    """What a trained model's forward pass computes in when it is scored (no notebook;
    :func:`sed_utils.models.load_trained`, hence the evaluations of notebooks 05-08 and ``detect``).

    Args:
        trained_in: what the model trained in (its checkpoint's ``precision``: ``"float32"`` or
            ``"bfloat16"``).
        setting: ``eval.precision``: ``"auto"`` (the training's arithmetic where ``device`` runs it
            natively) or ``"float32"`` (always).
        device: where the model is scored.

    Returns:
        ``"bfloat16"`` for a bfloat16 model under ``"auto"`` on hardware with bfloat16
        (:func:`resolve_precision` of ``"auto"``), else ``"float32"``.

    Raises:
        ValueError: an unknown ``setting``.
    """
    if setting not in SCORING_PRECISIONS:
        raise ValueError(f"eval.precision must be one of {SCORING_PRECISIONS}, got {setting!r}")
    if setting == "float32" or trained_in != "bfloat16":
        return "float32"
    return resolve_precision("auto", device)


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The context a forward pass runs in for ``precision`` (no notebook; the training's
    :func:`~sed_utils.train.fit_epoch`, the scoring's :func:`~sed_utils.models.predict`):
    ``torch.autocast`` to bfloat16 for ``"bfloat16"`` on a device that has it (CPU, CUDA), else a
    disabled one (float32)."""
    bfloat16 = precision == "bfloat16" and device.type in ("cpu", "cuda")
    return torch.autocast(device.type if bfloat16 else "cpu", dtype=torch.bfloat16, enabled=bfloat16)
