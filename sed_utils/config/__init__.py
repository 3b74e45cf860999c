"""One typed configuration for the whole series, loaded from ``config.yml`` (every notebook).

``settings``: the sections by concept (data, features, augmentation, training, models, post-processing,
evaluation) and :class:`Config`; ``loader``: :func:`load_config` (defaults <- profile <- overrides <-
environment; keys of the earlier layout refused with where they went); ``rules``: one range rule per
field; ``runs``: :class:`RunPaths`, every file a run writes.
"""

from sed_utils.config.loader import MOVED, load_config, parse_override
from sed_utils.config.rules import ESC50_FOLDS
from sed_utils.config.runs import RunPaths
from sed_utils.config.settings import (
    REPO_ROOT,
    AudioConfig,
    AugmentConfig,
    ChunkingConfig,
    Config,
    DownloadConfig,
    EvalConfig,
    FoldConfig,
    MelConfig,
    ModelConfig,
    PostprocessConfig,
    ScenesConfig,
    TrainConfig,
    key_view,
)
from sed_utils.core.errors import ConfigError

__all__ = ["Config", "ConfigError", "load_config", "parse_override", "MOVED", "ESC50_FOLDS", "REPO_ROOT",
           "RunPaths", "AudioConfig", "DownloadConfig", "ChunkingConfig", "MelConfig", "FoldConfig",
           "ScenesConfig", "AugmentConfig", "TrainConfig", "ModelConfig", "PostprocessConfig", "EvalConfig",
           "key_view"]
