"""The networks: torchvision's ResNet18 for 1-channel log-mels, as a clip tagger and as a frame detector.

Every network of the series answers with the same output contract (PANNs' habit: one dict for
every model, and the loss takes that dict):

- ``"clip_logits"`` ``[B, C]``: one logit per class for the whole input (every network);
- ``"frame_logits"`` ``[B, T', C]``: one logit per class and output frame (networks that keep time;
  ``time_stride`` mel frames make one output frame).

Why ResNet18: a log-mel spectrogram is an image of sound (frequency up, time across), and a small
image CNN learns the local time-frequency patterns (a bark's harmonic stack, an alarm's steady
tones) well. Two changes make it fit our data (:func:`build_resnet18`): ``conv1`` takes 1 input
channel instead of RGB (with ImageNet weights the new filter is the mean of the three RGB filters),
and ``fc`` outputs one LOGIT per class. The sigmoid is applied by ``BCEWithLogitsLoss`` in training
(stable where ``log(sigmoid(x))`` underflows) and at inference; one sigmoid per class, not a softmax,
because sounds co-occur (multilabel).

:class:`ResNetTagger` (notebook 05) is that ResNet18: one answer per 1 s window. :class:`FrameResNet`
(notebook 08) keeps time: ``layer3``/``layer4`` stride over frequency only (time is downsampled 8x, so
with a 10 ms hop one output frame is 80 ms), the average is over frequency only, the head is applied
to every frame, and an attention pooling (a learned weight per frame and class, softmax over time,
as in PANNs and the DCASE baselines) gives the clip-level output, so clip labels can train it too.
"""

from __future__ import annotations

import logging
import os
import urllib.error
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

log = logging.getLogger(__name__)

__all__ = ["build_resnet18", "cached_weights_path", "ResNetTagger", "FrameResNet", "FrameResNetGRU",
           "count_parameters",
           "describe_model"]


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet ResNet18 weights: from the torch hub cache if present, else downloaded.

    ``Weights.get_state_dict`` already looks in ``$TORCH_HOME/hub/checkpoints`` first, so a file
    copied there by hand (offline machines) is used without any network access.
    """
    return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)


def cached_weights_path() -> Path:
    """Where torch hub keeps (or would keep) the ImageNet ResNet18 file; copy it there when offline
    (notebook 05, through build_resnet18)."""
    url = ResNet18_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def build_resnet18(n_classes: int, *, pretrained: bool = False) -> nn.Module:
    """torchvision's ResNet18 with a 1-channel ``conv1`` and a ``Linear(512, n_classes)`` head producing
    logits (notebooks 05, 08).

    Args:
        n_classes: number of outputs (one per DESED label).
        pretrained: start from ImageNet weights when they can be loaded (hub cache or download).
            Offline the download fails fast; the model then starts from random initialisation and
            a message says so, because a tutorial run should not die for want of a nice-to-have.

    Returns:
        The model, with attribute ``pretrained_loaded`` (bool): whether ImageNet weights are in it.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    model = resnet18(weights=None)
    loaded = False
    if pretrained:
        try:
            state = _imagenet_state_dict()
        except (urllib.error.URLError, OSError, RuntimeError) as e:
            name = os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url)
            log.warning(f"ImageNet weights could not be downloaded ({type(e).__name__}: {e}); training from "
                        f"random initialisation. To use them offline, copy {name} to "
                        f"{cached_weights_path()}.")
        else:
            model.load_state_dict(state)
            loaded = True
    old = model.conv1
    conv1 = nn.Conv2d(1, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                      padding=old.padding,
                      bias=old.bias is not None)
    if loaded:
        with torch.no_grad():
            # Mean over RGB: a grey image x in all three channels gives the same response as before.
            conv1.weight.copy_(old.weight.mean(dim=1, keepdim=True))
    model.conv1 = conv1
    model.fc = nn.Linear(model.fc.in_features, n_classes)
    model.pretrained_loaded = loaded
    return model


class ResNetTagger(nn.Module):
    """:func:`build_resnet18` as a tagger: ``[B, 1, n_mels, T] -> {"clip_logits": [B, C]}`` (notebook 05).

    Args:
        n_classes: outputs; pretrained: ImageNet weights when they can be loaded.
    """

    time_stride: int | None = None  # one answer per input window

    def __init__(self, n_classes: int, *, pretrained: bool = False):
        super().__init__()
        self.resnet = build_resnet18(n_classes, pretrained=pretrained)
        self.pretrained_loaded = bool(self.resnet.pretrained_loaded)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"clip_logits": self.resnet(x)}


def _keep_time(layer: nn.Sequential) -> None:
    """Make a ResNet stage stride over frequency only: its first block's conv and shortcut."""
    block = layer[0]
    block.conv1.stride = (2, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (2, 1)


class FrameResNet(nn.Module):
    """ResNet18 trunk with time kept: ``[B, 1, n_mels, T] -> {"frame_logits": [B, ceil(T/8), C],
    "clip_logits": [B, C]}`` (notebook 08).

    The trunk's weights have the same names and shapes as torchvision's ResNet18, so ImageNet weights
    load into it as into the tagger; only the strides of ``layer3``/``layer4`` and the pooling differ.
    The clip output pools the frame probabilities with attention weights; its logit is
    ``logit(pooled probability)``, so the one loss of :mod:`sed_utils.models.kinds` applies to it.

    Args:
        n_classes: outputs; pretrained: ImageNet weights when they can be loaded; dropout: on the
            per-frame features before the heads.
    """

    time_stride: int | None = 8  # conv1, the max pool and layer2 halve time; layer3/4 keep it

    def __init__(self, n_classes: int, *, pretrained: bool = False, dropout: float = 0.3):
        super().__init__()
        net = build_resnet18(n_classes, pretrained=pretrained)
        _keep_time(net.layer3)
        _keep_time(net.layer4)
        self.trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                   net.layer1, net.layer2, net.layer3, net.layer4)
        self.dropout = nn.Dropout(dropout)
        self.frame_head = nn.Linear(512, n_classes)
        self.attention_head = nn.Linear(512, n_classes)
        self.pretrained_loaded = bool(net.pretrained_loaded)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's features per output frame, ``[B, T', 512]`` (mean over frequency)."""
        return self.trunk(x).mean(dim=2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.dropout(self.frame_features(x))
        frame_logits = self.frame_head(h)  # [B, T', C]
        # attention over time, per class: where in the clip the class is most evident
        # in float32 also under bfloat16 autocast: there 1 - 1e-7 rounds to 1 (bf16 keeps 8 bits of
        # mantissa), logit(1) is inf and the first steps' loss NaN (bfloat16 training learned nothing)
        weights = torch.softmax(self.attention_head(h).float().clamp(-15, 15), dim=1)
        clip_probs = (weights * torch.sigmoid(frame_logits.float())).sum(dim=1).clamp(1e-7, 1 - 1e-7)
        return {"frame_logits": frame_logits, "clip_logits": torch.logit(clip_probs)}


class FrameResNetGRU(FrameResNet):
    """:class:`FrameResNet` with a bidirectional GRU over its frames before the heads, as the DCASE
    CRNN baselines have: ``[B, 1, n_mels, T] -> {"frame_logits": [B, ceil(T/8), C], "clip_logits": [B, C]}``
    (notebook 08; the ``crnn`` kind, issue 23's temporal head).

    Why: the trunk's frames see about a second of context each but decide alone; a recurrent layer lets
    every frame read the whole scene, which should sharpen onsets and offsets (event F1, PSDS1). The
    trunk, the heads and the attention pooling are :class:`FrameResNet`'s; only what feeds the heads
    changes (``[B, T', 2 hidden]`` instead of ``[B, T', 512]``).

    Args:
        n_classes: outputs; pretrained: ImageNet weights for the trunk when they can be loaded;
        dropout: on the GRU's outputs; hidden: the GRU's size per direction.
    """

    def __init__(self, n_classes: int, *, pretrained: bool = False, dropout: float = 0.3, hidden: int = 128):
        super().__init__(n_classes, pretrained=pretrained, dropout=dropout)
        self.gru = nn.GRU(512, hidden, batch_first=True, bidirectional=True)
        self.frame_head = nn.Linear(2 * hidden, n_classes)
        self.attention_head = nn.Linear(2 * hidden, n_classes)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """The GRU's outputs per output frame, ``[B, T', 2 hidden]``."""
        h, _ = self.gru(super().frame_features(x))
        return h


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (notebook 05's model summary)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe_model(model: nn.Module, input_shape: tuple[int, ...]) -> pd.DataFrame:
    """One row per top-level block: its output shape for one input and its parameter count (notebook 05).

    Shows how the spectrogram shrinks on its way through the network (each stage halves time and
    frequency, 32x overall) before global average pooling turns it into 512 numbers, and where the
    parameters are.

    Args:
        model: a module whose children run in order (torchvision's ResNet18: ``ResNetTagger.resnet``).
        input_shape: one item's shape, e.g. ``(1, 64, 101)``.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [child.register_forward_hook(
                 lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
             for name, child in model.named_children()]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows = [{"block": name, "output shape": " x ".join(str(d) for d in shapes.get(name, ())),
             "parameters": sum(p.numel() for p in child.parameters())}
            for name, child in model.named_children()]
    return pd.DataFrame(rows)
