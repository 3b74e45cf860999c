"""The one configuration: profiles, overrides, types, and clear errors for typos."""

from pathlib import Path

import pytest

from sed_utils.config import ConfigError, load_config, parse_override


def test_demo_profile_overrides_defaults():
    cfg = load_config("demo")
    assert cfg.profile == "demo"
    assert cfg.synthetic is True
    assert cfg.data_root.name == "demo"
    assert cfg.chunking.hop_seconds == 0.5  # from the profile
    assert cfg.mel.hop_length == 160  # from the defaults
    assert cfg.run_dir == cfg.runs_root / "demo"


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
    cfg = load_config("demo", ["train.epochs=2", "train.lr=1e-4", "eval.per_class_thresholds=false"])
    assert cfg.train.epochs == 2 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.eval.per_class_thresholds is False


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.epoch=2", "unknown key 'epoch'"),
        ("trian.epochs=2", "unknown key 'trian'"),
        ("train.epochs=two", "expected an integer"),
        ("train.pretrained=3", "expected true/false"),
        ("train.epochs", "dotted.key=value"),
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


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "c.yml").write_text(
        "defaults:\n  data_root: d\n  runs_root: r\n  seed: 1\n  synthetic: false\n"
        "  classes: {Dog: dog}\nprofiles:\n  p: {}\n"
    )
    cfg = load_config("p", path=tmp_path / "c.yml")
    assert cfg.data_root == tmp_path / "d" and cfg.runs_root == tmp_path / "r"
    assert cfg.desed_labels == ["Dog"]


def test_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config("demo", path=tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("defaults: [unclosed")
    with pytest.raises(ConfigError, match=str(bad.name)):
        load_config("demo", path=bad)


def test_parse_override_nests():
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}


def test_to_dict_is_plain(tmp_path: Path):
    d = load_config("demo").to_dict()
    assert isinstance(d["data_root"], str) and d["train"]["batch_size"] == 32


@pytest.mark.parametrize("given", ['["train.epochs=2", "seed=3"]', "train.epochs=2", ["train.epochs=2"]])
def test_overrides_as_papermill_passes_them(given):
    """papermill -p hands the notebook a string; a YAML list or a single key=value both work."""
    cfg = load_config("demo", given)
    assert cfg.train.epochs == 2
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
        ("folds.scenes_valid=[4, 5]", r"folds.scenes_valid \[4, 5\] and folds.scenes_test \[5\] overlap"),
        ("folds.valid=[4]", "overlap"),
        ("train.select_on=epochs", "select_on must be one of"),
        ("eval.valid_scenes=0", "select_on is 'scenes' but eval.valid_scenes is 0"),
        ("eval.segment_scores=mean", "segment_scores must be one of"),
    ],
)
def test_fold_leaks_and_unknown_test_sets_are_refused(override, fragment):
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
        ("full", "train.epochs=-1", "train.epochs", "integer >= 1"),
        ("full", "train.epochs=0", "train.epochs", "integer >= 1"),
        ("full", "mel.n_mels=0", "mel.n_mels", "from 1 to 512"),
        ("full", "audio.sample_rate=0", "audio.sample_rate", "from 1000 to 192000"),
        ("full", "eval.threshold=7", "eval.threshold", "probability from 0 to 1"),
        ("full", "chunking.hop_seconds=0", "chunking.hop_seconds", "number > 0"),
        ("full", "download.timeout_seconds=-5", "download.timeout_seconds", "number > 0"),
        ("full", "download.retries=-1", "download.retries", "from 0 to 100"),
        ("full", "download.stall_seconds=0", "download.stall_seconds", "number > 0"),
        ("full", "download.mirror=ftp://example.org/esc", "download.mirror", "http://, https:// or file://"),
        ("full", "mel.f_max=9000", "mel.f_max", "at most half the sample rate"),
        ("full", "mel.win_length=2048", "mel.win_length", "at most mel.n_fft"),
        ("full", "eval.median_filter_frames=4", "eval.median_filter_frames", "odd integer"),
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


@pytest.mark.parametrize("override", ["folds.train=[1, 2, x]", "folds.train=[1, 2.5]", "folds.valid=[true]"])
def test_fold_lists_of_non_integers_are_a_config_error(override):
    with pytest.raises(ConfigError, match=r"folds\.\w+: expected a list of integers"):
        load_config("full", [override])


def test_a_single_fold_may_be_written_without_brackets():
    assert load_config("full", ["folds.train=[1, 2, 3]", "folds.valid=4"]).folds.valid == (4,)


def test_every_config_field_has_a_rule():
    """A knob added to a section without a rule in config_rules.RULES fails here, not in a notebook."""
    import dataclasses

    from sed_utils.config.rules import RULES
    from sed_utils.config.settings import _SECTIONS

    fields = {f"{name}.{f.name}" for name, cls in _SECTIONS.items() for f in dataclasses.fields(cls)}
    assert fields - set(RULES) == set(), "fields without a rule"
    assert set(RULES) - fields == set(), "rules for fields that do not exist"


def test_the_shipped_profiles_pass_every_rule():
    for profile in ("demo", "full", "scenes"):
        load_config(profile)


def test_minimum_durations_are_a_list_of_seconds():
    cfg = load_config("scenes", ["frame.min_durations=[0, 0.5]"])
    assert cfg.frame.min_durations == (0.0, 0.5)
    with pytest.raises(ConfigError, match=r"frame\.min_durations: expected a list of numbers"):
        load_config("scenes", ["frame.min_durations=[0, x]"])
    with pytest.raises(ConfigError, match=r"frame\.min_durations = .* durations >= 0"):
        load_config("scenes", ["frame.min_durations=[-0.5]"])
