"""Loading ``config.yml`` into a :class:`~sed_utils.config.settings.Config`: merge, coerce, check.

Merge order: ``defaults`` <- ``profiles[<profile>]`` <- ``overrides`` (``"models.chunk.epochs=2"``
strings, as the runner and papermill pass them) <- environment (``SED_DATA_ROOT``, ``SED_MIRROR``).
Unknown keys are errors, not silently ignored: a typo in an override would otherwise run the wrong
experiment without a word. A key of the earlier layout (``mel.n_mels``, ``eval.n_scenes``,
``frame.epochs``, ``train.epochs``, ...) is refused with a message naming where it went
(:data:`MOVED`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from sed_utils.config.rules import check_sections
from sed_utils.config.settings import (
    CLIP_POOLS,
    LR_SCHEDULES,
    PRECISIONS,
    REFERENCES,
    REPO_ROOT,
    SCENE_RECIPES,
    SCORING_PRECISIONS,
    SECTIONS,
    SELECT_ON,
    TARGETS,
    TEST_SETS,
    Config,
    ModelConfig,
)
from sed_utils.core.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_PATH", "MOVED", "RENAMED_SECTIONS", "load_config", "parse_override"]

DEFAULT_CONFIG_PATH = REPO_ROOT / "config.yml"
_TOP_LEVEL = {"data_root", "runs_root", "seed", "synthetic", "classes", "test_set", "scene_recipe", "models",
              *SECTIONS}

#: Sections of the earlier layout that were renamed as a whole (``mel.n_mels`` -> ``features.n_mels``).
RENAMED_SECTIONS = {"mel": "features"}
#: Keys of the earlier layout (by notebook) -> what became of them (by concept).
MOVED: dict[str, str] = {
    "eval.n_scenes": "is now scenes.test",
    "eval.valid_scenes": "is now scenes.valid",
    "eval.scenes_seed": "is now scenes.seed",
    "eval.event_hop_seconds": "is now postprocess.window_hop_seconds",
    "eval.median_filter_frames": "is now postprocess.median_filters (candidates chosen per class on "
                                 "validation)",
    "eval.threshold": "is now postprocess.thresholds and postprocess.segment_thresholds (one value: a fixed "
                      "threshold)",
    "eval.per_class_thresholds": "is now postprocess.thresholds and postprocess.segment_thresholds (one "
                                 "value gives every class that fixed threshold)",
    "eval.segment_scores": "was removed: a segment's score is always the highest score of the model's curve "
                           "inside the segment (README, 'Evaluation')",
    "eval.tune_with_negatives": "is now postprocess.tune_with_negatives",
    "train.epochs": "is now per model: models.chunk.epochs for notebook 05's model, models.frame.epochs "
                    "for notebook 08's",
    "train.batch_size": "is now per model: models.chunk.batch_size for notebook 05's model, "
                        "models.frame.batch_size for notebook 08's",
    "train.train_scenes": "is now models.chunk.train_scenes",
    "train.precision": "is now per model: models.chunk.precision for notebook 05's model, "
                       "models.frame.precision for notebook 08's (each kind measured on its own)",
    "train.max_train_chunks": "is now models.chunk.max_train_chunks",
    "train.select_on": "is now models.chunk.select_on",
    "frame": "is now models.frame (training) and postprocess (median_filters, min_durations)",
    "frame.train_scenes": "is now models.frame.train_scenes",
    "frame.epochs": "is now models.frame.epochs",
    "frame.batch_size": "is now models.frame.batch_size",
    "frame.weak_weight": "is now models.frame.weak_weight",
    "frame.negative_clips": "is now models.frame.negative_clips",
    "frame.lr": "is now train.lr (shared by every model)",
    "frame.weight_decay": "is now train.weight_decay (shared by every model)",
    "frame.median_filters": "is now postprocess.median_filters",
    "frame.min_durations": "is now postprocess.min_durations",
}


def _leaf(path: list[str], value: Any) -> list[str]:
    """The dotted path down to the first leaf of ``value`` (``mel: {n_mels: 3}`` -> mel.n_mels)."""
    while isinstance(value, dict) and len(value) == 1:
        key, value = next(iter(value.items()))
        path = [*path, str(key)]
    return path


def _moved_message(path: list[str]) -> str | None:
    """What became of the key at ``path`` of the earlier layout, or None for a key that never existed."""
    for depth in range(len(path), 0, -1):
        dotted = ".".join(path[:depth])
        if dotted in MOVED:
            return f"{dotted} {MOVED[dotted]}"
    if path[0] in RENAMED_SECTIONS:
        return f"{'.'.join(path)} is now {'.'.join([RENAMED_SECTIONS[path[0]], *path[1:]])}"
    return None


def _deep_merge(base: dict[str, Any], update: Any, where: str, path: list[str]) -> dict[str, Any]:
    if not isinstance(update, dict):
        name = ".".join(path) or "the file"
        raise ConfigError(f"{where}: {name} must be a mapping of keys to values, got {update!r}")
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in out:
            moved = _moved_message(_leaf([*path, str(key)], value))
            if moved:
                raise ConfigError(f"{where}: {moved} (config.yml groups its keys by concept)")
            raise ConfigError(f"{where}: unknown key {'.'.join([*path, str(key)])!r}; known keys here: "
                              f"{sorted(out)}")
        if isinstance(out[key], dict) and key != "classes":
            out[key] = _deep_merge(out[key], value, where, [*path, str(key)])
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"models.chunk.epochs=2"`` as ``{"models": {"chunk": {"epochs": 2}}}`` (the value is read as YAML).

    Used by :func:`load_config` for every notebook's ``overrides`` and the command line's ``-p``.

    Raises:
        ConfigError: the text is not of the form ``dotted.key=value``.
    """
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


def _coerce_value(default: Any, v: Any, where: str) -> Any:
    """``v`` as the type of ``default`` (lists become tuples, "1e-4" a float), or a ConfigError."""
    if isinstance(default, tuple):  # a list of integers (or numbers); one alone stands for [it]
        items = v if isinstance(v, (list, tuple)) else [v]
        numbers = any(isinstance(x, float) for x in default)
        kinds, what = ((int, float), "numbers like [0.0, 0.5]") if numbers else (int, "integers like [1, 2]")
        if any(isinstance(x, bool) or not isinstance(x, kinds) for x in items):
            raise ConfigError(f"{where}: expected a list of {what}, got {v!r}")
        return tuple(float(x) for x in items) if numbers else tuple(items)
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise ConfigError(f"{where}: expected true/false, got {v!r}")
    elif isinstance(default, int):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}: expected an integer, got {v!r}")
    elif isinstance(default, float):
        if isinstance(v, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                v = float(v)
            except ValueError:
                pass
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {v!r}")
        return float(v)
    return v


def _coerce(cls: type, values: Any, where: str, cfg_path: Path) -> Any:
    """Build a section dataclass from ``values``, each value coerced to its field's type; a section that
    is not a mapping, or a key the section does not have, is a ConfigError (a moved key says where to)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{cfg_path}: {where} must be a mapping of keys to values, got {values!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            moved = _moved_message([*where.split("."), str(key)])
            raise ConfigError(f"{cfg_path}: {moved} (config.yml groups its keys by concept)" if moved else
                              f"{cfg_path}: unknown key {where}.{key}; known keys here: {sorted(names)}")
    defaults = cls()
    return cls(**{f.name: _coerce_value(getattr(defaults, f.name), values[f.name], f"{where}.{f.name}")
                  for f in dataclasses.fields(cls) if f.name in values})


def _override_list(overrides: Iterable[str] | str | None) -> list[str]:
    """Accept a list of overrides, or one string as papermill's ``-p overrides ...`` passes it.

    ``papermill -p overrides '["models.chunk.epochs=2"]'`` hands the notebook a *string*; reading it
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


def _check_choices(cfg_path: Path, merged: dict[str, Any], sections: dict[str, Any],
                   models: dict[str, ModelConfig]) -> None:
    """Values that must be one of a few names."""
    choices = [("test_set", merged.get("test_set", "desed"), TEST_SETS),
               ("scene_recipe", merged.get("scene_recipe", "uniform"), SCENE_RECIPES),
               ("train.lr_schedule", sections["train"].lr_schedule, LR_SCHEDULES),
               ("features.reference", sections["features"].reference, REFERENCES),
               ("eval.precision", sections["eval"].precision, SCORING_PRECISIONS)]
    choices += [(f"models.{kind}.select_on", m.select_on, SELECT_ON) for kind, m in models.items()]
    choices += [(f"models.{kind}.targets", m.targets, TARGETS) for kind, m in models.items()]
    choices += [(f"models.{kind}.clip_pool", m.clip_pool, CLIP_POOLS) for kind, m in models.items()]
    choices += [(f"models.{kind}.precision", m.precision, PRECISIONS) for kind, m in models.items()]
    for key, value, allowed in choices:
        if value not in allowed:
            raise ConfigError(f"{cfg_path}: {key} must be one of {allowed}, got {value!r}")


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
    classes = merged.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise ConfigError(f"{cfg_path}: 'classes' must map DESED labels to ESC-50 categories")
    bad = {k: v for k, v in classes.items() if not isinstance(v, str) or not str(k).strip()}
    if bad:
        raise ConfigError(f"{cfg_path}: classes {bad} are not allowed: expected DESED label: ESC-50 category")


def _read(cfg_path: Path) -> dict[str, Any]:
    if cfg_path.is_dir():
        raise ConfigError(f"{cfg_path}: is a folder; SED_CONFIG (or the path given) names a config file")
    try:
        raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        hint = ("; the tutorial's config.yml is in a clone of sed-tutorial: work inside one, or set "
                "SED_CONFIG (or SED_PROJECT, the clone's folder)") if cfg_path == DEFAULT_CONFIG_PATH else ""
        raise ConfigError(f"{cfg_path}: config file not found{hint}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{cfg_path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                          "save it as UTF-8") from e
    except OSError as e:
        raise ConfigError(f"{cfg_path}: cannot read the config file ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{cfg_path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict) or not isinstance(raw.get("defaults"), dict):
        raise ConfigError(f"{cfg_path}: expected a mapping with a 'defaults' section")
    unknown = sorted(set(raw["defaults"]) - _TOP_LEVEL)
    if unknown:
        moved = [m for m in (_moved_message([k]) for k in unknown) if m]
        raise ConfigError(f"{cfg_path}: unknown keys in defaults: {unknown}" + (f" ({'; '.join(moved)})"
                                                                               if moved else ""))
    return raw


def load_config(
    profile: str = "demo",
    overrides: Iterable[str] | str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Config:
    """Load ``config.yml``, apply a profile and overrides, and return a checked :class:`Config`
    (every notebook, the runner, the benchmarks).

    Args:
        profile: a key of ``profiles`` in the file (``demo``, ``full`` or ``scenes`` as shipped).
        overrides: ``"dotted.key=value"`` strings, e.g. ``["models.chunk.epochs=2"]`` (a string holding
            a YAML list, as ``papermill -p`` passes it, works too).
        path: the yaml file; default ``$SED_CONFIG`` or the repository's ``config.yml``.

    Returns:
        The typed config. Relative paths (``data_root``, ``runs_root``, a ``download.mirror`` that is a
        folder), wherever they were given (the file, ``-p``, ``SED_DATA_ROOT``, ``SED_MIRROR``), are
        resolved against the config file's folder (the repository, for the shipped ``config.yml``), never
        against the working directory: a notebook (run from ``notebooks/``) and the command line (run
        from anywhere) read the same folders.

    Raises:
        ConfigError: the file is missing or not YAML, a key is unknown or moved (the message says
            where), or a value breaks its rule (the message names key, value and what is allowed).
    """
    cfg_path = Path(path or os.environ.get("SED_CONFIG") or DEFAULT_CONFIG_PATH)
    raw = _read(cfg_path)
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict) or profile not in profiles:
        raise ConfigError(f"{cfg_path}: unknown profile {profile!r}; available: "
                          f"{sorted(profiles) if isinstance(profiles, dict) else []}")
    merged = _deep_merge(raw["defaults"], profiles[profile] or {}, f"profiles.{profile}", [])
    for text in _override_list(overrides):
        merged = _deep_merge(merged, parse_override(text), f"override {text!r}", [])
    data_root = os.environ.get("SED_DATA_ROOT") or merged["data_root"]
    download = merged.get("download") or {}
    merged["download"] = {**download, "mirror": os.environ.get("SED_MIRROR") or download.get("mirror")}
    _check_top_level(cfg_path, merged, data_root)
    sections = {name: _coerce(cls, merged.get(name, {}), name, cfg_path) for name, cls in SECTIONS.items()}
    models_section = merged.get("models", {})
    if not isinstance(models_section, dict):
        raise ConfigError(f"{cfg_path}: models must be a mapping of model kinds to settings, "
                          f"got {models_section!r}")
    models = {str(kind): _coerce(ModelConfig, values, f"models.{kind}", cfg_path)
              for kind, values in models_section.items()}
    _check_choices(cfg_path, merged, sections, models)
    check_sections(cfg_path, sections, models, str(merged.get("test_set", "desed")))
    base = cfg_path.resolve().parent

    def _path(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    mirror = sections["download"].mirror
    if mirror and "://" not in mirror:  # a folder: resolved like every other path of the config
        sections["download"] = dataclasses.replace(sections["download"], mirror=str(_path(mirror)))
    if init_from := sections["train"].init_from:  # a checkpoint file: resolved like the other paths
        sections["train"] = dataclasses.replace(sections["train"], init_from=str(_path(init_from)))

    return Config(
        profile=profile,
        data_root=_path(str(data_root)),
        runs_root=_path(str(merged.get("runs_root", "runs"))),
        seed=int(merged.get("seed", 0)),
        synthetic=bool(merged.get("synthetic", False)),
        classes={str(k): str(v) for k, v in merged["classes"].items()},
        test_set=str(merged.get("test_set", "desed")),
        scene_recipe=str(merged.get("scene_recipe", "uniform")),
        models=models,
        **sections,
    )
