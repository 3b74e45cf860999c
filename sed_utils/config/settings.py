"""One typed configuration for the whole series, loaded from ``config.yml``.

Why one file: every notebook and every ``sed_utils`` function reads its knobs from the same
:class:`Config`, so a value changed once (a fold, the mel size, a threshold) changes everywhere,
and the profile that produced a result can be written next to it.

Merge order: ``defaults`` <- ``profiles[<profile>]`` <- ``overrides`` (``"train.epochs=2"``
strings, as the runner and papermill pass them) <- environment (``SED_DATA_ROOT``,
``SED_MIRROR``). Unknown keys are errors, not silently ignored: a typo in an override would
otherwise run the wrong experiment without a word.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sed_utils.config.rules import ESC50_FOLDS, check_sections
from sed_utils.core.errors import ConfigError

__all__ = ["Config", "load_config", "parse_override", "ESC50_FOLDS", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_CONFIG_PATH = REPO_ROOT / "config.yml"


@dataclass(frozen=True)
class AudioConfig:
    """``audio`` of config.yml: the one sample rate every clip is read at (notebooks 02-07)."""

    sample_rate: int = 16000


@dataclass(frozen=True)
class DownloadConfig:
    """``download`` of config.yml: mirror, timeout and retries of the dataset downloads (notebook 01)."""

    mirror: str | None = None
    timeout_seconds: float = 60.0
    retries: int = 3
    stall_seconds: float = 120.0


@dataclass(frozen=True)
class ChunkingConfig:
    """``chunking`` of config.yml: chunk length and hop, silence level, negatives, segment length
    (notebooks 03-06)."""

    chunk_seconds: float = 1.0
    hop_seconds: float = 0.25
    silence_db: float = -35.0
    negative_ratio: float = 0.5
    segment_seconds: float = 1.0


@dataclass(frozen=True)
class MelConfig:
    """``mel`` of config.yml: the log-mel settings features, model and figures share (notebooks 02, 04-07)."""

    n_mels: int = 64
    n_fft: int = 1024
    win_length: int = 400
    hop_length: int = 160
    f_min: float = 50.0
    f_max: float = 8000.0
    top_db: float = 80.0


@dataclass(frozen=True)
class FoldConfig:
    """``folds`` of config.yml: which ESC-50 folds train, validate and feed each scene set
    (notebooks 04-07)."""

    train: tuple[int, ...] = (1, 2, 3, 4)
    valid: tuple[int, ...] = (5,)
    scenes_train: tuple[int, ...] = (1, 2, 3)
    scenes_valid: tuple[int, ...] = (4,)
    scenes_test: tuple[int, ...] = (5,)


@dataclass(frozen=True)
class AugmentConfig:
    """``augment`` of config.yml: probabilities and strengths of the training augmentations
    (notebooks 04, 05)."""

    specaugment: bool = True
    freq_mask: int = 8
    time_mask: int = 20
    gain_db: float = 6.0
    noise_snr_db: float = 20.0
    noise_prob: float = 0.3
    time_shift: float = 0.2
    mix_prob: float = 0.3
    background_prob: float = 0.5
    background_snr_db: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """``train`` of config.yml: batch size, epochs, optimiser, training data and model selection
    (notebooks 04, 05)."""

    batch_size: int = 64
    epochs: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 0
    pretrained: bool = False
    num_threads: int = 0
    num_workers: int = 0
    channels_last: bool = True
    max_train_chunks: int = 0
    select_on: str = "scenes"
    train_scenes: int = 500
    lr_schedule: str = "cosine"


@dataclass(frozen=True)
class EvalConfig:
    """``eval`` of config.yml: thresholds, post-processing, metric collars and scene counts
    (notebook 06; the scene counts also notebooks 05, 07)."""

    threshold: float = 0.6
    per_class_thresholds: bool = True
    reference_threshold: float = 0.6
    event_hop_seconds: float = 0.25
    onset_collar: float = 0.2
    offset_collar_ratio: float = 0.2
    median_filter_frames: int = 3
    n_scenes: int = 200
    scenes_seed: int = 0
    valid_scenes: int = 200
    segment_scores: str = "windows"
    tune_with_negatives: bool = False


@dataclass(frozen=True)
class FrameConfig:
    """``frame`` of config.yml: the frame-level model of notebook 08, its training scenes and the
    post-processing candidates chosen from on the validation scenes."""

    train_scenes: int = 1000
    epochs: int = 6
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    weak_weight: float = 0.5
    median_filters: tuple[int, ...] = (1, 3, 5, 7, 9, 13)
    min_durations: tuple[float, ...] = (0.0, 0.16, 0.32, 0.48, 0.64, 0.8, 0.96, 1.28)
    negative_clips: int = 0


@dataclass(frozen=True)
class Config:
    """Every knob of the series. Build it with :func:`load_config`, not by hand (every notebook)."""

    profile: str
    data_root: Path
    runs_root: Path
    seed: int
    synthetic: bool
    classes: dict[str, str]
    test_set: str = "desed"
    scene_recipe: str = "uniform"
    audio: AudioConfig = field(default_factory=AudioConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    mel: MelConfig = field(default_factory=MelConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    frame: FrameConfig = field(default_factory=FrameConfig)

    # Convenience views used everywhere -------------------------------------------------------
    @property
    def desed_labels(self) -> list[str]:
        """DESED labels in model output order (the order of ``classes`` in config.yml)."""
        return list(self.classes)

    @property
    def esc50_categories(self) -> list[str]:
        """The ESC-50 category of each output, same order as :attr:`desed_labels`."""
        return list(self.classes.values())

    @property
    def train_folds(self) -> tuple[int, ...]:
        """ESC-50 training folds for the chosen test set (``folds.train`` or ``folds.scenes_train``)."""
        return self.folds.scenes_train if self.test_set == "scenes" else self.folds.train

    @property
    def valid_folds(self) -> tuple[int, ...]:
        """ESC-50 validation folds for the chosen test set (``folds.valid`` or ``folds.scenes_valid``)."""
        return self.folds.scenes_valid if self.test_set == "scenes" else self.folds.valid

    @property
    def run_dir(self) -> Path:
        """Where this profile's checkpoints, executed notebooks and results.json go."""
        return self.runs_root / self.profile

    @property
    def cache_dir(self) -> Path:
        """Derived data (resampled audio, chunk tables, features), safe to delete."""
        return self.data_root / "cache"

    def to_dict(self) -> dict[str, Any]:
        """Plain, yaml/json-serialisable view (saved next to checkpoints and results)."""
        d = dataclasses.asdict(self)
        d["data_root"] = str(self.data_root)
        d["runs_root"] = str(self.runs_root)
        return d


_SECTIONS: dict[str, type] = {
    "audio": AudioConfig,
    "download": DownloadConfig,
    "chunking": ChunkingConfig,
    "mel": MelConfig,
    "folds": FoldConfig,
    "augment": AugmentConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "frame": FrameConfig,
}
_TOP_LEVEL = {"data_root", "runs_root", "seed", "synthetic", "classes", "test_set", "scene_recipe",
              *_SECTIONS}
#: How the scenes' target events are laid out: see ``scene_recipe`` in config.yml.
SCENE_RECIPES = ("uniform", "desed_like")
TEST_SETS = ("desed", "scenes")
#: What picks the checkpoint (and stops training early): see ``train.select_on`` in config.yml.
SELECT_ON = ("chunks", "scenes")
LR_SCHEDULES = ("constant", "cosine")
SEGMENT_SCORES = ("grid", "windows")


def _deep_merge(base: dict[str, Any], update: dict[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if key not in out:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {sorted(out)}")
        if isinstance(out[key], dict) and isinstance(value, dict) and key != "classes":
            out[key] = _deep_merge(out[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"train.epochs=2"`` into ``{"train": {"epochs": 2}}`` (value parsed as YAML;
    every notebook, through load_config)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form dotted.key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _coerce(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build a section dataclass, converting lists to tuples and checking types loosely."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        v = values[f.name]
        default = getattr(cls(), f.name)
        if isinstance(default, tuple):  # a list of integers (or numbers); one alone stands for [it]
            items = v if isinstance(v, (list, tuple)) else [v]
            numbers = any(isinstance(x, float) for x in default)
            kinds, what = (((int, float), "numbers like [0.0, 0.5]") if numbers
                           else (int, "integers like [1, 2]"))
            if any(isinstance(x, bool) or not isinstance(x, kinds) for x in items):
                raise ConfigError(f"{where}.{f.name}: expected a list of {what}, got {v!r}")
            v = tuple(float(x) for x in items) if numbers else tuple(items)
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{where}.{f.name}: expected true/false, got {v!r}")
        elif isinstance(default, int):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{where}.{f.name}: expected an integer, got {v!r}")
        elif isinstance(default, float):
            if isinstance(v, str):  # YAML 1.1 reads "1e-4" as a string
                try:
                    v = float(v)
                except ValueError:
                    pass
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{where}.{f.name}: expected a number, got {v!r}")
            v = float(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def _override_list(overrides: Iterable[str] | str | None) -> list[str]:
    """Accept a list of overrides, or one string as papermill's ``-p overrides ...`` passes it.

    ``papermill -p overrides '["train.epochs=2"]'`` hands the notebook a *string*; reading it
    character by character would fail with a baffling message, so a string is read as a YAML list
    (``'["a=1", "b=2"]'``) or as a single ``key=value``.
    """
    if overrides is None:
        return []
    if isinstance(overrides, str):
        text = overrides.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ConfigError(f"overrides {overrides!r}: not a valid YAML list: {e}") from e
            return [str(x) for x in parsed or []]
        return [text]
    return [str(x) for x in overrides]


def _check_choices(cfg_path: Path, sections: dict[str, Any]) -> None:
    """Refuse values outside their allowed choices, and fold layouts that would leak test data."""
    select_on = sections["train"].select_on
    if select_on not in SELECT_ON:
        raise ConfigError(f"{cfg_path}: train.select_on must be one of {SELECT_ON}, got {select_on!r}")
    if sections["train"].lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"{cfg_path}: train.lr_schedule must be one of {LR_SCHEDULES}, "
                          f"got {sections['train'].lr_schedule!r}")
    if sections["eval"].segment_scores not in SEGMENT_SCORES:
        raise ConfigError(f"{cfg_path}: eval.segment_scores must be one of {SEGMENT_SCORES}, "
                          f"got {sections['eval'].segment_scores!r}")
    if select_on == "scenes" and sections["eval"].valid_scenes < 1:
        raise ConfigError(
            f"{cfg_path}: train.select_on is 'scenes' but eval.valid_scenes is "
            f"{sections['eval'].valid_scenes}: set eval.valid_scenes > 0 or train.select_on=chunks"
        )


def _check_top_level(cfg_path: Path, merged: dict[str, Any], data_root: Any) -> None:
    """The values outside the sections: seed, synthetic, the two roots, the class map."""
    seed = merged.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{cfg_path}: seed = {seed!r} is not allowed: expected an integer >= 0")
    if not isinstance(merged.get("synthetic", False), bool):
        raise ConfigError(f"{cfg_path}: synthetic = {merged.get('synthetic')!r} is not allowed: "
                          "expected true or false")
    for key, value in (("data_root", data_root), ("runs_root", merged.get("runs_root", "runs"))):
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise ConfigError(f"{cfg_path}: {key} = {value!r} is not allowed: expected a folder path")
    bad = {k: v for k, v in merged["classes"].items() if not isinstance(v, str) or not str(k).strip()}
    if bad:
        raise ConfigError(f"{cfg_path}: classes {bad} are not allowed: expected DESED label: ESC-50 category")


def load_config(
    profile: str = "demo",
    overrides: Iterable[str] | str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Config:
    """Load ``config.yml``, apply a profile and overrides, and return a typed :class:`Config`
    (every notebook, the runner).

    Args:
        profile: a key of ``profiles`` in the file (``demo`` or ``full`` as shipped).
        overrides: ``"dotted.key=value"`` strings, e.g. ``["train.epochs=2"]`` (a string holding a
            YAML list, as ``papermill -p`` passes it, works too).
        path: the yaml file; default ``$SED_CONFIG`` or the repository's ``config.yml``.
    """
    cfg_path = Path(path or os.environ.get("SED_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        raw = yaml.safe_load(cfg_path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{cfg_path}: config file not found") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{cfg_path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict) or "defaults" not in raw:
        raise ConfigError(f"{cfg_path}: expected a mapping with a 'defaults' section")
    defaults = raw["defaults"]
    unknown = set(defaults) - _TOP_LEVEL
    if unknown:
        raise ConfigError(f"{cfg_path}: unknown keys in defaults: {sorted(unknown)}")
    profiles = raw.get("profiles") or {}
    if profile not in profiles:
        raise ConfigError(f"{cfg_path}: unknown profile {profile!r}; available: {sorted(profiles)}")
    merged = _deep_merge(defaults, profiles[profile] or {}, f"profiles.{profile}")
    for text in _override_list(overrides):
        merged = _deep_merge(merged, parse_override(text), f"override {text!r}")

    base = cfg_path.resolve().parent

    def _path(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    data_root = os.environ.get("SED_DATA_ROOT") or merged["data_root"]
    download = merged.get("download") or {}
    merged["download"] = {**download, "mirror": os.environ.get("SED_MIRROR") or download.get("mirror")}
    classes = merged["classes"]
    if not isinstance(classes, dict) or not classes:
        raise ConfigError(f"{cfg_path}: 'classes' must map DESED labels to ESC-50 categories")
    sections = {name: _coerce(cls, merged.get(name) or {}, name) for name, cls in _SECTIONS.items()}
    test_set = str(merged.get("test_set", "desed"))
    if test_set not in TEST_SETS:
        raise ConfigError(f"{cfg_path}: test_set must be one of {TEST_SETS}, got {test_set!r}")
    _check_choices(cfg_path, sections)
    check_sections(cfg_path, sections, test_set)
    _check_top_level(cfg_path, merged, data_root)
    scene_recipe = str(merged.get("scene_recipe", "uniform"))
    if scene_recipe not in SCENE_RECIPES:
        raise ConfigError(f"{cfg_path}: scene_recipe must be one of {SCENE_RECIPES}, got {scene_recipe!r}")
    return Config(
        profile=profile,
        data_root=_path(str(data_root)),
        runs_root=_path(str(merged.get("runs_root", "runs"))),
        seed=int(merged.get("seed", 0)),
        synthetic=bool(merged.get("synthetic", False)),
        classes={str(k): str(v) for k, v in classes.items()},
        test_set=test_set,
        scene_recipe=scene_recipe,
        **sections,
    )
