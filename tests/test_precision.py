"""``models.<kind>.precision``: what "auto" resolves to, and where the setting lives (the checkpoint
recording it: tests/test_training.py); ``eval.precision``: what a trained model is scored in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sed_utils.config import ConfigError, MelConfig, load_config
from sed_utils.models import precision as precision_mod
from sed_utils.models.checkpoint import load_trained, save_checkpoint
from sed_utils.models.kinds import build_detector, score_curve
from sed_utils.models.precision import cpu_has_bfloat16, resolve_precision, scoring_precision

LABELS = ["Dog", "Cat", "Alarm_bell_ringing"]
MEL = MelConfig(n_mels=32, hop_length=320)

CPUINFO = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n\n"


@pytest.mark.parametrize(("extra", "expected"), [("", False), ("avx512_bf16", True),
                                                 ("amx_bf16 amx_tile", True), ("avx512_bf16x", False)])
def test_cpu_has_bfloat16_reads_the_flags_line(tmp_path, extra, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    assert cpu_has_bfloat16(path) is expected


def test_cpu_has_bfloat16_is_false_without_a_cpuinfo(tmp_path):
    assert cpu_has_bfloat16(tmp_path / "missing") is False


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_gives_bfloat16_only_on_a_cpu_that_has_it(monkeypatch, has_bf16):
    monkeypatch.setattr(precision_mod, "cpu_has_bfloat16", lambda: has_bf16)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bfloat16" if has_bf16 else "float32")
    assert resolve_precision("float32", cpu) == "float32"  # an explicit choice is kept
    assert resolve_precision("bfloat16", cpu) == "bfloat16"


def test_devices_without_autocast_train_in_float32():
    assert resolve_precision("bfloat16", torch.device("mps")) == "float32"
    assert resolve_precision("auto", torch.device("mps")) == "float32"


def test_precision_is_a_per_model_setting_and_the_old_key_says_where_it_went():
    cfg = load_config("demo")
    assert cfg.models["frame"].precision == "auto" and cfg.models["chunk"].precision == "auto"
    assert cfg.models["crnn"].precision == "float32"  # not measured in bfloat16
    with pytest.raises(ConfigError, match="models.frame.precision for notebook 08"):
        load_config("demo", ["train.precision=bfloat16"])
    with pytest.raises(ConfigError, match="models.frame.precision must be one of"):
        load_config("demo", ["models.frame.precision=float16"])


# ============================================================================= scoring (eval.precision)
@pytest.mark.parametrize(("trained_in", "setting", "has_bf16", "expected"), [
    ("bfloat16", "auto", True, "bfloat16"),  # trained in it, the machine has it: scored in it
    ("bfloat16", "auto", False, "float32"),  # emulated bfloat16 would be slower than float32
    ("float32", "auto", True, "float32"),  # a float32 model is never read in less
    ("bfloat16", "float32", True, "float32"),  # the setting that keeps the scoring of before
])
def test_a_model_is_scored_in_what_it_trained_in_where_the_machine_has_it(monkeypatch, trained_in, setting,
                                                                          has_bf16, expected):
    monkeypatch.setattr(precision_mod, "cpu_has_bfloat16", lambda: has_bf16)
    assert scoring_precision(trained_in, setting, torch.device("cpu")) == expected


def test_scoring_precision_refuses_unknown_settings_and_devices_without_autocast(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_has_bfloat16", lambda: True)
    assert scoring_precision("bfloat16", "auto", torch.device("mps")) == "float32"
    with pytest.raises(ValueError, match="eval.precision"):
        scoring_precision("bfloat16", "bfloat16", torch.device("cpu"))
    assert load_config("demo").eval.precision == "auto"
    with pytest.raises(ConfigError, match="eval.precision must be one of"):
        load_config("demo", ["eval.precision=bfloat16"])


def _bf16_checkpoint(tmp_path, kind: str):
    torch.manual_seed(0)
    d = build_detector(kind, LABELS, MEL, 16000, 1.0, np.linspace(-50, -30, 32).astype(np.float32), 9.0)
    d.train()
    with torch.no_grad():  # BatchNorm statistics off their defaults
        d(torch.randn(8, 32, 51) * 9.0 - 40.0)
    path = tmp_path / kind / "best.pt"
    save_checkpoint(path, d.eval(), config={}, epoch=1, best_score=0.5, precision="bfloat16")
    return path


@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_load_trained_scores_a_bfloat16_model_in_bfloat16_and_the_curve_stays_close(monkeypatch, tmp_path,
                                                                                    kind):
    monkeypatch.setattr(precision_mod, "cpu_has_bfloat16", lambda: True)
    path = _bf16_checkpoint(tmp_path, kind)
    fast = load_trained(path, "cpu")
    exact = load_trained(path, "cpu", precision="float32")
    assert (fast.detector.precision, exact.detector.precision) == ("bfloat16", "float32")
    audio = np.random.default_rng(0).normal(0, 0.1, 3 * 16000).astype(np.float32)
    b16, s16 = score_curve(fast.detector, audio, 16000, hop_seconds=0.25)
    b32, s32 = score_curve(exact.detector, audio, 16000, hop_seconds=0.25)
    np.testing.assert_array_equal(b16, b32)
    assert s16.dtype == np.float32 and s16.shape == s32.shape
    gap = np.abs(s16 - s32).max()
    assert 0 < gap < 0.05  # bfloat16 ran (the scores moved), and moved by rounding only
