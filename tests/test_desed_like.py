"""The DESED-like scene recipe: label structure from DESED validation statistics, never the test labels."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_scenes import fake_cfg  # noqa: F401  (the fixture)

from sed_utils.config import load_config
from sed_utils.core.errors import ConfigError, DatasetError
from sed_utils.data import scenes
from sed_utils.data.scene_mixing import load_desed_stats

TOOL = Path(__file__).resolve().parent.parent / "tools" / "desed_stats.py"


def test_the_shipped_statistics_come_from_validation_and_look_like_desed():
    st = load_desed_stats()
    assert "validation" in st["source"] and "MIT" in st["source"]
    assert 0.3 < st["empty_share"] < 0.45  # DESED validation: 437 of 1168 clips hold no target class
    dog, vacuum = st["per_class"]["Dog"], st["per_class"]["Vacuum_cleaner"]
    assert dog["duration_quantiles"][10] < 1.0 < vacuum["duration_quantiles"][10]  # short barks, long vacuums
    assert all(np.diff(c["duration_quantiles"]).min() >= 0 for c in st["per_class"].values())


def test_the_tool_derives_them_and_refuses_the_test_labels(tmp_path):
    spec = importlib.util.spec_from_file_location("desed_stats", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rows = [("a.wav", 0.0, 0.5, "Dog"), ("a.wav", 1.0, 1.5, "Dog"), ("b.wav", 0.0, 10.0, "Vacuum_cleaner"),
            ("c.wav", 1.0, 2.0, "Speech"), ("d.wav", None, None, None)]
    tsv = tmp_path / "validation.tsv"
    columns = ["filename", "onset", "offset", "event_label"]
    pd.DataFrame(rows, columns=columns).to_csv(tsv, sep="\t", index=False)
    st = tool.stats(tsv)
    assert st["clips"] == 4 and st["empty_share"] == 0.5
    assert st["classes_per_clip"] == {"1": 2}
    assert st["per_class"]["Dog"]["events_per_clip"] == {"2": 1}
    assert st["per_class"]["Vacuum_cleaner"]["duration_quantiles"][0] == 10.0
    public = tmp_path / "public.tsv"
    public.write_text(tsv.read_text())
    with pytest.raises(SystemExit, match="TEST set"):
        tool.stats(public)


def test_desed_like_scenes_follow_the_statistics(fake_cfg):  # noqa: F811
    cfg = load_config("demo", [f"data_root={fake_cfg.data_root}", "scene_recipe=desed_like"])
    uniform = scenes.build_scenes(fake_cfg, n_scenes=40, folds=(5,), progress=False)
    like = scenes.build_scenes(cfg, n_scenes=40, folds=(5,), progress=False)
    assert like != uniform  # another recipe, another cache key
    assert scenes.build_scenes(cfg, n_scenes=40, folds=(5,), progress=False) == like  # cached
    ds = scenes.load_scenes(cfg, like)
    empty = len(ds.files_without_target_events) / len(ds.files)
    assert 0.15 < empty < 0.65  # DESED: 37 %; the uniform recipe: 10 %
    per_scene = ds.events.groupby(["filename", "event_label"]).size()
    assert per_scene.get("Dog", per_scene).mean() > 1.5  # a dog barks several times per clip
    assert (ds.events["offset"] <= 10.0).all() and (ds.events["onset"] >= 0).all()
    assert (ds.events["offset"] - ds.events["onset"] >= 0.02).all()  # no sliver of a mask is an event
    # one class per clip most of the time, as in DESED (706 of 731 non-empty clips)
    assert (ds.events.groupby("filename")["event_label"].nunique() == 1).mean() > 0.8
    params = json.loads((like / "params.json").read_text())
    assert "desed_stats" in params and "desed_stats" not in json.loads((uniform / "params.json").read_text())


def test_an_unknown_recipe_is_refused():
    with pytest.raises(ConfigError, match="scene_recipe"):
        load_config("demo", ["scene_recipe=random"])


def test_a_scene_folder_whose_labels_do_not_load_is_not_left_behind(fake_cfg, monkeypatch):  # noqa: F811
    real = scenes.make_scene

    def bad_scene(*args, **kwargs):
        audio, labels, sources = real(*args, **kwargs)
        return audio, [(6.908, 6.908, "Dog")], sources  # onset == offset: the loader refuses it

    monkeypatch.setattr(scenes, "make_scene", bad_scene)
    with pytest.raises(DatasetError, match="offset 6.908 is not after onset 6.908"):
        scenes.build_scenes(fake_cfg, n_scenes=3, folds=(5,), progress=False)
    assert not list((fake_cfg.cache_dir / "scenes").glob("fold5-*"))  # no folder that would be reused
