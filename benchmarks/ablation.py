"""Ablation: does each improvement over the original recipe actually help? Measured, not claimed.

Trains the ResNet18 on the real ESC-50 (profile ``scenes``: folds 1-3 train, 4 validates) once per
row and seed, and scores it with sed_eval's segment-based macro F1 (1 s segments) on 10 s scenes
mixed from the held-out fold 5 (``scenes.test`` scenes, fixed ``scenes.seed``, the same for every
row and seed), through the package's one evaluation (``sed_utils.evaluate.evaluate``). Rows are
cumulative (see ``STEPS`` and ``OFF`` below):

    original recipe        no negatives, no augmentation, global threshold 0.6 (as the original), the
                           model on the 1 s segment grid (windows every 1 s)
    + negatives            chunks of the other 45 ESC-50 classes as all-zero examples
    + mixing               two chunks mixed into one multilabel example
    + augmentation         SpecAugment masks, gain, noise, time shift
    + class thresholds     per-class segment thresholds chosen on the validation scenes (same model)
    + backgrounds          ambient ESC-50 chunks of the training folds laid under training examples
    + scene selection      the epoch chosen (and training stopped) on the validation scenes
    + training scenes      scenes mixed from the training folds, cut into 1 s segments, as extra
                           training data
    + window scores        windows every 250 ms: a segment's score = the max of the curve inside it
                           (same model as the row above)
    + cosine schedule      learning rate falling to 0 over 8 epochs, no early stop
                           (the last of these rows is config.yml's defaults: checked)
    + ImageNet weights     only where they can be downloaded; skipped offline, with a note

Rows that train the same model (they differ only in how it is used) share one run folder.

This script asks one question, "what makes the chunk model's 1 s segments better?", and scores
segments. The event-detection rows live in scripts of their own because they train another model
and read it as events: ``events.py`` (chunk vs frame model, each post-processing step, negatives in
training and in the choice) and ``scene_recipes.py`` (DESED-like vs uniform scenes). Each of the
three re-runs alone, and the README gives each its table.

Usage (from the repository root; needs the real ESC-50, e.g. from notebook 01 with profile full)::

    .venv/bin/python benchmarks/ablation.py --seeds 0 1 2
    .venv/bin/python benchmarks/ablation.py --seeds 0 --rows original,train_scenes   # quicker
    .venv/bin/python benchmarks/ablation.py --seeds 0 1 2 --rows background,train_scenes --merge

``--merge`` keeps the runs of the existing ablation.json that this call does not redo, each with
the date and command that measured it (the table's footnote lists them), so adding a row does not
mean re-training the others. Writes benchmarks/results/ablation.json and ablation.md (mean and
spread over seeds, training time per run). Each run keeps its checkpoint in
runs/ablation/<row>-seed<k>/, so re-running skips what is done.
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

from sed_utils.config import load_config  # noqa: E402
from sed_utils.core import atomic  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Every switch an improvement turns on, with its "off" value. A row's config = config.yml's
# defaults with every switch that no row up to it has turned on set to "off"; so the rows are
# cumulative, and the last trained row IS config.yml's defaults (checked in main()).
OFF = {
    "chunking.negative_ratio": "0",
    "augment.mix_prob": "0",
    "augment.specaugment": "false",
    "augment.gain_db": "0",
    "augment.noise_prob": "0",
    "augment.time_shift": "0",
    "postprocess.segment_thresholds": "[0.6]",
    "augment.background_prob": "0",
    "models.chunk.select_on": "chunks",
    "models.chunk.train_scenes": "0",
    "postprocess.window_hop_seconds": "1.0",
    "train.lr_schedule": "constant",
    "models.chunk.epochs": "12",
    "train.patience": "4",
}
# (row, title, switches it turns on). Order matters: each row adds to the ones above.
STEPS: list[tuple[str, str, list[str]]] = [
    ("original", "original recipe (no negatives, no augmentation, threshold 0.6)", []),
    ("negatives", "+ negatives from the other 45 classes", ["chunking.negative_ratio"]),
    ("mixing", "+ multilabel mixing", ["augment.mix_prob"]),
    ("augment", "+ SpecAugment, gain, noise, time shift",
     ["augment.specaugment", "augment.gain_db", "augment.noise_prob", "augment.time_shift"]),
    ("class_thresholds", "+ per-class thresholds chosen on validation-fold scenes",
     ["postprocess.segment_thresholds"]),
    ("background", "+ ambient backgrounds under training examples", ["augment.background_prob"]),
    ("scene_selection", "+ epoch chosen on validation-fold scenes", ["models.chunk.select_on"]),
    ("train_scenes", "+ training-fold scenes as training data", ["models.chunk.train_scenes"]),
    ("window_scores", "+ windows every 250 ms: segment scores from the curve's max",
     ["postprocess.window_hop_seconds"]),
    ("cosine", "+ cosine learning-rate schedule, 8 epochs without early stop",
     ["train.lr_schedule", "models.chunk.epochs", "train.patience"]),
]
ON_TOP: dict[str, str] = {}  # switches whose config.yml default is "off": the value their row turns on
PRETRAINED = ("pretrained", "+ ImageNet weights", ["train.pretrained=true"])


def _rows() -> list[tuple[str, str, list[str]]]:
    """(row, title, overrides) for every row, the ImageNet row last (on top of the defaults)."""
    rows, turned_on = [], set()
    for row, title, switches in STEPS:
        turned_on |= set(switches)
        overrides = [f"{k}={v}" for k, v in OFF.items() if k not in turned_on]
        overrides += [f"{k}={v}" for k, v in ON_TOP.items() if k in turned_on]
        rows.append((row, title, overrides))
    last = rows[-1][2]
    rows.append((PRETRAINED[0], PRETRAINED[1], [*last, *PRETRAINED[2]]))
    return rows


ROWS = _rows()


def run_one(row: str, overrides: list[str], seed: int, extra: list[str], folder: str) -> dict:
    """Train (or reuse) and evaluate one row/seed; return the numbers that go into the table.

    ``folder`` names the run folder: rows whose training config is the same (they differ only in
    how the trained model is used, e.g. its thresholds) share one model.
    """
    from sed_utils.evaluate import evaluate
    from sed_utils.train import train, training_data

    runs_root = REPO_ROOT / "runs" / "ablation" / f"{folder}-seed{seed}"
    cfg = load_config("scenes", [*overrides, *extra, f"seed={seed}", f"runs_root={runs_root}"])
    if cfg.train.pretrained:
        from sed_utils.models import build_resnet18

        # Ask first (0.1 s offline) instead of training a random-init model for minutes under this name.
        if not build_resnet18(len(cfg.desed_labels), pretrained=True).pretrained_loaded:
            return {"row": row, "seed": seed, "skipped": "ImageNet weights could not be downloaded (offline)"}
    data = training_data(cfg, "chunk", progress=False)
    result = train(cfg, "chunk", data=data, progress=False)
    res = evaluate(cfg, "chunk", progress=False).results
    out = {
        "row": row,
        "seed": seed,
        "model_of": folder,
        "overrides": overrides,
        "segment_macro_f1": res["segment_based"]["macro"]["f1"],
        "segment_micro_f1": res["segment_based"]["overall"]["f1"],
        "event_macro_f1": res["event_based"]["macro"]["f1"],
        "valid_macro_f1": result.best_score,
        "selected_on": result.selected_on,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": result.seconds,
        "train_items": len(data.train),
    }
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

        entry = {"row": row, "title": title, "seeds": [r["seed"] for r in done],
                 "shared": any(r.get("model_of", row) != row for r in done),
                 "dates": sorted({r["date"] for r in done})}
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
        train = "(same model)" if e.get("shared") else f"{e['train_seconds'] / 60:.1f}"
        title = e["title"]
        if sorted(e["seeds"]) != list(meta["seeds"]):  # say so when a row has fewer seeds than the table
            title += f" (seeds {', '.join(map(str, sorted(e['seeds'])))} only)"
        lines.append(f"| {title} | {f['segment_macro_f1']} | {f['segment_micro_f1']} | "
                     f"{f['event_macro_f1']} | {f['valid_macro_f1']} | {train} |")
    lines.append("")
    by_date: dict[str, list[str]] = {}
    for e in table:
        for d in e.get("dates", []):
            by_date.setdefault(d, []).append(e["row"])
    when = "; ".join(f"{d}: {', '.join(rows)}" for d, rows in sorted(by_date.items())) or meta["date"]
    commands = " and ".join(f"`{c}`" for c in meta["command"].split("; "))
    lines.append(f"Mean ± standard deviation over seeds {meta['seeds']}; {meta['n_scenes']} held-out scenes "
                 f"(fold 5), real ESC-50, {meta['cores']} CPU cores. Measured {when}. Commands: {commands}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", default=",".join(r for r, _, _ in ROWS),
                   help="comma-separated subset of rows")
    p.add_argument("-p", "--param", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (e.g. data_root=...)")
    p.add_argument("--merge", action="store_true",
                   help="keep the runs of the existing ablation.json that this call does not redo "
                        "(each keeps its date and command), instead of starting a new table")
    p.add_argument("--table-only", action="store_true",
                   help="only rewrite ablation.json's table and ablation.md from its runs (no training)")
    args = p.parse_args(argv)
    if args.table_only:
        runs = previous_runs()
        if not runs:
            p.error(f"no runs in {RESULTS_DIR / 'ablation.json'}")
        old_meta = json.loads((RESULTS_DIR / "ablation.json").read_text())["meta"]
        print(write_summary(runs, old_meta["n_scenes"], time.perf_counter()))
        return 0
    wanted = args.rows.split(",")
    unknown = set(wanted) - {r for r, _, _ in ROWS}
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}")
    cfg = load_config("scenes", args.extra)
    if not (cfg.data_root / "ESC-50-master" / "meta" / "esc50.csv").is_file():
        p.error(f"no ESC-50 under {cfg.data_root}: run notebook 01 with profile full (or scenes) first")
    folders = model_folders(args.extra)
    command = "python benchmarks/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    redo = {(row, seed) for seed in args.seeds for row in wanted}
    earlier = [r for r in previous_runs() if (r["row"], r["seed"]) not in redo] if args.merge else []
    runs: list[dict] = []
    md = ""
    t0 = time.perf_counter()
    for seed in args.seeds:
        for row, title, overrides in ROWS:
            if row not in wanted:
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {title}, seed {seed}", flush=True)
            r = run_one(row, overrides, seed, args.extra, folders[row])
            r.update(date=time.strftime("%Y-%m-%d"), command=command)
            shown = {k: v for k, v in r.items() if k not in ("row", "seed", "overrides", "command")}
            print(f"    -> {json.dumps(shown)}", flush=True)
            runs.append(r)
            md = write_summary([*earlier, *runs], cfg.scenes.test, t0)  # after every run: hours of work
    print(md)
    return 0


def model_folders(extra: list[str]) -> dict[str, str]:
    """Row -> run folder: the first row with the same training config (they share one model).

    Also checks the promise of the table: the last improvement row is config.yml's defaults.
    """
    from sed_utils.train import training_key

    first: dict[str, str] = {}
    folders = {}
    for row, _, overrides in ROWS:
        key = training_key(load_config("scenes", [*overrides, *extra]), "chunk")
        folders[row] = first.setdefault(key, row)
    defaults = load_config("scenes", extra).to_dict()
    last = load_config("scenes", [*ROWS[-2][2], *extra]).to_dict()
    if last != defaults:
        raise SystemExit(f"the row {ROWS[-2][0]!r} should be config.yml's defaults but differs: "
                         "fix OFF / ON_TOP")
    return folders


# Rows renamed since an earlier ablation.json was written (read by --merge).
RENAMED = {"defaults": "thresholds"}


def previous_runs() -> list[dict]:
    """The runs of the existing ablation.json, each with its date and command (for ``--merge``).

    Runs from before dates were stored per run get the file's date and command, and the run
    folder (model) their row uses now. A run whose recorded overrides differ from its row's
    current overrides is dropped (the row changed since).
    """
    path = RESULTS_DIR / "ablation.json"
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    current = {row: overrides for row, _, overrides in ROWS}
    kept = []
    folders = model_folders([])
    for r in old.get("runs", []):
        r = {**r, "row": RENAMED.get(r["row"], r["row"])}
        r.setdefault("model_of", folders.get(r["row"], r["row"]))  # runs from before it was recorded
        r.setdefault("date", old["meta"]["date"])
        r.setdefault("command", old["meta"]["command"])
        if r["row"] in current and r.get("overrides", current[r["row"]]) == current[r["row"]]:
            kept.append(r)
    return kept


def write_summary(runs: list[dict], n_scenes: int, t0: float) -> str:
    """Write ablation.json and ablation.md from ``runs`` (seeds listed are those that ran)."""
    meta = {
        "seeds": sorted({r["seed"] for r in runs}),
        "n_scenes": n_scenes,
        "cores": os.cpu_count(),
        "date": ", ".join(sorted({r["date"] for r in runs})),
        "seconds": round(time.perf_counter() - t0),
        "command": "; ".join(dict.fromkeys(r["command"] for r in runs)),
    }
    table = summarise(runs)
    summary = {"meta": meta, "table": table, "runs": runs}
    atomic.write_json(RESULTS_DIR / "ablation.json", summary)
    md = markdown(table, meta)
    atomic.write_text(RESULTS_DIR / "ablation.md", md)
    return md


if __name__ == "__main__":
    sys.exit(main())
