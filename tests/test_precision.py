"""``models.<kind>.precision``: what "auto" resolves to, and where the setting lives (the checkpoint
recording it: tests/test_training.py)."""

from __future__ import annotations

import pytest
import torch

from sed_utils.config import ConfigError, load_config
from sed_utils.models import precision as precision_mod
from sed_utils.models.precision import cpu_has_bfloat16, resolve_precision

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
