"""One typed configuration for the whole series, loaded from ``config.yml`` (every notebook).

``settings``: the sections by concept (data, features, augmentation, training, models, post-processing,
evaluation) and :class:`Config`; ``loader``: :func:`load_config` (defaults <- profile <- overrides <-
environment; keys of the earlier layout refused with where they went); ``rules``: one range rule per
field; ``runs``: :class:`RunPaths`, every file a run writes. :func:`find_project_root`: where
``config.yml``, ``notebooks/`` and ``runs/`` are (a clone, or the working folder of an installed package).
"""

from sed_utils.config.loader import MOVED, load_config, parse_override
from sed_utils.config.rules import ESC50_FOLDS
from sed_utils.config.runs import RunPaths
from sed_utils.config.settings import (
    PROJECT_ENV,
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
    find_project_root,
    key_view,
)
from sed_utils.core.errors import ConfigError

__all__ = ["Config", "ConfigError", "load_config", "parse_override", "MOVED", "ESC50_FOLDS", "REPO_ROOT",
           "RunPaths", "AudioConfig", "DownloadConfig", "ChunkingConfig", "MelConfig", "FoldConfig",
           "ScenesConfig", "AugmentConfig", "TrainConfig", "ModelConfig", "PostprocessConfig", "EvalConfig",
           "key_view", "PROJECT_ENV", "find_project_root"]
