"""DESED-like vs uniform scenes: does training on scenes with DESED's label structure help, and on which test?

Trains the frame model (config defaults, profile ``scenes``) on the ``desed_like`` scenes of the
training folds and compares it with the model trained on the ``uniform`` scenes (the default), each
evaluated on both kinds of held-out test scenes (fold 5). The post-processing is chosen on the
validation scenes (fold 4) of the TEST's recipe: a user tunes on data like what they will meet.
Needs the real ESC-50; the uniform model is reused from ``benchmarks/events.py``
(runs/events/seed<k>/scenes/frame/), the desed_like one lives in
runs/scene_recipes/desed_like-seed<k>/; a model tested on the other recipe is evaluated from a copy
of its ``frame/`` folder in runs/scene_recipes/<train>-on-<test>-seed<k>/ (the evaluation writes its
results and chosen post-processing next to the model).

    .venv/bin/python benchmarks/scene_recipes.py --seeds 0 1 2

Writes benchmarks/results/scene_recipes.json and .md (mean ± standard deviation over the seeds).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common import mean_sd, save_seed_results  # noqa: E402

from sed_utils.config import load_config  # noqa: E402


def _cfg(seed: int, root: Path, recipe: str):
    return load_config("scenes", [f"seed={seed}", f"runs_root={root}", f"scene_recipe={recipe}"])


METRICS = ("event_f1", "psds1", "psds2", "segment_f1", "negatives_share")


def _markdown(rows: list[dict]) -> str:
    """One line per (training recipe, test recipe): mean ± standard deviation over the seeds."""
    lines = ["| trained on | tested on | event macro F1 | PSDS1 | PSDS2 | segment macro F1 | negatives hit |",
             "|---|---|---|---|---|---|---|"]
    for train in ("uniform", "desed_like"):
        for test in ("uniform", "desed_like"):
            mine = [r for r in rows if r["train"] == train and r["test"] == test]
            if mine:
                cells = " | ".join(mean_sd([r[k] for r in mine], k == "negatives_share") for k in METRICS)
                lines.append(f"| {train} scenes | {test} scenes | {cells} |")
    return "\n".join(lines) + "\n"


def run_seed(seed: int) -> tuple[list[dict], float]:
    """Train (or reuse) the desed_like frame model of ``seed`` and evaluate both models on both
    kinds of test scenes; returns the rows and the desed_like model's training minutes."""
    from sed_utils.evaluate import evaluate
    from sed_utils.train import train

    uniform_root = REPO_ROOT / "runs" / "events" / f"seed{seed}"
    like_root = REPO_ROOT / "runs" / "scene_recipes" / f"desed_like-seed{seed}"
    trained = train(_cfg(seed, like_root, "desed_like"), "frame", progress=False)
    if not _cfg(seed, uniform_root, "uniform").paths.checkpoint("frame").is_file():
        raise SystemExit(f"no uniform frame model for seed {seed} under {uniform_root}: run "
                         f"`python benchmarks/events.py --seeds {seed}` first")
    rows = []
    for train_recipe, root in (("uniform", uniform_root), ("desed_like", like_root)):
        for test_recipe in ("uniform", "desed_like"):
            run_root = root
            if train_recipe != test_recipe:  # the model of one recipe, in a folder of its own
                name = f"{train_recipe}-on-{test_recipe}-seed{seed}"
                run_root = REPO_ROOT / "runs" / "scene_recipes" / name
                src = _cfg(seed, root, train_recipe).paths.model_dir("frame")
                dst = _cfg(seed, run_root, test_recipe).paths.model_dir("frame")
                shutil.copytree(src, dst, dirs_exist_ok=True)
            res = evaluate(_cfg(seed, run_root, test_recipe), "frame", progress=False).results
            rows.append({"seed": seed, "train": train_recipe, "test": test_recipe,
                         "event_f1": res["event_based"]["macro"]["f1"], "psds1": res["psds1"]["value"],
                         "psds2": res["psds2"]["value"], "segment_f1": res["segment_based"]["macro"]["f1"],
                         "negatives_share": res["negatives"]["share"]})
    return rows, trained.seconds / 60


def main(argv: list[str] | None = None) -> int:
    from sed_utils.train import training_key

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args(argv)
    command = "python benchmarks/scene_recipes.py --seeds " + " ".join(map(str, args.seeds))
    rows: list[dict] = []
    minutes: list[float] = []
    for seed in args.seeds:  # written after each seed: an interrupted run keeps what it measured
        seed_rows, train_min = run_seed(seed)
        rows += seed_rows
        minutes.append(train_min)
        done = sorted({r["seed"] for r in rows})
        table = _markdown(rows) + (
            f"\nMean ± standard deviation over seeds {done}; frame model with config defaults, real ESC-50 "
            f"(train folds 1-3, validation 4, test 5); the desed_like models trained in "
            f"{statistics.mean(minutes):.1f} min on average. Measured {date.today()}. Command: `{command}`\n")
        summary = {"rows": rows, "seeds": done, "command": command,
                   "frame_key": training_key(_cfg(args.seeds[0], REPO_ROOT, "desed_like"), "frame")}
        save_seed_results("scene_recipes", summary, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
