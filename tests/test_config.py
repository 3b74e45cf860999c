"""The one configuration: profiles, overrides, types, and clear errors for typos and for the keys of
the earlier layout (by notebook), which config.yml now groups by concept."""

import dataclasses
from pathlib import Path

import pytest

from sed_utils.config import ConfigError, load_config, parse_override
from sed_utils.config.loader import MOVED

REPO = Path(__file__).resolve().parent.parent


def test_demo_profile_overrides_defaults():
    cfg = load_config("demo")
    assert cfg.profile == "demo"
    assert cfg.synthetic is True
    assert cfg.data_root.name == "demo"
    assert cfg.chunking.hop_seconds == 0.5  # from the profile
    assert cfg.features.hop_length == 160  # from the defaults
    assert cfg.run_dir == cfg.runs_root / "demo"
    assert (cfg.scenes.test, cfg.scenes.valid) == (50, 50)  # from the profile
    assert cfg.models["chunk"].epochs == 3 and cfg.models["chunk"].batch_size == 32  # profile
    assert cfg.models["frame"].batch_size == 16 and cfg.models["frame"].weak_weight == 0.5  # defaults


def test_each_model_kind_has_its_own_settings_and_shares_train():
    cfg = load_config("full", ["models.frame.epochs=2", "train.lr=0.01"])
    assert sorted(cfg.models) == ["chunk", "crnn", "frame"]
    assert cfg.models["frame"].epochs == 2 and cfg.models["chunk"].epochs == 8  # one kind changed only
    assert cfg.train.lr == pytest.approx(0.01)  # one optimiser setting for every kind
    assert cfg.paths.checkpoint("frame") == cfg.run_dir / "frame" / "best.pt"


def test_class_map_is_the_mission_map_in_order():
    cfg = load_config("full")
    assert cfg.classes == {
        "Dog": "dog",
        "Cat": "cat",
        "Alarm_bell_ringing": "clock_alarm",
        "Running_water": "pouring_water",
        "Vacuum_cleaner": "vacuum_cleaner",
    }
    assert cfg.desed_labels[0] == "Dog" and cfg.esc50_categories[-1] == "vacuum_cleaner"


def test_folds_are_config_and_tuples():
    cfg = load_config("full", ["folds.train=[1, 2]", "folds.valid=3"])
    assert cfg.folds.train == (1, 2)
    assert cfg.folds.valid == (3,)
    assert set(cfg.folds.scenes_test).isdisjoint(cfg.folds.scenes_train + cfg.folds.scenes_valid)


def test_overrides_are_typed():
    cfg = load_config("demo", ["models.chunk.epochs=2", "train.lr=1e-4", "models.frame.weak_weight=1",
                               "postprocess.tune_with_negatives=true", "postprocess.median_filters=[1]"])
    assert cfg.models["chunk"].epochs == 2 and isinstance(cfg.models["chunk"].epochs, int)
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.postprocess.tune_with_negatives is True
    assert cfg.models["frame"].weak_weight == 1.0 and isinstance(cfg.models["frame"].weak_weight, float)
    assert cfg.postprocess.median_filters == (1,)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.epoch=2", r"unknown key 'train\.epoch'"),
        ("trian.lr=2", "unknown key 'trian'"),
        ("models.chunk.epoch=2", r"unknown key 'models\.chunk\.epoch'"),
        ("models.chunk.epochs=two", "expected an integer"),
        ("train.pretrained=3", "expected true/false"),
        ("models.chunk.epochs", "dotted.key=value"),
    ],
)
def test_bad_overrides_name_the_problem(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config("demo", [override])


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ConfigError, match="available: \\['demo', 'full', 'scenes'\\]"):
        load_config("fast")


def test_env_overrides_data_root_and_mirror(monkeypatch, tmp_path):
    monkeypatch.setenv("SED_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("SED_MIRROR", "file:///somewhere")
    cfg = load_config("full")
    assert cfg.data_root == tmp_path
    assert cfg.download.mirror == "file:///somewhere"


MINIMAL = "defaults:\n  data_root: d\n  runs_root: r\n  seed: 1\n  synthetic: false\n  classes: {Dog: dog}\n"


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    choices = "  test_set: desed\n  scene_recipe: uniform\n"
    (tmp_path / "c.yml").write_text(MINIMAL + choices + "profiles:\n  p: {}\n")
    cfg = load_config("p", path=tmp_path / "c.yml")
    assert cfg.data_root == tmp_path / "d" and cfg.runs_root == tmp_path / "r"
    assert cfg.desed_labels == ["Dog"]


def test_paths_from_the_environment_and_overrides_resolve_like_the_file_s(tmp_path, monkeypatch):
    """One rule, wherever a path comes from: against the config file's folder, not the working directory
    (a relative SED_MIRROR once resolved against the working directory, SED_DATA_ROOT against the file)."""
    (tmp_path / "c.yml").write_text(MINIMAL + "profiles:\n  p: {}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("SED_DATA_ROOT", "data/real")
    monkeypatch.setenv("SED_MIRROR", "../mirror")
    cfg = load_config("p", ["runs_root=out"], path=tmp_path / "c.yml")
    assert cfg.data_root == tmp_path / "data" / "real" and cfg.runs_root == tmp_path / "out"
    assert cfg.download.mirror == str(tmp_path / ".." / "mirror")
    monkeypatch.setenv("SED_MIRROR", "https://example.org/esc50/")  # a URL stays as it is
    assert load_config("p", path=tmp_path / "c.yml").download.mirror == "https://example.org/esc50/"


def test_a_file_without_test_set_and_scene_recipe_gets_their_defaults(tmp_path):
    (tmp_path / "c.yml").write_text(MINIMAL + "profiles:\n  p: {}\n")
    cfg = load_config("p", path=tmp_path / "c.yml")
    assert (cfg.test_set, cfg.scene_recipe) == ("desed", "uniform")
    assert cfg.data_root == tmp_path / "d"


def test_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config("demo", path=tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("defaults: [unclosed")
    with pytest.raises(ConfigError, match=str(bad.name)):
        load_config("demo", path=bad)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config("demo", path=tmp_path)
    latin = tmp_path / "latin.yml"
    latin.write_bytes("defaults: {seed: 1}\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.yml: not UTF-8 text \(byte 25"):
        load_config("demo", path=latin)
    for text in ("defaults: null\n", "defaults: {}\nprofiles: 5\n"):
        bad.write_text(text)
        with pytest.raises(ConfigError, match="bad.yml"):
            load_config("demo", path=bad)


def test_parse_override_nests():
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}


def test_to_dict_is_plain(tmp_path: Path):
    d = load_config("demo").to_dict()
    assert isinstance(d["data_root"], str) and d["models"]["chunk"]["batch_size"] == 32
    assert d["features"]["n_mels"] == 64 and d["scenes"]["valid"] == 50 and "mel" not in d


@pytest.mark.parametrize("given", ['["models.chunk.epochs=2", "seed=3"]', "models.chunk.epochs=2",
                                   ["models.chunk.epochs=2"]])
def test_overrides_as_papermill_passes_them(given):
    """papermill -p hands the notebook a string; a YAML list or a single key=value both work."""
    cfg = load_config("demo", given)
    assert cfg.models["chunk"].epochs == 2
    if "seed" in str(given):
        assert cfg.seed == 3


def test_test_set_picks_the_folds():
    desed = load_config("full")
    assert (desed.test_set, desed.train_folds, desed.valid_folds) == ("desed", (1, 2, 3, 4), (5,))
    scenes = load_config("scenes")
    assert (scenes.test_set, scenes.train_folds, scenes.valid_folds) == ("scenes", (1, 2, 3), (4,))
    assert not set(scenes.folds.scenes_test) & set(scenes.train_folds + scenes.valid_folds)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("test_set=dcase", "test_set must be one of"),
        ("scene_recipe=dense", "scene_recipe must be one of"),
        ("folds.scenes_valid=[4, 5]", r"folds.scenes_valid \[4, 5\] and folds.scenes_test \[5\] overlap"),
        ("folds.valid=[4]", "overlap"),
        ("models.chunk.select_on=epochs", r"models\.chunk\.select_on must be one of"),
        ("train.lr_schedule=step", r"train\.lr_schedule must be one of"),
    ],
)
def test_fold_leaks_and_unknown_choices_are_refused(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config("full", [override])


def test_scenes_test_set_needs_no_desed_download():
    from sed_utils.data.registry import needed_datasets

    assert needed_datasets(load_config("full")) == ["esc50", "desed"]
    assert needed_datasets(load_config("scenes")) == ["esc50"]


def test_config_errors_are_sed_errors_and_value_errors():
    from sed_utils import config
    from sed_utils.core import errors

    assert config.ConfigError is errors.ConfigError  # the old import path still works
    with pytest.raises(errors.SedError):
        load_config("demo", ["train.epoch=2"])
    assert issubclass(errors.ConfigError, ValueError)


@pytest.mark.parametrize(
    "profile, override, key, allowed",
    [
        ("full", "folds.train=[1, 2, 9]", "folds.train", "folds from 1 to 5"),
        ("full", "folds.valid=[]", "folds.valid", "non-empty list"),
        ("full", "models.chunk.epochs=-1", "models.chunk.epochs", "integer >= 1"),
        ("full", "models.chunk.epochs=0", "models.chunk.epochs", "integer >= 1"),
        ("full", "models.frame.epochs=0", "models.frame.epochs", "integer >= 1"),
        ("full", "models.frame.batch_size=0", "models.frame.batch_size", "integer >= 1"),
        ("full", "models.frame.weak_weight=-1", "models.frame.weak_weight", "number >= 0"),
        ("full", "models.chunk.max_train_chunks=-1", "models.chunk.max_train_chunks", "integer >= 0"),
        ("full", "features.n_mels=0", "features.n_mels", "from 1 to 512"),
        ("full", "audio.sample_rate=0", "audio.sample_rate", "from 1000 to 192000"),
        ("full", "postprocess.thresholds=7", "postprocess.thresholds", "thresholds from 0 to 1"),
        ("full", "postprocess.segment_thresholds=[0.5, 1.5]", "postprocess.segment_thresholds",
         "thresholds from 0 to 1"),
        ("full", "postprocess.window_hop_seconds=0", "postprocess.window_hop_seconds", "hop in seconds > 0"),
        ("full", "eval.reference_threshold=7", "eval.reference_threshold", "probability from 0 to 1"),
        ("full", "chunking.hop_seconds=0", "chunking.hop_seconds", "number > 0"),
        ("full", "download.timeout_seconds=-5", "download.timeout_seconds", "seconds > 0"),
        ("full", "download.retries=-1", "download.retries", "from 0 to 100"),
        ("full", "download.stall_seconds=0", "download.stall_seconds", "seconds > 0"),
        ("full", "download.mirror=ftp://example.org/esc", "download.mirror", "http://, https:// or file://"),
        ("full", "features.f_max=9000", "features.f_max", "at most half the sample rate"),
        ("full", "features.win_length=2048", "features.win_length", "at most features.n_fft"),
        ("full", "postprocess.median_filters=4", "postprocess.median_filters", "odd lengths"),
        ("full", "scenes.valid=0", "scenes.valid", "integer >= 1"),
        ("full", "scenes.test=0", "scenes.test", "integer >= 1"),
        ("full", "augment.mix_prob=1.5", "augment.mix_prob", "probability"),
        ("full", "seed=-1", "seed", "integer >= 0"),
        ("full", "seed=abc", "seed", "integer >= 0"),
        ("full", "synthetic=maybe", "synthetic", "true or false"),
        ("scenes", "folds.scenes_train=[1, 2, 3, 4]", "folds.scenes_train", "overlap in fold(s) [4]"),
        ("full", "folds.train=5", "folds.train", "overlap in fold(s) [5]"),
    ],
)
def test_out_of_range_values_are_refused_naming_key_value_and_rule(profile, override, key, allowed):
    """Every case of issue 12's list stops load_config with one ConfigError that names the key, the
    value and what is allowed (before: accepted, or a bare ValueError / TypeError)."""
    with pytest.raises(ConfigError) as info:
        load_config(profile, [override])
    message = str(info.value)
    assert key in message and allowed in message, message


@pytest.mark.parametrize(
    "override, key, shown",
    [
        ("train.lr=.inf", "train.lr", "inf"),
        ("download.timeout_seconds=.inf", "download.timeout_seconds", "inf"),
        ("augment.noise_snr_db=.nan", "augment.noise_snr_db", "nan"),  # its rule allows any number
        ("augment.background_snr_db=-.inf", "augment.background_snr_db", "-inf"),
        ("models.frame.weak_weight=.inf", "models.frame.weak_weight", "inf"),
        ("postprocess.min_durations=[0, .inf]", "postprocess.min_durations", "inf"),
        ("postprocess.thresholds=[.nan]", "postprocess.thresholds", "nan"),
    ],
)
def test_infinite_and_nan_numbers_are_refused(override, key, shown):
    """YAML reads .inf and .nan as floats; a rule like "a number >= 0" would pass inf, and a NaN passes
    no comparison at all: no number of the config may be either."""
    with pytest.raises(ConfigError) as info:
        load_config("full", [override])
    assert f"{key} = " in str(info.value) and shown in str(info.value), str(info.value)


def test_a_nan_is_refused_saying_the_number_must_be_finite():
    with pytest.raises(ConfigError, match="finite"):
        load_config("full", ["augment.noise_snr_db=.nan"])


@pytest.mark.parametrize("override", ["folds.train=[1, 2, x]", "folds.train=[1, 2.5]", "folds.valid=[true]"])
def test_fold_lists_of_non_integers_are_a_config_error(override):
    with pytest.raises(ConfigError, match=r"folds\.\w+: expected a list of integers"):
        load_config("full", [override])


def test_a_single_fold_may_be_written_without_brackets():
    assert load_config("full", ["folds.train=[1, 2, 3]", "folds.valid=4"]).folds.valid == (4,)


def test_every_config_field_has_a_rule():
    """A knob added to a section, or to the model settings (``models.<kind>``, ruled as
    ``models.<field>``), without a rule in RULES fails here, not in a notebook."""
    from sed_utils.config.rules import RULES
    from sed_utils.config.settings import SECTIONS, ModelConfig

    fields = {f"{name}.{f.name}" for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    fields |= {f"models.{f.name}" for f in dataclasses.fields(ModelConfig)}
    assert {"models.epochs", "models.weak_weight", "models.select_on", "features.n_mels"} <= fields
    assert fields - set(RULES) == set(), "fields without a rule"
    assert set(RULES) - fields == set(), "rules for fields that do not exist"


def test_the_shipped_profiles_pass_every_rule():
    for profile in ("demo", "full", "scenes"):
        load_config(profile)


def test_minimum_durations_are_a_list_of_seconds():
    cfg = load_config("scenes", ["postprocess.min_durations=[0, 0.5]"])
    assert cfg.postprocess.min_durations == (0.0, 0.5)
    with pytest.raises(ConfigError, match=r"postprocess\.min_durations: expected a list of numbers"):
        load_config("scenes", ["postprocess.min_durations=[0, x]"])
    with pytest.raises(ConfigError, match=r"postprocess\.min_durations = .* durations >= 0"):
        load_config("scenes", ["postprocess.min_durations=[-0.5]"])


# ---- the sections by concept: sections, model kinds, and the keys of the earlier layout ----------------


@pytest.mark.parametrize("override, section", [
    ("features=null", "features"), ("train=5", "train"), ("scenes=[1, 2]", "scenes"),
    ("postprocess=0.5", "postprocess"), ("models=null", "models"), ("models.chunk=3", "models.chunk")])
def test_a_section_set_to_null_or_a_scalar_is_refused_naming_it(override, section):
    with pytest.raises(ConfigError, match=rf"{section} must be a mapping of keys to values"):
        load_config("demo", [override])


@pytest.mark.parametrize("section", ["train: 5", "models: 3", "models: {chunk: 5}"])
def test_a_section_of_the_file_set_to_a_scalar_is_a_config_error(tmp_path, section):
    (tmp_path / "c.yml").write_text(MINIMAL + f"  test_set: desed\n  {section}\nprofiles:\n  p: {{}}\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config("p", path=tmp_path / "c.yml")


def test_an_unknown_model_kind_is_refused_listing_the_kinds():
    with pytest.raises(ConfigError, match=r"unknown key 'models\.transformer'; known keys here: "
                                          r"\['chunk', 'crnn', 'frame'\]"):
        load_config("demo", ["models.transformer.epochs=1"])


@pytest.mark.parametrize("override", ["models.frame.max_train_chunks=3", "models.frame.select_on=chunks",
                                      "models.chunk.weak_weight=1", "models.chunk.negative_clips=2"])
def test_a_model_section_takes_only_the_keys_config_yml_lists_for_it(override):
    """models.frame has no max_train_chunks in config.yml (the frame model trains on whole scenes):
    setting it would silently do nothing, so it is refused like a typo."""
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"unknown key '{key}'; known keys here"):
        load_config("demo", [override])


#: every key of the earlier layout -> the new key its message must name (None: removed)
NEW_PLACE = {
    "eval.n_scenes": "scenes.test",
    "eval.valid_scenes": "scenes.valid",
    "eval.scenes_seed": "scenes.seed",
    "eval.event_hop_seconds": "postprocess.window_hop_seconds",
    "eval.median_filter_frames": "postprocess.median_filters",
    "eval.threshold": "postprocess.thresholds",
    "eval.per_class_thresholds": "postprocess.thresholds",
    "eval.segment_scores": None,
    "eval.tune_with_negatives": "postprocess.tune_with_negatives",
    "train.epochs": "models.chunk.epochs",
    "train.batch_size": "models.chunk.batch_size",
    "train.train_scenes": "models.chunk.train_scenes",
    "train.max_train_chunks": "models.chunk.max_train_chunks",
    "train.select_on": "models.chunk.select_on",
    "frame": "models.frame",
    "frame.train_scenes": "models.frame.train_scenes",
    "frame.epochs": "models.frame.epochs",
    "frame.batch_size": "models.frame.batch_size",
    "frame.weak_weight": "models.frame.weak_weight",
    "frame.negative_clips": "models.frame.negative_clips",
    "frame.lr": "train.lr",
    "frame.weight_decay": "train.weight_decay",
    "frame.median_filters": "postprocess.median_filters",
    "frame.min_durations": "postprocess.min_durations",
    "train.precision": "models.frame.precision",
}
def _has_key(cfg, dotted: str) -> bool:
    """Whether ``dotted`` (``scenes.test``, ``models.frame.epochs``, ``models.frame``) is a key of ``cfg``."""
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, dict):
            if part not in node:
                return False
            node = node[part]
        elif dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}:
            node = getattr(node, part)
        else:
            return False
    return True


def test_the_moved_keys_table_covers_every_key_of_moved():
    assert set(NEW_PLACE) == set(MOVED), "a key of loader.MOVED without its new place in this test, or back"
    cfg = load_config("full")
    for old, new in NEW_PLACE.items():
        assert new is None or _has_key(cfg, new), (old, new)
        assert not _has_key(cfg, old), old  # the old key really is gone


@pytest.mark.parametrize("old", list(NEW_PLACE))
def test_every_moved_key_is_refused_naming_its_new_place(old):
    value = "{}" if old == "frame" else "1"
    with pytest.raises(ConfigError) as info:
        load_config("demo", [f"{old}={value}"])
    message = str(info.value)
    assert old in message and "groups its keys by concept" in message, message
    new = NEW_PLACE[old]
    assert (new in message) if new else ("was removed" in message), message


def test_moved_keys_still_point_to_each_model():
    """train.epochs went to every model: the message names both kinds' sections."""
    for old in ("train.epochs", "train.batch_size"):
        key = old.split(".")[1]
        pattern = rf"{old} is now per model: models\.chunk\.{key} .*models\.frame\.{key}"
        with pytest.raises(ConfigError, match=pattern):
            load_config("demo", [f"{old}=2"])


@pytest.mark.parametrize("old, new", [("mel.n_mels=32", "features.n_mels"),
                                      ("mel.hop_length=80", "features.hop_length"),
                                      ("mel.top_db=60", "features.top_db")])
def test_mel_keys_are_refused_naming_the_features_key(old, new):
    with pytest.raises(ConfigError, match=rf"{old.split('=')[0]} is now {new}"):
        load_config("demo", [old])


def test_a_profile_with_keys_of_the_earlier_layout_is_refused_naming_the_new_ones(tmp_path):
    base = (REPO / "config.yml").read_text()
    for old, fragment in [("eval: {n_scenes: 20}", "eval.n_scenes is now scenes.test"),
                          ("mel: {n_mels: 32}", "mel.n_mels is now features.n_mels"),
                          ("frame: {epochs: 2}", "frame.epochs is now models.frame.epochs")]:
        path = tmp_path / "c.yml"
        path.write_text(base + f"  old:\n    {old}\n")
        with pytest.raises(ConfigError, match=rf"profiles\.old: {fragment}"):
            load_config("old", path=path)
    path.write_text(base.replace("  features:\n", "  mel:\n", 1))  # the defaults' section of the old name
    with pytest.raises(ConfigError, match=r"unknown keys in defaults: \['mel'\] \(mel is now features\)"):
        load_config("full", path=path)


@pytest.mark.parametrize("section, old", [("eval", "n_scenes: 7"), ("train", "epochs: 3"),
                                          ("features", "n_melz: 32")])
def test_the_defaults_own_keys_are_checked_too(tmp_path, section, old):
    base = (REPO / "config.yml").read_text()
    path = tmp_path / "c.yml"
    path.write_text(base.replace(f"\n  {section}:\n", f"\n  {section}:\n    {old}\n", 1))
    assert path.read_text() != base
    with pytest.raises(ConfigError, match=rf"{section}\.{old.split(':')[0]}"):
        load_config("full", path=path)


def test_the_project_is_found_from_the_working_folder(tmp_path, monkeypatch):
    """A clone (config.yml + notebooks/) holding the working folder wins; SED_PROJECT names one outright;
    elsewhere an editable install's clone is used (a non-editable one falls back to the working folder:
    tests/test_install.py)."""
    from sed_utils.config import find_project_root

    monkeypatch.delenv("SED_PROJECT", raising=False)
    clone = tmp_path / "my-clone"
    (clone / "notebooks" / "deep").mkdir(parents=True)
    (clone / "config.yml").write_text("defaults: {}\n")
    monkeypatch.chdir(clone / "notebooks" / "deep")
    assert find_project_root() == clone.resolve()
    monkeypatch.chdir(tmp_path)  # not a clone: the clone this package is installed from
    assert find_project_root() == Path(__file__).resolve().parent.parent
    monkeypatch.setenv("SED_PROJECT", str(clone))
    assert find_project_root() == clone.resolve()
