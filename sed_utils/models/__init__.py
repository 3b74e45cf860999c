"""Models: the networks, the one :class:`Detector`, the registry of model kinds, curves and checkpoints.

``networks``: the ResNet18 tagger (notebook 05) and the frame ResNet (notebook 08), one output contract;
``detector``: :class:`Detector` (log-mel + normaliser + network); ``curves``: the one forward loop and a
recording's score curve; ``kinds``: what each model kind declares (network, training examples, loss,
curve) and :func:`build_detector`; ``checkpoint``: a self-contained detector on disk.
"""

from sed_utils.models.checkpoint import (
    CheckpointInfo,
    TrainedModel,
    load_trained,
    read_checkpoint,
    save_checkpoint,
    store_post_processing,
    weights_digest,
)
from sed_utils.models.curves import frame_curve, predict, predict_proba, sigmoid, to_device, window_curve
from sed_utils.models.detector import Detector, Output, pick_device, set_seed
from sed_utils.models.kinds import (
    ModelKind,
    build_detector,
    clip_loss,
    frame_loss,
    get_kind,
    kind_names,
    register,
    score_curve,
    settings_of,
)
from sed_utils.models.networks import (
    FrameResNet,
    FrameResNetGRU,
    ResNetTagger,
    build_resnet18,
    count_parameters,
    describe_model,
)

__all__ = ["Detector", "Output", "ModelKind", "register", "get_kind", "kind_names", "settings_of",
           "clip_loss",
           "frame_loss", "build_detector", "score_curve", "ResNetTagger", "FrameResNet", "FrameResNetGRU",
           "build_resnet18",
           "count_parameters", "describe_model", "pick_device", "set_seed", "predict", "predict_proba",
           "sigmoid",
           "to_device", "window_curve", "frame_curve", "CheckpointInfo", "TrainedModel", "save_checkpoint",
           "read_checkpoint", "load_trained", "store_post_processing", "weights_digest"]
