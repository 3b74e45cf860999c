"""How fast, and in how much memory, does ``detect`` run on a CPU? (notebook 09, the CLI)

Measures ``sed_utils.detection.detect_files`` - reading, resampling, scoring, post-processing -
for both model kinds (random weights from ``sed_utils.models.build_detector``: compute depends on the
audio's length, not on what the model learned; the frame model's curve is its frames, the chunk
model's 1 s windows every 250 ms through ``sed_utils.models.window_curve``), each in a fresh child
process so that its peak memory (``ru_maxrss``) is its own:

* twenty 10 s clips as a user's files typically are (44.1 kHz stereo 16-bit WAV), and the same
  clips as 16 kHz mono (no resampling), after one warm-up file; ``--repeats`` runs, median;
* one hour of audio in one file (16 kHz mono 16-bit WAV of silence with a tone every 30 s), once.

Reports the real-time factor (seconds of audio per second of compute), seconds per clip, and the
peak memory of the process, next to the memory of the same process after loading torch and the
model but before any audio (so the audio's own share shows). Goals of the issue: the frame model
>= 500x real time, under 1 GB for the hour.

    .venv/bin/python benchmarks/detect_speed.py            # ~5 min on 2 cores
    .venv/bin/python benchmarks/detect_speed.py --quick    # 2 clips, 5 minutes of audio instead of an hour

Writes benchmarks/results/detect_speed.json and .md (``--quick``: to a temp folder; ``--batch-size N``:
detect_speed_batch<N>.json and .md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sed_utils.core import atomic  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LABELS = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]

# The child: load the model, note the memory, run detect_files over the inputs, report as json.
CHILD = r"""
import json, resource, sys, time
import torch
from sed_utils.detection import detect_files, load_model
torch.set_num_threads(int(sys.argv[3]))
batch_size = json.loads(sys.argv[4])  # None: each kind's default
trained = load_model(sys.argv[1])
files = json.loads(sys.argv[2])
loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if len(files) > 1:
    # warm-up: first-call allocations, lazy imports
    detect_files(files[:1], trained, progress=False, batch_size=batch_size)
    files = files[1:]
t0 = time.perf_counter()
batch = detect_files(files, trained, progress=False, batch_size=batch_size)
seconds = time.perf_counter() - t0
assert not batch.failures, batch.failures
audio = sum(float(d.bounds[-1]) for d in batch.detections)  # the audio is dropped, its curve's end is not
print("RESULT" + json.dumps({"seconds": seconds, "audio_seconds": audio, "files": len(files),
      "loaded_mb": loaded_kb / 1024, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _models(folder: Path) -> dict[str, Path]:
    """Random-weight checkpoints of both model kinds, saved as the series saves them, each with a
    stored post-processing (threshold 0.5, median filter 5, windows every 0.25 s) as ``detect`` needs."""
    import torch

    from sed_utils.config import MelConfig
    from sed_utils.labels import PostProcessing
    from sed_utils.models import build_detector, save_checkpoint, store_post_processing

    n = len(LABELS)
    post = PostProcessing(tuple(LABELS), thresholds=(0.5,) * n, median_filters=(5,) * n,
                          min_durations=(0.0,) * n, segment_thresholds=(0.5,) * n, window_hop_seconds=0.25,
                          chosen_on="benchmark")
    out = {}
    for kind, window_seconds in (("frame", 10.0), ("chunk", 1.0)):  # the input each kind trains on
        torch.manual_seed(0)
        d = build_detector(kind, LABELS, MelConfig(), 16000, window_seconds, np.full(64, -40.0, np.float32),
                           10.0)
        path = folder / f"{kind}.pt"
        save_checkpoint(path, d, config={}, epoch=0, best_score=0.0, complete=True, key="")
        store_post_processing(path, post)
        out[kind] = path
    return out


def _clips(folder: Path, n: int, sr: int, channels: int) -> list[str]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        x = (0.1 * rng.standard_normal((10 * sr, channels))).astype(np.float32)
        p = folder / f"clip{i:02d}.wav"
        sf.write(p, x, sr, subtype="PCM_16")
        paths.append(str(p))
    return paths


def _long_file(path: Path, minutes: int) -> str:
    sr, t = 16000, np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as fh:
        for k in range(minutes * 2):
            block = 0.001 * rng.standard_normal(30 * sr).astype(np.float32)
            block[5 * sr:6 * sr] += 0.3 * np.sin(2 * np.pi * (500 + 10 * k) * t).astype(np.float32)
            fh.write(block)
    return str(path)


def _child(model: Path, files: list[str], threads: int, batch_size: int | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), json.dumps(files), str(threads),
                           json.dumps(batch_size)],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.split("RESULT", 1)[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 clips and 5 minutes instead of 20 and an hour")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads (2: both cores of a laptop)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="detect's --batch-size (default: each kind's own); results: detect_speed_batch<N>")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    stem = "detect_speed" if args.batch_size is None else f"detect_speed_batch{args.batch_size}"
    n_clips, minutes = (3, 5) if args.quick else (21, 60)  # the first clip is the warm-up
    quick_dir = Path(tempfile.gettempdir()) / "sed_benchmarks_quick"
    out_dir = args.out or (quick_dir if args.quick else RESULTS_DIR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = _models(tmp)
        inputs = {"10 s clips, 44.1 kHz stereo WAV": _clips(tmp / "c44", n_clips, 44100, 2),
                  "10 s clips, 16 kHz mono WAV": _clips(tmp / "c16", n_clips, 16000, 1),
                  f"{minutes} min in one file, 16 kHz mono WAV": [_long_file(tmp / "long.wav", minutes)]}
        for kind, model in models.items():
            for name, files in inputs.items():
                repeats = args.repeats if len(files) > 1 else 1
                runs = [_child(model, files, args.threads, args.batch_size) for _ in range(repeats)]
                secs = statistics.median(r["seconds"] for r in runs)
                audio = runs[0]["audio_seconds"]
                row = {"model": kind, "input": name, "files": runs[0]["files"], "audio_seconds": audio,
                       "seconds": secs, "rtf": audio / secs, "seconds_per_file": secs / runs[0]["files"],
                       "loaded_mb": max(r["loaded_mb"] for r in runs),
                       "peak_mb": max(r["peak_mb"] for r in runs),
                       "spread": (max(r["seconds"] for r in runs) - min(r["seconds"] for r in runs)) / secs,
                       "repeats": repeats}
                rows.append(row)
                print(f"{kind:5s} {name:40s} RTF {row['rtf']:7.0f}x  {row['seconds_per_file']:.3f} s/file  "
                      f"peak {row['peak_mb']:.0f} MB (model loaded: {row['loaded_mb']:.0f} MB)", flush=True)
    command = ("python benchmarks/detect_speed.py" + (" --quick" if args.quick else "")
               + ("" if args.batch_size is None else f" --batch-size {args.batch_size}"))
    lines = ["| model | input | real-time factor | s per file | peak memory | after loading the model |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['input']} | {r['rtf']:.0f}x | {r['seconds_per_file']:.3f} | "
              f"{r['peak_mb']:.0f} MB | {r['loaded_mb']:.0f} MB |" for r in rows]
    batching = "each kind's default" if args.batch_size is None else args.batch_size
    lines += ["", f"Random weights, torch threads {args.threads}, batch size {batching}, "
              f"{os.cpu_count()} CPU cores; clips: median of {args.repeats} runs after a warm-up file. "
              f"Measured {date.today()}.",
              f"Command: `{command}`", ""]
    atomic.write_text(out_dir / f"{stem}.json",
                      json.dumps({"rows": rows, "command": command, "threads": args.threads,
                                  "batch_size": args.batch_size,
                                  "cpu_count": os.cpu_count(), "measured": str(date.today())},
                                 indent=2) + "\n")
    atomic.write_text(out_dir / f"{stem}.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
