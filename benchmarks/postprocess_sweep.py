"""Which extra post-processing step helps the frame model's events? A sweep on cached score curves.

For each seed's frame model of ``benchmarks/events.py`` (runs/events/seed<k>/scenes/frame/, reused, never
retrained), the per-class threshold and median filter are chosen on the validation scenes as
notebook 08 does (:func:`sed_utils.evaluate.choose_event_postprocessing` among
``postprocess.median_filters`` and ``postprocess.thresholds``), then ONE extra step is chosen per
class on the same validation scenes, with the pair fixed, and the held-out test scenes are scored
with and without it:

    min_duration   drop events shorter than d s (d in 0-1.28 s): the package's own step
                   (``postprocess.min_durations``, chosen by ``sed_utils.evaluate.choose_min_durations``)
    gap            join events of a class less than g s apart (g in 0-0.8 s)
    hysteresis     an event starts above the threshold and lasts while the score stays above
                   r x threshold (r in 1, 0.75, 0.5)

Only event-based F1 is compared (PSDS scores the curves before any of these steps). Usage, after
``benchmarks/events.py`` has trained the models::

    .venv/bin/python benchmarks/postprocess_sweep.py --seeds 0 1 2

Prints one line per (step, seed) and the mean ± standard deviation of the gain; writes
benchmarks/results/postprocess_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import date
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sed_utils.config import load_config  # noqa: E402
from sed_utils.core import atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "postprocess_sweep.json"
CANDIDATES = {
    "min_duration": [0.0, 0.16, 0.32, 0.48, 0.64, 0.8, 0.96, 1.28],
    "gap": [0.0, 0.16, 0.32, 0.48, 0.8],
    "hysteresis": [1.0, 0.75, 0.5],
}


def extra_step_events(smooth, thr, labels, step: str, values) -> object:
    """Events of every median-filtered curve with ``step`` ("gap" or "hysteresis", the steps the
    package does not have) at the per-class ``values``; the minimum duration is the package's own
    (:func:`sed_utils.evaluate.choose_min_durations`, :func:`sed_utils.labels.events_of_curves`)."""
    from sed_utils.labels import event_frame

    rows = []
    for name, (bounds, scores) in smooth.items():
        for c, lab in enumerate(labels):
            ratio = values[c] if step == "hysteresis" else 1.0
            high, low = scores[:, c] >= thr[c], scores[:, c] >= thr[c] * ratio
            edges = np.diff(np.concatenate([[0], low.astype(np.int8), [0]]))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            runs = [[float(bounds[a]), float(bounds[b])] for a, b in zip(starts, ends, strict=True)
                    if high[a:b].any()]
            joined: list[list[float]] = []
            for on, off in runs:
                if step == "gap" and joined and on - joined[-1][1] <= values[c] + 1e-9:
                    joined[-1][1] = off
                else:
                    joined.append([on, off])
            rows += [(name, on, off, lab) for on, off in joined]
    return event_frame(rows)


def _choose_extra_step(smooth, ref, thr, labels, step: str, collars: dict) -> list[float]:
    """Per class, the value of ``step`` with the best validation F1; ties: the one that changes least."""
    from sed_utils.metrics.f1 import event_metrics

    neutral = {"gap": 0.0, "hysteresis": 1.0}[step]
    scores = {v: event_metrics(ref, extra_step_events(smooth, thr, labels, step, [v] * len(labels)),
                               list(smooth), labels, **collars) for v in CANDIDATES[step]}
    key = {lab: {v: (-np.nan_to_num(scores[v]["class_wise"][lab]["f1"]), abs(v - neutral)) for v in scores}
           for lab in labels}
    return [min(key[lab], key=key[lab].get) for lab in labels]


def sweep_seed(seed: int, steps: list[str]) -> list[dict]:
    """Choose each step on the validation scenes of ``seed``'s model and score it on the test scenes."""
    from sed_utils.data.scenes import scene_set
    from sed_utils.data.test_sets import load_test_set
    from sed_utils.evaluate import choose_event_postprocessing, choose_min_durations, set_curves
    from sed_utils.labels import events_of_curves, smooth_curves
    from sed_utils.metrics.f1 import event_metrics
    from sed_utils.models import load_trained

    runs_root = REPO_ROOT / "runs" / "events" / f"seed{seed}"
    cfg = load_config("scenes", [f"seed={seed}", f"runs_root={runs_root}"])
    labels, pp = cfg.desed_labels, cfg.postprocess
    collars = {"t_collar": cfg.eval.onset_collar, "percentage_of_length": cfg.eval.offset_collar_ratio}
    path = cfg.paths.checkpoint("frame")
    if not path.is_file():
        raise SystemExit(f"no frame model for seed {seed} at {path}: run "
                         f"`python benchmarks/events.py --seeds {seed}` first")
    trained = load_trained(path)
    valid, test = scene_set(cfg, "valid", progress=False), load_test_set(cfg, progress=False)
    vc, tc = (set_curves(cfg, trained, ds, progress=False) for ds in (valid, test))
    # per class the (threshold, median filter) pair, as the evaluation chooses it before the minimum duration
    thr, filters, _ = choose_event_postprocessing(vc, valid.events, labels, pp.median_filters, pp.thresholds,
                                                  **collars)
    smooth_v, smooth_t = smooth_curves(vc, filters), smooth_curves(tc, filters)
    base = event_metrics(test.events, events_of_curves(smooth_t, labels, thr), list(tc), labels, **collars)
    out = []
    for step in steps:
        if step == "min_duration":
            shortest, _ = choose_min_durations(vc, valid.events, labels, thr, filters, CANDIDATES[step],
                                               **collars)
            est = events_of_curves(smooth_t, labels, thr, min_durations=shortest)
            chosen = shortest.tolist()
        else:
            chosen = _choose_extra_step(smooth_v, valid.events, thr, labels, step, collars)
            est = extra_step_events(smooth_t, thr, labels, step, chosen)
        new = event_metrics(test.events, est, list(tc), labels, **collars)
        out.append({"step": step, "seed": seed, "chosen": dict(zip(labels, chosen, strict=True)),
                    "event_f1_before": base["macro"]["f1"], "event_f1_after": new["macro"]["f1"]})
        print(f"{step:13s} seed {seed}: event F1 {base['macro']['f1']:.3f} -> {new['macro']['f1']:.3f}",
              flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", default=",".join(CANDIDATES), help="comma-separated: " + ", ".join(CANDIDATES))
    args = p.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    rows = [r for seed in args.seeds for r in sweep_seed(seed, steps)]
    for step in steps:
        gains = [r["event_f1_after"] - r["event_f1_before"] for r in rows if r["step"] == step]
        spread = f" ± {statistics.stdev(gains):.3f}" if len(gains) > 1 else ""
        print(f"{step}: gain {statistics.mean(gains):+.3f}{spread} over seeds {args.seeds}")
    atomic.write_text(RESULTS, json.dumps({"rows": rows, "date": str(date.today()),
                                           "command": "python benchmarks/postprocess_sweep.py --seeds "
                                                      + " ".join(map(str, args.seeds))}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
