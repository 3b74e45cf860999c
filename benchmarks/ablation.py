"""Ablation: does each improvement over the original recipe actually help? Measured, not claimed.

Trains the ResNet18 on the real ESC-50 (profile ``scenes``: folds 1-3 train, 4 validates) once per
row and seed, and scores it with sed_eval's segment-based macro F1 (1 s segments) on 10 s scenes
mixed from the held-out fold 5 (``eval.n_scenes`` scenes, fixed ``eval.scenes_seed``, the same for
every row and seed). Rows are cumulative:

    original recipe      no negatives, no augmentation, global threshold 0.6 (as the original)
    + negatives          chunks of the other 45 ESC-50 classes as all-zero examples
    + mixing             two chunks mixed into one multilabel example
    + augmentation       SpecAugment masks, gain, noise, time shift   (= config.yml's training)
    + class thresholds   per-class thresholds chosen on the validation fold (= config.yml's default;
                         same model as the row above, so it is not retrained)
    + ImageNet weights   only where they can be downloaded; skipped offline, with a note

Usage (from the repository root; needs the real ESC-50, e.g. from notebook 01 with profile full)::

    .venv/bin/python benchmarks/ablation.py --seeds 0 1 2
    .venv/bin/python benchmarks/ablation.py --seeds 0 --rows original,defaults   # quicker

Writes benchmarks/results/ablation.json and ablation.md (mean and spread over seeds, training time
per run). Each run keeps its checkpoint in runs/ablation/<row>-seed<k>/, so re-running skips what is
done.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sed_utils import atomic  # noqa: E402
from sed_utils.config import load_config  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NO_AUGMENT = ["augment.specaugment=false", "augment.gain_db=0", "augment.noise_prob=0",
              "augment.time_shift=0"]
ROWS: list[tuple[str, str, list[str]]] = [
    ("original", "original recipe (no negatives, no augmentation, threshold 0.6)",
     ["chunking.negative_ratio=0", *NO_AUGMENT, "augment.mix_prob=0", "eval.per_class_thresholds=false"]),
    ("negatives", "+ negatives from the other 45 classes",
     [*NO_AUGMENT, "augment.mix_prob=0", "eval.per_class_thresholds=false"]),
    ("mixing", "+ multilabel mixing", [*NO_AUGMENT, "eval.per_class_thresholds=false"]),
    ("augment", "+ SpecAugment, gain, noise, time shift", ["eval.per_class_thresholds=false"]),
    ("defaults", "+ per-class thresholds from validation (config.yml defaults)", []),
    ("pretrained", "+ ImageNet weights", ["train.pretrained=true"]),
]


def run_one(row: str, overrides: list[str], seed: int, extra: list[str]) -> dict:
    """Train (or reuse) and evaluate one row/seed; return the numbers that go into the table."""
    from sed_utils.dataset import build_datasets
    from sed_utils.evaluation import evaluate_run
    from sed_utils.training import train_model

    # The 'defaults' row shares its model with 'augment' (same training config): same run folder.
    folder = "augment" if row == "defaults" else row
    runs_root = REPO_ROOT / "runs" / "ablation" / f"{folder}-seed{seed}"
    cfg = load_config("scenes", [*overrides, *extra, f"seed={seed}", f"runs_root={runs_root}"])
    if cfg.train.pretrained:
        from sed_utils.model import build_resnet18

        # Ask first (0.1 s offline) instead of training a random-init model for minutes under this name.
        if not build_resnet18(len(cfg.desed_labels), pretrained=True).pretrained_loaded:
            return {"row": row, "seed": seed, "skipped": "ImageNet weights could not be downloaded (offline)"}
    bundle = build_datasets(cfg, progress=False)
    result = train_model(cfg, bundle, progress=False)
    res = evaluate_run(cfg, progress=False)
    out = {
        "row": row,
        "seed": seed,
        "segment_macro_f1": res["segment_based"]["macro"]["f1"],
        "segment_micro_f1": res["segment_based"]["overall"]["f1"],
        "event_macro_f1": res["event_based"]["macro"]["f1"],
        "valid_macro_f1": result.best_valid_macro_f1,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": result.seconds,
        "train_chunks": len(bundle.train),
    }
    # A results.json per row (the 'defaults' row shares the folder with 'augment').
    (runs_root / f"results-{row}.json").write_text(json.dumps(res, indent=2, default=str))
    return out


def summarise(runs: list[dict]) -> list[dict]:
    table = []
    for row, title, _ in ROWS:
        mine = [r for r in runs if r["row"] == row]
        if not mine:
            continue
        done = [r for r in mine if "skipped" not in r]
        if not done:
            table.append({"row": row, "title": title, "note": mine[0]["skipped"]})
            continue

        entry = {"row": row, "title": title, "seeds": [r["seed"] for r in done]}
        keys = ("segment_macro_f1", "segment_micro_f1", "event_macro_f1", "valid_macro_f1", "train_seconds")
        for key in keys:
            vals = [float(r[key]) for r in done]
            entry[key] = statistics.mean(vals)
            entry[key + "_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        table.append(entry)
    return table


def markdown(table: list[dict], meta: dict) -> str:
    lines = [
        "| recipe | segment macro F1 | segment micro F1 | event macro F1 | valid macro F1 | train min |",
        "|---|---|---|---|---|---|",
    ]
    for e in table:
        if "note" in e:
            lines.append(f"| {e['title']} | skipped: {e['note']} | | | | |")
            continue

        f = {k: f"{e[k]:.3f} ± {e[k + '_sd']:.3f}" for k in
             ("segment_macro_f1", "segment_micro_f1", "event_macro_f1", "valid_macro_f1")}
        train = "(same model)" if e["row"] == "defaults" else f"{e['train_seconds'] / 60:.1f}"
        lines.append(f"| {e['title']} | {f['segment_macro_f1']} | {f['segment_micro_f1']} | "
                     f"{f['event_macro_f1']} | {f['valid_macro_f1']} | {train} |")
    lines.append("")
    lines.append(f"Mean ± standard deviation over seeds {meta['seeds']}; {meta['n_scenes']} held-out scenes "
                 f"(fold 5), real ESC-50, {meta['cores']} CPU cores, measured {meta['date']}. "
                 f"Command: `{meta['command']}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", default=",".join(r for r, _, _ in ROWS),
                   help="comma-separated subset of rows")
    p.add_argument("-p", "--param", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (e.g. data_root=...)")
    args = p.parse_args(argv)
    wanted = args.rows.split(",")
    unknown = set(wanted) - {r for r, _, _ in ROWS}
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}")
    cfg = load_config("scenes", args.extra)
    if not (cfg.data_root / "ESC-50-master" / "meta" / "esc50.csv").is_file():
        p.error(f"no ESC-50 under {cfg.data_root}: run notebook 01 with profile full (or scenes) first")
    runs: list[dict] = []
    md = ""
    t0 = time.perf_counter()
    for seed in args.seeds:
        for row, title, overrides in ROWS:
            if row not in wanted:
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {title}, seed {seed}", flush=True)
            r = run_one(row, overrides, seed, args.extra)
            shown = {k: v for k, v in r.items() if k not in ("row", "seed")}
            print(f"    -> {json.dumps(shown)}", flush=True)
            runs.append(r)
            md = write_summary(runs, args, argv, cfg.eval.n_scenes, t0)  # after every run: hours of work
    print(md)
    return 0


def write_summary(runs: list[dict], args: argparse.Namespace, argv: list[str] | None, n_scenes: int,
                  t0: float) -> str:
    """Write ablation.json and ablation.md from the runs so far (seeds listed are those that ran)."""
    meta = {
        "seeds": sorted({r["seed"] for r in runs}),
        "n_scenes": n_scenes,
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - t0),
        "command": "python benchmarks/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    table = summarise(runs)
    summary = {"meta": meta, "table": table, "runs": runs}
    atomic.write_json(RESULTS_DIR / "ablation.json", summary)
    md = markdown(table, meta)
    atomic.write_text(RESULTS_DIR / "ablation.md", md)
    return md


if __name__ == "__main__":
    sys.exit(main())
