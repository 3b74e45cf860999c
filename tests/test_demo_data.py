"""The synthetic demo generator: deterministic bytes, correct checksums, the real layouts, loadable."""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sed_utils.config import load_config
from sed_utils.data.demo_data import DESED_DEMO_OTHERS, MIRROR_FILES, desed_demo_files, make_demo_mirror
from sed_utils.data.demo_sounds import SYNTH_CATEGORIES, active_extent, synth_event
from sed_utils.data.desed import load_desed
from sed_utils.data.esc50 import add_target_labels, load_esc50_meta

SR = 16000


def _cfg(root: Path, *overrides: str):
    return load_config("demo", [f"data_root={root}", *overrides])


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> tuple[Path, object]:
    cfg = _cfg(tmp_path_factory.mktemp("demo"))
    return make_demo_mirror(cfg), cfg


@pytest.fixture(scope="module")
def extracted(mirror, tmp_path_factory) -> Path:
    out_dir, _ = mirror
    dest = tmp_path_factory.mktemp("extracted")
    with zipfile.ZipFile(out_dir / "ESC-50-master.zip") as zf:
        zf.extractall(dest)
    with tarfile.open(out_dir / "DESEDpublic_eval.tar.gz") as tf:
        tf.extractall(dest / "DESEDpublic_eval", filter="data")
    return dest


def test_sha256sums_match_the_archives(mirror):
    out_dir, cfg = mirror
    assert out_dir == cfg.data_root / "mirror"
    lines = (out_dir / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split("  ")) for line in lines)
    assert set(listed) == set(MIRROR_FILES)
    for name, digest in listed.items():
        assert hashlib.sha256((out_dir / name).read_bytes()).hexdigest() == digest
    assert not list(out_dir.glob("*.part"))


def test_same_config_same_bytes_rerun_skips_damage_repaired(mirror, tmp_path):
    out_dir, _ = mirror
    cfg = _cfg(tmp_path)
    again = make_demo_mirror(cfg)
    for name in (*MIRROR_FILES, "SHA256SUMS"):
        assert (again / name).read_bytes() == (out_dir / name).read_bytes(), name
    stamps = {p.name: p.stat().st_mtime_ns for p in again.iterdir()}
    make_demo_mirror(cfg)
    assert {p.name: p.stat().st_mtime_ns for p in again.iterdir()} == stamps  # nothing rewritten
    (again / "DESEDpublic_eval.tar.gz").write_bytes(b"truncated")
    make_demo_mirror(cfg)
    tar = "DESEDpublic_eval.tar.gz"
    assert (again / tar).read_bytes() == (out_dir / tar).read_bytes()
    assert (again / "ESC-50-master.zip").stat().st_mtime_ns == stamps["ESC-50-master.zip"]  # only the damaged


def test_another_seed_gives_other_data(tmp_path):
    a = desed_demo_files(_cfg(tmp_path))
    b = desed_demo_files(_cfg(tmp_path, "seed=1"))
    assert a.keys() == b.keys()
    assert a["dataset/metadata/eval/public.tsv"] != b["dataset/metadata/eval/public.tsv"]


def test_archive_layout_matches_upstream(mirror):
    out_dir, _ = mirror
    with zipfile.ZipFile(out_dir / "ESC-50-master.zip") as zf:
        names = zf.namelist()
        assert "ESC-50-master/meta/esc50.csv" in names
        assert "SYNTHETIC" in zf.read("ESC-50-master/LICENSE").decode()
        header = zf.read("ESC-50-master/meta/esc50.csv").decode().splitlines()[0]
    assert header == "filename,fold,target,category,esc10,src_file,take"
    wavs = [n for n in names if n.startswith("ESC-50-master/audio/") and n.endswith(".wav")]
    assert len(wavs) == 150
    with tarfile.open(out_dir / "DESEDpublic_eval.tar.gz") as tf:
        members = tf.getnames()
        assert all(m.mtime == 0 for m in tf.getmembers())
    assert "dataset/metadata/eval/public.tsv" in members
    assert sum(m.startswith("dataset/audio/eval/public/") for m in members) == 24


def test_extracted_esc50_loads_with_real_ids_and_folds(extracted, mirror):
    _, cfg = mirror
    meta = add_target_labels(load_esc50_meta(extracted / "ESC-50-master"), cfg.classes)
    assert len(meta) == 150 and meta["category"].nunique() == 10
    assert sorted(meta["fold"].unique()) == [1, 2, 3, 4, 5]
    assert (meta.groupby(["category", "fold"]).size() == 3).all()
    ids = dict(zip(meta["category"], meta["target"], strict=False))
    assert ids["dog"] == 0 and ids["cat"] == 5 and ids["clock_alarm"] == 37 and ids["rain"] == 10
    assert meta["is_target"].sum() == 75 and (meta[cfg.desed_labels].sum() == 15).all()
    # filenames follow <fold>-<src>-<take>-<target>.wav
    first = meta.iloc[0]
    assert first["filename"] == f"{first['fold']}-{first['src_file']}-{first['take']}-{first['target']}.wav"
    import soundfile as sf

    info = sf.info(str(first["path"]))
    assert (info.samplerate, info.channels, info.duration) == (cfg.audio.sample_rate, 1, 5.0)


def test_some_esc50_clips_are_partly_silent(extracted):
    import soundfile as sf

    meta = load_esc50_meta(extracted / "ESC-50-master")
    quiet = {}
    for row in meta.itertuples():
        audio, sr = sf.read(str(row.path))
        frames = audio[: len(audio) // 1600 * 1600].reshape(-1, 1600)  # 0.1 s frames
        quiet[row.filename] = np.mean(np.sqrt((frames**2).mean(axis=1)) < 1e-3)
    meta["quiet"] = meta["filename"].map(quiet)
    # take C of every (category, fold): the sound in 1-3 s of the 5 s, the rest silence or faint noise
    assert (meta.loc[meta["take"] == "C", "quiet"] >= 0.35).all()
    # continuous sounds fill takes A and B entirely
    continuous = meta["category"].isin(["pouring_water", "vacuum_cleaner", "rain", "engine"])
    assert (meta.loc[continuous & (meta["take"] != "C"), "quiet"] == 0).all()


def test_extracted_desed_loads_and_has_every_case(extracted, mirror):
    _, cfg = mirror
    root = extracted / "DESEDpublic_eval" / "dataset"
    tsv = root / "metadata" / "eval" / "public.tsv"
    ds = load_desed(tsv, root / "audio" / "eval" / "public", cfg.desed_labels)
    assert len(ds.files) == 24 and ds.problems == []
    lines = tsv.read_text().splitlines()
    assert lines[0] == "filename\tonset\toffset\tevent_label"
    assert all(len(x.split("\t")[1].split(".")[1]) == 3 for x in lines[1:])  # 3 decimals
    assert set(ds.events["event_label"]) == set(cfg.desed_labels)
    assert set(ds.all_events["event_label"]) == set(cfg.desed_labels) | set(DESED_DEMO_OTHERS)
    no_events = [f for f in ds.files if f not in set(ds.all_events["filename"])]
    only_others = set(ds.all_events["filename"]) - set(ds.events["filename"])
    assert len(no_events) == 1 and len(only_others) >= 2
    per_clip = ds.events.groupby("filename").size()
    assert per_clip.min() >= 1 and per_clip.max() <= 4
    # some target events overlap (multilabel moments), never two of the same class
    overlaps = same_class = 0
    for _, ev in ds.events.groupby("filename"):
        rows = ev.to_dict("records")
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                if a["onset"] < b["offset"] and b["onset"] < a["offset"]:
                    overlaps += 1
                    same_class += a["event_label"] == b["event_label"]
    assert overlaps >= 2 and same_class == 0
    durations = ds.all_events["offset"] - ds.all_events["onset"]
    assert durations.min() >= 0.1 and ds.all_events["offset"].max() <= 10.0


@pytest.mark.parametrize("category", SYNTH_CATEGORIES)
def test_synth_event_shape_level_and_variation(category):
    a = synth_event(category, 1.5, SR, np.random.default_rng(0))
    assert a.dtype == np.float32 and a.shape == (24000,)
    assert np.abs(a).max() == pytest.approx(0.5, abs=1e-6)
    assert np.abs(a[:800]).max() > 0.01  # the sound starts at the onset (first 50 ms)
    np.testing.assert_array_equal(a, synth_event(category, 1.5, SR, np.random.default_rng(0)))
    assert not np.allclose(a, synth_event(category, 1.5, SR, np.random.default_rng(1)))


def test_active_extent_finds_the_audible_part():
    audio = np.zeros(2 * SR, np.float32)
    audio[SR // 2: SR + SR // 2] = 0.5 * np.sin(np.arange(SR) * 0.3)
    audio[: SR // 4] = 1e-4  # faint noise, 70 dB down: not "audible"
    assert active_extent(audio, SR) == pytest.approx((0.5, 1.5))
    assert active_extent(np.zeros(SR, np.float32), SR) == (0.0, 1.0)  # nothing louder: whole span


def test_synth_event_rejects_unknown_category_and_bad_duration():
    with pytest.raises(ValueError, match="no synthetic recipe for 'horse'"):
        synth_event("horse", 1.0, SR, np.random.default_rng(0))
    with pytest.raises(ValueError, match="duration"):
        synth_event("dog", 0.0, SR, np.random.default_rng(0))


def test_unknown_class_in_config_is_refused(tmp_path):
    cfg = _cfg(tmp_path, "classes={Dog: dog, Cat: horse}")
    with pytest.raises(ValueError, match="horse"):
        make_demo_mirror(cfg)
