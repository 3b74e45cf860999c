"""The frame model end to end on a tiny fake ESC-50 (folds 3-5, tones as targets): scenes -> frame
targets -> training -> post-processing chosen on validation -> events, segments, PSDS, negatives.

The model trains for one epoch on a few scenes, so the numbers are not the point; the test checks
that each step runs, reads only the folds it may, writes what notebook 08 reads, and skips finished
work on a re-run.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from test_scenes import CATEGORIES, SR, _sound

from sed_utils.checkpoint import load_trained
from sed_utils.config import load_config
from sed_utils.frame_evaluation import evaluate_event_model, events_results_path
from sed_utils.frame_training import frame_checkpoint_path, frame_training_data, train_frame_model


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    root = tmp_path / "data"
    audio_dir = root / "ESC-50-master" / "audio"
    audio_dir.mkdir(parents=True)
    (root / "ESC-50-master" / "meta").mkdir()
    rng = np.random.default_rng(7)
    rows = []
    for fold in (3, 4, 5):
        for cat, (target, kind) in CATEGORIES.items():
            for take in "AB":
                name = f"{fold}-{target}{take}-{take}-{target}.wav"
                sf.write(audio_dir / name, _sound(kind, rng, 300 + 100 * target), SR, subtype="PCM_16")
                rows.append([name, fold, target, cat, False, f"{target}{take}", take])
    columns = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    pd.DataFrame(rows, columns=columns).to_csv(root / "ESC-50-master" / "meta" / "esc50.csv", index=False)
    return load_config("scenes", [f"data_root={root}", f"runs_root={tmp_path / 'runs'}",
                                  "folds.scenes_train=[3]", "folds.scenes_valid=[4]", "folds.scenes_test=[5]",
                                  "frame.train_scenes=8", "frame.epochs=1", "frame.batch_size=4",
                                  "eval.valid_scenes=4", "eval.n_scenes=4", "frame.median_filters=[1, 3]",
                                  "train.num_threads=2"])


@pytest.mark.slow
def test_frame_model_end_to_end(cfg, capsys):
    train, valid = frame_training_data(cfg, progress=False)
    assert train.features.shape == (8, 64, 1001) and train.targets.shape == (8, 126, 5)
    assert valid.features.shape[0] == 4
    # the targets are the scenes' labels, frame by frame: Dog frames where the scene says Dog
    dog = train.events[train.events["event_label"] == "Dog"].iloc[0]
    i = train.files.index(dog["filename"])
    mid = int((dog["onset"] + dog["offset"]) / 2 / 0.08)
    assert train.targets[i, mid, 0] == 1.0

    result = train_frame_model(cfg, progress=False, data=(train, valid))
    assert not result.skipped and len(result.history) == 1
    assert frame_checkpoint_path(cfg).is_file()
    again = train_frame_model(cfg, progress=False, data=(train, valid))
    assert again.skipped and "Skipping training" in capsys.readouterr().out

    res = evaluate_event_model(cfg, "frame", progress=False)
    saved = json.loads(events_results_path(cfg, "frame").read_text())
    assert saved["model"] == "frame" and saved["test_set"] == "scenes"
    assert set(saved["post_processing"]["median_filters"].values()) <= {1, 3}
    chosen = saved["post_processing"]["min_durations"]  # per class, from the candidates, stored for detect
    assert list(chosen) == cfg.desed_labels and set(chosen.values()) <= set(cfg.frame.min_durations)
    stored = load_trained(frame_checkpoint_path(cfg)).info.post_processing["events"]
    assert stored["min_durations"] == [chosen[lab] for lab in cfg.desed_labels]
    for key in ("psds1", "psds2"):
        assert 0.0 <= res[key]["value"] <= 1.0 and len(res[key]["roc"]["efpr"]) == len(res[key]["roc"]["tpr"])
    assert 0.0 <= res["event_based"]["macro"]["f1"] <= 1.0
    # the negatives of fold 5: rain, wind, engine and door knock, 2 clips each
    assert res["negatives"]["clips"] == 8 and res["negatives"]["folds"] == [5]
    events = pd.read_csv(cfg.run_dir / "events_frame.tsv", sep="\t")
    assert list(events.columns) == ["filename", "onset", "offset", "event_label"]
    assert res["negatives"]["held_out"]

    # negatives-aware tuning: fold 4's 8 negative clips join the 4 validation scenes in the choice,
    # and the reported negatives (fold 5) stay held out
    aware = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, tune_with_negatives=True))
    res_aware = evaluate_event_model(aware, "frame", progress=False, tag="_negatives")
    chosen_on = res_aware["post_processing"]["chosen_on"]
    assert chosen_on.endswith("+ 8 clips of the other classes of the same fold(s)")
    assert res_aware["negatives"]["held_out"] and res_aware["negatives"]["folds"] == [5]
    assert events_results_path(cfg, "frame", "_negatives").is_file()


def test_negative_examples_are_training_fold_clips_back_to_back_with_zero_targets(cfg):
    """frame.negative_clips: items after the scenes are two of the TRAINING fold's negative clips
    (rain, wind, engine, door knock of fold 3 here) back to back, cut to the scenes' length, with
    every frame target zero."""
    from sed_utils.frame_dataset import FrameDataset, negative_clip_features
    from sed_utils.frame_training import frame_key

    neg = negative_clip_features(cfg, progress=False)
    assert neg.shape == (8, 64, 501)  # fold 3 only: 4 categories x 2 takes, 5 s each
    train, _ = frame_training_data(cfg, progress=False)
    ds = FrameDataset(train, negatives=neg, negative_items=3, seed=1)
    assert len(ds) == 8 + 3
    x, frames, clip = ds[8]
    assert x.shape == (64, 1001) and frames.shape == (126, 5)
    assert float(frames.sum()) == 0.0 and float(clip.sum()) == 0.0
    first = [k for k in range(len(neg)) if np.array_equal(x[:, :501].numpy(), np.asarray(neg[k], np.float32))]
    second = [k for k in range(len(neg))
              if np.array_equal(x[:, 501:].numpy(), np.asarray(neg[k], np.float32)[:, :500])]
    assert first and second
    # a scene item is untouched by the negatives
    assert np.array_equal(ds[0][0].numpy(), np.asarray(train.features[0], np.float32))
    # the default (0) keeps the key of models trained before the option existed; any other value retrains
    assert "negative_clips" not in frame_key(cfg)
    with_neg = dataclasses.replace(cfg, frame=dataclasses.replace(cfg.frame, negative_clips=3))
    assert frame_key(with_neg) != frame_key(cfg)
    # with augmentation (a partner scene mixed in every time) every item still comes out
    mixing = dataclasses.replace(cfg.augment, mix_prob=1.0)
    augmented = FrameDataset(train, augment=mixing, negatives=neg, negative_items=3, seed=1)
    assert all(augmented[i][0].shape == (64, 1001) for i in range(len(augmented)))
    with pytest.raises(ValueError, match="needs negative clips"):
        FrameDataset(train, negatives=None, negative_items=3)
