"""What each config value may be: one rule per field, checked by :func:`sed_utils.config.load_config`.

Why a table of its own: a value out of range does not fail where it is read but much later, and
far from the cause (``features.n_mels=0`` as an empty spectrogram in notebook 04,
``models.chunk.epochs=0`` as a missing checkpoint in notebook 06, a threshold of 7 as "no event
anywhere", fold 9 as a split without clips, ``train.lr=.inf`` as a model of NaNs). Here every field
has one rule, the rule says in words what is allowed, and
a bad value stops :func:`~sed_utils.config.load_config` with a :class:`~sed_utils.core.errors.ConfigError`
naming the key, the value and that rule. A test walks every dataclass field and fails when one has
no rule, so a new knob cannot arrive unchecked.

Rules that tie fields together (folds that must not overlap, ``features.f_max`` under the Nyquist
frequency, ``features.win_length`` within ``features.n_fft``) follow the per-field table. No number
may be infinite or NaN.
"""

from __future__ import annotations

import dataclasses
import math
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sed_utils.core.errors import ConfigError

__all__ = ["RULES", "ESC50_FOLDS", "check_sections"]

#: ESC-50 is split into 5 folds (Piczak 2015): every fold list of the config, and the loader's
#: ``fold`` column, must stay within 1-5.
ESC50_FOLDS = 5
MIRROR_SCHEMES = ("http", "https", "file")

Rule = tuple[Callable[[Any], bool], str]


def _positive(v: Any) -> bool:
    return v > 0


def _at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: v >= low


def _between(low: float, high: float) -> Callable[[Any], bool]:
    return lambda v: low <= v <= high


def _odd_at_least_one(v: Any) -> bool:
    return v >= 1 and v % 2 == 1


def _folds(v: tuple[int, ...]) -> bool:
    return len(v) > 0 and len(set(v)) == len(v) and all(1 <= f <= ESC50_FOLDS for f in v)


def _mirror(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, str) or not v.strip():
        return False
    return "://" not in v or urllib.parse.urlparse(v).scheme.lower() in MIRROR_SCHEMES


_PROBABILITY: Rule = (_between(0.0, 1.0), "a probability from 0 to 1")
_FOLD_LIST: Rule = (_folds, f"a non-empty list of distinct ESC-50 folds from 1 to {ESC50_FOLDS}")
_COUNT: Rule = (_at_least(0), "an integer >= 0")
_ONE_OR_MORE: Rule = (_at_least(1), "an integer >= 1")
_POSITIVE: Rule = (_positive, "a number > 0")
_NON_NEGATIVE: Rule = (_at_least(0.0), "a number >= 0")
_ANY_NUMBER: Rule = (lambda v: True, "any number")

_THRESHOLDS: Rule = (lambda v: len(v) > 0 and all(0.0 <= t <= 1.0 for t in v),
                     "a non-empty list of thresholds from 0 to 1")

#: ``section.field`` -> (test, what is allowed); ``models.field`` applies to every ``models.<kind>``.
#: Types are checked before (``_coerce`` in loader.py); the choices (``models.chunk.select_on`` ...)
#: are checked there too, against their tuples.
RULES: dict[str, Rule] = {
    "audio.sample_rate": (_between(1000, 192000), "an integer from 1000 to 192000 (Hz)"),
    "download.mirror": (_mirror, "null, a folder path, or an http://, https:// or file:// URL"),
    "download.timeout_seconds": (_between(0.001, 86400.0), "a number of seconds > 0 and at most 86400"),
    "download.retries": (_between(0, 100), "an integer from 0 to 100"),
    "download.stall_seconds": (_between(0.001, 86400.0), "a number of seconds > 0 and at most 86400"),
    "chunking.chunk_seconds": (lambda v: 0 < v <= 5.0, "a length in seconds > 0 and <= 5 (an ESC-50 clip)"),
    "chunking.hop_seconds": _POSITIVE,
    "chunking.silence_db": (lambda v: v < 0, "a level in dB < 0 (below the loudest frame)"),
    "chunking.negative_ratio": _NON_NEGATIVE,
    "chunking.segment_seconds": (lambda v: 0 < v <= 10.0, "a length in seconds > 0 and <= 10 (a DESED clip)"),
    "features.n_mels": (_between(1, 512), "an integer from 1 to 512"),
    "features.n_fft": (_between(16, 65536), "an integer from 16 to 65536"),
    "features.win_length": _ONE_OR_MORE,
    "features.hop_length": _ONE_OR_MORE,
    "features.f_min": _NON_NEGATIVE,
    "features.f_max": _POSITIVE,
    "features.top_db": _POSITIVE,
    "features.reference": (lambda v: True, "see REFERENCES"),
    "folds.train": _FOLD_LIST,
    "folds.valid": _FOLD_LIST,
    "folds.scenes_train": _FOLD_LIST,
    "folds.scenes_valid": _FOLD_LIST,
    "folds.scenes_test": _FOLD_LIST,
    "scenes.test": _ONE_OR_MORE,
    "scenes.valid": (_at_least(1), "an integer >= 1 (the validation scenes choose every model's epoch and "
                                   "post-processing)"),
    "scenes.seed": _COUNT,
    "scenes.train_distractors": (lambda v: len(v) == 2 and 0 <= v[0] <= v[1],
                                 "[low, high]: two integers, 0 <= low <= high (distractors per scene)"),
    "scenes.train_quiet_share": _PROBABILITY,
    "augment.specaugment": (lambda v: True, "true or false"),
    "augment.freq_mask": _COUNT,
    "augment.time_mask": _COUNT,
    "augment.gain_db": _NON_NEGATIVE,
    "augment.gain_min_db": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    and v <= 0), "null or a gain in dB <= 0"),
    "augment.noise_snr_db": _ANY_NUMBER,
    "augment.noise_prob": _PROBABILITY,
    "augment.time_shift": (_between(0.0, 1.0), "a share of the chunk from 0 to 1"),
    "augment.mix_prob": _PROBABILITY,
    "augment.background_prob": _PROBABILITY,
    "augment.background_snr_db": _ANY_NUMBER,
    "augment.band_limit_prob": _PROBABILITY,
    "augment.band_limit_min_hz": (_between(100.0, 96000.0), "a cutoff in Hz from 100 up"),
    "train.lr": (_between(1e-12, 10.0), "a learning rate > 0 and at most 10"),
    "train.weight_decay": _NON_NEGATIVE,
    "train.lr_schedule": (lambda v: True, "see LR_SCHEDULES"),
    "train.patience": (_at_least(0), "an integer >= 0 (0: no early stopping)"),
    "train.pretrained": (lambda v: True, "true or false"),
    "train.num_threads": (_at_least(0), "an integer >= 0 (0: torch's default)"),
    "train.num_workers": _COUNT,
    "train.channels_last": (lambda v: True, "true or false"),
    "train.init_from": (lambda v: isinstance(v, str), "a checkpoint file, or empty"),
    "models.epochs": _ONE_OR_MORE,
    "models.batch_size": _ONE_OR_MORE,
    "models.train_scenes": (_at_least(0), "an integer >= 0 (0: none)"),
    "models.max_train_chunks": (_at_least(0), "an integer >= 0 (0: all)"),
    "models.select_on": (lambda v: True, "see SELECT_ON"),
    "models.targets": (lambda v: True, "see TARGETS"),
    "models.clip_pool": (lambda v: True, "see CLIP_POOLS"),
    "models.precision": (lambda v: True, "see PRECISIONS"),
    "models.weak_weight": _NON_NEGATIVE,
    "models.negative_clips": (_at_least(0), "an integer >= 0 (0: none)"),
    "postprocess.thresholds": _THRESHOLDS,
    "postprocess.segment_thresholds": _THRESHOLDS,
    "postprocess.median_filters": (lambda v: len(v) > 0 and all(_odd_at_least_one(m) for m in v),
                                   "a non-empty list of odd lengths >= 1"),
    "postprocess.min_durations": (lambda v: len(v) > 0 and all(float(d) >= 0 and math.isfinite(d) for d in v),
                                  "a non-empty list of durations >= 0 s (0: keep every event)"),
    "postprocess.window_hop_seconds": (_between(0.001, 10.0), "a hop in seconds > 0 and at most 10"),
    "postprocess.tune_with_negatives": (lambda v: True, "true or false"),
    "eval.onset_collar": _NON_NEGATIVE,
    "eval.offset_collar_ratio": _NON_NEGATIVE,
    "eval.reference_threshold": _PROBABILITY,
    "eval.precision": (lambda v: True, "see SCORING_PRECISIONS"),
}


def _fail(cfg_path: Path, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{cfg_path}: {key} = {value!r} is not allowed: expected {allowed}")


def _check_folds(cfg_path: Path, folds: Any, test_set: str) -> None:
    """No fold may serve two roles of the same test set (a leak or an empty split otherwise)."""
    layouts = {
        "desed": (("folds.train", folds.train), ("folds.valid", folds.valid)),
        "scenes": (("folds.scenes_train", folds.scenes_train), ("folds.scenes_valid", folds.scenes_valid),
                   ("folds.scenes_test", folds.scenes_test)),
    }
    for layout, roles in layouts.items():
        for i, (name_a, a) in enumerate(roles):
            for name_b, b in roles[i + 1:]:
                if set(a) & set(b):
                    used = " (the test set in use)" if layout == test_set else ""
                    raise ConfigError(
                        f"{cfg_path}: {name_a} {list(a)} and {name_b} {list(b)} overlap in fold(s) "
                        f"{sorted(set(a) & set(b))}{used}: a fold serves one role only (training, validation "
                        f"or test), or the data it should judge would also train or select the model")


def _non_finite(value: Any) -> bool:
    """True for an infinite or NaN number, or a list holding one."""
    items = value if isinstance(value, tuple) else (value,)
    return any(isinstance(v, float) and not math.isfinite(v) for v in items)


def _check_fields(cfg_path: Path, name: str, section: Any, rule_prefix: str) -> None:
    for f in dataclasses.fields(section):
        test, allowed = RULES[f"{rule_prefix}.{f.name}"]
        value = getattr(section, f.name)
        if _non_finite(value):
            raise _fail(cfg_path, f"{name}.{f.name}", value, f"finite numbers only ({allowed})")
        if not test(value):
            raise _fail(cfg_path, f"{name}.{f.name}", value, allowed)


def check_sections(cfg_path: Path, sections: dict[str, Any], models: dict[str, Any], test_set: str) -> None:
    """Apply :data:`RULES` to every field of the section dataclasses and of each ``models.<kind>``,
    then the rules that tie fields together (every notebook, through load_config).

    Args:
        cfg_path: the config file, named in the error messages.
        sections: ``{section name: dataclass}``; it must hold ``features``, ``audio`` and ``folds``.
        models: ``{kind: settings dataclass}``, each checked against the ``models.*`` rules.
        test_set: the test set in use (``"desed"`` or ``"scenes"``); an error about overlapping folds
            says when they are this set's.

    Raises:
        ConfigError: at the first value that breaks a rule, naming key, value and what is allowed.
    """
    for name, section in sections.items():
        _check_fields(cfg_path, name, section, name)
    for kind, section in models.items():
        _check_fields(cfg_path, f"models.{kind}", section, "models")
    mel, sr = sections["features"], sections["audio"].sample_rate
    if mel.win_length > mel.n_fft:
        raise _fail(cfg_path, "features.win_length", mel.win_length, f"at most features.n_fft ({mel.n_fft})")
    if not mel.f_min < mel.f_max <= sr / 2:
        raise _fail(cfg_path, "features.f_max", mel.f_max,
                    f"above features.f_min ({mel.f_min:g}) and at most half the sample rate ({sr / 2:g} Hz)")
    _check_folds(cfg_path, sections["folds"], test_set)
