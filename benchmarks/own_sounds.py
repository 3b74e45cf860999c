"""Your own sounds (notebook 10) on real data, 3 seeds: the example dataset of three ESC-50 categories the
series never used (rooster, church bells, siren; 30 recordings of 30 s with Audacity tracks, clips,
negatives; none from fold 5), trained with ``train_own`` on the ``scenes`` profile's settings; the
test recordings' event F1, segment F1, PSDS1 and per class, and the training minutes.

The dataset is written once (seed 0 of the draw); each seed changes the split and the training.

Usage (from the repository root; needs the real ESC-50 under the scenes profile's data root)::

    .venv/bin/python benchmarks/own_sounds.py --seeds 0 1 2

Writes benchmarks/results/own_sounds.json and .md: mean ± standard deviation.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common import mean_sd, save_seed_results  # noqa: E402

from sed_utils.config import load_config  # noqa: E402

KEYS = [("event_f1", "event macro F1"), ("segment_f1", "segment macro F1"), ("psds1", "PSDS1"),
        ("train_minutes", "training minutes")]


def run_seed(seed: int, root: Path, runs: str, overrides: list[str]) -> dict:
    """One seed: split, train, choose, report."""
    from sed_utils.evaluate.own_sounds import train_own
    from sed_utils.labels.example_dataset import write_example_dataset
    from sed_utils.labels.own_dataset import scan_dataset

    cfg = load_config("scenes")
    data = write_example_dataset(cfg, root, recordings=30, seconds=30.0)
    t0 = time.time()
    run = train_own(scan_dataset(data), REPO_ROOT / runs.format(seed=seed), overrides=overrides, seed=seed,
                    progress=False)
    report = run.report
    return {"seed": seed, "date": str(date.today()), "train_minutes": (time.time() - t0) / 60,
            **{k: report[k] for k in ("event_f1", "segment_f1", "psds1", "recordings", "minutes", "split")},
            "per_class": report["per_class"], "classes": list(run.cfg.desed_labels)}


def markdown(rows: list[dict], command: str) -> str:
    """One row of means ± spreads, then one per class."""
    head = "| model | " + " | ".join(t for _, t in KEYS) + " |\n|" + "---|" * (len(KEYS) + 1) + "\n"
    cells = " | ".join(mean_sd([r[k] for r in rows]) for k, _ in KEYS)
    per_class = "".join(
        f"| {c} | {mean_sd([r['per_class'][c]['event_f1'] for r in rows])} | "
        f"{mean_sd([r['per_class'][c]['segment_f1'] for r in rows])} |  |  |\n" for c in rows[0]["classes"])
    note = (f"\nMean ± standard deviation over seeds {[r['seed'] for r in rows]} (the split and the "
            f"training); test recordings per seed: {[r['recordings'] for r in rows]}; real ESC-50, 2 cores. "
            f"Measured {', '.join(sorted({r['date'] for r in rows}))}. Command: `{command}`\n")
    return head + f"| frame (all classes) | {cells} |\n" + per_class + note


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data", type=Path, default=REPO_ROOT / "runs" / "own_sounds" / "example")
    p.add_argument("--runs", default="runs/own_sounds/seed{seed}")
    p.add_argument("-p", "--override", action="append", default=[])
    p.add_argument("--name", default="own_sounds", help="the results' file stem in benchmarks/results")
    args = p.parse_args(argv)
    command = " ".join(["python benchmarks/own_sounds.py", "--seeds", *map(str, args.seeds), "--runs",
                        f'"{args.runs}"', "--name", args.name, *[f"-p {o}" for o in args.override]])
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, args.data, args.runs, args.override))
        print(f"seed {seed}: {rows[-1]['event_f1']:.3f} event F1", flush=True)
        save_seed_results(args.name, {"runs": rows, "command": command}, markdown(rows, command))
    print(markdown(rows, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
