"""Data benchmark: batches from the feature cache vs log-mels computed per item, as the original did.

The original project read the audio file and computed its spectrogram with librosa inside
``__getitem__``: once per chunk per epoch. This project computes every chunk's log-mel once and
memory-maps the cache (:func:`sed_utils.features.logmel.feature_cache`). The question this answers: how
much faster is an epoch of batches, and is data loading still worth worker processes?
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from common import column, log, median, spread, timed
from torch.utils.data import DataLoader, Dataset, RandomSampler

from sed_utils.config import Config
from sed_utils.models import settings_of
from sed_utils.train import ExampleDataset, Examples, OnTheFlyDataset, label_matrix, training_data


class LibrosaOnTheFly(Dataset):
    """The original loading: ``librosa.load`` (resampling when the file is not at the target rate),
    cut the chunk, ``librosa.feature.melspectrogram`` + ``power_to_db``, every ``__getitem__``.

    Same mel parameters as ``cfg.features`` so the work per item matches what the cache stores, and
    the same item layout as the training dataset: ``(x [n_mels, frames], {"clip": [C]})``.
    """

    def __init__(self, cfg: Config, table: pd.DataFrame):
        self.cfg = cfg
        self.paths = table["path"].astype(str).to_list()
        self.starts = table["start"].astype(float).to_numpy()
        self.ends = table["end"].astype(float).to_numpy()
        self.labels = label_matrix(table, cfg.desed_labels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        import librosa

        m, sr = self.cfg.features, self.cfg.audio.sample_rate
        audio, _ = librosa.load(self.paths[index], sr=sr, mono=True)  # soxr_hq resampling when needed
        a = int(round(self.starts[index] * sr))
        n = int(round((self.ends[index] - self.starts[index]) * sr))
        piece = audio[a : a + n]
        if len(piece) < n:
            piece = np.pad(piece, (0, n - len(piece)))
        spec = librosa.feature.melspectrogram(
            y=piece, sr=sr, n_fft=m.n_fft, win_length=m.win_length, hop_length=m.hop_length,
            n_mels=m.n_mels, fmin=m.f_min, fmax=m.f_max, power=2.0,
        )
        x = librosa.power_to_db(spec, ref=1.0, top_db=m.top_db)  # dB like the cache (the model normalises)
        return torch.from_numpy(x.astype(np.float32)), {"clip": torch.from_numpy(self.labels[index].copy())}


def _make_44k_copies(table: pd.DataFrame, n_clips: int, out_dir: Path, seed: int) -> pd.DataFrame:
    """Rows of ``n_clips`` random clips, pointing at 44.1 kHz WAV copies (upstream ESC-50's format).

    The shared ESC-50 is 16 kHz FLAC; upstream ships 44.1 kHz WAV, which the original resampled on
    every read. Writing a few clips at 44.1 kHz lets us time that faithfully.
    """
    import librosa
    import soundfile as sf

    paths = sorted(table["path"].astype(str).unique())
    chosen = set(np.random.default_rng(seed).choice(paths, size=min(n_clips, len(paths)), replace=False))
    mapping = {}
    for p in sorted(chosen):
        audio, sr = sf.read(p, dtype="float32")
        up = librosa.resample(audio, orig_sr=sr, target_sr=44100, res_type="soxr_hq")
        dst = out_dir / (Path(p).stem + ".wav")
        sf.write(str(dst), np.clip(up, -1, 1), 44100, subtype="PCM_16")
        mapping[p] = str(dst)
    rows = table[table["path"].astype(str).isin(chosen)].copy()
    rows["path"] = rows["path"].astype(str).map(mapping)
    return rows.reset_index(drop=True)


def _one_blas_thread(worker_id: int) -> None:
    """DataLoader worker init: numpy's BLAS to 1 thread (torch already sets 1 torch thread per worker).

    Without it each worker's OpenBLAS starts a thread per core, and 2 workers x 2 spinning BLAS
    threads on 2 cores made librosa's per-item work several times slower than with no workers.
    threadpoolctl comes with scikit-learn.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class _Variant:
    """One way of producing batches, timed per repeat: ``start`` -> ``step`` (any number) -> ``stop``.

    Per-item variants without workers are timed a few batches at a time, interleaved with each
    other, so a burst of background load on a shared machine hits them alike. Variants with worker
    processes are timed as one block: interleaving would let their workers prefetch while another
    variant's batches are being timed.
    """

    def __init__(self, name: str, dataset: Dataset, workers: int, batch_size: int, n_batches: int | None,
                 seed: int, worker_init_fn: Any = None):
        self.name, self.workers, self.n_batches = name, workers, n_batches
        g = torch.Generator().manual_seed(seed)
        if n_batches is None:  # one full epoch, as training iterates it
            sampler = RandomSampler(dataset, generator=g)
        else:  # a fixed number of random items (with replacement: a subset may have fewer rows)
            sampler = RandomSampler(dataset, replacement=True, num_samples=(n_batches + 1) * batch_size,
                                    generator=g)
        kw: dict[str, Any] = {"num_workers": workers}
        if workers > 0:
            kw.update(persistent_workers=True, worker_init_fn=worker_init_fn)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, **kw)
        self.batch_size = batch_size
        self.items = len(dataset) if n_batches is None else n_batches * batch_size
        self.times: list[float] = []

    def warm_up(self) -> None:
        """Start workers, compile librosa's numba kernels, fill the page cache: none of it is timed."""
        it = iter(self.loader)
        next(it)
        if self.n_batches is None:
            for _ in it:  # a whole epoch, so persistent workers exist and the memmap pages are read
                pass

    def start(self) -> None:
        self._it = iter(self.loader)
        self._seconds = 0.0
        self._left = self.n_batches
        if self.n_batches is not None:
            next(self._it)  # the first batch waits for worker start-up/prefetch; time the steady state

    def step(self, k: int | None = None) -> None:
        """Time ``k`` more batches (default: all that are left, or the whole epoch)."""
        if self.n_batches is None:
            self._seconds += timed(lambda: [None for _ in self._it])
            return
        k = self._left if k is None else min(k, self._left)

        def take() -> None:
            for _ in range(k):
                next(self._it)

        self._seconds += timed(take)
        self._left -= k

    def stop(self) -> float:
        self._it = None
        self.times.append(self._seconds)
        return self._seconds


def run(cfg: Config, *, repeats: int, quick: bool) -> dict[str, Any]:
    batch = settings_of(cfg, "chunk").batch_size
    n_batches = 4 if quick else 20
    log("data: building/reading the chunk table and feature cache (training_data)")
    holder: dict[str, Any] = {}
    setup = timed(lambda: holder.setdefault("b", training_data(cfg, "chunk", progress=True)))
    train = holder["b"].train  # the chunk model's ExampleDataset (augmented on the fly)
    table = train.examples.table
    plain = ExampleDataset(Examples(train.examples.features, train.examples.clip))  # no augmentation
    tmp = tempfile.TemporaryDirectory(prefix="sed_bench_44k_")
    log("data: writing 44.1 kHz WAV copies of a few clips (upstream ESC-50 format)")
    rows44 = _make_44k_copies(table, 30 if quick else 100, Path(tmp.name), cfg.seed)

    variants = [
        _Variant("cached + augmentation (training path), 0 workers", train, 0, batch, None, cfg.seed),
        _Variant("cached, no augmentation, 0 workers", plain, 0, batch, None, cfg.seed),
        _Variant("cached + augmentation, 2 workers", train, 2, batch, None, cfg.seed),
        _Variant("per item: soundfile + torchaudio (OnTheFlyDataset)",
                 OnTheFlyDataset(cfg, table), 0, batch, n_batches, cfg.seed),
        _Variant("per item: librosa, 16 kHz FLAC (original method)",
                 LibrosaOnTheFly(cfg, table), 0, batch, n_batches, cfg.seed),
        _Variant("per item: librosa, 16 kHz FLAC, 2 workers",
                 LibrosaOnTheFly(cfg, table), 2, batch, n_batches, cfg.seed),
        _Variant("per item: librosa, 16 kHz FLAC, 2 workers, 1 BLAS thread each",
                 LibrosaOnTheFly(cfg, table), 2, batch, n_batches, cfg.seed,
                 worker_init_fn=_one_blas_thread),
        _Variant("per item: librosa, 44.1 kHz WAV + resample (original on upstream files)",
                 LibrosaOnTheFly(cfg, rows44), 0, batch, n_batches, cfg.seed),
    ]
    try:
        for v in variants:
            log(f"data: warm-up {v.name}")
            v.warm_up()
        interleaved = [v for v in variants if v.n_batches is not None and v.workers == 0]
        blocks = [v for v in variants if v not in interleaved]
        for r in range(repeats):  # round-robin: background load hits every variant alike
            for v in blocks:
                v.start()
                v.step()
                log(f"data: repeat {r + 1}/{repeats} {v.name}: {v.stop():.2f} s for {v.items} items")
            for v in interleaved:
                v.start()
            for _ in range(0, n_batches, 2):
                for v in interleaved:
                    v.step(2)
            for v in interleaved:
                log(f"data: repeat {r + 1}/{repeats} {v.name}: {v.stop():.2f} s for {v.items} items")
    finally:
        for v in variants:
            del v.loader  # shut persistent workers down before the temp files go
        tmp.cleanup()

    epoch_items = len(train)
    rows = []
    for v in variants:
        sec = median(v.times)
        ms_item = sec / v.items * 1000.0
        rows.append({
            "variant": v.name,
            "workers": v.workers,
            "items_timed": v.items,
            "ms_per_item": ms_item,
            "ms_per_batch": ms_item * batch,
            "epoch_seconds": ms_item * epoch_items / 1000.0,
            "spread": spread(v.times),
            "times": v.times,
        })
    ref = rows[0]["epoch_seconds"]
    for row in rows:
        row["x_slower_than_cached"] = row["epoch_seconds"] / ref
    orig16 = rows[4]["x_slower_than_cached"]  # librosa on the 16 kHz FLAC
    orig44 = rows[7]["x_slower_than_cached"]  # librosa on 44.1 kHz WAV, resampled per read
    return {
        "title": "1. Data loading: feature cache vs per-item log-mel",
        "description": (
            f"One epoch of the training set ({epoch_items} ESC-50 chunks of folds {list(cfg.folds.train)}, "
            f"batch {batch}, shuffled). Cached rows time a whole epoch; per-item rows time {n_batches} "
            f"batches x {batch} random chunks and are extrapolated to the epoch. Medians of {repeats} "
            "repeats, run round-robin (per-item rows without workers interleaved 2 batches at a time)."
        ),
        "columns": [
            column("variant", "how batches are made"),
            column("ms_per_item", "ms / item", "{:.3f}"),
            column("ms_per_batch", f"ms / batch of {batch}", "{:.1f}"),
            column("epoch_seconds", "s / epoch", "{:.1f}"),
            column("x_slower_than_cached", "x cached time", "{:.1f}"),
            column("spread", "spread", "{:.0%}"),
        ],
        "rows": rows,
        "summary": {
            "epoch_items": epoch_items,
            "setup_seconds": setup,
            "speedup_vs_original_16k_flac": orig16,
            "speedup_vs_original_44k_wav": orig44,
        },
        "notes": [
            f"Cache vs the original method: {orig16:.0f}x faster on the shared 16 kHz FLAC, {orig44:.0f}x on "
            "44.1 kHz WAV as upstream ships it (which the original resampled on every read). "
            "Goal was >= 10x.",
            f"Cached features and normalisation setup (training_data, cache already built or built now): "
            f"{setup:.1f} s.",
            f"Workers: cached 2 workers vs 0 = {rows[0]['ms_per_item'] / rows[2]['ms_per_item']:.2f}x; "
            f"librosa 2 workers vs 0 = {rows[4]['ms_per_item'] / rows[5]['ms_per_item']:.2f}x, and "
            f"{rows[4]['ms_per_item'] / rows[6]['ms_per_item']:.2f}x with numpy's BLAS limited to 1 thread "
            "per worker (>1 = workers help). Workers are timed alone; during training they would share "
            "the 2 cores with the model.",
            "The librosa rows load the whole 5 s clip and cut the 1 s chunk, as the original did. "
            "'spread' = (max - min) / median over repeats.",
        ],
    }
