"""Can thresholds alone bring the false alarms down? The frame model's trade, on trained models.

For each seed's trained frame model (``--runs``, e.g. ``benchmarks/levels.py``'s; reused, never
retrained), the post-processing its evaluation chose on the validation scenes is kept (median filters,
minimum durations) and every class's event threshold is raised by the same step (0 to +0.6, capped at
0.95). Each row scores the held-out fold (``scenes`` profile: ESC-50 fold 5) as the level benchmark
does, without its noise floor: event macro F1 and recall on the 200 test scenes, the share of the fold's
single target clips whose class is detected, and the share of its clips of the other 45 categories
with any event. The curves are the evaluation's, cached, so a seed takes seconds. The step is not a
choice (it is read on the test fold); it shows what any threshold choice could reach with these models.

Usage, after the models are trained and evaluated (``benchmarks/levels.py``)::

    .venv/bin/python benchmarks/false_alarm_tradeoff.py --seeds 0 1 2 --runs "runs/levels/bf16val/seed{seed}"

Writes benchmarks/results/<name>.json and .md (default name: false_alarm_tradeoff): mean ± standard
deviation over the seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common import mean_sd, save_seed_results  # noqa: E402

from sed_utils.config import load_config  # noqa: E402
from sed_utils.data.esc50 import ESC50_CLIP_SECONDS  # noqa: E402
from sed_utils.data.test_sets import load_test_set  # noqa: E402
from sed_utils.evaluate import model_curves, set_curves  # noqa: E402
from sed_utils.evaluate.negatives import negative_clip_paths, negative_folds  # noqa: E402
from sed_utils.evaluate.robustness import missed_clips, target_clip_paths  # noqa: E402
from sed_utils.metrics.f1 import event_metrics  # noqa: E402
from sed_utils.models.checkpoint import load_trained  # noqa: E402

STEPS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
CAP = 0.95


def seed_rows(seed: int, runs: str) -> list[dict]:
    """One row per threshold step for the frame model of ``runs`` (formatted with ``seed``)."""
    cfg = load_config("scenes", [f"seed={seed}", f"runs_root={REPO_ROOT / runs.format(seed=seed)}"])
    trained = load_trained(cfg.paths.checkpoint("frame"), precision=cfg.eval.precision)
    post = trained.info.post_processing
    if post is None:
        raise SystemExit(f"{cfg.paths.checkpoint('frame')}: not evaluated (run benchmarks/levels.py first)")
    labels, folds = list(cfg.desed_labels), negative_folds(cfg)
    test = load_test_set(cfg, progress=False)
    scenes = set_curves(cfg, trained, test, progress=False)
    targets = target_clip_paths(cfg, folds)
    target_curves = model_curves(cfg, trained, {n: p for n, (p, _) in targets.items()}, ESC50_CLIP_SECONDS,
                                 progress=False)
    negatives = model_curves(cfg, trained, negative_clip_paths(cfg, folds), ESC50_CLIP_SECONDS,
                             progress=False)
    rows = []
    for step in STEPS:
        raised = dataclasses.replace(post, thresholds=tuple(min(CAP, t + step) for t in post.thresholds))
        scores = event_metrics(test.events, raised.events(scenes), test.files, labels,
                               t_collar=cfg.eval.onset_collar,
                               percentage_of_length=cfg.eval.offset_collar_ratio)["macro"]
        missed = missed_clips(targets, raised.events(target_curves))
        rows.append({"date": str(date.today()), "seed": seed, "step": step, "thresholds": raised.thresholds,
                     "event_f1": scores["f1"], "event_recall": scores["recall"],
                     "clips_found": 1.0 - len(missed) / len(targets),
                     "negatives_alarmed": raised.events(negatives)["filename"].nunique() / len(negatives)})
    return rows


def markdown(rows: list[dict], seeds: list[int], command: str) -> str:
    lines = ["| thresholds raised by | event macro F1 | event recall | single clips found | negatives with a "
             "false alarm |", "|---|---|---|---|---|"]
    for step in STEPS:
        mine = [r for r in rows if r["step"] == step]
        lines.append(f"| +{step:.1f} | {mean_sd([r['event_f1'] for r in mine])} | "
                     f"{mean_sd([r['event_recall'] for r in mine])} | "
                     f"{mean_sd([r['clips_found'] for r in mine], percent=True)} | "
                     f"{mean_sd([r['negatives_alarmed'] for r in mine], percent=True)} |")
    return "\n".join(lines) + (f"\n\nFrame model, seeds {seeds}, every class's threshold raised by the step "
                               f"(capped at {CAP}), the rest of its post-processing as chosen on validation; "
                               f"real ESC-50 fold 5. Command: `{command}`\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", default="runs/levels/bf16val/seed{seed}", help="each seed's run folder")
    p.add_argument("--name", default="false_alarm_tradeoff", help="the results' file stem")
    args = p.parse_args(argv)
    command = (f'python benchmarks/false_alarm_tradeoff.py --seeds {" ".join(map(str, args.seeds))} '
               f'--runs "{args.runs}" --name {args.name}')
    rows = [r for seed in args.seeds for r in seed_rows(seed, args.runs)]
    table = markdown(rows, args.seeds, command)
    save_seed_results(args.name, {"runs": rows, "seeds": args.seeds, "command": command}, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
