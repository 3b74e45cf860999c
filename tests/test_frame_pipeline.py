"""The frame model end to end on the generated demo data (test_set: scenes, so the held-out scenes come
from ESC-50 fold 5): scenes -> frame targets -> training, interrupted and resumed -> post-processing
chosen on validation -> events, segments, PSDS, negatives.

The model trains for two epochs on a few scenes, so the numbers are not the point; the test checks
that each step runs, reads only the folds it may, writes what notebook 08 reads, resumes after an
interruption and skips finished work on a re-run.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import pandas as pd
import pytest

import sed_utils.train.loop as loop
from sed_utils.config import load_config
from sed_utils.data.registry import prepare_datasets
from sed_utils.data.scenes import scene_set
from sed_utils.evaluate import evaluate
from sed_utils.models.checkpoint import load_trained, read_checkpoint
from sed_utils.train import train, training_data, training_key


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    monkeypatch.delenv("SED_MIRROR", raising=False)
    cfg = load_config("demo", [f"data_root={tmp_path / 'data'}", f"runs_root={tmp_path / 'runs'}",
                               "test_set=scenes", "models.frame.train_scenes=8", "models.frame.epochs=2",
                               "models.frame.batch_size=4", "models.frame.negative_clips=2", "scenes.valid=4",
                               "scenes.test=4", "postprocess.median_filters=[1, 3]", "train.num_threads=1"])
    prepare_datasets(cfg, progress=False)
    return cfg


@pytest.mark.slow
def test_frame_model_end_to_end(cfg, monkeypatch, caplog):
    assert (cfg.train_folds, cfg.valid_folds, cfg.folds.scenes_test) == ((1, 2, 3), (4,), (5,))
    data = training_data(cfg, "frame", progress=False)
    ex = data.train.examples
    assert ex.features.shape == (8, 64, 1001) and ex.frames.shape == (8, 126, 5)
    assert len(data.train) == 8 + 2 and data.valid["scenes"].features.shape[0] == 4
    # the targets are the scenes' labels, frame by frame: a class's frames where the scene says so
    scenes = scene_set(cfg, "train", n_scenes=8, progress=False)
    targets = scenes.events[scenes.events.event_label.isin(cfg.desed_labels)]
    assert len(targets) > 0
    for event in targets.itertuples():
        i = list(ex.table.filename).index(event.filename)
        middle = min(int((event.onset + event.offset) / 2 / 0.08), 125)
        assert ex.frames[i, middle, cfg.desed_labels.index(event.event_label)] == 1.0

    # Ctrl-C during epoch 2, then the re-run resumes after epoch 1
    real, calls = loop.fit_epoch, []

    def interrupted_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "fit_epoch", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, "frame", data=data, progress=False)
    assert read_checkpoint(cfg.paths.checkpoint("frame"))["complete"] is False
    result = train(cfg, "frame", data=data, progress=False)
    assert result.resumed_from == 1 and not result.skipped and len(result.history) == 2
    assert result.info.key == training_key(cfg, "frame") and not cfg.paths.last_state("frame").exists()
    caplog.set_level(logging.INFO, logger="sed_utils")
    again = train(cfg, "frame", progress=False)  # no data given: a finished run needs none
    assert again.skipped and "Skipping training" in caplog.text

    ev = evaluate(cfg, "frame", progress=False)
    saved = json.loads(cfg.paths.results("frame").read_text())
    assert saved["model"] == "frame" and saved["test_set"] == "scenes" and saved["n_files"] == 4
    post = saved["post_processing"]
    assert post["labels"] == cfg.desed_labels and set(post["median_filters"]) <= {1, 3}
    assert set(post["min_durations"]) <= set(cfg.postprocess.min_durations)  # per class, from the candidates
    stored = load_trained(cfg.paths.checkpoint("frame")).info.post_processing  # for detect and notebook 09
    assert stored == ev.post and stored.to_dict() == post
    for key in ("psds1", "psds2"):
        assert 0.0 <= saved[key]["value"] <= 1.0
        assert len(saved[key]["roc"]["efpr"]) == len(saved[key]["roc"]["tpr"])
    assert 0.0 <= saved["event_based"]["macro"]["f1"] <= 1.0
    # the negatives of the held-out fold 5: the demo's 5 negative categories, 3 clips each
    assert saved["negatives"]["clips"] == 15 and saved["negatives"]["folds"] == [5]
    assert saved["negatives"]["held_out"]
    predicted = pd.read_csv(cfg.paths.events("frame"), sep="\t")
    assert list(predicted.columns) == ["filename", "onset", "offset", "event_label"]

    # negatives-aware tuning: fold 4's 15 negative clips join the 4 validation scenes in the choice,
    # and the reported negatives (fold 5) stay held out
    tuned = dataclasses.replace(cfg.postprocess, tune_with_negatives=True)
    res_aware = evaluate(dataclasses.replace(cfg, postprocess=tuned), "frame", progress=False,
                         tag="_negatives").results
    chosen_on = res_aware["post_processing"]["chosen_on"]
    assert chosen_on.endswith("+ 15 clips of the other classes of the same fold(s)")
    assert res_aware["negatives"]["held_out"] and res_aware["negatives"]["folds"] == [5]
    assert cfg.paths.results("frame", "_negatives").is_file()
    # a tagged variant leaves the checkpoint's post-processing alone
    assert load_trained(cfg.paths.checkpoint("frame")).info.post_processing == ev.post


@pytest.mark.slow
def test_a_frame_model_trained_on_every_category_reports_the_classes(cfg):
    """targets: all: the other ESC-50 categories are trained as outputs; validation, the evaluation, the
    checkpoint's post-processing and detect see the five classes only."""
    cfg = load_config("demo", [f"data_root={cfg.data_root}", f"runs_root={cfg.runs_root / 'all'}",
                               "test_set=scenes", "models.frame.train_scenes=8", "models.frame.epochs=1",
                               "models.frame.batch_size=4", "models.frame.negative_clips=2", "scenes.valid=4",
                               "scenes.test=4", "postprocess.median_filters=[1]", "train.num_threads=1",
                               "models.frame.targets=all"])
    result = train(cfg, "frame", progress=False)
    trained = load_trained(result.checkpoint, device="cpu")
    assert trained.labels == cfg.desed_labels
    assert len(trained.detector.other_labels) == 5  # the demo's ESC-50 has 10 categories
    assert not set(trained.detector.other_labels) & set(cfg.esc50_categories)
    assert [c for c in result.history.columns if c.startswith("valid_f1_")] == [
        f"valid_f1_{lab}" for lab in cfg.desed_labels]
    ev = evaluate(cfg, "frame", progress=False)
    assert list(ev.post.labels) == cfg.desed_labels and ev.curves[next(iter(ev.curves))][1].shape[1] == 5
    assert set(ev.events.event_label) <= set(cfg.desed_labels)
    plain = dataclasses.replace(cfg, models={**cfg.models, "frame": dataclasses.replace(
        cfg.models["frame"], targets="classes")})
    assert training_key(plain, "frame") != training_key(cfg, "frame")
    assert '"targets"' not in training_key(plain, "frame")  # models trained before the option keep their key
