"""Inference: the one forward loop (predict_logits / predict_proba) and sliding-window scores of a clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from sed_utils.config import load_config
from sed_utils.features.logmel import Normaliser, build_logmel, mel_extractor
from sed_utils.inference import predict_logits, predict_proba, sigmoid, sliding_window_scores
from sed_utils.io.audio import resample
from sed_utils.model import Detector


class _MeanModel(torch.nn.Module):
    """Logit of every class = mean of the (normalised) input: easy to recompute by hand."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n = n_classes
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))[:, None].repeat(1, self.n) + self.dummy


def _mean_detector(cfg, mean: float = -40.0, std: float = 20.0) -> Detector:
    return Detector(build_logmel(cfg.mel, cfg.audio.sample_rate), Normaliser(mean, std),
                    _MeanModel(len(cfg.desed_labels)), labels=cfg.desed_labels,
                    sample_rate=cfg.audio.sample_rate, mel=cfg.mel,
                    window_seconds=cfg.chunking.chunk_seconds).eval()


def _ramp_noise(seconds: float, sr: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    return (rng.standard_normal(n) * np.linspace(0.01, 0.5, n)).astype(np.float32)


# ----------------------------------------------------------------------------- sliding windows
def test_sliding_window_scores_cut_windows_like_training_chunks():
    cfg = load_config("demo")
    sr = cfg.audio.sample_rate
    audio = _ramp_noise(2.5, sr)
    detector = _mean_detector(cfg)
    hop, win = cfg.eval.event_hop_seconds, cfg.chunking.chunk_seconds
    times, scores = sliding_window_scores(detector, audio, sr, hop)
    n = int((2.5 - win) / hop) + 1
    np.testing.assert_allclose(times, np.arange(n) * hop + win / 2)  # window CENTRES
    assert scores.shape == (n, len(cfg.desed_labels))
    ext = mel_extractor(cfg)
    for i in (0, n - 1):
        a = int(round(i * hop * sr))
        x = ext(torch.from_numpy(audio[a:a + int(win * sr)])).numpy()
        want = 1 / (1 + np.exp(-((x - -40.0) / 20.0).mean()))
        assert scores[i, 0] == pytest.approx(want, rel=1e-4)
    assert scores[-1, 0] > scores[0, 0]  # the louder end of the clip scores higher
    # batching does not change the scores
    np.testing.assert_allclose(sliding_window_scores(detector, audio, sr, hop, batch_size=2)[1], scores,
                               rtol=1e-6)


def test_sliding_window_scores_use_the_detectors_window_and_pad_a_short_clip():
    cfg = load_config("demo", ["chunking.chunk_seconds=0.5"])
    detector = _mean_detector(cfg)
    assert detector.window_seconds == 0.5
    times, scores = sliding_window_scores(detector, _ramp_noise(2.0, 16000), 16000, 0.25)
    np.testing.assert_allclose(times, np.arange(7) * 0.25 + 0.25)  # 0.5 s windows every 0.25 s
    short_times, short = sliding_window_scores(detector, _ramp_noise(0.3, 16000), 16000, 0.25)
    assert short_times.tolist() == [0.25] and short.shape == (1, 5)  # one zero-padded window


def test_a_clip_at_44k1_gives_the_windows_of_its_resampled_copy():
    cfg = load_config("demo")
    detector = _mean_detector(cfg)
    audio_44k = _ramp_noise(3.0, 44100)
    times, scores = sliding_window_scores(detector, audio_44k, 44100, 0.25)
    resampled = resample(audio_44k, 44100, 16000)
    assert len(resampled) == 48000
    want_times, want = sliding_window_scores(detector, resampled, 16000, 0.25)
    assert len(times) == len(want_times) == 9
    np.testing.assert_allclose(times, want_times)
    np.testing.assert_allclose(scores, want, rtol=1e-6)


# ----------------------------------------------------------------------------- the forward loop
def test_predict_logits_batches_inputs_and_restores_the_mode():
    cfg = load_config("demo")
    detector = _mean_detector(cfg, mean=0.0, std=1.0)
    x = np.random.default_rng(1).normal(size=(10, 8, 6)).astype(np.float32)
    want = x.mean(axis=(1, 2))
    detector.train()
    for data in (x, x[:, None], torch.from_numpy(x)):
        out = predict_logits(detector, data, batch_size=3)
        np.testing.assert_allclose(out, np.repeat(want[:, None], 5, axis=1), rtol=1e-5, atol=1e-6)
    assert detector.training  # the caller's mode is back
    ds = TensorDataset(torch.from_numpy(x[:, None]), torch.zeros(10, 5))
    np.testing.assert_allclose(predict_logits(detector, ds, batch_size=4), predict_logits(detector, x),
                               rtol=1e-6)
    np.testing.assert_array_equal(predict_proba(detector, x), sigmoid(predict_logits(detector, x)))
    np.testing.assert_allclose(sigmoid(np.array([0.0, 40.0, -40.0])), [0.5, 1.0, 0.0], atol=1e-7)
    assert predict_logits(detector, np.zeros((0, 8, 6), np.float32)).shape == (0, 5)
