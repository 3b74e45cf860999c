"""The typed sections of ``config.yml``, one dataclass per concept, and :class:`Config` holding them.

Why one typed config: every notebook and every ``sed_utils`` function reads its knobs from the same
:class:`Config`, so a value changed once (a fold, the mel size, a threshold) changes everywhere, and
the config that produced a result is saved next to it. The sections follow the concepts a reader
meets in the series, not the notebooks: the data (``audio``, ``chunking``, ``folds``, ``scenes``),
the model input (``features``, ``augment``), the training shared by every model (``train``) and
what each model trains on (``models.<kind>``), the post-processing chosen on validation
(``postprocess``) and the metrics (``eval``). :func:`sed_utils.config.load_config` builds it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sed_utils.config.runs import RunPaths

__all__ = ["REPO_ROOT", "PROJECT_ENV", "find_project_root",
           "AudioConfig", "DownloadConfig", "ChunkingConfig", "MelConfig", "FoldConfig",
           "ScenesConfig", "AugmentConfig", "TrainConfig", "ModelConfig", "PostprocessConfig", "EvalConfig",
           "Config", "SECTIONS", "SELECT_ON", "LR_SCHEDULES", "SCENE_RECIPES", "TEST_SETS", "REFERENCES",
           "PRECISIONS", "SCORING_PRECISIONS", "TARGETS", "CLIP_POOLS", "KEY_NEUTRAL", "key_view"]

#: Names the tutorial's folder explicitly (see :func:`find_project_root`).
PROJECT_ENV = "SED_PROJECT"


def _is_project(folder: Path) -> bool:
    return (folder / "config.yml").is_file() and (folder / "notebooks").is_dir()


def find_project_root() -> Path:
    """The tutorial's folder, holding ``config.yml``, ``notebooks/`` and (by default) ``runs/``
    (every notebook, the command line).

    In order: ``$SED_PROJECT``; the working directory or its nearest parent that holds ``config.yml`` and
    ``notebooks/`` (a clone of sed-tutorial: a notebook runs from ``notebooks/``, the command line from
    anywhere inside); the clone an editable install points into; else the working directory. A
    non-editable install (``pip install .``, the ``sed-utils`` command) used outside a clone thus reads
    ``runs/`` under the working directory, and ``run`` / ``download`` say that they need a clone.
    """
    if os.environ.get(PROJECT_ENV):
        return Path(os.environ[PROJECT_ENV]).resolve()
    package_parent = Path(__file__).resolve().parents[2]
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the working directory was deleted
        return package_parent
    for folder in [cwd, *cwd.parents]:
        if _is_project(folder):
            return folder
    return package_parent if _is_project(package_parent) else cwd


#: The tutorial's folder, found once at import (:func:`find_project_root`).
REPO_ROOT = find_project_root()

#: How the scenes' target events are laid out: see ``scene_recipe`` in config.yml.
SCENE_RECIPES = ("uniform", "desed_like")
TEST_SETS = ("desed", "scenes")
#: What picks the chunk model's epoch: see ``models.chunk.select_on`` in config.yml.
SELECT_ON = ("chunks", "scenes")
LR_SCHEDULES = ("constant", "cosine")
#: What a log-mel's dB are relative to: see ``features.reference`` in config.yml.
REFERENCES = ("absolute", "max")
#: The training arithmetic: see ``models.frame.precision`` in config.yml (sed_utils/models/precision.py).
PRECISIONS = ("float32", "bfloat16", "auto")
#: The arithmetic a trained model is scored in: see ``eval.precision`` in config.yml.
SCORING_PRECISIONS = ("auto", "float32")
#: What a model trains outputs for: see ``models.frame.targets`` in config.yml.
TARGETS = ("classes", "all")
#: Which clips ``models.<kind>.negative_clips`` draws: see ``models.frame.clip_pool`` in config.yml.
CLIP_POOLS = ("others", "all", "balanced")


@dataclass(frozen=True)
class AudioConfig:
    """``audio``: the one sample rate every clip is read at (notebooks 02-09)."""

    sample_rate: int = 16000


@dataclass(frozen=True)
class DownloadConfig:
    """``download``: mirror, timeout, retries and stall limit of the dataset downloads (notebook 01)."""

    mirror: str | None = None
    timeout_seconds: float = 60.0
    retries: int = 3
    stall_seconds: float = 120.0


@dataclass(frozen=True)
class ChunkingConfig:
    """``chunking``: how ESC-50 clips become 1 s chunks (length, hop, silence, negatives) and the
    segment length of the segment-based metric (notebooks 03-06)."""

    chunk_seconds: float = 1.0
    hop_seconds: float = 0.25
    silence_db: float = -35.0
    negative_ratio: float = 0.5
    segment_seconds: float = 1.0


@dataclass(frozen=True)
class MelConfig:
    """``features``: the log-mel settings the front end of every model, the feature cache and the
    figures share (notebooks 02, 04-09).

    ``reference`` says what the dB are relative to: ``"absolute"`` (power re 1.0: a recording 30 dB
    quieter gives features 30 dB lower) or ``"max"`` (re each model input's loudest bin, librosa's
    ``ref=np.max``: the same features at any recording level). config.yml's default is ``"max"``; the
    field's default stays ``"absolute"``, what a checkpoint saved before the field existed computes.
    """

    n_mels: int = 64
    n_fft: int = 1024
    win_length: int = 400
    hop_length: int = 160
    f_min: float = 50.0
    f_max: float = 8000.0
    top_db: float = 80.0
    reference: str = "absolute"


@dataclass(frozen=True)
class FoldConfig:
    """``folds``: which ESC-50 folds train, validate and feed each scene set (notebooks 04-08)."""

    train: tuple[int, ...] = (1, 2, 3, 4)
    valid: tuple[int, ...] = (5,)
    scenes_train: tuple[int, ...] = (1, 2, 3)
    scenes_valid: tuple[int, ...] = (4,)
    scenes_test: tuple[int, ...] = (5,)


@dataclass(frozen=True)
class ScenesConfig:
    """``scenes``: how many held-out test scenes and validation scenes are mixed, and their seed
    (notebooks 05-08; training scenes are counted per model, :class:`ModelConfig`), and two
    settings of the training scenes only: how many distractors (``(low, high)``, inclusive) and the
    share with a quiet background (:func:`sed_utils.data.scene_mixing.make_scene`)."""

    test: int = 200
    valid: int = 200
    seed: int = 0
    train_distractors: tuple[int, ...] = (0, 2)
    train_quiet_share: float = 0.0


@dataclass(frozen=True)
class AugmentConfig:
    """``augment``: probabilities and strengths of the training augmentations of every model
    (notebooks 04, 05, 08)."""

    specaugment: bool = True
    freq_mask: int = 8
    time_mask: int = 20
    gain_db: float = 6.0
    gain_min_db: float | None = None
    noise_snr_db: float = 20.0
    noise_prob: float = 0.3
    time_shift: float = 0.2
    mix_prob: float = 0.3
    background_prob: float = 0.5
    background_snr_db: float = 0.0
    band_limit_prob: float = 0.0
    band_limit_min_hz: float = 3000.0


@dataclass(frozen=True)
class TrainConfig:
    """``train``: the optimiser, schedule and loop settings every model shares (notebooks 05, 08)."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    patience: int = 0
    pretrained: bool = False
    num_threads: int = 0
    num_workers: int = 0
    channels_last: bool = True
    init_from: str = ""  # a checkpoint whose network weights start the training ("": none)


@dataclass(frozen=True)
class ModelConfig:
    """``models.<kind>``: what one model kind trains on and for how long (notebooks 05, 08).

    ``epochs``, ``batch_size`` and ``train_scenes`` (10 s scenes mixed from the training folds)
    apply to every kind; ``max_train_chunks`` and ``select_on`` to models trained on 1 s chunks,
    ``weak_weight`` (the clip-level term of the loss), ``negative_clips`` (examples per epoch of two
    clean training-fold clips back to back), ``clip_pool`` (``"others"``: those clips come from the
    other 45 categories, all targets zero; ``"all"``: from all 50, the classes labelled where they
    sound; ``"balanced"``: as ``"all"``, each clip a target one with probability 1/2) and ``targets``
    (``"classes"``: outputs for the configured classes only;
    ``"all"``: also one trained output per other ESC-50 category, never reported) to models trained
    on whole scenes; ``precision`` (``"float32"``, ``"bfloat16"`` or ``"auto"``: bfloat16 where the
    hardware has it, :mod:`sed_utils.models.precision`) to every kind. ``config.yml`` lists for each kind the
    fields it reads; setting another is refused as an unknown key.
    """

    epochs: int = 8
    batch_size: int = 64
    train_scenes: int = 500
    max_train_chunks: int = 0
    select_on: str = "scenes"
    weak_weight: float = 0.5
    negative_clips: int = 0
    clip_pool: str = "others"
    targets: str = "classes"
    precision: str = "float32"


@dataclass(frozen=True)
class PostprocessConfig:
    """``postprocess``: the candidates the event and segment post-processing is chosen from on the
    validation scenes, per class and for every model (notebooks 06, 08), and how a model with one
    score per window is read as a score curve."""

    thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    segment_thresholds: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
    median_filters: tuple[int, ...] = (1, 3, 5, 7, 9, 13)
    min_durations: tuple[float, ...] = (0.0, 0.16, 0.32, 0.48, 0.64, 0.8, 0.96, 1.28)
    window_hop_seconds: float = 0.25
    tune_with_negatives: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """``eval``: the metrics' collars, the original project's threshold and the arithmetic models are
    scored in (``precision``: :data:`SCORING_PRECISIONS`,
    :func:`sed_utils.models.precision.scoring_precision`; notebooks 06-08)."""

    onset_collar: float = 0.2
    offset_collar_ratio: float = 0.2
    reference_threshold: float = 0.6
    precision: str = "auto"


#: Settings added after models and caches were made with the behaviour they now make optional:
#: section -> {field: the value that gives that earlier behaviour}. A cache or training key leaves
#: such a field out while it holds that value (:func:`key_view`), so what was trained and cached
#: before the field existed stays valid, and any other value gives new keys.
KEY_NEUTRAL: dict[str, dict[str, Any]] = {
    "features": {"reference": "absolute"},
    "augment": {"gain_min_db": None, "band_limit_prob": 0.0, "band_limit_min_hz": 3000.0},
    "train": {"init_from": ""},
    "scenes": {"train_distractors": ScenesConfig.train_distractors,
               "train_quiet_share": ScenesConfig.train_quiet_share},
    "models": {"targets": "classes", "clip_pool": "others", "precision": "float32"},
}


def key_view(section: str, values: Any) -> dict[str, Any]:
    """The fields of one config section as a cache or training key sees them: ``dataclasses.asdict``
    less the :data:`KEY_NEUTRAL` fields at their neutral value (notebooks 04-08, through the keys).

    Args:
        section: the section's name (``"features"``, ``"augment"``, ...).
        values: its dataclass.
    """
    out = dataclasses.asdict(values)
    for name, neutral in KEY_NEUTRAL.get(section, {}).items():
        if name in out and out[name] == neutral:
            del out[name]
    return out


#: Section name -> its dataclass (``models`` holds one :class:`ModelConfig` per kind).
SECTIONS: dict[str, type] = {
    "audio": AudioConfig,
    "download": DownloadConfig,
    "chunking": ChunkingConfig,
    "features": MelConfig,
    "folds": FoldConfig,
    "scenes": ScenesConfig,
    "augment": AugmentConfig,
    "train": TrainConfig,
    "postprocess": PostprocessConfig,
    "eval": EvalConfig,
}


@dataclass(frozen=True)
class Config:
    """Every knob of the series. Build it with :func:`sed_utils.config.load_config`, not by hand
    (every notebook)."""

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
    features: MelConfig = field(default_factory=MelConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

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
        """Where this profile's models, executed notebooks and results go (``runs_root/profile``)."""
        return self.runs_root / self.profile

    @property
    def paths(self) -> RunPaths:
        """The layout of :attr:`run_dir`: every file a run writes, named in one place."""
        return RunPaths(self.run_dir)

    @property
    def cache_dir(self) -> Path:
        """Derived data (resampled audio, chunk tables, features, scenes), safe to delete."""
        return self.data_root / "cache"

    @property
    def curve_cache(self) -> Path:
        """Score curves of every model on every file set it was scored on, named by the digest of the
        weights and the audio (:func:`sed_utils.evaluate.curves.model_curves`): derived data, safe to
        delete. Under :attr:`cache_dir`, not in a run folder, so that every run folder using this data
        shares it: notebook 07's held-out run reuses the validation curves 06 computed for the same
        model."""
        return self.cache_dir / "curves"

    def to_dict(self) -> dict[str, Any]:
        """Plain, yaml/json-serialisable view (saved next to checkpoints and results)."""
        d = dataclasses.asdict(self)
        d["data_root"] = str(self.data_root)
        d["runs_root"] = str(self.runs_root)
        return d
