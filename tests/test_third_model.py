"""A third model kind needs one module and one registry entry: the public API trains it, chooses its
post-processing on validation, evaluates it and detects with it, like the chunk and frame models.

The kind here is a tiny convolutional-recurrent network (two strided convolutions, a bidirectional GRU
over 40 ms frames, a max-pooled clip output): the shape of the DCASE CRNN baselines, small enough to
train in seconds on a fake ESC-50 (tones as targets, noise as backgrounds). It is registered in the
test only; nothing in the package names it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_scenes import write_fake_esc50
from torch import nn

import sed_utils
from sed_utils.cli.runner import main
from sed_utils.config import ModelConfig, load_config
from sed_utils.evaluate import evaluate
from sed_utils.models import ModelKind, frame_curve, frame_loss, kinds, load_trained, register
from sed_utils.train import train

KIND = "tiny_crnn"


class TinyCRNN(nn.Module):
    """``[B, 1, n_mels, T] -> {"frame_logits": [B, ceil(T/4), C], "clip_logits": [B, C]}``: two
    stride-2 convolutions, a bidirectional GRU over the frames, the clip output the frames' max."""

    time_stride = 4

    def __init__(self, n_classes: int, *, pretrained: bool = False):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.gru = nn.GRU(16, 16, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, n_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, _ = self.gru(self.conv(x).mean(dim=2).transpose(1, 2))
        frame_logits = self.head(h)
        clip = torch.sigmoid(frame_logits).amax(dim=1).clamp(1e-6, 1 - 1e-6)
        return {"frame_logits": frame_logits, "clip_logits": torch.logit(clip)}


@pytest.fixture
def tiny_kind(monkeypatch):
    """The kind registered for one test (the registry is restored afterwards)."""
    monkeypatch.setattr(kinds, "_REGISTRY", dict(kinds._REGISTRY))
    settings = ModelConfig(epochs=2, batch_size=4, train_scenes=8, weak_weight=0.5)
    return register(ModelKind(name=KIND, network=TinyCRNN, examples="scenes", loss=frame_loss,
                              curve=frame_curve, settings=settings, about="tiny CRNN, 40 ms frames (a test)"))


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """The scenes profile on a fake ESC-50 of folds 3-5 (two clips per category and fold)."""
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    root = write_fake_esc50(tmp_path / "data", (3, 4, 5), seed=3)
    return load_config("scenes", [f"data_root={root}", f"runs_root={tmp_path / 'runs'}",
                                  "folds.scenes_train=[3]", "folds.scenes_valid=[4]", "folds.scenes_test=[5]",
                                  "scenes.valid=4", "scenes.test=4", "postprocess.median_filters=[1, 3]",
                                  "train.num_threads=2"])


@pytest.mark.slow
def test_a_registered_kind_trains_evaluates_and_detects(tiny_kind, cfg, tmp_path):
    result = train(cfg, KIND, progress=False)
    assert result.checkpoint == cfg.paths.checkpoint(KIND) and len(result.history) == 2
    assert {"valid_scenes_loss", "valid_scenes_f1"} <= set(result.history.columns)

    trained = load_trained(result.checkpoint)
    assert trained.kind == KIND and isinstance(trained.detector.network, TinyCRNN)
    assert trained.detector.frame_seconds == pytest.approx(0.04)

    ev = evaluate(cfg, KIND, progress=False)
    saved = json.loads(cfg.paths.results(KIND).read_text())
    assert saved["model"] == KIND and saved["test_set"] == "scenes"
    assert {"event_based", "segment_based", "psds1", "intersection_f1", "negatives"} <= set(saved)
    assert set(ev.post.median_filters) <= {1, 3}
    bounds, _ = next(iter(ev.curves.values()))
    assert np.allclose(np.diff(bounds)[:-1], 0.04)  # the curve is the network's 40 ms grid
    stored = load_trained(result.checkpoint).info.post_processing
    assert stored == ev.post  # the choice travels with the model, for detect

    clip = ev.test.path(ev.test.files[0])
    det = sed_utils.detect(clip, cfg.run_dir)  # neither frame nor chunk trained: the run's only model
    assert det.post == ev.post and np.allclose(det.bounds, bounds)
    expected = ev.events[ev.events["filename"] == ev.test.files[0]].reset_index(drop=True)
    assert det.events[["onset", "offset", "event_label"]].equals(expected[["onset", "offset", "event_label"]])

    out = tmp_path / "events.tsv"
    assert main(["detect", str(clip), "--run", str(cfg.run_dir), "--model", KIND, "--out", str(out),
                 "--quiet"]) == 0
    assert list(pd.read_csv(out, sep="\t").columns) == ["filename", "onset", "offset", "event_label", "score"]


def test_register_refuses_a_taken_name_and_unknown_examples(tiny_kind):
    with pytest.raises(ValueError, match="registered already"):
        register(tiny_kind)
    with pytest.raises(ValueError, match="examples must be one of"):
        register(ModelKind(name="other", network=TinyCRNN, examples="clips", loss=frame_loss,
                           curve=frame_curve))
    assert KIND in kinds.kind_names()
