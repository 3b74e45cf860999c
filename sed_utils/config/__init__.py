"""One typed configuration for the whole series, loaded from ``config.yml`` (every notebook).

``settings``: the typed sections and :func:`load_config` (defaults <- profile <- overrides <-
environment); ``rules``: one range rule per field, checked on load.
"""

from sed_utils.config.rules import ESC50_FOLDS
from sed_utils.config.settings import (
    REPO_ROOT,
    AudioConfig,
    AugmentConfig,
    ChunkingConfig,
    Config,
    DownloadConfig,
    EvalConfig,
    FoldConfig,
    FrameConfig,
    MelConfig,
    TrainConfig,
    load_config,
    parse_override,
)
from sed_utils.core.errors import ConfigError

__all__ = ["Config", "ConfigError", "load_config", "parse_override", "ESC50_FOLDS", "REPO_ROOT",
           "AudioConfig", "DownloadConfig", "ChunkingConfig", "MelConfig", "FoldConfig", "AugmentConfig",
           "TrainConfig",
           "EvalConfig", "FrameConfig"]
