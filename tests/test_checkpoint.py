"""Checkpoints: a Detector saved with its settings loads back identical; older formats are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sed_utils.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointInfo,
    checkpoint_info,
    load_trained,
    read_checkpoint,
    save_checkpoint,
    store_post_processing,
    weights_digest,
)
from sed_utils.config import MelConfig
from sed_utils.core.errors import CheckpointError
from sed_utils.model import build_detector

LABELS = ["Dog", "Cat", "Alarm_bell_ringing"]
MEL = MelConfig(n_mels=32, hop_length=320)


def _detector(seed: int = 0):
    torch.manual_seed(seed)
    d = build_detector(LABELS, MEL, 16000, 0.5, np.linspace(-50, -30, 32).astype(np.float32), 9.0)
    d.train()
    with torch.no_grad():  # move the BatchNorm running statistics off their defaults
        d(torch.randn(8, 32, 26) * 9.0 - 40.0)
    return d.eval()


def _saved(tmp_path, **meta):
    d = _detector()
    path = tmp_path / "model" / "best.pt"
    save_checkpoint(path, d, config={"seed": 0, "train": {"lr": 0.001}}, epoch=3, valid_macro_f1=0.75,
                    selected_on="scenes", best_score=0.6, seconds=12.5, complete=True, n_mels=32, frames=26,
                    **meta)
    return d, path


def test_round_trip_gives_identical_logits_and_metadata(tmp_path):
    d, path = _saved(tmp_path)
    assert not list(path.parent.glob("*.tmp"))  # written atomically
    tm = load_trained(path, device="cpu")
    assert not tm.detector.training and tm.labels == LABELS
    assert (tm.detector.sample_rate, tm.detector.mel, tm.detector.window_seconds) == (16000, MEL, 0.5)
    torch.testing.assert_close(tm.detector.normaliser.mean, d.normaliser.mean)  # per-mel statistics kept
    x = torch.randn(4, 32, 26) * 9.0 - 40.0
    waves = torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(tm.detector(x), d(x), rtol=0, atol=0)
        torch.testing.assert_close(tm.detector.forward_waveform(waves), d.forward_waveform(waves),
                                   rtol=0, atol=0)
    assert tm.info == CheckpointInfo(path=path, labels=LABELS, config={"seed": 0, "train": {"lr": 0.001}},
                                     epoch=3, valid_macro_f1=0.75, selected_on="scenes", best_score=0.6,
                                     seconds=12.5, complete=True, pretrained_loaded=False, n_mels=32,
                                     frames=26, weights_digest=weights_digest(d.state_dict()))
    ckpt = read_checkpoint(path)
    assert (ckpt["format"], ckpt["format_version"]) == (FORMAT, FORMAT_VERSION)
    assert checkpoint_info(ckpt, path) == tm.info


def test_older_format_is_refused_with_what_to_do(tmp_path):
    d = _detector()
    folder = tmp_path / "runs" / "demo" / "model"
    folder.mkdir(parents=True)
    old = folder / "best.pt"
    # format 1: a bare ResNet18 state dict with the normalisation statistics beside it, no "format" key
    torch.save({"state_dict": d.classifier.state_dict(), "labels": LABELS, "config": {}, "mean": -40.0,
                "std": 12.0, "epoch": 1, "valid_macro_f1": 0.5, "complete": True}, old)
    for load in (read_checkpoint, load_trained):
        with pytest.raises(CheckpointError) as err:
            load(old)
        msg = str(err.value)
        assert "format 1" in msg and f"format {FORMAT_VERSION}" in msg and str(old) in msg
        assert f"delete the folder {folder}" in msg and "retrain" in msg
    newer = tmp_path / "newer.pt"
    torch.save({**read_checkpoint(_saved(tmp_path)[1]), "format_version": FORMAT_VERSION + 1}, newer)
    with pytest.raises(CheckpointError, match=f"format {FORMAT_VERSION + 1}"):
        load_trained(newer)


def test_weights_that_do_not_fit_the_labels_are_refused(tmp_path):
    _, path = _saved(tmp_path)
    ckpt = read_checkpoint(path)
    bad = tmp_path / "bad.pt"
    torch.save({**ckpt, "labels": ["Dog", "Cat"]}, bad)  # a 3-class head under 2 labels
    with pytest.raises(CheckpointError, match=r"bad\.pt: weights do not fit a 2-class chunk Detector"):
        load_trained(bad)


def test_post_processing_is_stored_inside_and_the_weights_key_stays(tmp_path):
    d, path = _saved(tmp_path)
    before = load_trained(path, device="cpu")
    assert before.info.post_processing == {} and before.weights_key == weights_digest(d.state_dict())
    post = {"event_thresholds": [0.3, 0.4, 0.5], "median_filters": [1, 3, 5], "chosen_on": "valid"}
    store_post_processing(path, "events", post)
    store_post_processing(path, "segments", {"event_thresholds": [0.5, 0.5, 0.5]})
    after = load_trained(path, device="cpu")
    assert after.info.post_processing == {"events": post, "segments": {"event_thresholds": [0.5, 0.5, 0.5]}}
    assert after.weights_key == before.weights_key  # the score caches survive the rewrite
    assert not list(path.parent.glob("*.tmp"))
    with pytest.raises(TypeError):  # only json-able values go in (weights_only loading must still work)
        store_post_processing(path, "bad", {"x": object()})
    assert load_trained(path, device="cpu").info.post_processing == after.info.post_processing
    assert weights_digest(_detector(seed=1).state_dict()) != before.weights_key
