"""The ResNet18 adaptation (input channels, output shape, the offline ImageNet fallback) and the
Detector around it (front end + normaliser + ResNet18)."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch

from sed_utils import model as model_mod
from sed_utils.config import MelConfig
from sed_utils.features.logmel import Normaliser, build_logmel
from sed_utils.model import (
    Detector,
    build_detector,
    build_resnet18,
    count_parameters,
    describe_model,
    pick_device,
    set_seed,
)

LABELS = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]


@pytest.mark.parametrize("shape", [(1, 64, 101), (1, 128, 101), (1, 32, 40), (1, 64, 501)])
def test_output_is_one_logit_per_class_for_any_input_size(shape):
    torch.manual_seed(0)
    m = build_resnet18(5).eval()
    with torch.no_grad():
        out = m(torch.randn(3, *shape))
    assert out.shape == (3, 5)
    # Logits, not probabilities: a sigmoid head would keep everything inside (0, 1).
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_conv1_takes_one_channel_and_keeps_resnet_geometry():
    m = build_resnet18(7)
    assert m.conv1.in_channels == 1
    assert m.conv1.weight.shape == (64, 1, 7, 7)
    assert m.conv1.stride == (2, 2) and m.conv1.padding == (3, 3)
    assert m.fc.in_features == 512 and m.fc.out_features == 7
    assert m.pretrained_loaded is False
    # torchvision ResNet18 has 11.69 M parameters with a 1000-class head and 3-channel conv1;
    # ours drops 2*64*7*7 conv weights and replaces 512*1000+1000 head parameters by 512*7+7.
    expected = 11_689_512 - 2 * 64 * 7 * 7 - (512 * 1000 + 1000) + (512 * 7 + 7)
    assert count_parameters(m) == expected


def test_rejects_zero_classes():
    with pytest.raises(ValueError, match="n_classes"):
        build_resnet18(0)


def test_pretrained_offline_falls_back_to_random_init_with_message(monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(model_mod, "_imagenet_state_dict", offline)
    m = build_resnet18(5, pretrained=True)
    assert m.pretrained_loaded is False
    assert m.conv1.in_channels == 1
    out = capsys.readouterr().out
    assert "ImageNet weights could not be downloaded" in out
    assert "random initialisation" in out
    assert "Name or service not known" in out


def test_pretrained_weights_are_used_and_conv1_is_rgb_mean(monkeypatch):
    """With (fake, in-memory) ImageNet weights, conv1 becomes the mean of the RGB filters."""
    from torchvision.models import resnet18

    torch.manual_seed(1)
    fake = resnet18(weights=None).state_dict()
    monkeypatch.setattr(model_mod, "_imagenet_state_dict", lambda: fake)
    m = build_resnet18(5, pretrained=True)
    assert m.pretrained_loaded is True
    torch.testing.assert_close(m.conv1.weight, fake["conv1.weight"].mean(dim=1, keepdim=True))
    torch.testing.assert_close(m.layer1[0].conv1.weight, fake["layer1.0.conv1.weight"])
    assert m.fc.weight.shape == (5, 512)


def test_pick_device_returns_a_usable_device():
    dev = pick_device()
    assert dev.type in {"cuda", "mps", "cpu"}
    assert torch.zeros(1, device=dev).device.type == dev.type


def test_set_seed_makes_torch_and_numpy_repeat():
    import random

    import numpy as np

    set_seed(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(3)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(4)
    c = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    assert a != c


def test_describe_model_shows_shapes_shrinking_32x_and_all_parameters():
    m = build_resnet18(5)
    m.train()
    table = describe_model(m, (1, 64, 101))
    shapes = dict(zip(table["block"], table["output shape"], strict=True))
    # stride 2 conv (ceil): 64x101 -> 32x51; maxpool -> 16x26; layers 2-4 halve again -> 2x4
    assert shapes["conv1"] == "64 x 32 x 51"
    assert shapes["maxpool"] == "64 x 16 x 26"
    assert shapes["layer4"] == "512 x 2 x 4"
    assert shapes["avgpool"] == "512 x 1 x 1"
    assert shapes["fc"] == "5"
    assert table["parameters"].sum() == count_parameters(m)
    assert m.training  # the mode is restored


def test_weights_already_in_the_torch_hub_cache_are_used_without_network(tmp_path, monkeypatch):
    """An offline user who copied the ImageNet file into the hub cache gets pretrained weights."""
    from torchvision.models import resnet18

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    path = model_mod.cached_weights_path()
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.manual_seed(2)
    fake = resnet18(weights=None).state_dict()
    torch.save(fake, path)
    m = build_resnet18(5, pretrained=True)
    assert m.pretrained_loaded is True
    torch.testing.assert_close(m.conv1.weight, fake["conv1.weight"].mean(dim=1, keepdim=True))
    torch.testing.assert_close(m.layer4[1].bn2.running_var, fake["layer4.1.bn2.running_var"])


def _detector(mean=-40.0, std=12.0) -> Detector:
    torch.manual_seed(0)
    return build_detector(LABELS, MelConfig(), 16000, 1.0, mean, std).eval()


def test_build_detector_holds_its_settings_and_the_classifier():
    mel = MelConfig(n_mels=32)
    d = build_detector(LABELS, mel, 16000, 1.0, -40.0, 12.0)
    assert d.labels == LABELS and d.sample_rate == 16000 and d.mel == mel and d.window_seconds == 1.0
    assert d.classifier.conv1.in_channels == 1 and d.classifier.fc.out_features == 5
    assert d.classifier.pretrained_loaded is False
    assert float(d.normaliser.mean) == -40.0 and float(d.normaliser.std) == 12.0
    # the front end and the normaliser add buffers, no trainable parameter
    assert count_parameters(d) == count_parameters(d.classifier)
    assert {"normaliser.mean", "normaliser.std"} <= set(d.state_dict())


def test_detector_forward_on_features_is_classifier_of_normalised_input():
    d = _detector()
    x = torch.from_numpy(np.random.default_rng(0).uniform(-80, 0, size=(3, 64, 101)).astype(np.float32))
    with torch.no_grad():
        want = d.classifier(((x - -40.0) / 12.0)[:, None])
        torch.testing.assert_close(d(x), want)  # [B, n_mels, frames]
        torch.testing.assert_close(d(x[:, None]), want)  # [B, 1, n_mels, frames]
    assert want.shape == (3, 5)


def test_detector_forward_waveform_is_forward_of_its_features():
    d = _detector()
    rng = np.random.default_rng(1)
    waves = torch.from_numpy((0.2 * rng.standard_normal((2, 16000))).astype(np.float32))
    with torch.no_grad():
        feats = d.features(waves)
        assert feats.shape == (2, 64, 101)
        torch.testing.assert_close(feats, build_logmel(MelConfig(), 16000)(waves))  # the cache's recipe
        torch.testing.assert_close(d.forward_waveform(waves), d(feats))


def test_detector_with_per_mel_statistics_and_any_classifier():
    mean = np.linspace(-60, -20, 8).astype(np.float32)
    std = np.linspace(5, 10, 8).astype(np.float32)

    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)

    d = Detector(build_logmel(MelConfig(n_mels=8), 16000), Normaliser(mean, std), Flat(), labels=["Dog"],
                 sample_rate=16000, mel=MelConfig(n_mels=8), window_seconds=1.0)
    x = torch.zeros(1, 8, 3)
    want = ((0.0 - mean) / std)[:, None].repeat(3, axis=1).reshape(1, -1)
    np.testing.assert_allclose(d(x).numpy(), want, rtol=1e-6)
