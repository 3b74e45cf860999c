"""False alarms per negative category: which everyday sounds each frame model variant mistakes for a class.

The evaluation counts the held-out fold's clips of the other ESC-50 categories on which a model
reports any event (``negatives`` in its results). This benchmark splits that count by category and
sets model variants side by side, mean ± standard deviation over seeds: e.g. the frame model trained on
the five classes against the one trained with an output for every ESC-50 category
(``models.frame.targets=all``), so the categories it stopped (or started) mistaking show.

Profile ``scenes`` on the real ESC-50 (train folds 1-3, choices on fold 4, negatives of fold 5). Each
variant is a run folder pattern and its config overrides; a missing model is trained first, a
finished one is reused (as ``benchmarks/levels.py`` and ``events.py`` leave them), and the
post-processing is the one the evaluation chose on the validation scenes.

Usage (from the repository root)::

    .venv/bin/python benchmarks/negatives.py --seeds 0 1 2 \\
        --variant classes "runs/levels/max-ref/seed{seed}" \\
        --variant all "runs/levels/all-cats/seed{seed}" models.frame.targets=all

Writes benchmarks/results/negatives_by_category.json and .md (``--name`` another stem).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common import mean_sd, save_seed_results  # noqa: E402

from sed_utils.config import load_config  # noqa: E402


def run_variant(seed: int, runs: str, overrides: list[str]) -> dict:
    """Train (or reuse) one variant's frame model of one seed; its false alarms on the held-out negatives."""
    from sed_utils.evaluate import evaluate, negative_false_alarms
    from sed_utils.models import load_trained
    from sed_utils.train import train

    cfg = load_config("scenes", [*overrides, f"seed={seed}",
                                 f"runs_root={REPO_ROOT / runs.format(seed=seed)}"])
    train(cfg, "frame", progress=False)
    ev = evaluate(cfg, "frame", progress=False)
    neg = negative_false_alarms(cfg, load_trained(cfg.paths.checkpoint("frame"), device="cpu"), ev.post,
                                progress=False)
    return {"share": neg["share"], "clips": neg["clips"], "per_category": neg["per_category"],
            "event_f1": ev.results["event_based"]["macro"]["f1"], "psds1": ev.results["psds1"]["value"]}


def markdown(runs: list[dict], seeds: list[int], command: str, top: int = 15) -> str:
    """Overall rows, then the ``top`` categories hit most by any variant: mean ± spread over the seeds."""
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    mine = {v: [r for r in runs if r["variant"] == v] for v in variants}
    lines = ["| | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    lines.append("| **negatives with a false alarm** | "
                 + " | ".join(mean_sd([r["share"] for r in mine[v]], percent=True) for v in variants) + " |")
    for key, title in (("event_f1", "event macro F1 (scenes)"), ("psds1", "PSDS1")):
        cells = " | ".join(mean_sd([r[key] for r in mine[v]]) for v in variants)
        lines.append(f"| {title} | {cells} |")
    categories = sorted({c for r in runs for c in r["per_category"]})
    means = {c: {v: statistics.mean(r["per_category"].get(c, 0.0) for r in mine[v]) for v in variants}
             for c in categories}
    for c in sorted(categories, key=lambda c: -max(means[c].values()))[:top]:
        cells = " | ".join(mean_sd([r["per_category"].get(c, 0.0) for r in mine[v]], percent=True)
                           for v in variants)
        lines.append(f"| {c} | {cells} |")
    lines += ["", "Share of the held-out fold's clips with any event, by ESC-50 category "
              f"({runs[0]['clips']} clips, 8 per category); mean ± standard deviation over seeds {seeds}; "
              "real ESC-50, profile scenes. "
              f"Measured {', '.join(sorted({r['date'] for r in runs}))}. Command: `{command}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variant", nargs="+", action="append", required=True, metavar="NAME RUNS [OVERRIDE]",
                   help="a name, its run folder pattern ({seed} filled in) and its config overrides")
    p.add_argument("--name", default="negatives_by_category", help="the results' file stem")
    args = p.parse_args(argv)
    if any(len(v) < 2 for v in args.variant):
        p.error("--variant needs a name and a run folder pattern")
    cfg = load_config("scenes")
    if not (cfg.data_root / "ESC-50-master" / "meta" / "esc50.csv").is_file():
        p.error(f"no ESC-50 under {cfg.data_root}: run notebook 01 with profile scenes (or full) first")
    command = " ".join(["python benchmarks/negatives.py --seeds", *map(str, args.seeds), *(
        "--variant " + " ".join([f'"{v[0]}"' if " " in v[0] else v[0], f'"{v[1]}"', *v[2:]])
        for v in args.variant), *(["--name", args.name] if args.name != "negatives_by_category" else [])])
    runs: list[dict] = []
    for seed in args.seeds:
        for name, pattern, *overrides in args.variant:
            runs.append({"date": str(date.today()), "variant": name, "seed": seed,
                         **run_variant(seed, pattern, overrides)})
        done = sorted({r["seed"] for r in runs})
        save_seed_results(args.name, {"runs": runs, "seeds": done, "command": command},
                          markdown(runs, done, command))
    print(markdown(runs, sorted({r["seed"] for r in runs}), command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
