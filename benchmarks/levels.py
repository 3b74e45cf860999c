"""Level sweep: both models on recordings 0 to 40 dB quieter than the mixer made them, 3 seeds.

Profile ``scenes`` on the real ESC-50, the models of ``benchmarks/events.py`` (folds 1-3 train, fold 4
chooses, fold 5 tests; re-used from their run folders, trained there when missing). For each model and
attenuation (``sed_utils.evaluate.robustness`` with ``level_conditions``): the 200 held-out scenes'
event macro F1 and recall, the share of fold 5's 40 single target clips (clean, no background) whose
class is found, and the share of its 360 clips of the other categories with a false alarm. The
post-processing is the one chosen on the validation scenes at the mixer's level, as ``detect`` uses it.

Usage (from the repository root; needs the real ESC-50 under the scenes profile's data root)::

    .venv/bin/python benchmarks/levels.py --seeds 0 1 2
    .venv/bin/python benchmarks/levels.py --seeds 0 --runs "runs/levels/max-ref/seed{seed}" \
        --name levels_max_ref -p features.reference=max
    .venv/bin/python benchmarks/levels.py --seeds 0 --noise-floor -70 --name levels_noise

``--noise-floor DBFS`` adds white noise of that RMS level after each attenuation: a real quiet recording
keeps its microphone's noise while the sound grows fainter, so the sweep then measures how far below
the mixer's level a sound can still be told from that noise (without it, a model whose input ignores
the level draws flat lines by construction).

``--odd`` replaces the attenuations with recordings unlike the mixer's (``odd_conditions``): a phone's
band (100 Hz-4 kHz, 100 Hz-6 kHz), short clips cut around their sound (4, 2, 1 s: the scenes' event F1
is then not measured, the single clips and negatives are) and clipped recordings (+6, +20 dB over
full scale). ``--only "as mixed" "phone band"`` keeps the conditions whose name starts so (each costs
about 2 minutes a seed).

Writes benchmarks/results/<name>.json and .md (default name: levels): mean ± standard deviation.
"""

from __future__ import annotations

import argparse
import math
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
from sed_utils.features.conditions import LEVELS_DB  # noqa: E402

METRICS = [("event_f1", "event macro F1"), ("event_recall", "event recall"),
           ("clips_found", "single clips found"), ("negatives_alarmed", "negatives with a false alarm")]


def run_seed(seed: int, kinds: list[str], runs: str, overrides: list[str], levels: tuple[float, ...],
             noise_dbfs: float | None = None, odd: bool = False, only: list[str] | None = None) -> list[dict]:
    """Train (or reuse) each model of one seed and sweep the levels (or the odd conditions, those whose
    name starts with one of ``only`` when given)."""
    from sed_utils.evaluate import evaluate, robustness
    from sed_utils.features import level_conditions, odd_conditions
    from sed_utils.train import train

    cfg = load_config("scenes", [*overrides, f"seed={seed}",
                                 f"runs_root={REPO_ROOT / runs.format(seed=seed)}"])
    out = []
    for kind in kinds:
        train(cfg, kind, progress=False)
        res = evaluate(cfg, kind, progress=False).results  # the mixer's level: events.py's numbers
        at_mixer_level = {"psds1": res["psds1"]["value"], "segment_f1": res["segment_based"]["macro"]["f1"],
                          "event_f1_mixer": res["event_based"]["macro"]["f1"],
                          "negatives_share": res["negatives"]["share"],
                          "worst_negatives": res["negatives"].get("worst_categories", {})}
        conditions = odd_conditions(noise_dbfs) if odd else level_conditions(levels, noise_dbfs)
        if only:
            conditions = [c for c in conditions if c.name.startswith(tuple(only))]
        table = robustness(cfg, kind, conditions, progress=False)
        out += [{"model": kind, "seed": seed, **row, **at_mixer_level}
                for row in table.to_dict(orient="records")]
    return out


def markdown(runs: list[dict], seeds: list[int], command: str) -> str:
    """One row per model and level: mean ± spread over the seeds."""
    lines = ["| model | level | " + " | ".join(t for _, t in METRICS) + " |",
             "|" + "---|" * (len(METRICS) + 2)]
    for model in dict.fromkeys(r["model"] for r in runs):
        for level in dict.fromkeys(r["condition"] for r in runs if r["model"] == model):
            mine = [r for r in runs if r["model"] == model and r["condition"] == level]
            cells = " | ".join(mean_sd([r[k] for r in mine], percent=k != "event_f1" and k != "event_recall")
                               if not any(math.isnan(r[k]) for r in mine) else "not measured"
                               for k, _ in METRICS)
            lines.append(f"| {model} | {level} | {cells} |")
    n_clips = runs[0]["clips"] if runs else 0
    n_neg = runs[0]["negatives"] if runs else 0
    lines += _misses_by_class(runs)
    lines += ["",
              f"Mean ± standard deviation over seeds {seeds}; 200 held-out scenes (ESC-50 fold 5), the "
              f"fold's {n_clips} single target clips and {n_neg} clips of the other categories, each "
              f"changed as the row says; real ESC-50, 2 CPU cores. Measured "
              f"{', '.join(sorted({r['date'] for r in runs}))}. "
              f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def _misses_by_class(runs: list[dict]) -> list[str]:
    """A table of the single target clips missed per class, mean over the seeds (rows measured before the
    benchmark counted them have none)."""
    rows = [r for r in runs if "clips_missed" in r]
    labels = list(dict.fromkeys(lab for r in rows for lab in r["clips_missed"]))
    if not labels:
        return []
    lines = ["", "Single target clips missed, by class (mean over the seeds):", "",
             "| model | level | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 2)]
    for model, level in dict.fromkeys((r["model"], r["condition"]) for r in rows):
        mine = [r["clips_missed"] for r in rows if r["model"] == model and r["condition"] == level]
        cells = " | ".join(f"{statistics.mean(m.get(lab, 0) for m in mine):.1f}" for lab in labels)
        lines.append(f"| {model} | {level} | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", default=["chunk", "frame"])
    p.add_argument("--runs", default="runs/events/seed{seed}",
                   help="each seed's run folder, relative to the repository (default: events.py's)")
    p.add_argument("-p", "--override", action="append", default=[], help="config override for every run")
    p.add_argument("--name", default="levels", help="the results' file stem in benchmarks/results")
    p.add_argument("--levels", type=float, nargs="+", default=None, metavar="DB",
                   help="the attenuations (default: 0 -10 -20 -30 -40)")
    p.add_argument("--odd", action="store_true",
                   help="phone bands, short cuts and clipping instead of the attenuations")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help='with --odd: only the conditions whose name starts so, e.g. "as mixed" "phone band"')
    p.add_argument("--noise-floor", type=float, default=None, metavar="DBFS",
                   help="add white noise of this RMS level after each attenuation (a microphone's own noise)")
    args = p.parse_args(argv)
    cfg = load_config("scenes", args.override)
    if not (cfg.data_root / "ESC-50-master" / "meta" / "esc50.csv").is_file():
        p.error(f"no ESC-50 under {cfg.data_root}: run notebook 01 with profile scenes (or full) first")
    levels = tuple(args.levels) if args.levels else LEVELS_DB
    noise = [] if args.noise_floor is None else ["--noise-floor", f"{args.noise_floor:g}"]
    noise += ["--levels", *(f"{g:g}" for g in levels)] if args.levels else []
    noise += ["--odd"] if args.odd else []
    noise += ["--only", *(f'"{o}"' for o in args.only)] if args.only else []
    command = " ".join(["python benchmarks/levels.py", "--seeds", *map(str, args.seeds), "--models",
                        *args.models, "--runs", f'"{args.runs}"', "--name", args.name, *noise,
                        *[f"-p {o}" for o in args.override]])
    t0, runs = time.time(), []
    for seed in args.seeds:
        runs += [{"date": str(date.today()), **r}
                 for r in run_seed(seed, args.models, args.runs, args.override, levels, args.noise_floor,
                                   args.odd, args.only)]
        print(f"seed {seed} done after {(time.time() - t0) / 60:.1f} min", flush=True)
        done = sorted({r["seed"] for r in runs})
        table = markdown(runs, done, command)
        save_seed_results(args.name, {"runs": runs, "seeds": done, "command": command}, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
