"""Tests of sed_utils.data.scenes and .scene_mixing on a tiny fake ESC-50 (no /work/shared, no internet).

The fake clips are built so the truth is known by hand: a target clip is silence, a 0.8 s tone at
[0.4, 1.2) s, silence; ambient clips are steady noise; the distractor is a click train. Scenes are
mixed at 30 dB SNR so a labelled event stands far above the background and "is there energy in
this span" has a clear answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from sed_utils.config import load_config
from sed_utils.core.errors import ConfigError, DatasetError
from sed_utils.data import scene_mixing, scenes
from sed_utils.plots import scenes as scene_plots

SR = 16000
CLIP_S = 2.0
TONE = (0.4, 1.2)  # where the sound is inside a target clip (seconds)
CATEGORIES = {  # category -> (target id, kind)
    "dog": (0, "tone"),
    "cat": (5, "tone"),
    "rain": (10, "noise"),
    "wind": (16, "noise"),
    "engine": (44, "noise"),
    "door_wood_knock": (30, "clicks"),
}


def _sound(kind: str, rng: np.random.Generator, freq: float) -> np.ndarray:
    n = int(CLIP_S * SR)
    t = np.arange(n) / SR
    x = np.zeros(n)
    if kind == "tone":
        a, b = int(TONE[0] * SR), int(TONE[1] * SR)
        x[a:b] = 0.5 * np.sin(2 * np.pi * freq * t[a:b])
    elif kind == "noise":
        x = 0.1 * rng.standard_normal(n)
    else:  # clicks: 4 short bursts in the first second
        for k in range(4):
            a = int((0.2 + 0.2 * k) * SR)
            x[a : a + 400] = 0.6 * rng.standard_normal(400)
    return x.astype(np.float32)


def write_fake_esc50(root: Path, folds: tuple[int, ...], seed: int, take_b_hz: float = 0.0) -> Path:
    """A fake ESC-50 under ``root`` (``ESC-50-master/audio`` and ``meta/esc50.csv``): 2 clips, takes A and
    B, per category of :data:`CATEGORIES` and fold; a tone's pitch is ``300 + 100 * target`` Hz, plus
    ``take_b_hz`` for take B. Shared by the tests that mix scenes from it (here, test_evaluate,
    test_third_model). Returns ``root``."""
    audio_dir = root / "ESC-50-master" / "audio"
    audio_dir.mkdir(parents=True)
    (root / "ESC-50-master" / "meta").mkdir()
    rng = np.random.default_rng(seed)
    rows = []
    for fold in folds:
        for cat, (target, kind) in CATEGORIES.items():
            for take in "AB":
                name = f"{fold}-{target}{take}-{take}-{target}.wav"
                freq = 300 + 100 * target + (take_b_hz if take == "B" else 0.0)
                sf.write(audio_dir / name, _sound(kind, rng, freq), SR, subtype="PCM_16")
                rows.append([name, fold, target, cat, False, f"{target}{take}", take])
    columns = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    pd.DataFrame(rows, columns=columns).to_csv(root / "ESC-50-master" / "meta" / "esc50.csv", index=False)
    return root


@pytest.fixture
def fake_cfg(tmp_path, monkeypatch):
    """A config whose data_root holds a fake ESC-50: 2 clips per category in folds 4 and 5."""
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    root = write_fake_esc50(tmp_path / "data", (4, 5), seed=123, take_b_hz=50.0)
    return load_config("demo", [f"data_root={root}"])


def _frame_db(audio: np.ndarray, start: float, stop: float) -> float:
    seg = audio[int(start * SR) : int(stop * SR)].astype(np.float64)
    return 20 * np.log10(np.sqrt(np.mean(seg**2)) + 1e-12)


# ---------------------------------------------------------------------------------------------
# energy analysis, hand-computed at sr=1000 (25-sample frames every 10 samples)
# ---------------------------------------------------------------------------------------------
def test_active_mask_trims_to_frames_touching_the_sound():
    x = np.zeros(1000)
    x[300:500] = 1.0
    mask = scene_mixing.active_mask(x, 1000, -35.0)
    # first frame overlapping sample 300 starts at 280 (frame 28: 280..305); last at 490 (..515)
    assert scene_mixing.active_spans(mask, 1000) == [(280, 515)]


def test_active_spans_split_long_gaps_and_bridge_short_ones():
    x = np.zeros(1000)
    x[100:200] = 1.0
    x[400:500] = 1.0
    mask = scene_mixing.active_mask(x, 1000, -35.0)
    assert scene_mixing.active_spans(mask, 1000, split_gap=0.1) == [(80, 215), (380, 515)]  # gap 165 > 100
    assert scene_mixing.active_spans(mask, 1000, split_gap=0.2) == [(80, 515)]


def test_active_mask_ignores_quiet_sound_and_digital_silence():
    x = np.zeros(1000)
    x[100:200] = 1.0
    x[600:700] = 0.01  # -40 dB: below the -35 dB threshold
    assert scene_mixing.active_spans(scene_mixing.active_mask(x, 1000, -35.0), 1000) == [(80, 215)]
    assert not scene_mixing.active_mask(np.zeros(1000), 1000, -35.0).any()
    with pytest.raises(ValueError, match="negative"):
        scene_mixing.active_mask(x, 1000, 5.0)


def test_merge_labels_joins_overlapping_events_of_one_class_only():
    rows = [(1.0, 2.0, "Dog"), (1.5, 3.0, "Dog"), (3.0, 3.5, "Dog"), (5.0, 6.0, "Dog"), (1.2, 1.4, "Cat")]
    assert scene_mixing._merge_labels(rows) == [(1.0, 3.5, "Dog"), (1.2, 1.4, "Cat"), (5.0, 6.0, "Dog")]


def test_select_pools_splits_the_requested_folds_only(fake_cfg):
    from sed_utils.data.esc50 import esc50_root, load_esc50_meta

    meta = load_esc50_meta(esc50_root(fake_cfg))
    pools = scenes.select_pools(meta, (5,), ["dog", "cat"], "esc50.csv")
    assert set(pools["target"]["category"]) == {"dog", "cat"}
    assert set(pools["ambient"]["category"]) == {"rain", "wind", "engine"}
    assert set(pools["distractor"]["category"]) == {"door_wood_knock"}
    assert all(set(p["fold"]) == {5} for p in pools.values())
    with pytest.raises(DatasetError, match="no clip of the targets"):
        scenes.select_pools(meta, (5,), ["vacuum_cleaner"], "esc50.csv")


# ---------------------------------------------------------------------------------------------
# build_scenes on the fake ESC-50
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def built(fake_cfg):
    out = scenes.build_scenes(fake_cfg, n_scenes=16, folds=(5,), seed=7, snr_db=(30.0, 30.0), progress=False)
    return fake_cfg, out


def test_layout_and_labels(built):
    cfg, out = built
    wavs = sorted(p.name for p in (out / "audio").iterdir())
    assert wavs == [f"scene_{i:04d}.wav" for i in range(16)]
    info = sf.info(str(out / "audio" / wavs[0]))
    assert (info.samplerate, info.frames, info.channels, info.subtype) == (SR, 10 * SR, 1, "PCM_16")
    tsv = scenes.scene_labels_path(out)
    lines = tsv.read_text().splitlines()
    assert lines[0] == "filename\tonset\toffset\tevent_label"
    labels = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    events = labels[labels["event_label"] != ""]
    assert set(events["event_label"]) <= {"Dog", "Cat"}  # only target classes, DESED names
    assert set(events["event_label"]) == {"Dog", "Cat"}  # both appear in 16 scenes of this seed
    for col in ("onset", "offset"):
        assert events[col].str.fullmatch(r"\d+\.\d{3}").all()  # 3 decimals
    assert (events["offset"].astype(float) > events["onset"].astype(float)).all()
    assert (events["offset"].astype(float) <= 10.0).all()
    assert set(labels["filename"]) == set(wavs)  # every scene listed, empty ones with empty fields


def test_labels_are_where_the_sound_is(built):
    """Each label matches a target source's trimmed tone, and holds loud audio from edge to edge."""
    cfg, out = built
    labels = pd.read_csv(scenes.scene_labels_path(out), sep="\t", keep_default_na=False)
    labels = labels[labels["event_label"] != ""]
    src = scenes.load_scene_sources(out)
    tgt = src[src["role"] == "target"]
    assert len(tgt) > 0
    # the inserted part of a target clip lies within its tone (the padding silence was trimmed);
    # +-0.03 s: the 25 ms analysis frame that first touches the tone
    assert (tgt["src_start"] >= TONE[0] - 0.03).all() and (tgt["src_end"] <= TONE[1] + 0.03).all()
    assert ((tgt["offset"] - tgt["onset"]) >= 0.5 - 1e-6).all()  # MIN_EVENT_SECONDS

    for row in labels.itertuples():
        audio, _ = sf.read(str(out / "audio" / row.filename))
        bg = src[(src["scene"] == row.filename) & (src["role"] != "background")]
        # a label comes from target insertions of its class, start and end included (merged if overlapping)
        mine = tgt[(tgt["scene"] == row.filename) & (tgt["event_label"] == row.event_label)]
        assert (np.isclose(mine["onset"], row.onset, atol=1e-3)).any()
        assert (np.isclose(mine["offset"], row.offset, atol=1e-3)).any()
        # energy: the first and last 20 ms inside the label are far above the background-only part
        quiet = np.ones(len(audio), bool)
        for ev in bg.itertuples():
            quiet[int(ev.onset * SR) : int(ev.offset * SR)] = False
        bg_db = 20 * np.log10(np.sqrt(np.mean(audio[quiet] ** 2)))
        assert _frame_db(audio, row.onset, row.onset + 0.02) > bg_db + 15
        assert _frame_db(audio, row.offset - 0.02, row.offset) > bg_db + 15


def test_distractors_are_not_labelled(built):
    cfg, out = built
    src = scenes.load_scene_sources(out)
    dis = src[src["role"] == "distractor"]
    assert len(dis) > 0
    assert set(dis["category"]) == {"door_wood_knock"}
    assert (dis["event_label"].fillna("") == "").all()
    labels = pd.read_csv(scenes.scene_labels_path(out), sep="\t", keep_default_na=False)
    # a distractor alone in its stretch of a scene: no label touches it
    for ev in dis.itertuples():
        others = src[(src["scene"] == ev.scene) & (src["role"] == "target")]
        if ((others["onset"] < ev.offset) & (others["offset"] > ev.onset)).any():
            continue
        lab = labels[(labels["filename"] == ev.scene) & (labels["event_label"] != "")]
        on, off = lab["onset"].astype(float), lab["offset"].astype(float)
        assert not ((on < ev.offset) & (off > ev.onset)).any()
    # and the background is made of ambient categories only
    assert set(src[src["role"] == "background"]["category"]) <= {"rain", "wind", "engine"}


def test_only_requested_fold_is_used(fake_cfg):
    out = scenes.build_scenes(fake_cfg, n_scenes=12, folds=(5,), seed=1, progress=False)
    src = scenes.load_scene_sources(out)
    assert set(src["fold"]) == {5}
    assert src["source"].str.startswith("5-").all()
    assert out.name.startswith("fold5-") and out.parent == fake_cfg.cache_dir / "scenes"
    out4 = scenes.build_scenes(fake_cfg, n_scenes=12, folds=(4,), seed=1, progress=False)
    assert set(scenes.load_scene_sources(out4)["fold"]) == {4}
    # the default fold comes from the config (scenes_test = [5])
    default = scenes.build_scenes(fake_cfg, n_scenes=12, seed=1, progress=False)
    assert default == out
    with pytest.raises(DatasetError, match=r"esc50\.csv.*fold\(s\) \[3\]"):
        scenes.build_scenes(fake_cfg, n_scenes=2, folds=(3,), progress=False)


def test_deterministic_for_a_seed(fake_cfg, tmp_path):
    kw = dict(n_scenes=6, folds=(5,), seed=3, progress=False)
    a = scenes.build_scenes(fake_cfg, out_dir=tmp_path / "a", **kw)
    b = scenes.build_scenes(fake_cfg, out_dir=tmp_path / "b", **kw)
    names = ["public.tsv", "sources.csv"] + [f"audio/scene_{i:04d}.wav" for i in range(6)]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = scenes.build_scenes(fake_cfg, out_dir=tmp_path / "c", **{**kw, "seed": 4})
    assert (a / "public.tsv").read_bytes() != (c / "public.tsv").read_bytes()
    # a scene does not depend on how many scenes are built (per-scene generators)
    d = scenes.build_scenes(fake_cfg, out_dir=tmp_path / "d", **{**kw, "n_scenes": 3})
    assert (a / "audio/scene_0002.wav").read_bytes() == (d / "audio/scene_0002.wav").read_bytes()


def test_cache_skip_and_rebuild(fake_cfg, tmp_path, monkeypatch):
    out = scenes.build_scenes(fake_cfg, n_scenes=4, folds=(5,), seed=2, progress=False)

    def boom(*a, **k):
        raise AssertionError("scene mixed again although cached")

    # make_scene belongs to scene_mixing; scenes imports it by name and calls that name
    monkeypatch.setattr(scenes, "make_scene", boom)
    assert scenes.build_scenes(fake_cfg, n_scenes=4, folds=(5,), seed=2, progress=False) == out
    # another parameter -> another key -> work to do; a failure leaves no folder behind
    with pytest.raises(AssertionError, match="mixed again"):
        scenes.build_scenes(fake_cfg, n_scenes=5, folds=(5,), seed=2, progress=False)
    assert sorted(p.name for p in out.parent.iterdir()) == [".sed.lock", out.name]  # and the builders' lock
    monkeypatch.undo()
    # explicit out_dir built with other parameters is rebuilt in place
    mine = tmp_path / "mine"
    scenes.build_scenes(fake_cfg, n_scenes=2, folds=(5,), seed=2, out_dir=mine, progress=False)
    scenes.build_scenes(fake_cfg, n_scenes=3, folds=(5,), seed=2, out_dir=mine, progress=False)
    assert len(list((mine / "audio").iterdir())) == 3


def test_refuses_foreign_out_dir_and_bad_arguments(fake_cfg, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="foreign.*not written by build_scenes"):
        scenes.build_scenes(fake_cfg, n_scenes=2, out_dir=foreign, progress=False)
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="n_scenes"):
        scenes.build_scenes(fake_cfg, n_scenes=0, progress=False)
    with pytest.raises(ValueError, match="snr_db"):
        scenes.build_scenes(fake_cfg, n_scenes=2, snr_db=(10.0, 0.0), progress=False)


def test_no_ambient_clip_falls_back_to_noise_with_a_warning(fake_cfg):
    meta_csv = fake_cfg.data_root / "ESC-50-master" / "meta" / "esc50.csv"
    meta = pd.read_csv(meta_csv)
    meta[~meta["category"].isin(["rain", "wind", "engine"])].to_csv(meta_csv, index=False)
    with pytest.warns(UserWarning, match="pink-noise"):
        out = scenes.build_scenes(fake_cfg, n_scenes=3, folds=(5,), progress=False)
    src = scenes.load_scene_sources(out)
    assert set(src[src["role"] == "background"]["source"]) == {"pink_noise"}


def test_loads_like_desed(built):
    cfg, out = built
    ds = scenes.load_scenes(cfg, out)
    labels = pd.read_csv(scenes.scene_labels_path(out), sep="\t", keep_default_na=False)
    assert ds.files == [f"scene_{i:04d}.wav" for i in range(16)]
    assert len(ds.events) == (labels["event_label"] != "").sum()
    assert ds.problems == [] and ds.n_clipped == 0
    assert set(ds.events["event_label"]) == {"Dog", "Cat"}


def test_scenes_without_targets_are_listed_empty(fake_cfg, monkeypatch):
    monkeypatch.setattr(scene_mixing, "EMPTY_SCENE_PROB", 1.0)  # read by make_scene at mixing time
    out = scenes.build_scenes(fake_cfg, n_scenes=3, folds=(5,), progress=False)
    assert scenes.scene_labels_path(out).read_text().splitlines()[1:] == [
        f"scene_{i:04d}.wav\t\t\t" for i in range(3)
    ]
    assert set(scenes.load_scene_sources(out)["role"]) <= {"background", "distractor"}
    ds = scenes.load_scenes(fake_cfg, out)
    assert ds.events.empty and len(ds.files_without_target_events) == 3


def test_statistics_example_and_plot(built):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, out = built
    labels = pd.read_csv(scenes.scene_labels_path(out), sep="\t", keep_default_na=False)
    labels = labels[labels["event_label"] != ""]
    stats = scenes.label_statistics(cfg, out).set_index("event_label")
    assert list(stats.index) == cfg.desed_labels  # every target label listed, absent ones with 0
    dog = labels[labels["event_label"] == "Dog"]
    assert stats.loc["Dog", "events"] == len(dog)
    assert stats.loc["Dog", "scenes"] == dog["filename"].nunique()
    assert np.isclose(stats.loc["Dog", "total_seconds"], (dog["offset"] - dog["onset"]).sum(), atol=1e-3)
    assert stats.loc["Vacuum_cleaner", "events"] == 0 and stats.loc["Vacuum_cleaner", "mean_seconds"] == 0

    name = scenes.pick_example_scene(cfg, out)
    most = labels.groupby("filename")["event_label"].nunique().max()
    assert labels[labels["filename"] == name]["event_label"].nunique() == most
    fig = scene_plots.plot_scene(cfg, out, name)
    lanes = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    mine = set(labels.loc[labels["filename"] == name, "event_label"])
    assert lanes == [lab for lab in cfg.desed_labels if lab in mine] + ["distractor (no label)"]
    plt.close(fig)
    plt.close(scene_plots.plot_label_statistics(cfg, out))


def test_validation_scenes_come_from_the_validation_fold_with_their_own_seed(fake_cfg):
    root = f"data_root={fake_cfg.data_root}"
    cfg = load_config("demo", [root, "test_set=scenes", "scenes.valid=5", "scenes.seed=2"])
    ds = scenes.scene_set(cfg, "valid", progress=False)
    out = Path(ds.audio_dir).parent
    assert out == scenes.scene_folder(cfg, "valid", progress=False)
    assert set(scenes.load_scene_sources(out)["fold"]) == {4}  # scenes_valid; the test scenes use 5
    params = json.loads((out / "params.json").read_text())
    assert params["seed"] == 3 and params["n_scenes"] == 5 and len(ds.files) == 5
    # with DESED as the test set the validation fold is folds.valid (5 in the real profiles)
    ds5 = scenes.scene_set(load_config("demo", [root, "scenes.valid=3", "folds.train=[1, 2, 3, 4]",
                                                "folds.valid=[5]"]), "valid", progress=False)
    assert set(scenes.load_scene_sources(Path(ds5.audio_dir).parent)["fold"]) == {5}
    # no validation scenes: every model's epoch and post-processing are chosen on them, so the config
    # refuses 0, and asking for 0 directly is a clear error
    with pytest.raises(ConfigError, match=r"scenes\.valid = 0 is not allowed"):
        load_config("demo", [root, "scenes.valid=0"])
    with pytest.raises(ValueError, match="n_scenes is 0: no valid scenes"):
        scenes.scene_set(cfg, "valid", n_scenes=0, progress=False)


class _LevelModel(torch.nn.Module):
    """Scores every class by the window's mean level: informative (events are loud), not perfect."""

    time_stride = None  # one answer per window, like the chunk model

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.2))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"clip_logits": (self.scale * (x.mean(dim=(1, 2, 3)) + 40.0))[:, None].repeat(1, 5)}


def _level_detector(cfg, tmp_path):
    """A chunk-kind TrainedModel whose Detector has the series' front end around :class:`_LevelModel`
    (no checkpoint)."""
    from sed_utils.features.logmel import Normaliser, build_logmel
    from sed_utils.models import CheckpointInfo, Detector, TrainedModel

    front_end = build_logmel(cfg.features, cfg.audio.sample_rate)
    detector = Detector(front_end, Normaliser(0.0, 1.0), _LevelModel(), kind="chunk", labels=cfg.desed_labels,
                        sample_rate=cfg.audio.sample_rate, mel=cfg.features,
                        window_seconds=cfg.chunking.chunk_seconds).eval()
    info = CheckpointInfo(path=tmp_path / "no_checkpoint.pt", kind="chunk", labels=cfg.desed_labels,
                          config=cfg.to_dict(), epoch=0, best_score=0.0)
    return TrainedModel(detector=detector, info=info)


def test_thresholds_are_chosen_on_the_validation_scenes(fake_cfg, tmp_path):
    from sed_utils.evaluate import choose_post_processing, set_curves
    from sed_utils.labels.chunks import build_segments
    from sed_utils.labels.grid import curve_segment_scores
    from sed_utils.metrics.f1 import choose_thresholds

    base = [f"data_root={fake_cfg.data_root}", f"runs_root={tmp_path / 'runs'}", "scenes.valid=6",
            "postprocess.median_filters=[1, 3]", "postprocess.thresholds=[0.3, 0.5, 0.7]",
            "postprocess.min_durations=[0]"]
    cfg = load_config("demo", base)
    labels = cfg.desed_labels
    trained = _level_detector(cfg, tmp_path)
    valid = scenes.scene_set(cfg, "valid", progress=False)
    curves = set_curves(cfg, trained, valid, progress=False)
    assert sorted(curves) == sorted(valid.files)  # the validation scenes' own curves
    segments = build_segments(cfg, valid)
    y = segments[labels].to_numpy().astype(int)
    probs = curve_segment_scores(curves, labels, segments)
    assert y.shape == probs.shape == (60, 5) and y.sum() > 0 and len(np.unique(probs)) > 10
    # the one segment rule: the highest score of the curve's windows whose centre lies in the segment
    first = segments.iloc[3]
    bounds, scores = curves[first["filename"]]
    centres = (bounds[:-1] + bounds[1:]) / 2
    inside = (centres >= first["start"]) & (centres < first["end"])
    np.testing.assert_allclose(probs[3], scores[inside].max(axis=0))
    post, grids = choose_post_processing(cfg, curves, valid.events, segments, "6 validation scenes")
    np.testing.assert_array_equal(post.segment_thresholds,
                                  choose_thresholds(y, probs, np.asarray(cfg.postprocess.segment_thresholds)))
    assert post.chosen_on == "6 validation scenes" and post.labels == tuple(labels)
    # the event thresholds and filters: per class, the best event F1 of the grid on the validation scenes
    table = grids["events"]
    assert len(table) == 2 * len(cfg.postprocess.thresholds) * len(labels)
    for c, label in enumerate(labels):
        mine = table[table["label"] == label]
        chosen = mine[(mine["threshold"] == post.thresholds[c]) & (mine["filter"] == post.median_filters[c])]
        assert chosen["f1"].iloc[0] == mine["f1"].max(), label
    # one candidate: a fixed threshold for every class
    fixed = load_config("demo", [*base, "postprocess.thresholds=0.3", "postprocess.segment_thresholds=0.3"])
    post, _ = choose_post_processing(fixed, curves, valid.events, segments, "fixed")
    assert post.thresholds == (0.3,) * 5 and post.segment_thresholds == (0.3,) * 5


def _params(ds) -> dict:
    return json.loads((Path(ds.audio_dir).parent / "params.json").read_text())


def _add_fold_copy(data_root: Path, source: int, fold: int) -> None:
    """Copy fold ``source`` of the fake ESC-50 as fold ``fold`` (a third fold for the role tests: the
    config refuses one fold in two roles)."""
    import shutil

    meta_path = data_root / "ESC-50-master" / "meta" / "esc50.csv"
    meta = pd.read_csv(meta_path)
    copy = meta[meta["fold"] == source].copy()
    copy["filename"] = copy["filename"].str.replace(f"{source}-", f"{fold}-", n=1, regex=False)
    copy["fold"] = fold
    audio = data_root / "ESC-50-master" / "audio"
    for old, new in zip(meta.loc[meta["fold"] == source, "filename"], copy["filename"], strict=True):
        shutil.copyfile(audio / old, audio / new)
    pd.concat([meta, copy]).to_csv(meta_path, index=False)


def test_scene_set_roles_use_their_folds_counts_and_seeds(fake_cfg):
    root = f"data_root={fake_cfg.data_root}"
    _add_fold_copy(fake_cfg.data_root, 4, 3)
    # scenes test set: test = scenes_test (5); valid = scenes_valid (4), train = scenes_train (3)
    cfg = load_config("demo", [root, "test_set=scenes", "folds.scenes_train=[3]", "folds.scenes_valid=[4]",
                               "scenes.test=2", "scenes.valid=3", "models.chunk.train_scenes=4",
                               "scenes.seed=10"])
    want = {"test": ([5], 2, 10), "valid": ([4], 3, 11), "train": ([3], 4, 12)}
    folders = set()
    counts = {"train": cfg.models["chunk"].train_scenes}  # training scenes are counted per model
    for role, (folds, n, seed) in want.items():
        ds = scenes.scene_set(cfg, role, n_scenes=counts.get(role), progress=False)
        params = _params(ds)
        assert (params["folds"], params["n_scenes"], params["seed"]) == (folds, n, seed), role
        assert len(ds.files) == n and ds.labels == cfg.desed_labels
        out = Path(ds.audio_dir).parent
        assert set(scenes.load_scene_sources(out)["fold"]) == set(folds), role
        assert out == scenes.scene_folder(cfg, role, n_scenes=counts.get(role), progress=False)
        folders.add(out)
    assert len(folders) == 3  # one folder per role (own folds, own seed)
    # the scenes test set is the "test" role
    from sed_utils.data.test_sets import describe_test_set, load_test_set

    test = load_test_set(cfg, progress=False)
    assert Path(test.audio_dir).parent == scenes.scene_folder(cfg, "test", progress=False)
    assert describe_test_set(cfg) == "SYNTHETIC demo data"  # the demo profile is synthetic
    real = load_config("scenes", [root])
    assert describe_test_set(real) == "held-out ESC-50 scenes (fold 5)"
    assert describe_test_set(load_config("full", [root])) == "DESED public eval"
    # DESED test set: valid = folds.valid, train = folds.train
    desed = load_config("demo", [root, "folds.train=[4]", "folds.valid=[5]", "scenes.valid=2",
                                 "models.frame.train_scenes=2"])
    assert set(scenes.load_scene_sources(scenes.scene_folder(desed, "valid", progress=False))["fold"]) == {5}
    train = scenes.scene_folder(desed, "train", n_scenes=desed.models["frame"].train_scenes, progress=False)
    assert set(scenes.load_scene_sources(train)["fold"]) == {4}
    with pytest.raises(ValueError, match="scene role must be one of"):
        scenes.scene_set(cfg, "holdout", progress=False)
    # the training scenes' count is each model's (models.<kind>.train_scenes): scene_set must be told it
    with pytest.raises(ValueError, match=r"give n_scenes \(each model's models\.<kind>\.train_scenes\)"):
        scenes.scene_set(cfg, "train", progress=False)
    none = load_config("demo", [root, "models.chunk.train_scenes=0"])  # 0 = no training scenes
    with pytest.raises(ValueError, match="n_scenes is 0: no train scenes"):
        scenes.scene_folder(none, "train", n_scenes=none.models["chunk"].train_scenes, progress=False)


def test_training_scene_knobs_more_distractors_and_quiet_backgrounds(fake_cfg):
    """scenes.train_distractors and scenes.train_quiet_share reach the training scenes only; a quiet
    scene holds its loud twin's events over a background 40 dB down; defaults keep the old bytes."""
    root = f"data_root={fake_cfg.data_root}"
    base = load_config("demo", [root, "folds.train=[4]", "folds.valid=[5]"])
    knobs = load_config("demo", [root, "folds.train=[4]", "folds.valid=[5]", "scenes.train_distractors=[3,4]",
                                 "scenes.train_quiet_share=1.0"])
    loud = scenes.scene_folder(base, "train", n_scenes=6, progress=False)
    quiet = scenes.scene_folder(knobs, "train", n_scenes=6, progress=False)
    assert loud != quiet and "distractors" not in json.loads((loud / "params.json").read_text())
    from sed_utils.train.loop import training_key  # the models trained on them are other models too

    assert training_key(knobs, "frame") != training_key(base, "frame")
    valid = scenes.scene_folder(base, "valid", progress=False)
    assert valid == scenes.scene_folder(knobs, "valid", progress=False)
    counts = scenes.load_scene_sources(quiet).query("role == 'distractor'").groupby("scene").size()
    assert len(counts) == 6 and counts.between(3, 4).all()
    # the same events, only the background changed: same mixer draws with quiet_share 1 and 0
    tone = _sound("tone", np.random.default_rng(0), 400.0)
    clip = scene_mixing.Clip("t.wav", 5, "dog", tone, scene_mixing.active_mask(tone, SR, -35.0))
    pools = {"target": [clip], "ambient": [], "distractor": []}  # a pink-noise background
    args = (0, pools, {"dog": "Dog"}, 1, (20.0, 20.0), SR)
    a, labels_a, _ = scene_mixing.make_scene(*args)
    b, labels_b, _ = scene_mixing.make_scene(*args, quiet_share=1.0)
    c, _, _ = scene_mixing.make_scene(*args, quiet_share=0.0)
    assert labels_a == labels_b and np.array_equal(a, c)
    off = np.ones(len(a), bool)
    for on, end, _ in labels_a:
        off[int(on * SR) : int(end * SR)] = False

    def level(x, where):
        return 20 * np.log10(np.sqrt(np.mean(x[where].astype(np.float64) ** 2)))

    # the background against the event (each scene is peak-normalised on its own): 40 dB down
    drop = (level(b, off) - level(b, ~off)) - (level(a, off) - level(a, ~off))
    assert -40.5 < drop < -39.0, drop
    with pytest.raises(ValueError, match="distractors must be"):
        scenes.build_scenes(base, n_scenes=2, distractors=(2, 1), progress=False)
