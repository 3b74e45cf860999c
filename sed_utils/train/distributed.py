"""Training on several processes with PyTorch's own engine: ``torchrun --nproc_per_node=N`` (no notebook:
``python -m sed_utils train`` and :func:`sed_utils.train.train` under torchrun; README "Train on your own
sounds").

torchrun starts N copies of the same command and tells each its place through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). The training then
(:mod:`sed_utils.train.loop`):

* joins one process group (NCCL on CUDA, gloo on the CPU) and, on CUDA, uses the GPU ``LOCAL_RANK``;
* wraps the network in ``DistributedDataParallel``: each step averages the gradients of all processes,
  and the batch-norm statistics are taken from process 0, so every copy keeps the same weights
  (checked after each epoch by :func:`check_replicas`);
* gives each process its own share of the training examples (``DistributedSampler``, reshuffled each
  epoch): ``batch_size`` is per process, so a step sees N times as many examples and an epoch has
  1/N of the steps;
* validates, chooses, saves and writes history on process 0 only; the others receive its verdict;
* builds the feature caches on process 0 first (:func:`main_first`; the others then read them) and takes
  the run folder's lock on process 0 only.

Without torchrun (``WORLD_SIZE`` unset or 1) nothing here does anything.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from sed_utils.core.locks import folder_lock

__all__ = ["world_size", "rank", "is_main", "setup", "barrier", "main_first", "broadcast", "sampler", "wrap",
           "lock_on_main", "fingerprint", "check_replicas", "finish"]

log = logging.getLogger(__name__)


def world_size() -> int:
    """How many processes train together: torchrun's ``WORLD_SIZE``, 1 without it (no notebook)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's place among them, 0 first: torchrun's ``RANK``, 0 without it (no notebook)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the process that validates, saves and reports: rank 0, or the only one (no notebook)."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group once (a no-op for one process) and return the device this process uses
    (no notebook: the training loop calls it).

    Args:
        device: the device asked for; on CUDA each process takes the GPU of its ``LOCAL_RANK``.

    Returns:
        The device to train on.
    """
    if world_size() <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        log.debug(f"rank {rank()} of {world_size()} joined ({dist.get_backend()})")
    return device


def barrier() -> None:
    """Wait until every process gets here; a no-op for one process (no notebook)."""
    if world_size() > 1 and dist.is_initialized():
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Run the block on process 0, then on the others: caches built once, then read by everyone
    (no notebook)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def broadcast(value: Any) -> Any:
    """Process 0's ``value`` (any picklable object), on every process (no notebook)."""
    if world_size() <= 1 or not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sampler(dataset: Dataset, seed: int) -> DistributedSampler | None:
    """This process's share of ``dataset``, reshuffled each epoch (``set_epoch``); None for one process
    (no notebook)."""
    if world_size() <= 1:
        return None
    return DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in ``DistributedDataParallel`` (gradients averaged over the processes at each step,
    buffers from process 0); ``model`` itself for one process (no notebook)."""
    if world_size() <= 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def lock_on_main(folder: Path, what: str) -> Any:
    """The run folder's lock (:func:`sed_utils.core.locks.folder_lock`), taken by process 0 only: the
    others work under it, in step with process 0 (no notebook)."""
    return folder_lock(folder, what) if is_main() else nullcontext()


def fingerprint(model: torch.nn.Module) -> str:
    """A short hash of every weight and buffer of ``model``, bit for bit (no notebook)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def check_replicas(model: torch.nn.Module, when: str) -> str | None:
    """Take process 0's buffers, then check that every process holds the same weights (nothing to do,
    None, for one process; no notebook: the training loop calls it after each epoch).

    The buffers (batch-norm running statistics) first: DistributedDataParallel sends process 0's at the
    start of each forward pass, but each process's last pass of an epoch updates its own afterwards.

    Args:
        model: this process's copy of the network.
        when: named in the log and the error (``"after epoch 3"``).

    Returns:
        The weights' :func:`fingerprint`.

    Raises:
        RuntimeError: the copies differ (names each process's fingerprint).
    """
    if world_size() <= 1 or not dist.is_initialized():
        return None
    with torch.no_grad():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
    mine = fingerprint(model)
    everyone: list[Any] = [None] * world_size()
    dist.all_gather_object(everyone, mine)
    if len(set(everyone)) != 1:
        raise RuntimeError(f"the {world_size()} training processes hold different weights {when}: "
                           + ", ".join(f"rank {r}: {fp}" for r, fp in enumerate(everyone)))
    if is_main():
        log.info(f"weights {mine} {when}: the same on all {world_size()} processes")
    return mine


def finish() -> None:
    """Leave the process group at the end of a command run under torchrun; a no-op otherwise
    (no notebook)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
