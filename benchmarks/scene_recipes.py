"""DESED-like vs uniform scenes: does training on scenes with DESED's label structure help, and on which test?

Trains the frame model (config defaults, profile ``scenes``) on the ``desed_like`` scenes of the
training folds and compares it with the model trained on the ``uniform`` scenes (the default), each
evaluated on both kinds of held-out test scenes (fold 5). The post-processing is chosen on the
validation scenes (fold 4) of the TEST's recipe: a user tunes on data like what they will meet.
Needs the real ESC-50; the uniform model is reused from ``benchmarks/events.py``
(runs/events/seed<k>).

    .venv/bin/python benchmarks/scene_recipes.py --seed 0

Writes benchmarks/results/scene_recipes.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sed_utils import atomic  # noqa: E402
from sed_utils.config import load_config  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _cfg(seed: int, root: Path, recipe: str):
    return load_config("scenes", [f"seed={seed}", f"runs_root={root}", f"scene_recipe={recipe}"])


def _markdown(rows: list[dict]) -> str:
    lines = ["| trained on | tested on | event macro F1 | PSDS1 | PSDS2 | segment macro F1 | negatives hit |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['train']} scenes | {r['test']} scenes | {r['event_f1']:.3f} | {r['psds1']:.3f} | "
                     f"{r['psds2']:.3f} | {r['segment_f1']:.3f} | {100 * r['negatives_share']:.0f} % |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from sed_utils.frame_evaluation import evaluate_event_model
    from sed_utils.frame_training import frame_key, train_frame_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    seed = args.seed
    uniform_root = REPO_ROOT / "runs" / "events" / f"seed{seed}"
    like_root = REPO_ROOT / "runs" / "scene_recipes" / f"desed_like-seed{seed}"
    like = _cfg(seed, like_root, "desed_like")
    trained = train_frame_model(like, progress=False)
    rows = []
    for train_recipe, root in (("uniform", uniform_root), ("desed_like", like_root)):
        for test_recipe in ("uniform", "desed_like"):
            run_root = root
            if train_recipe != test_recipe:  # the model of one recipe, in a folder of its own
                name = f"{train_recipe}-on-{test_recipe}-seed{seed}"
                run_root = REPO_ROOT / "runs" / "scene_recipes" / name
                src = _cfg(seed, root, train_recipe).run_dir / "frame_model"
                dst = _cfg(seed, run_root, test_recipe).run_dir / "frame_model"
                shutil.copytree(src, dst, dirs_exist_ok=True)
            res = evaluate_event_model(_cfg(seed, run_root, test_recipe), "frame", progress=False)
            rows.append({"train": train_recipe, "test": test_recipe,
                         "event_f1": res["event_based"]["macro"]["f1"], "psds1": res["psds1"]["value"],
                         "psds2": res["psds2"]["value"], "segment_f1": res["segment_based"]["macro"]["f1"],
                         "negatives_share": res["negatives"]["share"]})
    command = f"python benchmarks/scene_recipes.py --seed {seed}"
    table = _markdown(rows) + (
        f"\nSeed {seed}, frame model with config defaults, real ESC-50 (train folds 1-3, validation 4, "
        f"test 5); the desed_like model trained in {trained.info.seconds / 60:.1f} min. "
        f"Measured {date.today()}. Command: `{command}`\n")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary = {"rows": rows, "command": command, "frame_key": frame_key(like)}
    atomic.write_text(RESULTS_DIR / "scene_recipes.json", json.dumps(summary, indent=2) + "\n")
    atomic.write_text(RESULTS_DIR / "scene_recipes.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
