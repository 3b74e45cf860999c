"""Scenes: folders of 10 s DESED-style soundscapes mixed from real ESC-50 clips, cached, in three roles.

Why: DESED public eval is the series' real test set, but it is a large download and its domain
(YouTube recordings) differs from ESC-50's. Scenes let a reader evaluate event detection on real
audio without DESED (the ``test`` role, notebook 07), and let the series make its choices on data
that looks like a recording without being the test: the ``valid`` role picks the epoch and the
thresholds, the ``train`` role adds training segments. :func:`scene_set` is the one way to get
any of them; the fold rules that keep them apart are in its docstring. How one scene is mixed,
and why its labels can be trusted, is :mod:`sed_utils.data.scene_mixing`.

Layout written (DESED's, so :func:`sed_utils.data.desed.load_desed` and everything downstream reads
the scenes unchanged)::

    out_dir/audio/scene_0000.wav ...   16-bit PCM, 10 s
    out_dir/public.tsv                 filename, onset, offset, event_label (3 decimals, tab separated;
                                       a scene without target events has one row with empty fields,
                                       as in DESED's validation.tsv)
    out_dir/sources.csv                provenance: every clip used, its role, fold, span and SNR
    out_dir/params.json                the parameters and the cache key
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sed_utils.core import atomic
from sed_utils.core.errors import DatasetError
from sed_utils.core.keys import file_identity, params_key
from sed_utils.core.locks import folder_lock
from sed_utils.core.progress import tqdm
from sed_utils.data.desed import StrongLabelSet, load_desed
from sed_utils.data.esc50 import AMBIENT_CATEGORIES, ambient_categories, esc50_root, load_esc50_meta
from sed_utils.data.scene_mixing import (
    BG_RMS,
    DEFAULT_DISTRACTORS,
    DESED_LIKE_VERSION,
    EMPTY_SCENE_PROB,
    MIN_EVENT_SECONDS,
    PEAK,
    QUIET_BACKGROUND_DB,
    RECIPE_VERSION,
    SCENE_SECONDS,
    SPLIT_GAP_SECONDS,
    Clip,
    active_mask,
    load_desed_stats,
    make_scene,
)
from sed_utils.io.audio import cached_resampled, write_wav

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "SCENE_ROLES",
    "SCENE_SECONDS",
    "build_scenes",
    "scene_set",
    "scene_folder",
    "scene_labels_path",
    "scene_sources_path",
    "load_scenes",
    "load_scene_sources",
    "scene_category_events",
    "label_statistics",
    "pick_example_scene",
    "select_pools",
]

#: The three kinds of scenes: ``test`` (the ``scenes`` test set), ``valid`` (choices), ``train`` (data).
SCENE_ROLES = ("test", "valid", "train")


def scene_labels_path(out_dir: Path) -> Path:
    """The strong-label table of a scene folder (DESED's ``public.tsv`` format; notebook 07)."""
    return Path(out_dir) / "public.tsv"


def scene_sources_path(out_dir: Path) -> Path:
    """The provenance table of a scene folder: one row per clip used (background, target, distractor).
    Read in notebook 07; written by build_scenes."""
    return Path(out_dir) / "sources.csv"


def load_scene_sources(out_dir: Path) -> pd.DataFrame:
    """Read ``sources.csv``: which clip went where, from which fold, at which SNR (notebook 07)."""
    path = scene_sources_path(out_dir)
    if not path.is_file():
        raise DatasetError(f"{path}: scene provenance not found (build the scenes with build_scenes)")
    return pd.read_csv(path, keep_default_na=False, na_values=[""],
                       dtype={"event_label": str, "category": str, "source": str})


def scene_category_events(ds: StrongLabelSet, categories: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Where each of ``categories`` sounds in a scene set, from its provenance (notebook 08; the frame
    model's ``targets: all``): a distractor over the span it was inserted at (its clip was trimmed
    to its sound first), an ambient background over the whole scene.

    Args:
        ds: scenes of :func:`scene_set` (their ``sources.csv`` lies beside the ``audio`` folder).
        categories: the ESC-50 categories wanted (the targets' categories are labelled in ``ds.events``
            with their DESED names already).

    Returns:
        ``filename, onset, offset, event_label`` rows, ``event_label`` the ESC-50 category.

    Raises:
        DatasetError: the set has no provenance (not a scene folder).
    """
    sources = load_scene_sources(Path(ds.audio_dir).parent)
    rows = sources[sources["role"].isin(["distractor", "background"])
                   & sources["category"].isin(list(categories)) & sources["scene"].isin(ds.files)]
    return pd.DataFrame({"filename": rows["scene"].astype(str).to_numpy(),
                         "onset": rows["onset"].astype(float).to_numpy(),
                         "offset": rows["offset"].astype(float).to_numpy(),
                         "event_label": rows["category"].astype(str).to_numpy()})


# --------------------------------------------------------------------------------------------
# Which clips a scene may draw from
# --------------------------------------------------------------------------------------------
def select_pools(
    meta: pd.DataFrame, folds: tuple[int, ...], targets: list[str], csv_name: str
) -> dict[str, pd.DataFrame]:
    """Split the requested folds' clips into target, ambient and distractor pools (notebook 07).

    Why here and checked twice: the scenes are a fair test only if no clip of another fold leaks in.

    Args:
        meta: the ESC-50 metadata (``fold`` and ``category`` columns).
        folds: the folds the scenes may draw from.
        targets: the ESC-50 categories of the target classes; the ambient pool is
            :func:`~sed_utils.data.esc50.ambient_categories` of them, the distractors all the others.
        csv_name: the metadata file, named in the error messages.

    Returns:
        ``{"target" | "ambient" | "distractor": rows of meta}``.

    Raises:
        DatasetError: ``folds`` hold no clip, or no clip of the targets, or a pool holds another fold.
    """
    rows = meta[meta["fold"].isin(folds)]
    if rows.empty:
        present = sorted(set(meta["fold"]))
        raise DatasetError(f"{csv_name}: no clips in fold(s) {list(folds)}; folds present: {present}")
    ambient = ambient_categories(targets)
    pools = {
        "target": rows[rows["category"].isin(targets)],
        "ambient": rows[rows["category"].isin(ambient)],
        "distractor": rows[~rows["category"].isin(targets) & ~rows["category"].isin(ambient)],
    }
    if pools["target"].empty:
        raise DatasetError(f"{csv_name}: fold(s) {list(folds)} hold no clip of the targets {targets}")
    for name, pool in pools.items():  # the guarantee the whole module rests on: nothing else leaks in
        leaked = sorted(set(pool["fold"]) - set(folds))
        if leaked:
            raise DatasetError(f"{csv_name}: {name} pool holds fold(s) {leaked}, asked for {list(folds)}")
    return pools


def _scene_params(cfg: Config, n_scenes: int, folds: tuple[int, ...], seed: int,
                  snr_db: tuple[float, float], pools_meta: dict[str, pd.DataFrame],
                  distractors: tuple[int, int], quiet_share: float) -> dict:
    """Everything that decides the scenes' bytes: the cache key is its hash. The ``desed_like``
    recipe adds the statistics it follows, and distractor counts or quiet backgrounds other than
    the defaults add themselves (scenes of the defaults keep the key they always had)."""
    extra = ({"desed_stats": load_desed_stats(), "desed_like_version": DESED_LIKE_VERSION}
             if cfg.scene_recipe == "desed_like" else {})
    if tuple(distractors) != DEFAULT_DISTRACTORS:
        extra["distractors"] = [int(distractors[0]), int(distractors[1])]
    if quiet_share > 0:
        extra.update(quiet_share=float(quiet_share), quiet_background_db=QUIET_BACKGROUND_DB)
    return {**extra,
        "recipe": RECIPE_VERSION,
        "n_scenes": int(n_scenes),
        "folds": list(folds),
        "seed": seed,
        "snr_db": [float(snr_db[0]), float(snr_db[1])],
        "sample_rate": int(cfg.audio.sample_rate),
        "classes": cfg.classes,
        "silence_db": float(cfg.chunking.silence_db),
        "ambient": list(AMBIENT_CATEGORIES),
        "recipe_constants": [SPLIT_GAP_SECONDS, MIN_EVENT_SECONDS, EMPTY_SCENE_PROB, PEAK, BG_RMS],
        "clips": sorted(
            f"{r.filename}|{r.fold}|{r.category}" for p in pools_meta.values() for r in p.itertuples()
        ),
        # each source clip's size and mtime: a replaced ESC-50 file gives new scenes
        "sources": file_identity(sorted(str(r.path) for p in pools_meta.values() for r in p.itertuples())),
    }


def _finished(out_dir: Path, key: str) -> bool:
    """True when ``out_dir`` holds scenes built with ``key``; refuses a foreign non-empty folder."""
    params_path = out_dir / "params.json"
    if not out_dir.exists():
        return False
    if params_path.is_file():
        try:
            return json.loads(params_path.read_text()).get("key") == key
        except json.JSONDecodeError:
            return False  # a damaged marker: rebuild
    if any(out_dir.iterdir()):
        raise DatasetError(
            f"{out_dir}: exists, is not empty and was not written by build_scenes (no params.json); "
            "choose another out_dir"
        )
    return False


def _load_pools(cfg: Config, pools_meta: dict[str, pd.DataFrame], folds: tuple[int, ...],
                csv_name: str) -> dict[str, list[Clip]]:
    """Read every clip of the pools once, with its active mask (trimming and SNRs need no second read)."""
    sr = int(cfg.audio.sample_rate)
    pools: dict[str, list[Clip]] = {}
    for role, frame in pools_meta.items():
        clips = []
        for r in frame.itertuples():
            audio = cached_resampled(Path(r.path), sr, cfg.cache_dir / "resampled")
            mask = active_mask(audio, sr, cfg.chunking.silence_db)
            if mask.any():  # an all-silent clip has nothing to insert
                clips.append(Clip(r.filename, int(r.fold), r.category, audio, mask))
        pools[role] = clips
    if not pools["target"]:
        raise DatasetError(f"{csv_name}: every target clip of fold(s) {list(folds)} is silent")
    if not pools["ambient"]:
        warnings.warn(
            f"{csv_name}: fold(s) {list(folds)} hold no ambient clip ({', '.join(AMBIENT_CATEGORIES)}); "
            "the scenes get a pink-noise background instead",
            stacklevel=3,
        )
    return pools


def _write_scenes(tmp: Path, pools: dict[str, list[Clip]], params: dict, desed_of: dict[str, str],
                  progress: bool) -> list[dict]:
    """Mix and write every scene, its labels and its provenance into the folder ``tmp``."""
    sr, seed, n_scenes = params["sample_rate"], params["seed"], params["n_scenes"]
    snr = (params["snr_db"][0], params["snr_db"][1])
    (tmp / "audio").mkdir()
    label_rows: list[tuple[str, str, str, str]] = []
    source_rows: list[dict] = []
    for i in tqdm(range(n_scenes), desc="mixing scenes", disable=not progress):
        audio, labels, sources = make_scene(i, pools, desed_of, seed, snr, sr, params.get("desed_stats"),
                                            distractors=tuple(params.get("distractors", DEFAULT_DISTRACTORS)),
                                            quiet_share=params.get("quiet_share", 0.0))
        name = f"scene_{i:04d}.wav"
        write_wav(tmp / "audio" / name, audio, sr)
        if labels:
            label_rows += [(name, f"{on:.3f}", f"{off:.3f}", lab) for on, off, lab in labels]
        else:
            label_rows.append((name, "", "", ""))
        source_rows += sources
    with open(scene_labels_path(tmp), "w", newline="") as fh:
        fh.write("filename\tonset\toffset\tevent_label\n")
        fh.writelines("\t".join(row) + "\n" for row in label_rows)
    pd.DataFrame(source_rows).to_csv(scene_sources_path(tmp), index=False, float_format="%.3f")
    return source_rows


def build_scenes(
    cfg: Config,
    *,
    n_scenes: int = 100,
    folds: tuple[int, ...] | None = None,
    out_dir: Path | None = None,
    seed: int | None = None,
    snr_db: tuple[float, float] = (0.0, 15.0),
    distractors: tuple[int, int] = DEFAULT_DISTRACTORS,
    quiet_share: float = 0.0,
    progress: bool = True,
) -> Path:
    """Mix ``n_scenes`` 10 s scenes from ESC-50 clips of ``folds`` (default ``cfg.folds.scenes_test``).

    Writes DESED's layout under ``out_dir`` (default ``cfg.cache_dir/scenes/fold<folds>-<key>``)
    and returns it (notebook 07; :func:`scene_set` calls it for the three roles). The key hashes
    every parameter and the list of source clips, so the same call returns the finished folder at
    once, and a changed parameter builds a new one. The folder is written under a temporary name
    and renamed when complete: it is either whole or absent. Deterministic: the same parameters
    give byte-identical files.

    An explicit ``out_dir`` built with other parameters is rebuilt; an ``out_dir`` that exists but
    was not written by this function is refused (nothing of the user's is deleted).

    Args:
        cfg: gives the data and cache folders, classes, sample rate, ``chunking.silence_db`` and the
            scene recipe.
        n_scenes: how many scenes, at least 1.
        seed: the seed of the scenes' draws (default ``cfg.seed``).
        snr_db: ``(low, high)``, low <= high: each event's SNR over the background is drawn from it, in dB.
        distractors: ``(low, high)``, 0 <= low <= high: distractor events per scene.
        quiet_share: share of scenes (probability, 0-1) whose background is 40 dB quieter
            (:func:`~sed_utils.data.scene_mixing.make_scene`).
        progress: show a progress bar while mixing.

    Returns:
        The scene folder.

    Raises:
        ValueError: ``n_scenes`` < 1, ``snr_db`` with low > high, ``distractors`` not 0 <= low <= high,
            or ``quiet_share`` outside 0-1.
        DatasetError: ``folds`` hold no clip, or no target clip that is not silent; ``out_dir`` exists,
            is not empty and was not written by this function; or the labels fail the loader's checks.
    """
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be at least 1, got {n_scenes}")
    if float(snr_db[0]) > float(snr_db[1]):
        raise ValueError(f"snr_db must be (low, high) with low <= high, got {snr_db}")
    if len(distractors) != 2 or not 0 <= distractors[0] <= distractors[1]:
        raise ValueError(f"distractors must be (low, high) with 0 <= low <= high, got {distractors}")
    if not 0.0 <= quiet_share <= 1.0:
        raise ValueError(f"quiet_share must be a probability from 0 to 1, got {quiet_share}")
    folds = tuple(sorted(int(f) for f in (folds if folds is not None else cfg.folds.scenes_test)))
    seed = int(cfg.seed if seed is None else seed)
    root = esc50_root(cfg)
    csv_name = str(root / "meta" / "esc50.csv")
    pools_meta = select_pools(load_esc50_meta(root), folds, cfg.esc50_categories, csv_name)
    params = _scene_params(cfg, n_scenes, folds, seed, snr_db, pools_meta, distractors, quiet_share)
    key = params_key(params)
    out_dir = Path(out_dir or cfg.cache_dir / "scenes" / f"fold{'-'.join(map(str, folds))}-{key}")
    if _finished(out_dir, key):
        return out_dir  # finished earlier with the same parameters
    with folder_lock(out_dir.parent, f"mixing {out_dir.name}"):
        if not _finished(out_dir, key):  # another run may have built it while this one waited
            _mix_scenes(cfg, out_dir, key, params, pools_meta, folds, csv_name, progress)
    return out_dir


def _mix_scenes(cfg: Config, out_dir: Path, key: str, params: dict, pools_meta: pd.DataFrame,
                folds: tuple[int, ...], csv_name: str, progress: bool) -> None:
    pools = _load_pools(cfg, pools_meta, folds, csv_name)
    desed_of = {cat: label for label, cat in cfg.classes.items()}
    # written under a temporary name and renamed when whole; an older folder of ours with other
    # parameters (an explicit out_dir) is replaced only then
    with atomic.atomic_dir(out_dir) as tmp:
        source_rows = _write_scenes(tmp, pools, params, desed_of, progress)
        used = {int(f) for f in pd.DataFrame(source_rows)["fold"] if int(f) >= 0}
        if not used <= set(folds):  # belt and braces: the pools were checked, so were the results
            raise DatasetError(f"{out_dir}: scenes used clips of fold(s) {sorted(used - set(folds))}")
        # the labels pass the loader's checks before the folder exists under its name: a folder
        # that is there is one that loads (it is never rebuilt, so a bad one would stay)
        load_desed(scene_labels_path(tmp), tmp / "audio", cfg.desed_labels, clip_seconds=SCENE_SECONDS)
        summary = {k: v for k, v in params.items() if k != "clips"}
        summary.update(key=key, n_clips=len(params["clips"]))
        (tmp / "params.json").write_text(json.dumps(summary, indent=2, sort_keys=True))


def load_scenes(cfg: Config, out_dir: Path) -> StrongLabelSet:
    """Load built scenes exactly like DESED public eval: same loader, same checks (notebook 07)."""
    out_dir = Path(out_dir)
    return load_desed(scene_labels_path(out_dir), out_dir / "audio", cfg.desed_labels,
                      clip_seconds=SCENE_SECONDS)


def _role_recipe(cfg: Config, role: str) -> tuple[int | None, tuple[int, ...], int, str]:
    """(how many scenes, from which folds, seed offset, the config key that sets the count) of a role;
    training scenes are counted per model (``models.<kind>.train_scenes``), so their count is None."""
    if role == "test":
        return cfg.scenes.test, tuple(cfg.folds.scenes_test), 0, "scenes.test"
    if role == "valid":
        return cfg.scenes.valid, tuple(cfg.valid_folds), 1, "scenes.valid"
    if role == "train":
        return None, tuple(cfg.train_folds), 2, "models.<kind>.train_scenes"
    raise ValueError(f"scene role must be one of {SCENE_ROLES}, got {role!r}")


def scene_folder(cfg: Config, role: str, *, n_scenes: int | None = None, progress: bool = True) -> Path:
    """The folder of the ``role`` scenes of :func:`scene_set`, built on first use (notebooks 05-08).

    Args:
        cfg: the config (folds, ``scenes`` counts and seed, the scene recipe).
        role: ``"test"``, ``"valid"`` or ``"train"``.
        n_scenes: how many; required for ``"train"`` (each model's ``train_scenes``), else replaces the
            role's configured count. Scene ``i`` is the same scene whatever the count, since each scene
            has its own random generator.

    Returns:
        The folder, in DESED's layout (``audio/``, ``public.tsv``, ``sources.csv``).
    """
    n, folds, offset, key = _role_recipe(cfg, role)
    if n_scenes is not None:
        n, key = int(n_scenes), "n_scenes"
    if n is None:
        raise ValueError(f"{role} scenes: give n_scenes (each model's {key})")
    if n < 1:
        raise ValueError(f"{key} is {n}: no {role} scenes requested")
    # only the training scenes take scenes.train_*: what the model is judged on stays the mixer's defaults
    sc = cfg.scenes
    recipe = ({"distractors": tuple(sc.train_distractors), "quiet_share": sc.train_quiet_share}
              if role == "train" else {})
    return build_scenes(cfg, n_scenes=n, folds=folds, seed=sc.seed + offset, progress=progress, **recipe)


def scene_set(cfg: Config, role: str, *, n_scenes: int | None = None,
              progress: bool = True) -> StrongLabelSet:
    """The scenes of one role, mixed on first use and cached (notebooks 05-08).

    ============  ===============================  ====================  ================================
    role          how many                         folds                 used for
    ============  ===============================  ====================  ================================
    ``"test"``    ``scenes.test``                  ``folds.scenes_test`` the ``scenes`` test set: measuring
    ``"valid"``   ``scenes.valid``                 ``cfg.valid_folds``   every model's epoch and
                                                                         post-processing
    ``"train"``   ``models.<kind>.train_scenes``   ``cfg.train_folds``   training data
    ============  ===============================  ====================  ================================

    Why three roles from one recipe: a threshold chosen on clean validation chunks is too strict
    for a sound over rain, and clean training chunks are not what the model meets in a recording.
    Scenes from the validation fold look like the test recordings while holding only clips that
    training and the test never see; scenes from the training folds are the DCASE baseline's
    synthetic-soundscape recipe. Each role has its own seed (``scenes.seed`` + 0, 1, 2), so no role's
    layout (event counts, positions, SNRs) copies another's.

    Args:
        cfg: the config; role: as above; n_scenes: see :func:`scene_folder`.

    Returns:
        The scenes loaded exactly like DESED public eval (:func:`load_scenes`).
    """
    return load_scenes(cfg, scene_folder(cfg, role, n_scenes=n_scenes, progress=progress))


def label_statistics(cfg: Config, out_dir: Path) -> pd.DataFrame:
    """Per DESED label: events, scenes holding it, mean and total seconds (every target label listed).
    Used in notebook 07.

    Why a table of all labels: a class with no event in the scenes breaks class-wise metrics
    (sed_eval's error rate explodes), so it is better seen here than discovered in an evaluation.
    """
    ds = load_scenes(cfg, out_dir)
    ev = ds.events.assign(seconds=ds.events["offset"] - ds.events["onset"])
    rows = []
    for label in cfg.desed_labels:
        mine = ev[ev["event_label"] == label]
        rows.append({
            "event_label": label,
            "events": len(mine),
            "scenes": mine["filename"].nunique(),
            "mean_seconds": round(float(mine["seconds"].mean()), 3) if len(mine) else 0.0,
            "total_seconds": round(float(mine["seconds"].sum()), 3),
        })
    return pd.DataFrame(rows)


def pick_example_scene(cfg: Config, out_dir: Path) -> str:
    """A scene worth showing: most distinct labels, then one with a distractor, then the first by name
    (notebook 07)."""
    ds = load_scenes(cfg, out_dir)
    src = load_scene_sources(out_dir)
    n_labels = ds.events.groupby("filename")["event_label"].nunique()
    has_distractor = set(src.loc[src["role"] == "distractor", "scene"])
    return min(ds.files, key=lambda f: (-int(n_labels.get(f, 0)), f not in has_distractor, f))
