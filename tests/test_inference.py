"""Running a detector (sed_utils.models.curves): the one forward loop (predict / predict_proba) and the
score curve of a recording, through sliding windows (window_curve) or the network's own frames
(frame_curve), and score_curve choosing between them by the detector's kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from sed_utils.config import MelConfig, load_config
from sed_utils.features.logmel import Normaliser, build_logmel, mel_extractor
from sed_utils.io.audio import resample
from sed_utils.models.curves import frame_curve, predict, predict_proba, sigmoid, window_curve
from sed_utils.models.detector import Detector
from sed_utils.models.kinds import build_detector, score_curve

SR = 16000
FRAME = 1280  # samples per output frame of a frame network: 8 mel frames of 160 samples (80 ms)


class _MeanModel(torch.nn.Module):
    """Clip logit of every class = mean of the (normalised) input: easy to recompute by hand."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n = n_classes
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"clip_logits": x.mean(dim=(1, 2, 3))[:, None].repeat(1, self.n) + self.dummy}


class _FrameMeanModel(torch.nn.Module):
    """A network that keeps time (8 mel frames per output frame, ceil, as FrameResNet) whose frame j
    is the mean of mel frames 8j+2 .. 8j+5 only. Those frames' STFT windows (400 samples) lie inside
    output frame j's 1280 samples, so a frame's score does not depend on where a block starts: the
    block-wise curve must equal the one-block curve exactly."""

    time_stride = 8

    def __init__(self, n_classes: int):
        super().__init__()
        self.n = n_classes
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, m, t = x.shape
        n = -(-t // 8)
        x = torch.nn.functional.pad(x, (0, 8 * n + 8 - t))[..., : 8 * n].reshape(b, m, n, 8)[..., 2:6]
        level = x.mean(dim=(1, 3))  # [B, n]
        frame_logits = level[..., None] * torch.arange(1, self.n + 1.0) + self.dummy
        return {"frame_logits": frame_logits, "clip_logits": frame_logits.mean(dim=1)}


def _mean_detector(cfg, mean: float = -40.0, std: float = 20.0) -> Detector:
    return Detector(build_logmel(cfg.features, cfg.audio.sample_rate), Normaliser(mean, std),
                    _MeanModel(len(cfg.desed_labels)), kind="chunk", labels=cfg.desed_labels,
                    sample_rate=cfg.audio.sample_rate, mel=cfg.features,
                    window_seconds=cfg.chunking.chunk_seconds).eval()


def _frame_mean_detector(mel: MelConfig | None = None) -> Detector:
    mel = mel or MelConfig()
    return Detector(build_logmel(mel, SR), Normaliser(20.0, 10.0), _FrameMeanModel(2), kind="frame",
                    labels=["Dog", "Cat"], sample_rate=SR, mel=mel, window_seconds=10.0).eval()


def _ramp_noise(seconds: float, sr: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    return (rng.standard_normal(n) * np.linspace(0.01, 0.5, n)).astype(np.float32)


def _stepped_noise(n_samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """White noise whose gain jumps at random every 80 ms frame (0.1 .. 1): each frame has its own level."""
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.1, 1.0, size=-(-n_samples // FRAME))
    audio = rng.standard_normal(n_samples) * np.repeat(gains, FRAME)[:n_samples]
    return audio.astype(np.float32), gains


# ----------------------------------------------------------------------------- window_curve
def test_window_curve_cuts_windows_like_training_chunks():
    cfg = load_config("demo")
    sr = cfg.audio.sample_rate
    audio = _ramp_noise(2.5, sr)
    detector = _mean_detector(cfg)
    hop, win = cfg.postprocess.window_hop_seconds, cfg.chunking.chunk_seconds
    assert (hop, win) == (0.25, 1.0)
    bounds, scores = window_curve(detector, audio, sr, hop)
    # 7 windows, centres 0.5 .. 2.0 s; each stands for centre +- hop/2, the first from 0, the last to the end
    np.testing.assert_allclose(bounds, [0.0, 0.625, 0.875, 1.125, 1.375, 1.625, 1.875, 2.5])
    assert scores.shape == (7, len(cfg.desed_labels)) and scores.dtype == np.float32
    ext = mel_extractor(cfg)
    for i in (0, 6):
        a = int(round(i * hop * sr))
        x = ext(torch.from_numpy(audio[a:a + int(win * sr)])).numpy()
        want = 1 / (1 + np.exp(-((x - -40.0) / 20.0).mean()))
        assert scores[i, 0] == pytest.approx(want, rel=1e-4)
    assert scores[-1, 0] > scores[0, 0]  # the louder end of the clip scores higher
    # batching does not change the curve
    b2, s2 = window_curve(detector, audio, sr, hop, batch_size=2)
    np.testing.assert_array_equal(b2, bounds)
    np.testing.assert_allclose(s2, scores, rtol=1e-6)


def test_window_curve_uses_the_detectors_window_and_pads_a_short_clip():
    cfg = load_config("demo", ["chunking.chunk_seconds=0.5"])
    detector = _mean_detector(cfg)
    assert detector.window_seconds == 0.5
    bounds, scores = window_curve(detector, _ramp_noise(2.0, SR), SR, 0.25)
    # 0.5 s windows every 0.25 s: centres 0.25 .. 1.75, inner bounds half a hop after each centre
    np.testing.assert_allclose(bounds, [0.0, 0.375, 0.625, 0.875, 1.125, 1.375, 1.625, 2.0])
    assert scores.shape == (7, 5)
    short_bounds, short = window_curve(detector, _ramp_noise(0.3, SR), SR, 0.25)
    np.testing.assert_allclose(short_bounds, [0.0, 0.3])  # one zero-padded window for the whole clip
    assert short.shape == (1, 5)


def test_window_curve_last_slice_reaches_end_seconds_when_that_is_later():
    cfg = load_config("demo")
    detector = _mean_detector(cfg)
    audio = _ramp_noise(2.0, SR)
    bounds, scores = window_curve(detector, audio, SR, 0.5, end_seconds=2.3)
    # 1 s windows every 0.5 s: centres 0.5, 1.0, 1.5
    np.testing.assert_allclose(bounds, [0.0, 0.75, 1.25, 2.3])
    assert scores.shape == (3, 5)
    earlier = window_curve(detector, audio, SR, 0.5, end_seconds=1.0)[0]  # earlier than the audio: ignored
    np.testing.assert_allclose(earlier, [0.0, 0.75, 1.25, 2.0])


def test_a_clip_at_44k1_gives_the_window_curve_of_its_resampled_copy():
    cfg = load_config("demo")
    detector = _mean_detector(cfg)
    audio_44k = _ramp_noise(3.0, 44100)
    bounds, scores = window_curve(detector, audio_44k, 44100, 0.25)
    resampled = resample(audio_44k, 44100, 16000)
    assert len(resampled) == 48000
    want_bounds, want = window_curve(detector, resampled, 16000, 0.25)
    assert len(bounds) == len(want_bounds) == 10  # 9 windows
    np.testing.assert_allclose(bounds, want_bounds)
    np.testing.assert_allclose(scores, want, rtol=1e-6)


# ----------------------------------------------------------------------------- frame_curve
def test_frame_curve_gives_one_score_per_80_ms_frame_ending_with_the_recording():
    detector = _frame_mean_detector()
    assert detector.frame_seconds == pytest.approx(0.08)
    audio, gains = _stepped_noise(SR * 7 + 555)
    bounds, probs = frame_curve(detector, audio, SR)
    assert probs.shape == (88, 2) and probs.dtype == np.float32  # ceil(112555 / 1280): a partial last frame
    np.testing.assert_allclose(bounds[:-1], np.arange(88) * 0.08, atol=1e-12)
    assert bounds[-1] == pytest.approx(len(audio) / SR)  # 7.0347 s, not 88 * 0.08 = 7.04 s
    # frame j is the audio of 80 ms frame j: its score follows that frame's gain (a shift by one frame
    # would decorrelate them)
    logits = np.log(probs) - np.log1p(-probs)
    assert np.corrcoef(logits[:, 0], np.log(gains))[0, 1] > 0.99
    np.testing.assert_allclose(logits[:, 1], 2 * logits[:, 0], rtol=1e-3)  # columns stay per class
    # end_seconds later than the recording moves the last frame's end only
    later, _ = frame_curve(detector, audio, SR, end_seconds=7.5)
    np.testing.assert_array_equal(later[:-1], bounds[:-1])
    assert later[-1] == 7.5


@pytest.mark.parametrize("block_seconds", [0.08, 0.64, 1.0, 2.56])
def test_frame_curve_blocks_tile_the_recording_without_gaps(block_seconds):
    """Blocks of 1, 8, 12 (1 s rounded down to whole frames) and 32 frames give the one-block curve."""
    # top_db high enough never to clamp: the clamp is relative to each block's loudest bin
    detector = _frame_mean_detector(MelConfig(top_db=200.0))
    audio, _ = _stepped_noise(SR * 3 + 555, seed=1)
    bounds, probs = frame_curve(detector, audio, SR)
    blocked_bounds, blocked = frame_curve(detector, audio, SR, block_seconds=block_seconds)
    np.testing.assert_array_equal(blocked_bounds, bounds)
    assert blocked.shape == probs.shape == (38, 2)
    np.testing.assert_allclose(blocked, probs, rtol=0, atol=1e-5)
    assert np.ptp(probs[:, 0]) > 0.2  # the frames differ, so a gap or an overlap would show
    for batch_size in (2, 3, 100):  # whole blocks batched together, the last partial block alone
        batched_bounds, batched = frame_curve(detector, audio, SR, block_seconds=block_seconds,
                                              batch_size=batch_size)
        np.testing.assert_array_equal(batched_bounds, bounds)
        np.testing.assert_allclose(batched, blocked, rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5])
def test_curves_refuse_a_batch_size_below_one_or_fractional(batch_size):
    audio, _ = _stepped_noise(SR)
    with pytest.raises(ValueError, match="batch size"):
        frame_curve(_frame_mean_detector(), audio, SR, batch_size=batch_size)
    with pytest.raises(ValueError, match="batch size"):
        window_curve(_mean_detector(load_config("demo")), audio, SR, 0.25, batch_size=batch_size)


@pytest.mark.parametrize("n_samples, frames, end",
                         [(100, 1, 100 / SR), (FRAME, 1, 0.08), (FRAME + 1, 2, None), (0, 1, 0.0)])
def test_frame_curve_of_a_clip_shorter_than_a_few_frames(n_samples, frames, end):
    detector = _frame_mean_detector()
    audio = _stepped_noise(max(n_samples, 1))[0][:n_samples]
    bounds, probs = frame_curve(detector, audio, SR)
    assert probs.shape == (frames, 2) and len(bounds) == frames + 1 and bounds[0] == 0.0
    assert bounds[-1] == pytest.approx(n_samples / SR if end is None else end)


def test_frame_curve_resamples_and_refuses_a_network_without_frames():
    detector = _frame_mean_detector()
    audio, _ = _stepped_noise(8000 * 2)
    bounds, probs = frame_curve(detector, audio, 8000)  # 2 s at 8 kHz -> 32000 samples at 16 kHz
    assert probs.shape == (25, 2) and bounds[-1] == pytest.approx(2.0)
    np.testing.assert_allclose(probs, frame_curve(detector, resample(audio, 8000, SR), SR)[1], rtol=1e-6)
    chunk = _mean_detector(load_config("demo"))
    with pytest.raises(ValueError, match="has no frames.*window_curve"):
        frame_curve(chunk, audio, 8000)


def test_frame_curve_of_the_frame_resnet_differs_from_one_block_only_near_block_borders():
    torch.manual_seed(0)
    detector = build_detector("frame", ["Dog", "Cat", "Alarm_bell_ringing"], MelConfig(), SR, 10.0,
                              mean=-40.0, std=20.0)
    detector.train()  # frame_curve reads in eval mode (no dropout) and restores the mode
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(SR * 7 + 555)).astype(np.float32)
    bounds, probs = frame_curve(detector, audio, SR)
    assert detector.training
    assert probs.shape == (len(bounds) - 1, 3) == (88, 3)
    assert bounds[0] == 0 and bounds[-1] == pytest.approx(len(audio) / SR)
    blocked = frame_curve(detector, audio, SR, block_seconds=2.56)[1]  # blocks of 32 frames
    assert blocked.shape == probs.shape
    assert np.abs(blocked - probs)[40:-40].max() < 0.05  # only frames next to block borders lose context
    # a whole 10 s clip is one block: the curve is the network's frame output on the clip's features
    clip = audio[: SR * 5]
    with torch.no_grad():
        want = torch.sigmoid(detector.eval().forward_waveform(torch.from_numpy(clip)[None])["frame_logits"])
    np.testing.assert_allclose(frame_curve(detector, clip, SR)[1], want[0, :63].numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- score_curve
def test_score_curve_reads_each_kind_its_own_way():
    cfg = load_config("demo")
    audio = _ramp_noise(2.5, SR)
    chunk = _mean_detector(cfg)
    bounds, scores = score_curve(chunk, audio, SR, hop_seconds=0.5, end_seconds=3.0)
    want_bounds, want = window_curve(chunk, audio, SR, 0.5, end_seconds=3.0)
    np.testing.assert_array_equal(bounds, want_bounds)
    np.testing.assert_array_equal(scores, want)
    assert len(scores) == 4 and bounds[-1] == 3.0

    frame = _frame_mean_detector()
    bounds, scores = score_curve(frame, audio, SR, hop_seconds=0.5, end_seconds=3.0)  # hop: not used
    want_bounds, want = frame_curve(frame, audio, SR, end_seconds=3.0)
    np.testing.assert_array_equal(bounds, want_bounds)
    np.testing.assert_array_equal(scores, want)
    assert len(scores) == 32  # 2.5 s / 80 ms, rounded up


# ----------------------------------------------------------------------------- the forward loop
def test_predict_batches_inputs_and_restores_the_mode():
    cfg = load_config("demo")
    detector = _mean_detector(cfg, mean=0.0, std=1.0)
    x = np.random.default_rng(1).normal(size=(10, 8, 6)).astype(np.float32)
    want = np.repeat(x.mean(axis=(1, 2))[:, None], 5, axis=1)
    detector.train()
    for data in (x, x[:, None], torch.from_numpy(x)):
        out = predict(detector, data, batch_size=3)
        assert set(out) == {"clip_logits"}
        np.testing.assert_allclose(out["clip_logits"], want, rtol=1e-5, atol=1e-6)
    assert detector.training  # the caller's mode is back
    ds = TensorDataset(torch.from_numpy(x[:, None]), torch.zeros(10, 5))
    np.testing.assert_allclose(predict(detector, ds, batch_size=4)["clip_logits"],
                               predict(detector, x)["clip_logits"], rtol=1e-6)
    np.testing.assert_array_equal(predict_proba(detector, x), sigmoid(predict(detector, x)["clip_logits"]))
    np.testing.assert_allclose(sigmoid(np.array([0.0, 40.0, -40.0])), [0.5, 1.0, 0.0], atol=1e-7)
    empty = predict(detector, np.zeros((0, 8, 6), np.float32))
    assert set(empty) == {"clip_logits"} and empty["clip_logits"].shape == (0, 5)
    with pytest.raises(ValueError, match=r"\[N, 1, n_mels, frames\]"):
        predict(detector, np.zeros((2, 3, 8, 6), np.float32))


def test_predict_returns_every_output_of_a_frame_network():
    detector = _frame_mean_detector()
    x = np.random.default_rng(2).normal(-40.0, 10.0, size=(3, 64, 201)).astype(np.float32)
    out = predict(detector, x, batch_size=2)
    assert set(out) == {"clip_logits", "frame_logits"}
    assert out["frame_logits"].shape == (3, 26, 2) and out["clip_logits"].shape == (3, 2)  # ceil(201 / 8)
    assert all(v.dtype == np.float32 for v in out.values())
    with torch.no_grad():
        want = detector(torch.from_numpy(x))
    np.testing.assert_allclose(out["frame_logits"], want["frame_logits"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(predict_proba(detector, x, output="frame_logits", batch_size=2),
                                  sigmoid(out["frame_logits"]))
    np.testing.assert_array_equal(predict_proba(detector, x), sigmoid(out["clip_logits"]))


# ----------------------------------------------------------------------------- streamed audio
def _in_blocks(audio: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """``audio`` cut into consecutive blocks of ``sizes`` (cycled), as a file is decoded."""
    out, i, k = [], 0, 0
    while i < len(audio):
        out.append(audio[i:i + sizes[k % len(sizes)]])
        i, k = i + sizes[k % len(sizes)], k + 1
    return out


@pytest.mark.parametrize("seconds", [0.4, 9.7, 37.3])
def test_curves_of_audio_streamed_in_blocks_equal_the_curves_of_the_whole_array(seconds):
    """``detect`` scores a file as it is decoded; whatever the block sizes, the curve is the one the
    whole recording gives (windows wholly inside what was read go in batches, the rest at the end)."""
    cfg = load_config("demo")
    audio = _ramp_noise(seconds, SR)
    sizes = [7919, 16000 * 3 + 13, 1, 40000]
    chunk = _mean_detector(cfg)
    whole = window_curve(chunk, audio, SR, 0.25, batch_size=8)
    streamed = window_curve(chunk, iter(_in_blocks(audio, sizes)), SR, 0.25, batch_size=8)
    np.testing.assert_array_equal(streamed[0], whole[0])
    np.testing.assert_allclose(streamed[1], whole[1], rtol=0, atol=1e-5)
    frame = _frame_mean_detector()
    whole = frame_curve(frame, audio, SR, block_seconds=4.0)
    streamed = frame_curve(frame, iter(_in_blocks(audio, sizes)), SR, block_seconds=4.0)
    np.testing.assert_array_equal(streamed[0], whole[0])
    np.testing.assert_allclose(streamed[1], whole[1], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="at the detector's rate"):
        frame_curve(frame, iter([audio]), 44100)
