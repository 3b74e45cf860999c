"""Feature benchmark: building the log-mel cache, sequential vs 2 worker processes.

``sed_utils.features.logmel.feature_cache`` extracts sequentially with ONE torch thread (its docstring gives
the measurement behind that choice). This benchmark re-measures it on the real ESC-50 against the
two obvious alternatives on a 2-core machine: the same loop with 2 torch threads, and a
multiprocessing pool of 2 single-thread workers over files. It answers whether parallel extraction
would be worth adding to the library.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from common import column, log, median, spread, timed

from sed_utils.config import Config
from sed_utils.features.logmel import FEATURE_DTYPE, chunk_waveforms, feature_cache, mel_extractor
from sed_utils.labels.chunks import build_esc50_chunks

_WORKER: dict[str, Any] = {}


def _init_worker(cfg: Config) -> None:
    """Pool initialiser: one torch thread per process (2 processes x 2 threads would oversubscribe)."""
    torch.set_num_threads(1)
    _WORKER["cfg"] = cfg
    _WORKER["extractor"] = mel_extractor(cfg)


def _extract_file(task: tuple[str, pd.DataFrame]) -> np.ndarray:
    """Log-mels of all rows of one file: read it once, one batch through the extractor."""
    from sed_utils.io.audio import read_audio

    path, rows = task
    cfg = _WORKER["cfg"]
    sr = cfg.audio.sample_rate
    audio = read_audio(Path(path), sr)
    with torch.inference_mode():
        feats = _WORKER["extractor"](torch.from_numpy(chunk_waveforms(audio, sr, rows)))
    return feats.numpy().astype(FEATURE_DTYPE)


def _tasks(table: pd.DataFrame) -> tuple[list[tuple[str, pd.DataFrame]], list[np.ndarray]]:
    groups = table.groupby(table["path"].astype(str), sort=False)
    tasks, index = [], []
    for path, rows in groups:
        tasks.append((str(path), rows[["start", "end"]]))
        index.append(rows.index.to_numpy())
    return tasks, index


def _sequential(cfg: Config, table: pd.DataFrame, threads: int) -> np.ndarray:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _WORKER["cfg"], _WORKER["extractor"] = cfg, mel_extractor(cfg)
        tasks, index = _tasks(table)
        out = np.empty((len(table), cfg.features.n_mels, 0), FEATURE_DTYPE)
        for task, idx in zip(tasks, index, strict=True):
            feats = _extract_file(task)
            if out.shape[-1] == 0:
                out = np.empty((len(table), *feats.shape[1:]), FEATURE_DTYPE)
            out[idx] = feats
        return out
    finally:
        torch.set_num_threads(old)


def _pool(cfg: Config, table: pd.DataFrame, processes: int, startup: list[float]) -> np.ndarray:
    # fork on Linux (what DataLoader workers use too); spawn elsewhere, where it is the only safe choice
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    tasks, index = _tasks(table)
    holder: dict[str, Any] = {}

    def start() -> None:
        holder["pool"] = ctx.Pool(processes, initializer=_init_worker, initargs=(cfg,))
        holder["pool"].apply(len, ([],))  # wait until a worker actually answers

    startup.append(timed(start))
    pool = holder["pool"]
    try:
        results = pool.map(_extract_file, tasks, chunksize=8)
    finally:
        pool.close()
        pool.join()
    out = np.empty((len(table), *results[0].shape[1:]), FEATURE_DTYPE)
    for feats, idx in zip(results, index, strict=True):
        out[idx] = feats
    return out


def _library(cfg: Config, table: pd.DataFrame) -> np.ndarray:
    """The real thing, into a fresh cache folder each time (so it always extracts, never hits)."""
    with tempfile.TemporaryDirectory(prefix="sed_bench_feat_") as tmp:
        fresh = dataclasses.replace(cfg, data_root=Path(tmp))
        return np.array(feature_cache(fresh, table, "bench", progress=False))


def run(cfg: Config, *, repeats: int, quick: bool) -> dict[str, Any]:
    n_clips = 40 if quick else 200
    log("features: reading the ESC-50 chunk table")
    table = build_esc50_chunks(cfg, progress=True)
    kept = table[table["kept"]]
    files = sorted(kept["path"].astype(str).unique())
    chosen = set(np.random.default_rng(cfg.seed).choice(files, size=min(n_clips, len(files)), replace=False))
    subset = kept[kept["path"].astype(str).isin(chosen)].reset_index(drop=True)
    log(f"features: {len(chosen)} clips, {len(subset)} kept chunks (of {len(files)} clips / {len(kept)} "
        "chunks in the full cache)")

    startup: list[float] = []
    variants = {
        "feature_cache (library): 1 process, 1 torch thread": lambda: _library(cfg, subset),
        "same loop, 1 process, 2 torch threads": lambda: _sequential(cfg, subset, 2),
        "multiprocessing Pool(2), 1 torch thread each (incl. start-up)":
            lambda: _pool(cfg, subset, 2, startup),
    }
    log("features: warm-up (page cache, imports)")
    reference = _sequential(cfg, subset, 1)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(repeats):
        for name, fn in variants.items():
            holder: dict[str, np.ndarray] = {}
            times[name].append(timed(lambda fn=fn, holder=holder: holder.setdefault("x", fn())))
            # Same numbers, or the timing means nothing (a thread count may move the last float16 bit).
            diff = float(np.max(np.abs(holder["x"].astype(np.float32) - reference.astype(np.float32))))
            if diff > 0.1:
                raise AssertionError(f"features: {name} differs from the reference by {diff:.3f} dB")
            log(f"features: repeat {r + 1}/{repeats} {name}: {times[name][-1]:.2f} s")

    base = median(times["feature_cache (library): 1 process, 1 torch thread"])
    rows = []
    for name, ts in times.items():
        sec = median(ts)
        rows.append({
            "variant": name,
            "seconds": sec,
            "clips_per_second": len(chosen) / sec,
            "chunks_per_second": len(subset) / sec,
            "speedup": base / sec,
            "full_cache_seconds": sec * len(files) / len(chosen),
            "spread": spread(ts),
            "times": ts,
        })
    threads_row, pool_row = rows[1], rows[2]
    full = rows[0]["full_cache_seconds"]
    best = max(threads_row["speedup"], pool_row["speedup"])
    saved = full - full / best
    # Worth it only if it saves real waiting: the cache is built once per mel setting.
    helps = best > 1.2 and saved > 30.0
    verdict = (
        f"2 torch threads are {threads_row['speedup']:.2f}x and a Pool of 2 {pool_row['speedup']:.2f}x the "
        f"library's speed; the full cache takes ~{full:.0f} s with the library, so parallel extraction "
        f"would save ~{saved:.0f} s once per mel setting"
        + (": worth adding." if helps else ": not worth the extra code (the cache is built once).")
    )
    return {
        "title": "2. Feature extraction: building the log-mel cache",
        "description": (
            f"Log-mel ({cfg.features.n_mels} mels, hop {cfg.features.hop_length}) of the kept 1 s chunks of "
            f"{len(chosen)} random clips ({len(subset)} chunks), each file read once, all its chunks in one "
            f"batch. Medians of {repeats} repeats, round-robin; every variant's output is checked against "
            "the library's (within 0.1 dB)."
        ),
        "columns": [
            column("variant", "extraction"),
            column("clips_per_second", "clips / s", "{:.1f}"),
            column("chunks_per_second", "chunks / s", "{:.0f}"),
            column("speedup", "x library", "{:.2f}"),
            column("full_cache_seconds", f"est. s for the full cache ({len(files)} clips)", "{:.0f}"),
            column("spread", "spread", "{:.0%}"),
        ],
        "rows": rows,
        "summary": {
            "clips": len(chosen),
            "chunks": len(subset),
            "pool_startup_seconds": median(startup) if startup else None,
            "pool_speedup": pool_row["speedup"],
            "threads2_speedup": threads_row["speedup"],
            "parallel_worth_adding": helps,
        },
        "notes": [
            f"Verdict: {verdict}",
            f"Pool start-up (fork, torch already imported): {median(startup):.2f} s of the Pool row's time."
            if startup else "Pool start-up not measured.",
            "The library writes a float16 memmap; the other rows keep features in memory (writing is a "
            "small part of the time).",
        ],
    }
