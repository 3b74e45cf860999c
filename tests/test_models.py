"""The networks (ResNet18 adapted to log-mels, as a clip tagger and as a frame detector), their one output
contract, the Detector around them (front end + normaliser + network) and the registry of model kinds
with its two losses."""

from __future__ import annotations

import dataclasses
import math
import random
import urllib.error

import numpy as np
import pytest
import torch

from sed_utils.config import MelConfig, load_config
from sed_utils.config.settings import ModelConfig
from sed_utils.features.logmel import Normaliser, build_logmel
from sed_utils.models import kinds as kinds_mod
from sed_utils.models import networks as networks_mod
from sed_utils.models.curves import frame_curve, window_curve
from sed_utils.models.detector import Detector, pick_device, set_seed
from sed_utils.models.kinds import (
    ModelKind,
    build_detector,
    clip_loss,
    frame_loss,
    get_kind,
    kind_names,
    register,
    settings_of,
)
from sed_utils.models.networks import (
    FrameResNet,
    FrameResNetGRU,
    ResNetTagger,
    build_resnet18,
    cached_weights_path,
    count_parameters,
    describe_model,
)

LABELS = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]


def _frames(t: int) -> int:
    """Output frames of the frame network for ``t`` mel frames: conv1, the max pool and layer2 each
    halve time rounding up."""
    return -(-t // 8)


# ----------------------------------------------------------------------------- build_resnet18
@pytest.mark.parametrize("shape", [(1, 64, 101), (1, 128, 101), (1, 32, 40), (1, 64, 501)])
def test_tagger_gives_one_clip_logit_per_class_for_any_input_size(shape):
    torch.manual_seed(0)
    m = ResNetTagger(5).eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        out = m(x)
        assert set(out) == {"clip_logits"}  # the output contract: one answer per input window
        assert out["clip_logits"].shape == (3, 5)
        # Logits, not probabilities: a sigmoid head would keep everything inside (0, 1).
        assert out["clip_logits"].dtype == torch.float32 and torch.isfinite(out["clip_logits"]).all()
        assert (out["clip_logits"].abs() > 0).any()
        torch.testing.assert_close(out["clip_logits"], m.resnet(x), rtol=0, atol=0)
    assert ResNetTagger.time_stride is None and m.pretrained_loaded is False


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
    assert count_parameters(ResNetTagger(7)) == expected
    # the frame network: the same trunk without fc, plus two 512 -> 7 heads (frames and attention)
    assert count_parameters(FrameResNet(7)) == expected - (512 * 7 + 7) + 2 * (512 * 7 + 7)


@pytest.mark.parametrize("network", [build_resnet18, ResNetTagger, FrameResNet])
def test_rejects_zero_classes(network):
    with pytest.raises(ValueError, match="n_classes"):
        network(0)


@pytest.mark.parametrize("network", [build_resnet18, ResNetTagger, FrameResNet])
def test_pretrained_offline_falls_back_to_random_init_with_message(monkeypatch, caplog, network):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(networks_mod, "_imagenet_state_dict", offline)
    m = network(5, pretrained=True)
    assert m.pretrained_loaded is False
    out = caplog.text  # a warning through the package's logger: shown without any logging set up
    assert "ImageNet weights could not be downloaded" in out and "WARNING" in out
    assert "random initialisation" in out
    assert "Name or service not known" in out
    assert str(cached_weights_path()) in out  # where to copy the file by hand


def test_pretrained_weights_are_used_and_conv1_is_rgb_mean(monkeypatch):
    """With (fake, in-memory) ImageNet weights, conv1 becomes the mean of the RGB filters; the tagger
    and the frame network's trunk both start from them."""
    from torchvision.models import resnet18

    torch.manual_seed(1)
    fake = resnet18(weights=None).state_dict()
    monkeypatch.setattr(networks_mod, "_imagenet_state_dict", lambda: fake)
    m = build_resnet18(5, pretrained=True)
    assert m.pretrained_loaded is True
    torch.testing.assert_close(m.conv1.weight, fake["conv1.weight"].mean(dim=1, keepdim=True))
    torch.testing.assert_close(m.layer1[0].conv1.weight, fake["layer1.0.conv1.weight"])
    assert m.fc.weight.shape == (5, 512)

    tagger = ResNetTagger(5, pretrained=True)
    assert tagger.pretrained_loaded is True
    torch.testing.assert_close(tagger.resnet.layer3[1].conv2.weight, fake["layer3.1.conv2.weight"])

    frame = FrameResNet(5, pretrained=True)
    assert frame.pretrained_loaded is True
    conv1, layer1, layer4 = frame.trunk[0], frame.trunk[4], frame.trunk[7]
    torch.testing.assert_close(conv1.weight, fake["conv1.weight"].mean(dim=1, keepdim=True))
    torch.testing.assert_close(layer1[0].conv1.weight, fake["layer1.0.conv1.weight"])
    torch.testing.assert_close(layer4[0].downsample[0].weight, fake["layer4.0.downsample.0.weight"])
    # build_detector passes `pretrained` to the kind's network
    detector = build_detector("frame", LABELS, MelConfig(), 16000, 10.0, pretrained=True)
    assert detector.network.pretrained_loaded


def test_weights_already_in_the_torch_hub_cache_are_used_without_network(tmp_path, monkeypatch):
    """An offline user who copied the ImageNet file into the hub cache gets pretrained weights."""
    from torchvision.models import resnet18

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    path = cached_weights_path()
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.manual_seed(2)
    fake = resnet18(weights=None).state_dict()
    torch.save(fake, path)
    m = build_resnet18(5, pretrained=True)
    assert m.pretrained_loaded is True
    torch.testing.assert_close(m.conv1.weight, fake["conv1.weight"].mean(dim=1, keepdim=True))
    torch.testing.assert_close(m.layer4[1].bn2.running_var, fake["layer4.1.bn2.running_var"])


def test_describe_model_shows_shapes_shrinking_32x_and_all_parameters():
    m = ResNetTagger(5).resnet
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


def test_describe_model_of_the_frame_network_keeps_time_at_one_eighth():
    m = FrameResNet(5).eval()
    table = describe_model(m, (1, 64, 101))
    shapes = dict(zip(table["block"], table["output shape"], strict=True))
    # time: 101 -> 51 -> 26 -> 13 (conv1, max pool, layer2), then kept; frequency: 64 -> 2 as in the tagger
    assert shapes["trunk"] == "512 x 2 x 13"
    assert shapes["frame_head"] == shapes["attention_head"] == "13 x 5"
    assert table["parameters"].sum() == count_parameters(m)
    assert not m.training  # the mode is restored, whichever it was
    m.train()
    describe_model(m, (1, 64, 101))
    assert m.training


# ----------------------------------------------------------------------------- FrameResNet
@pytest.fixture(scope="module")
def frame_net() -> FrameResNet:
    torch.manual_seed(0)
    return FrameResNet(3).eval()


@pytest.mark.parametrize("n_mels, t", [(64, 101), (64, 500), (64, 1001), (32, 1600), (64, 7)])
def test_frame_network_keeps_time_at_one_output_frame_per_8_mel_frames(frame_net, n_mels, t):
    with torch.no_grad():
        out = frame_net(torch.randn(2, 1, n_mels, t))
    assert set(out) == {"frame_logits", "clip_logits"}
    assert out["frame_logits"].shape == (2, _frames(t), 3)
    assert out["clip_logits"].shape == (2, 3)
    assert FrameResNet.time_stride == 8
    assert _frames(1001) == 126 and _frames(101) == 13  # 10 s and 1 s at a 10 ms hop


def test_frame_network_clip_logits_are_the_logit_of_attention_pooled_frame_probabilities(frame_net):
    x = torch.randn(2, 1, 64, 301)
    with torch.no_grad():
        out = frame_net(x)
        h = frame_net.frame_features(x)  # eval mode: no dropout
        assert h.shape == (2, _frames(301), 512)
        frame_logits = frame_net.frame_head(h)
        weights = torch.softmax(frame_net.attention_head(h), dim=1)  # over time, per class
        pooled = (weights * torch.sigmoid(frame_logits)).sum(dim=1)
    torch.testing.assert_close(out["frame_logits"], frame_logits)
    torch.testing.assert_close(out["clip_logits"], torch.logit(pooled), rtol=1e-4, atol=1e-4)
    # an attention-weighted mean: between the least and the most confident frame of each class
    probs = torch.sigmoid(out["clip_logits"])
    frame_probs = torch.sigmoid(out["frame_logits"])
    assert (probs >= frame_probs.min(dim=1).values - 1e-6).all()
    assert (probs <= frame_probs.max(dim=1).values + 1e-6).all()


def test_frame_network_clip_output_by_hand():
    """Constant frames give their own logit back; uniform attention gives the plain mean of the frames."""
    torch.manual_seed(3)
    net = FrameResNet(3).eval()
    x = torch.randn(1, 1, 64, 160)  # 20 output frames
    with torch.no_grad():
        net.frame_head.weight.zero_()
        net.frame_head.bias.copy_(torch.tensor([-2.0, 0.0, 3.0]))
        torch.testing.assert_close(net(x)["clip_logits"], torch.tensor([[-2.0, 0.0, 3.0]]), rtol=0, atol=1e-4)

        net = FrameResNet(3).eval()
        net.attention_head.weight.zero_()
        net.attention_head.bias.zero_()
        out = net(x)
        mean = torch.sigmoid(out["frame_logits"]).mean(dim=1)
        torch.testing.assert_close(torch.sigmoid(out["clip_logits"]), mean, rtol=0, atol=1e-6)
        assert (torch.sigmoid(out["frame_logits"]).std(dim=1) > 1e-4).all()  # the frames do differ


def test_frame_network_dropout_acts_in_training_only():
    torch.manual_seed(4)
    net = FrameResNet(3, dropout=0.5)
    x = torch.randn(2, 1, 32, 80)
    with torch.no_grad():
        net.eval()
        a, b = net(x)["frame_logits"], net(x)["frame_logits"]
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        net.train()
        c = net(x)["frame_logits"]
    assert not torch.allclose(a, c)


def test_the_crnn_reads_the_whole_scene_through_its_gru_and_pools_like_the_frame_model():
    """FrameResNetGRU: the trunk's frames through a bidirectional GRU, then FrameResNet's heads and
    attention pooling. A change at the last input frame reaches the first output frame (a GRU reads the
    whole scene); in FrameResNet it cannot (its receptive field is about a second)."""
    torch.manual_seed(5)
    crnn, plain = FrameResNetGRU(3, hidden=16).eval(), FrameResNet(3).eval()
    x = torch.randn(1, 1, 64, 800)  # 8 s: 100 output frames
    later = x.clone()
    later[..., -40:] += 3.0
    with torch.no_grad():
        h = crnn.frame_features(x)
        assert h.shape == (1, 100, 32)
        out = crnn(x)
        weights = torch.softmax(crnn.attention_head(h), dim=1)
        pooled = (weights * torch.sigmoid(crnn.frame_head(h))).sum(dim=1)
        torch.testing.assert_close(out["clip_logits"], torch.logit(pooled), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(crnn(later)["frame_logits"][:, 0], out["frame_logits"][:, 0])
        torch.testing.assert_close(plain(later)["frame_logits"][:, 0], plain(x)["frame_logits"][:, 0])
    assert get_kind("crnn").network is FrameResNetGRU and get_kind("crnn").time_stride == 8


# ----------------------------------------------------------------------------- Detector
def _detector(kind: str = "chunk", mean=-40.0, std=12.0, window: float = 1.0) -> Detector:
    torch.manual_seed(0)
    return build_detector(kind, LABELS, MelConfig(), 16000, window, mean, std).eval()


@pytest.mark.parametrize("kind, network, stride, frame_seconds", [
    ("chunk", ResNetTagger, None, None),
    ("frame", FrameResNet, 8, 0.08),
    ("crnn", FrameResNetGRU, 8, 0.08),
])
def test_build_detector_of_each_kind_holds_its_settings_and_network(kind, network, stride, frame_seconds):
    mel = MelConfig(n_mels=32)
    d = build_detector(kind, LABELS, mel, 16000, 1.0, -40.0, 12.0)
    assert d.kind == kind and type(d.network) is network
    assert d.labels == LABELS and d.sample_rate == 16000 and d.mel == mel and d.window_seconds == 1.0
    assert d.time_stride == get_kind(kind).time_stride == stride
    assert d.frame_seconds == (None if frame_seconds is None else pytest.approx(frame_seconds))
    assert d.network.pretrained_loaded is False
    assert float(d.normaliser.mean) == -40.0 and float(d.normaliser.std) == 12.0
    # the front end and the normaliser add buffers, no trainable parameter
    assert count_parameters(d) == count_parameters(d.network)
    assert {"normaliser.mean", "normaliser.std"} <= set(d.state_dict())
    with torch.no_grad():
        out = d.eval()(torch.zeros(2, 32, 101) - 40.0)
    assert out["clip_logits"].shape == (2, 5)
    assert ("frame_logits" in out) == (stride is not None)
    if stride is not None:
        assert out["frame_logits"].shape == (2, 13, 5)


def test_build_detector_refuses_an_unknown_kind():
    with pytest.raises(KeyError, match=r"no model kind 'transformer'; registered: \['chunk', 'frame'"):
        build_detector("transformer", LABELS, MelConfig(), 16000, 1.0)


@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_detector_forward_on_features_is_network_of_normalised_input(kind):
    d = _detector(kind)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-80, 0, size=(3, 64, 101)).astype(np.float32))
    with torch.no_grad():
        want = d.network(((x - -40.0) / 12.0)[:, None])
        got3, got4 = d(x), d(x[:, None])  # [B, n_mels, frames] and [B, 1, n_mels, frames]
    assert set(got3) == set(want) == set(got4)
    for name in want:
        torch.testing.assert_close(got3[name], want[name])
        torch.testing.assert_close(got4[name], want[name])
    assert want["clip_logits"].shape == (3, 5)


@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_detector_forward_waveform_is_forward_of_its_features(kind):
    d = _detector(kind)
    rng = np.random.default_rng(1)
    waves = torch.from_numpy((0.2 * rng.standard_normal((2, 16000))).astype(np.float32))
    with torch.no_grad():
        feats = d.features(waves)
        assert feats.shape == (2, 64, 101)
        torch.testing.assert_close(feats, build_logmel(MelConfig(), 16000)(waves))  # the cache's recipe
        direct, via = d.forward_waveform(waves), d(feats)
    assert set(direct) == set(via)
    for name in direct:
        torch.testing.assert_close(direct[name], via[name])


def test_detector_with_per_mel_statistics_and_any_network():
    mean = np.linspace(-60, -20, 8).astype(np.float32)
    std = np.linspace(5, 10, 8).astype(np.float32)

    class Flat(torch.nn.Module):
        def forward(self, x):
            return {"clip_logits": x.flatten(1)}

    d = Detector(build_logmel(MelConfig(n_mels=8), 16000), Normaliser(mean, std), Flat(), kind="chunk",
                 labels=["Dog"], sample_rate=16000, mel=MelConfig(n_mels=8), window_seconds=1.0)
    x = torch.zeros(1, 8, 3)
    want = ((0.0 - mean) / std)[:, None].repeat(3, axis=1).reshape(1, -1)
    np.testing.assert_allclose(d(x)["clip_logits"].numpy(), want, rtol=1e-6)
    assert d.time_stride is None and d.frame_seconds is None  # a network without time_stride


def test_frame_seconds_follow_the_mel_hop_and_the_sample_rate():
    d = build_detector("frame", LABELS, MelConfig(hop_length=320), 16000, 10.0)
    assert d.frame_seconds == pytest.approx(0.16)  # 8 frames of 20 ms
    d = build_detector("frame", LABELS, MelConfig(hop_length=160), 32000, 10.0)
    assert d.frame_seconds == pytest.approx(0.04)


def test_pick_device_returns_a_usable_device():
    dev = pick_device()
    assert dev.type in {"cuda", "mps", "cpu"}
    assert torch.zeros(1, device=dev).device.type == dev.type


def test_set_seed_makes_torch_and_numpy_repeat():
    set_seed(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(3)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(4)
    c = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    assert a != c


# ----------------------------------------------------------------------------- model kinds
@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so a test's kinds do not leak into other tests."""
    monkeypatch.setattr(kinds_mod, "_REGISTRY", dict(kinds_mod._REGISTRY))
    return kinds_mod._REGISTRY


def _toy_kind(name: str = "toy", examples: str = "chunks", network=ResNetTagger, **kw) -> ModelKind:
    return ModelKind(name=name, network=network, examples=examples, loss=clip_loss, curve=window_curve, **kw)


def test_the_two_built_in_kinds_declare_network_examples_loss_and_curve():
    assert kind_names()[:2] == ["chunk", "frame"]
    chunk, frame = get_kind("chunk"), get_kind("frame")
    assert (chunk.network, chunk.examples, chunk.loss, chunk.curve) == (ResNetTagger, "chunks", clip_loss,
                                                                        window_curve)
    assert (frame.network, frame.examples, frame.loss, frame.curve) == (FrameResNet, "scenes", frame_loss,
                                                                        frame_curve)
    assert chunk.time_stride is None and frame.time_stride == 8
    assert chunk.settings == ModelConfig()
    assert (frame.settings.epochs, frame.settings.batch_size, frame.settings.train_scenes) == (6, 16, 1000)
    assert "notebook 05" in chunk.about and "notebook 08" in frame.about
    assert get_kind(frame) is frame  # a ModelKind is returned as it is


def test_get_kind_error_names_the_registered_kinds(registry):
    register(_toy_kind("toy"))
    with pytest.raises(KeyError) as err:
        get_kind("transformer")
    assert err.value.args[0] == f"no model kind 'transformer'; registered: {kind_names()}"
    assert kind_names()[:2] == ["chunk", "frame"] and kind_names()[-1] == "toy"


def test_register_adds_a_kind_and_refuses_a_duplicate_or_unknown_examples(registry):
    toy = _toy_kind("toy", about="a test kind")
    assert register(toy) is toy
    assert get_kind("toy") is toy and kind_names()[-1] == "toy"
    with pytest.raises(ValueError, match="model kind 'toy' is registered already"):
        register(_toy_kind("toy", examples="scenes"))
    assert get_kind("toy") is toy  # the refused one did not replace it
    with pytest.raises(ValueError, match="model kind 'chunk' is registered already"):
        register(_toy_kind("chunk"))
    assert get_kind("chunk").network is ResNetTagger
    with pytest.raises(ValueError, match=r"model kind 'odd': examples must be one of \('chunks', 'scenes'\), "
                                         r"got 'windows'"):
        register(_toy_kind("odd", examples="windows"))
    assert "odd" not in kind_names()
    other = _toy_kind("toy", examples="scenes")
    assert register(other, replace=True) is other and get_kind("toy") is other
    assert kind_names().count("toy") == 1


def test_the_registry_is_restored_after_a_test_that_registers():
    # the fixture above works on a copy: no test's kind stays behind
    assert "toy" not in kind_names() and "odd" not in kind_names()


def test_a_kinds_time_stride_is_read_from_its_network_without_building_it():
    def factory(n_classes, pretrained=False):  # a factory function has no time_stride: one answer per window
        raise AssertionError("must not be built")

    assert _toy_kind(network=factory).time_stride is None
    assert _toy_kind(network=FrameResNet).time_stride == 8


def test_build_detector_accepts_an_unregistered_kind_object():
    kind = ModelKind(name="toy", network=FrameResNet, examples="scenes", loss=frame_loss, curve=frame_curve)
    d = build_detector(kind, ["Dog", "Cat"], MelConfig(n_mels=32), 16000, 10.0)
    assert d.kind == "toy" and isinstance(d.network, FrameResNet) and d.network.frame_head.out_features == 2


def test_settings_of_reads_the_config_section_and_falls_back_to_the_kinds_settings(registry):
    cfg = load_config("demo")
    assert settings_of(cfg, "chunk") is cfg.models["chunk"]
    assert settings_of(cfg, get_kind("frame")) is cfg.models["frame"]
    assert cfg.models["frame"] != get_kind("frame").settings  # so the fallback below is visible
    bare = dataclasses.replace(cfg, models={})
    assert settings_of(bare, "frame") is get_kind("frame").settings
    assert settings_of(bare, "chunk") == ModelConfig()
    own = ModelConfig(epochs=2, weak_weight=0.1)
    register(_toy_kind("toy", settings=own))
    assert settings_of(cfg, "toy") is own  # no models.toy section in config.yml
    with pytest.raises(KeyError, match="registered"):
        settings_of(cfg, "transformer")


# ----------------------------------------------------------------------------- losses
LOG3 = math.log(3.0)  # sigmoid(log 3) = 0.75


def test_clip_loss_is_the_mean_binary_cross_entropy_of_the_clip_logits():
    out = {"clip_logits": torch.tensor([[0.0, LOG3], [LOG3, -LOG3]])}
    targets = {"clip": torch.tensor([[1.0, 0.0], [1.0, 1.0]])}
    # -log sigmoid(0) = log 2; -log(1 - 0.75) = log 4; -log 0.75; -log 0.25 = log 4
    want = (math.log(2) + math.log(4) - math.log(0.75) + math.log(4)) / 4
    assert clip_loss(out, targets, ModelConfig()).item() == pytest.approx(want, rel=1e-6)
    # frame logits, if any, play no part
    with_frames = {**out, "frame_logits": torch.full((2, 4, 2), 5.0)}
    assert clip_loss(with_frames, targets, ModelConfig()).item() == pytest.approx(want, rel=1e-6)


def test_frame_loss_is_frame_bce_plus_weak_weight_times_clip_bce():
    out = {"frame_logits": torch.tensor([[[0.0], [LOG3], [-LOG3]]]),  # [B=1, T'=3, C=1]
           "clip_logits": torch.tensor([[LOG3]])}
    targets = {"frames": torch.tensor([[[1.0], [0.0]]]),  # only 2 target frames: the 3rd output is ignored
               "clip": torch.tensor([[1.0]])}
    strong = (math.log(2) + math.log(4)) / 2
    weak = -math.log(0.75)
    assert frame_loss(out, targets, ModelConfig(weak_weight=0.5)).item() == pytest.approx(strong + 0.5 * weak,
                                                                                         rel=1e-6)
    assert frame_loss(out, targets, ModelConfig(weak_weight=0.0)).item() == pytest.approx(strong, rel=1e-6)
    assert frame_loss(out, targets, ModelConfig(weak_weight=2.0)).item() == pytest.approx(strong + 2 * weak,
                                                                                         rel=1e-6)
    # targets longer than the output: compared over the output's frames
    longer = {**targets, "frames": torch.tensor([[[1.0], [0.0], [0.0], [1.0]]])}
    strong3 = (math.log(2) + math.log(4) - math.log(0.75)) / 3  # frame 3: logit -log 3 vs target 0
    assert frame_loss(out, longer, ModelConfig(weak_weight=0.0)).item() == pytest.approx(strong3, rel=1e-6)


def test_targets_for_the_other_categories_add_a_loss_of_their_own():
    """targets: all: the classes' BCE keeps its scale (its own mean) and the other categories' BCE is
    added; targets of the classes alone read the classes alone."""
    out = {"clip_logits": torch.tensor([[0.0, LOG3]]), "other_clip_logits": torch.tensor([[-LOG3, 0.0, 0.0]]),
           "frame_logits": torch.tensor([[[0.0, LOG3], [LOG3, 0.0]]]),
           "other_frame_logits": torch.tensor([[[0.0, 0.0, -LOG3], [0.0, 0.0, 0.0]]])}
    wide = {"clip": torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]]),
            "frames": torch.tensor([[[1.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0]]])}
    classes = (math.log(2) + math.log(4)) / 2  # [0, log 3] against [1, 0]
    others = (math.log(4) + math.log(2) + math.log(2)) / 3  # [-log 3, 0, 0] against [1, 0, 1]
    assert clip_loss(out, wide, ModelConfig()).item() == pytest.approx(classes + others, rel=1e-6)
    narrow = {"clip": wide["clip"][:, :2], "frames": wide["frames"][..., :2]}
    assert clip_loss(out, narrow, ModelConfig()).item() == pytest.approx(classes, rel=1e-6)
    frames_classes = (math.log(2) + math.log(4) - math.log(0.75) + math.log(2)) / 4
    frames_others = (5 * math.log(2) - math.log(0.75)) / 6
    got = frame_loss(out, wide, ModelConfig(weak_weight=0.0)).item()
    assert got == pytest.approx(frames_classes + frames_others, rel=1e-6)
    assert frame_loss(out, narrow, ModelConfig(weak_weight=0.0)).item() == pytest.approx(frames_classes,
                                                                                         rel=1e-6)


def test_losses_give_gradients_to_the_network():
    torch.manual_seed(0)
    d = build_detector("frame", ["Dog", "Cat"], MelConfig(n_mels=32), 16000, 1.0).train()
    out = d(torch.randn(2, 32, 101))
    targets = {"clip": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "frames": torch.zeros(2, 13, 2)}
    get_kind("frame").loss(out, targets, ModelConfig()).backward()
    assert d.network.frame_head.weight.grad.abs().sum() > 0
    assert d.network.attention_head.weight.grad.abs().sum() > 0  # the weak term trains the attention
