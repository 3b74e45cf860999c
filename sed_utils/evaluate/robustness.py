"""How a trained model fares under recording conditions users have (notebook 08; benchmarks/levels.py).

A :class:`~sed_utils.features.conditions.Condition` (a gain, a band limit, a cut, clipping) is
applied to the test audio before the model hears it; :func:`robustness` scores one trained model
under each, with the post-processing chosen on the (unchanged) validation scenes, as ``detect`` would
use it:

* ``event_f1``, ``event_recall``: the test set's event-based macro F1 and recall (sed_eval); NaN for
  a condition that cuts the recordings (a scene cut to 1 s no longer matches its reference);
* ``clips_found``: the share of single clips of the five target categories from the held-out fold
  (clean, no background, at ESC-50's levels) on which the detector reports their class anywhere, and
  ``clips_missed``: how many of each class's were not;
* ``negatives_alarmed``: the share of the held-out fold's clips of the other 45 categories on which
  it reports any event.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sed_utils.config.settings import Config
from sed_utils.data.esc50 import ESC50_CLIP_SECONDS, esc50_root, load_esc50_meta
from sed_utils.data.test_sets import load_test_set
from sed_utils.evaluate.curves import model_curves
from sed_utils.evaluate.evaluation import evaluate
from sed_utils.evaluate.negatives import negative_clip_paths, negative_folds
from sed_utils.features.conditions import Condition
from sed_utils.metrics.f1 import event_metrics
from sed_utils.models.checkpoint import TrainedModel, load_trained

__all__ = ["target_clip_paths", "missed_clips", "robustness"]


def target_clip_paths(cfg: Config, folds: tuple[int, ...]) -> dict[str, tuple[Path, str]]:
    """The ESC-50 clips of the five target categories in ``folds``: name -> (audio file, DESED label)
    (notebook 08)."""
    meta = load_esc50_meta(esc50_root(cfg))
    label_of = {cat: label for label, cat in cfg.classes.items()}
    rows = meta[meta["fold"].isin(list(folds)) & meta["category"].isin(list(label_of))]
    return {str(r.filename): (Path(r.path), label_of[r.category]) for r in rows.itertuples()}


def missed_clips(targets: dict[str, tuple[Path, str]], events: pd.DataFrame) -> list[str]:
    """The DESED label of each target clip whose class ``events`` never report on it (notebook 08;
    ``benchmarks/false_alarm_tradeoff.py``).

    Args:
        targets: from :func:`target_clip_paths` (name -> (audio file, label)).
        events: the detected events of those clips (``filename``, ``event_label``, ...).

    Returns:
        One label per missed clip, in ``targets``' order.
    """
    hits = set(zip(events["filename"], events["event_label"], strict=True))
    return [lab for name, (_, lab) in targets.items() if (name, lab) not in hits]


def robustness(cfg: Config, kind: str, conditions: list[Condition], *, trained: TrainedModel | None = None,
               progress: bool = True) -> pd.DataFrame:
    """Score the trained model of ``kind`` under each condition (notebook 08; benchmarks/levels.py).

    The post-processing is the one :func:`sed_utils.evaluate.evaluate` chose on the validation scenes
    at their own levels (evaluated first when needed): a user's recording does not come with a
    validation set at its level either.

    Args:
        cfg: the config (test set, held-out fold, run folder).
        kind: the model kind.
        conditions: what to apply to the test audio, one row each.
        trained: the loaded model (default: from ``cfg.paths.checkpoint(kind)``).
        progress: progress bars.

    Returns:
        One row per condition: ``condition``, ``gain_db``, ``event_f1``, ``event_recall`` (test
        set, macro; NaN for a cut), ``clips_found`` (share of the held-out fold's single target
        clips whose class is detected), ``clips_missed`` (class -> how many of its clips were not),
        ``negatives_alarmed`` (share of its other clips with any event), ``clips``, ``negatives`` (how
        many of each).
    """
    trained = trained or load_trained(cfg.paths.checkpoint(kind), precision=cfg.eval.precision)
    post = evaluate(cfg, kind, progress=progress, trained=trained).post
    labels = cfg.desed_labels
    test = load_test_set(cfg, progress=progress)
    folds = negative_folds(cfg)
    targets = target_clip_paths(cfg, folds)
    negatives = negative_clip_paths(cfg, folds)
    rows = []
    for cond in conditions:
        def curves(paths: dict[str, Path], seconds: float, what: str, cond: Condition = cond) -> pd.DataFrame:
            return post.events(model_curves(cfg, trained, paths, seconds, condition=cond, progress=progress,
                                            desc=f"{what}, {cond.name}"))
        scores = {"f1": float("nan"), "recall": float("nan")}
        if cond.seconds <= 0:
            events = curves({f: test.path(f) for f in test.files}, test.clip_seconds, "test")
            scores = event_metrics(test.events, events, test.files, labels, t_collar=cfg.eval.onset_collar,
                                   percentage_of_length=cfg.eval.offset_collar_ratio)["macro"]
        missed = missed_clips(targets, curves({n: p for n, (p, _) in targets.items()}, ESC50_CLIP_SECONDS,
                                              "target clips"))
        alarmed = curves(negatives, ESC50_CLIP_SECONDS, "negative clips")["filename"].nunique()
        rows.append({"condition": cond.name, "gain_db": cond.gain_db, "event_f1": scores["f1"],
                     "event_recall": scores["recall"],
                     "clips_found": 1.0 - len(missed) / len(targets) if targets else float("nan"),
                     "clips_missed": {lab: missed.count(lab) for lab in labels},
                     "negatives_alarmed": alarmed / len(negatives) if negatives else float("nan"),
                     "clips": len(targets), "negatives": len(negatives)})
    return pd.DataFrame(rows)
