"""Train/inference-step benchmark: ResNet18 (1-ch conv1, 5 logits) on the CPU, one option at a time.

Answers which defaults to recommend on a 2-core laptop without a GPU: torch threads and
channels_last (``cfg.train``, shared by every model), the chunk model's batch size
(``models.chunk.batch_size``), torch.compile, and for inference ``torch.inference_mode`` vs
``torch.no_grad``. The network is the chunk model's (:func:`sed_utils.models.build_resnet18`, the
module inside :class:`~sed_utils.models.ResNetTagger`), called directly for its logits. Inputs are
random tensors of the real feature size (1 x n_mels x frames): a step costs the same whatever the
values, and this isolates compute from data loading (benchmark 1).

Run directly with ``--compile-worker`` only by :func:`run` (torch.compile is tried in a child process
with a time limit, so a hang or a missing compiler cannot take the whole benchmark down).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from common import column, log, median, spread
from torch import nn

from sed_utils.config import Config
from sed_utils.models import build_resnet18, settings_of


@dataclass
class Option:
    """One configuration of a step; ``mode`` is train, eval-inference or eval-no_grad."""

    name: str
    mode: str = "train"
    threads: int = 2
    batch: int = 64
    channels_last: bool = False
    busy_core: bool = False  # another process spins on one core meanwhile (a busy laptop)
    times: list[float] = field(default_factory=list)


def _spin(active: Any, stop: Any) -> None:
    """Burn one core while ``active`` is set: a browser tab or another notebook, reproducibly."""
    x = 0
    while not stop.is_set():
        if active.wait(0.01):
            for _ in range(20000):
                x += 1


class BusyCore:
    """A child process that occupies one core only while :meth:`on` is used (fork/spawn-safe)."""

    def __init__(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no copy of torch's thread pools in the child
        self.active, self.stop = ctx.Event(), ctx.Event()
        self.proc = ctx.Process(target=_spin, args=(self.active, self.stop), daemon=True)
        self.proc.start()

    def on(self, flag: bool) -> None:
        if flag:
            self.active.set()
            time.sleep(0.02)  # let it get going before the step starts
        else:
            self.active.clear()

    def close(self) -> None:
        self.stop.set()
        self.proc.join(timeout=5)


class _Step:
    """Model, optimiser and a fixed batch for one option; calling it runs and times one step."""

    def __init__(self, opt: Option, n_classes: int, shape: tuple[int, int], seed: int):
        torch.manual_seed(seed)
        self.opt = opt
        self.model = build_resnet18(n_classes)
        fmt = torch.channels_last if opt.channels_last else torch.contiguous_format
        self.model.to(memory_format=fmt)
        self.x = torch.randn(opt.batch, 1, *shape).contiguous(memory_format=fmt)
        self.y = (torch.rand(opt.batch, n_classes) > 0.7).float()
        self.loss = nn.BCEWithLogitsLoss()
        self.optimiser = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.model.train(opt.mode == "train")

    def __call__(self) -> float:
        torch.set_num_threads(self.opt.threads)
        t0 = time.perf_counter()
        if self.opt.mode == "train":
            self.optimiser.zero_grad(set_to_none=True)
            self.loss(self.model(self.x), self.y).backward()
            self.optimiser.step()
        else:
            ctx = torch.inference_mode() if self.opt.mode == "eval-inference" else torch.no_grad()
            with ctx:
                self.model(self.x)
        return time.perf_counter() - t0


def options(quick: bool) -> list[Option]:
    train = [
        Option("eager, 2 threads, contiguous, batch 64 (baseline)"),
        Option("1 thread", threads=1),
        Option("channels_last", channels_last=True),
        Option("batch 32", batch=32),
        Option("batch 128", batch=128),
        Option("channels_last, batch 128", channels_last=True, batch=128),
        Option("2 threads, another process busy on one core", busy_core=True),
        Option("1 thread, another process busy on one core", threads=1, busy_core=True),
    ]
    infer = [
        Option("eval + inference_mode, batch 64 (baseline)", mode="eval-inference"),
        Option("eval + no_grad", mode="eval-no_grad"),
        Option("eval + inference_mode, channels_last", mode="eval-inference", channels_last=True),
        Option("eval + inference_mode, 1 thread", mode="eval-inference", threads=1),
        Option("eval + inference_mode, batch 256", mode="eval-inference", batch=256),
    ]
    if quick:
        train = [o for o in train if o.batch != 128]
        infer = [o for o in infer if o.batch != 256]
    return train + infer


# ------------------------------------------------------------------------------------------------
# torch.compile, in a child process
# ------------------------------------------------------------------------------------------------
def _compile_worker(args: dict[str, Any]) -> dict[str, Any]:
    """Eager and compiled train steps of the same model in THIS process; compile time separately."""
    torch.set_num_threads(args["threads"])
    shape, steps = tuple(args["shape"]), args["steps"]
    out: dict[str, Any] = {"status": "ok"}
    eager = _Step(Option("eager", batch=args["batch"]), args["n_classes"], shape, 0)
    eager()
    out["eager_times"] = [eager() for _ in range(steps)]
    step = _Step(Option("compiled", batch=args["batch"]), args["n_classes"], shape, 0)
    step.model = torch.compile(step.model)
    step.optimiser = torch.optim.AdamW(step.model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    step()  # compiles forward and backward
    out["compile_seconds"] = time.perf_counter() - t0
    step()
    out["compiled_times"] = [step() for _ in range(steps)]
    return out


def _try_compile(n_classes: int, shape: tuple[int, int], steps: int, timeout: float) -> dict[str, Any]:
    args = {"threads": 2, "batch": 64, "shape": list(shape), "steps": steps, "n_classes": n_classes}
    cmd = [sys.executable, __file__, "--compile-worker", json.dumps(args)]
    t0 = time.perf_counter()
    # A fresh inductor cache: the compile time reported is what a first run pays, not a cache hit.
    with tempfile.TemporaryDirectory(prefix="sed_bench_inductor_") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "error": f"gave up after {timeout:.0f} s", "seconds": timeout}
    seconds = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "error", "error": err[:300], "seconds": seconds}
    return {**json.loads(lines[-1]), "seconds": seconds}


# ------------------------------------------------------------------------------------------------
def _epoch_chunks(cfg: Config) -> int:
    """Training chunks per epoch with this config (from the cached chunk table)."""
    import numpy as np

    from sed_utils.labels.chunks import build_esc50_chunks

    table = build_esc50_chunks(cfg, progress=False)
    n = int((table["kept"] & np.isin(table["fold"], cfg.folds.train)).sum())
    limit = settings_of(cfg, "chunk").max_train_chunks
    return min(n, limit) if limit > 0 else n


def run(cfg: Config, *, repeats: int, quick: bool) -> dict[str, Any]:
    from sed_utils.features.logmel import n_frames

    shape = (cfg.features.n_mels, n_frames(cfg, cfg.chunking.chunk_seconds))
    n_classes = len(cfg.desed_labels)
    warmup, steps = (1, 2) if quick else (2, 5)
    epoch = _epoch_chunks(cfg)
    old_threads = torch.get_num_threads()
    opts = options(quick)
    stepper = {o.name: _Step(o, n_classes, shape, cfg.seed) for o in opts}
    busy = BusyCore()

    def step(o: Option) -> float:
        busy.on(o.busy_core)
        try:
            return stepper[o.name]()
        finally:
            busy.on(False)

    try:
        for o in opts:
            log(f"train: warm-up {o.name}")
            for _ in range(warmup):
                step(o)
        for r in range(steps):  # round-robin: a burst of background load hits every option alike
            for o in opts:
                o.times.append(step(o))
            log(f"train: round {r + 1}/{steps} done ({', '.join(f'{t.times[-1]:.2f}' for t in opts)} s)")
    finally:
        busy.close()
        torch.set_num_threads(old_threads)
    stepper.clear()  # free the models before torch.compile starts its own process

    compiled: dict[str, Any] = {"status": "skipped", "error": "--quick"}
    if not quick:
        log("train: torch.compile in a child process (time limit 240 s)")
        compiled = _try_compile(n_classes, shape, steps, timeout=240.0)
        log(f"train: torch.compile -> {compiled['status']} {compiled.get('error', '')}")

    rows = []
    base = {"train": None, "eval": None}
    for o in opts:
        kind = "train" if o.mode == "train" else "eval"
        sec = median(o.times)
        row = {
            "option": o.name,
            "kind": kind,
            "threads": o.threads,
            "batch": o.batch,
            "channels_last": o.channels_last,
            "step_seconds": sec,
            "samples_per_second": o.batch / sec,
            "spread": spread(o.times),
            "times": o.times,
        }
        if kind == "train":
            row["epoch_minutes"] = epoch / row["samples_per_second"] / 60.0
        base[kind] = base[kind] or row["samples_per_second"]
        row["x_baseline"] = row["samples_per_second"] / base[kind]
        rows.append(row)
    if compiled["status"] == "ok":
        eager_sps = 64 / median(compiled["eager_times"])
        comp_sps = 64 / median(compiled["compiled_times"])
        rows.append({
            "option": f"torch.compile (compile took {compiled['compile_seconds']:.0f} s; eager in the same "
                      f"process: {eager_sps:.1f} samples/s)",
            "kind": "train", "threads": 2, "batch": 64, "channels_last": False,
            "step_seconds": 64 / comp_sps, "samples_per_second": comp_sps,
            "epoch_minutes": epoch / comp_sps / 60.0,
            "x_baseline": comp_sps / eager_sps,  # against its own eager run: same process, same moment
            "spread": spread(compiled["compiled_times"]), "times": compiled["compiled_times"],
        })
    else:
        rows.append({"option": f"torch.compile: {compiled['status']} ({compiled.get('error', '')})",
                     "kind": "train"})
    return {
        "title": "3. ResNet18 steps on the CPU (train and inference)",
        "description": (
            f"One step = forward (+ backward + AdamW for train) on a random batch shaped [B, 1, {shape[0]}, "
            f"{shape[1]}], {n_classes} outputs. Each option: {warmup} warm-up steps, then the median of "
            f"{steps} timed steps, options run round-robin. 'x baseline' compares samples/s with the first "
            f"row of its kind; 'min / epoch' extrapolates to the {epoch} training chunks of this config."
        ),
        "columns": [
            column("option", "option"),
            column("kind", "kind"),
            column("step_seconds", "s / step", "{:.3f}"),
            column("samples_per_second", "samples / s", "{:.1f}"),
            column("x_baseline", "x baseline", "{:.2f}"),
            column("epoch_minutes", "min / epoch", "{:.1f}"),
            column("spread", "spread", "{:.0%}"),
        ],
        "rows": rows,
        "summary": {"epoch_chunks": epoch, "compile": {k: v for k, v in compiled.items() if k != "times"}},
        "notes": [
            "torch.compile is timed in a child process against an eager run of the same process, with an "
            "empty inductor cache: its compile time is paid by every new process (notebook run), less when "
            "the on-disk cache is warm.",
            "Inference rows are what evaluation does per batch (predict_proba uses eval + inference_mode).",
            "'another process busy on one core': a child process spins on one core during those steps only "
            "(a browser or another notebook on a 2-core laptop); 2 torch threads then wait for the thread "
            "that shares its core.",
        ],
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--compile-worker":
        try:
            result = _compile_worker(json.loads(sys.argv[2]))
        except Exception as e:  # report, don't crash: the parent records why compile is unusable
            result = {"status": "error", "error": f"{type(e).__name__}: {e}"[:300]}
        print(json.dumps(result), flush=True)
    else:
        sys.exit("bench_train.py is run by benchmarks/run.py (--only train)")
