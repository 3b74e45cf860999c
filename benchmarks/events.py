"""Event detection: the chunk model against the frame model, each post-processing step, 3 seeds.

Profile ``scenes`` on the real ESC-50: both models train on folds 1-3 (the chunk model on chunks
and training-fold scene segments, the frame model on ``models.frame.train_scenes`` training-fold
scenes), everything is chosen on fold 4 (validation scenes), and the test is 200 scenes mixed from the
held-out fold 5 (fixed ``scenes.seed``) plus the fold's real negative clips (false alarms). Every row
is the one evaluation of the package (``sed_utils.evaluate.evaluate``, what notebooks 06 and 08 run);
rows that differ only in the post-processing candidates share a trained model:

    chunk                   the chunk model read as a score curve (1 s windows every 250 ms), per-class
                            threshold, median filter and minimum duration chosen on the validation scenes
    frame, thresholds only  the frame model, per-class event thresholds, no median filter
    frame, + median filter  + a class-wise median filter chosen on validation (1-13 frames, up to 1 s)
    frame                   + a class-wise minimum event duration chosen on validation, with the
                            filter and threshold chosen before it (config defaults: 0-1.28 s)
    frame, filters <= 37    the same choice among 1-37 frames (up to 3 s): with the default grid
                            four classes chose its longest filter; does a longer one help?
    frame, negatives-aware  the same, with the validation fold's clips of the other 45 classes
                            joining the validation scenes in that choice (postprocess.tune_with_negatives)
    frame, trained with negatives (only with ``--negative-clips N``): a second frame model, trained
                            with N negative-only examples per epoch (models.frame.negative_clips, training
                            folds' clips of the other classes), evaluated as "frame" and as
                            "negatives-aware"; its models live in runs/events/seed<k>-negatives<N>/

Usage (from the repository root; needs the real ESC-50 under the scenes profile's data root)::

    .venv/bin/python benchmarks/events.py --seeds 0 1 2

Each seed's models live in runs/events/seed<k>/ (re-running reuses them). Writes
benchmarks/results/events.json and events.md (``--name`` another stem): mean ± standard deviation over
the seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common import mean_sd, save_seed_results  # noqa: E402

from sed_utils.config import load_config  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ROWS = [
    ("chunk", "chunk model (1 s windows every 250 ms), post-processing chosen on validation"),
    ("frame_thresholds", "frame model, per-class thresholds only"),
    ("frame_filter", "frame model, + class-wise median filter of 1-13 frames"),
    ("frame", "frame model, + class-wise minimum event duration of 0-1.28 s (defaults)"),
    ("frame_long_filters", "frame model, median filter chosen among 1-37 frames instead"),
    ("frame_negatives", "frame model, + negatives in the choice (postprocess.tune_with_negatives)"),
    ("frame_neg_trained", "frame model trained with negative clips (models.frame.negative_clips)"),
    ("frame_neg_trained_aware", "frame model trained with negative clips, + negatives in the choice"),
]
LONG_FILTERS = "[1, 3, 5, 7, 9, 13, 19, 27, 37]"  # up to 3 s: tried 2026-12-05, not the default
#: row -> (the overrides of its post-processing candidates, its result files' tag)
VARIANTS = {"frame_thresholds": (["postprocess.median_filters=[1]", "postprocess.min_durations=[0.0]"],
                                 "_thresholds"),
            "frame_filter": (["postprocess.min_durations=[0.0]"], "_filter"),
            "frame_long_filters": ([f"postprocess.median_filters={LONG_FILTERS}"], "_long_filters")}
METRICS = [("event_f1", "event macro F1"), ("psds1", "PSDS1"), ("psds2", "PSDS2"),
           ("segment_f1", "segment macro F1"), ("intersection_f1", "intersection F1"),
           ("negatives_share", "negatives with a false alarm"), ("train_min", "train min")]


def _numbers(res: dict, train_min: float | None) -> dict:
    return {"event_f1": res["event_based"]["macro"]["f1"],
            "segment_f1": res["segment_based"]["macro"]["f1"],
            "psds1": res.get("psds1", {}).get("value"), "psds2": res.get("psds2", {}).get("value"),
            "intersection_f1": res.get("intersection_f1", {}).get("macro"),
            "negatives_share": res.get("negatives", {}).get("share"), "train_min": train_min,
            # kept for the README's per-class reading, not tabulated
            "class_event_f1": {lab: m.get("f1")
                               for lab, m in res["event_based"].get("class_wise", {}).items()},
            "median_filters": res.get("post_processing", {}).get("median_filters")}


def _frame_rows(seed: int, extra: list[str], runs_root: Path, rows: tuple[str, str],
                variants: bool = False) -> list[dict]:
    """Train (or reuse) one frame model and evaluate it with the default post-processing choice, the
    negatives-aware one and, with ``variants``, the candidate lists of :data:`VARIANTS`."""
    from sed_utils.evaluate import evaluate
    from sed_utils.train import train

    base = [*extra, f"seed={seed}", f"runs_root={runs_root}"]
    cfg = load_config("scenes", base)
    frame = train(cfg, "frame", progress=False)
    out = []
    for row, (overrides, tag) in VARIANTS.items() if variants else ():
        res = evaluate(load_config("scenes", [*base, *overrides]), "frame", progress=False, tag=tag).results
        out.append({"row": row, "seed": seed, **_numbers(res, None)})
    full = evaluate(cfg, "frame", progress=False).results
    out.append({"row": rows[0], "seed": seed, **_numbers(full, frame.seconds / 60)})
    aware = evaluate(load_config("scenes", [*base, "postprocess.tune_with_negatives=true"]), "frame",
                     progress=False, tag="_negatives").results
    out.append({"row": rows[1], "seed": seed, **_numbers(aware, None)})
    return out


def run_seed(seed: int, extra: list[str], chunk: bool = True, negative_clips: int = 0) -> list[dict]:
    """Train (or reuse) both models of one seed (the chunk model only when ``chunk``; the second
    frame model only when ``negative_clips``) and evaluate every row."""
    from sed_utils.evaluate import evaluate
    from sed_utils.train import train

    runs_root = REPO_ROOT / "runs" / "events" / f"seed{seed}"
    cfg = load_config("scenes", [*extra, f"seed={seed}", f"runs_root={runs_root}"])
    out = []
    if chunk:
        trained = train(cfg, "chunk", progress=False)
        res = evaluate(cfg, "chunk", progress=False).results
        out.append({"row": "chunk", "seed": seed, **_numbers(res, trained.seconds / 60)})
    out += _frame_rows(seed, extra, runs_root, ("frame", "frame_negatives"), variants=True)
    if negative_clips:
        out += _frame_rows(seed, [*extra, f"models.frame.negative_clips={negative_clips}"],
                           runs_root.with_name(f"seed{seed}-negatives{negative_clips}"),
                           ("frame_neg_trained", "frame_neg_trained_aware"))
    return out


def _fmt(values: list[float], key: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "(same model)" if key == "train_min" else "n/a"
    if key == "train_min":
        return f"{statistics.mean(values):.1f}"
    return mean_sd(values, percent=key == "negatives_share")


def markdown(runs: list[dict], seeds: list[int], command: str) -> str:
    """The table of notebook 08's README section: one row per ``ROWS`` entry, mean ± spread."""
    head = "| row | " + " | ".join(title for _, title in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 1)]
    for row, title in ROWS:
        mine = [r for r in runs if r["row"] == row]
        if mine:
            if len(mine) < len(seeds):
                which = [str(r["seed"]) for r in mine]
                title = f"{title} ({'seed' if len(which) == 1 else 'seeds'} {', '.join(which)})"
            cells = " | ".join(_fmt([r[k] for r in mine], k) for k, _ in METRICS)
            lines.append(f"| {title} | {cells} |")
    lines.append("")
    dates = sorted({r.get("date", "") for r in runs} - {""})
    lines.append(f"Mean ± standard deviation over seeds {seeds}; 200 held-out scenes (ESC-50 fold 5) and the "
                 f"fold's 360 negative clips, real ESC-50, 2 CPU cores. Measured {', '.join(dates)}. "
                 f"Command: `{command}`")
    return "\n".join(lines) + "\n"


def merged(old: list[dict], new: list[dict], old_date: str) -> list[dict]:
    """``new`` plus the runs of ``old`` whose (row, seed) ``new`` did not measure again (``--merge``):
    rows that need no retraining keep their earlier numbers, with the date they were measured."""
    fresh = {(r["row"], r["seed"]) for r in new}
    kept = [{"date": old_date, **r} for r in old if (r["row"], r["seed"]) not in fresh]
    return kept + new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--chunk-seeds", type=int, nargs="*", default=None,
                   help="seeds for which the chunk model is trained too (default: all of --seeds)")
    p.add_argument("--negative-clips", type=int, default=0,
                   help="also train a frame model with this many negative-only examples per epoch")
    p.add_argument("-p", "--override", action="append", default=[],
                   help="extra config override for every run")
    p.add_argument("--merge", metavar="DATE", default=None,
                   help="keep the rows of the existing results that this run does not measure, "
                        "marked as measured on DATE (when they have no date of their own)")
    p.add_argument("--name", default="events",
                   help="the results' file stem in benchmarks/results (default: events)")
    args = p.parse_args(argv)
    cfg = load_config("scenes", args.override)
    if not (cfg.data_root / "ESC-50-master" / "meta" / "esc50.csv").is_file():
        p.error(f"no ESC-50 under {cfg.data_root}: run notebook 01 with profile scenes (or full) first")
    t0, runs = time.time(), []
    chunk_seeds = args.seeds if args.chunk_seeds is None else args.chunk_seeds
    command = "python benchmarks/events.py --seeds " + " ".join(map(str, args.seeds))
    if args.chunk_seeds is not None:
        command += " --chunk-seeds " + " ".join(map(str, args.chunk_seeds))
    if args.negative_clips:
        command += f" --negative-clips {args.negative_clips}"
    if args.name != "events":
        command += f" --name {args.name}"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    earlier: dict = {"runs": [], "command": ""}
    if args.merge and (RESULTS_DIR / f"{args.name}.json").is_file():
        earlier = json.loads((RESULTS_DIR / f"{args.name}.json").read_text())
        command = f"{earlier['command']}; {command} --merge {args.merge}"
    for seed in args.seeds:
        new = run_seed(seed, args.override, chunk=seed in chunk_seeds, negative_clips=args.negative_clips)
        runs += [{"date": str(date.today()), **r} for r in new]
        print(f"seed {seed} done after {(time.time() - t0) / 60:.1f} min", flush=True)
        every = merged(earlier["runs"], runs, args.merge) if args.merge else runs
        done = sorted({r["seed"] for r in every})  # written after each seed: an interrupted run keeps them
        table = markdown(every, done, command)
        save_seed_results(args.name, {"runs": every, "seeds": done, "command": command}, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
