"""The frame-level ResNet18: shapes, time resolution, block-wise inference, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sed_utils.checkpoint import load_trained, save_checkpoint
from sed_utils.config import MelConfig
from sed_utils.frame_model import TIME_STRIDE, build_frame_detector, output_frames
from sed_utils.inference import frame_scores, predict_logits

LABELS = ["Dog", "Cat", "Alarm_bell_ringing"]


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return build_frame_detector(LABELS, MelConfig(), 16000, 10.0, mean=-40.0, std=20.0).eval()


def test_time_is_kept_at_80_ms_and_frequency_pooled(detector):
    x = torch.randn(2, 64, 1001)
    frame_logits, clip_probs = detector(x)
    assert frame_logits.shape == (2, output_frames(1001), 3) == (2, 126, 3)
    assert clip_probs.shape == (2, 3) and ((clip_probs > 0) & (clip_probs < 1)).all()
    assert detector.frame_seconds == pytest.approx(0.08) == TIME_STRIDE * 160 / 16000
    for n in (101, 500, 1001, 1600):
        assert detector(torch.randn(1, 64, n))[0].shape[1] == output_frames(n)


def test_clip_output_is_an_attention_weighted_mean_of_the_frames(detector):
    x = torch.randn(1, 64, 301)
    with torch.no_grad():
        frame_logits, clip = detector(x)
    probs = torch.sigmoid(frame_logits)[0]
    assert (clip[0] >= probs.min(dim=0).values - 1e-6).all()
    assert (clip[0] <= probs.max(dim=0).values + 1e-6).all()


def test_frame_scores_tile_a_recording_in_blocks(detector):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 * 7 + 555)).astype(np.float32)
    bounds, probs = frame_scores(detector, audio, 16000)
    assert probs.shape == (len(bounds) - 1, 3) and len(probs) == int(np.ceil(len(audio) / 1280))
    assert bounds[0] == 0 and bounds[-1] == pytest.approx(len(audio) / 16000)
    blocked = frame_scores(detector, audio, 16000, block_seconds=2.56)[1]
    assert blocked.shape == probs.shape
    assert np.abs(blocked - probs)[40:-40].max() < 0.05  # only frames next to block borders lose context
    # another sample rate is resampled first; a clip shorter than a frame still gets one frame
    assert frame_scores(detector, audio[:8000], 8000)[1].shape[0] == int(np.ceil(16000 / 1280))
    assert frame_scores(detector, audio[:100], 16000)[1].shape == (1, 3)


def test_predict_logits_returns_frame_logits(detector):
    out = predict_logits(detector, np.zeros((3, 64, 201), np.float32), batch_size=2)
    assert out.shape == (3, output_frames(201), 3)


def test_checkpoint_round_trip_keeps_the_kind_and_the_outputs(detector, tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, detector, config={"x": 1}, epoch=3, valid_macro_f1=0.5, complete=True)
    trained = load_trained(path, device="cpu")
    assert trained.kind == "frame" and trained.labels == LABELS
    x = torch.randn(1, 64, 401)
    with torch.no_grad():
        a, b = detector(x)[0], trained.detector(x)[0]
    assert torch.allclose(a, b, atol=1e-6)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"] = "transformer"
    torch.save(ckpt, path)
    with pytest.raises(Exception, match="unknown model kind"):
        load_trained(path)
