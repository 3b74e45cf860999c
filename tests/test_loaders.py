"""ESC-50 metadata and DESED strong-label loaders: what they accept, and what they refuse and how."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sed_utils.core.errors import DatasetError
from sed_utils.data.desed import DESED_LABELS, StrongLabelSet, load_desed
from sed_utils.data.esc50 import add_target_labels, load_esc50_meta
from sed_utils.data.label_stats import (
    cooccurrence_matrix,
    desed_event_counts,
    duration_summary,
    esc50_class_counts,
    event_durations,
    events_per_clip,
    labels_present,
    overlap_seconds,
)
from sed_utils.plots.explore import (
    plot_class_counts,
    plot_cooccurrence,
    plot_event_durations,
    plot_events_per_clip,
    plot_waveform_and_logmel,
)

HEADER = "filename,fold,target,category,esc10,src_file,take\n"
ROWS = [
    "1-100-A-0.wav,1,0,dog,True,100,A",
    "2-200-A-5.wav,2,5,cat,False,200,A",
    "3-300-A-10.wav,3,10,rain,True,300,A",
    "4-400-B-37.wav,4,37,clock_alarm,False,400,B",
]
CLASSES = {"Dog": "dog", "Cat": "cat", "Alarm_bell_ringing": "clock_alarm"}


def _esc50(tmp_path: Path, rows: list[str] = ROWS, header: str = HEADER, audio: bool = True) -> Path:
    root = tmp_path / "ESC-50-master"
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    (root / "meta" / "esc50.csv").write_text(header + "\n".join(rows) + "\n")
    if audio:
        for row in rows:
            (root / "audio" / row.split(",")[0]).touch()
    return root


# ---------------------------------------------------------------------------------------------- ESC-50
def test_esc50_meta_columns_types_and_paths(tmp_path):
    root = _esc50(tmp_path)
    meta = load_esc50_meta(root)
    assert list(meta.columns) == [*HEADER.strip().split(","), "path"]
    assert meta["fold"].tolist() == [1, 2, 3, 4] and meta["fold"].dtype.kind == "i"
    assert meta["esc10"].tolist() == [True, False, True, False]
    assert meta["src_file"].tolist() == ["100", "200", "300", "400"]
    assert all(p.is_absolute() and p.is_file() for p in meta["path"])
    assert meta["path"][1] == (root / "audio" / "2-200-A-5.wav").resolve()


def test_esc50_flac_copy_is_used_when_the_wav_is_absent(tmp_path):
    root = _esc50(tmp_path, audio=False)
    for row in ROWS:
        (root / "audio" / row.split(",")[0].replace(".wav", ".flac")).touch()
    assert {p.suffix for p in load_esc50_meta(root)["path"]} == {".flac"}


def test_esc50_missing_csv(tmp_path):
    with pytest.raises(DatasetError, match=r"esc50\.csv.*not found"):
        load_esc50_meta(tmp_path / "nothing")


def test_esc50_missing_column(tmp_path):
    root = _esc50(tmp_path, rows=[r.rsplit(",", 1)[0] for r in ROWS], header=HEADER.replace(",take", ""))
    with pytest.raises(DatasetError, match=r"esc50\.csv: missing column\(s\) \['take'\]"):
        load_esc50_meta(root)


def test_esc50_fold_not_integer_names_the_line(tmp_path):
    rows = list(ROWS)
    rows[2] = rows[2].replace(",3,10,", ",three,10,")
    with pytest.raises(DatasetError, match=r"esc50\.csv: column 'fold' .* line\(s\) \[4\]"):
        load_esc50_meta(_esc50(tmp_path, rows=rows))


@pytest.mark.parametrize("fold", ["9", "0", "-1"])
def test_esc50_fold_outside_1_to_5_names_the_line(tmp_path, fold):
    """Issue 12: a clip of fold 9 was accepted and silently dropped out of every split."""
    rows = list(ROWS)
    rows[1] = rows[1].replace(",2,5,", f",{fold},5,")
    expected = rf"column 'fold' must be 1-5 .* got \[{fold}\] on line\(s\) \[3\]"
    with pytest.raises(DatasetError, match=expected):
        load_esc50_meta(_esc50(tmp_path, rows=rows))


def test_esc50_missing_audio_is_listed(tmp_path):
    root = _esc50(tmp_path)
    (root / "audio" / "2-200-A-5.wav").unlink()
    (root / "audio" / "4-400-B-37.wav").unlink()
    with pytest.raises(DatasetError, match=r"2 listed audio file\(s\) missing") as err:
        load_esc50_meta(root)
    assert "2-200-A-5.wav" in str(err.value) and "4-400-B-37.wav" in str(err.value)
    assert "1-100-A-0.wav" not in str(err.value)


def test_add_target_labels_one_hot_and_negatives(tmp_path):
    meta = add_target_labels(load_esc50_meta(_esc50(tmp_path)), CLASSES)
    assert meta[list(CLASSES)].values.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert meta["is_target"].tolist() == [True, True, False, True]
    assert meta["is_target"].dtype == bool


def test_add_target_labels_does_not_modify_its_input_and_warns_on_unknown_category(tmp_path):
    meta = load_esc50_meta(_esc50(tmp_path))
    with pytest.warns(UserWarning, match="pouring_water"):
        out = add_target_labels(meta, {**CLASSES, "Running_water": "pouring_water"})
    assert "Dog" not in meta.columns
    assert out["Running_water"].sum() == 0


# ---------------------------------------------------------------------------------------------- DESED
TARGETS = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]


def _desed(tmp_path: Path, lines: list[str], audio: list[str]) -> tuple[Path, Path]:
    tsv = tmp_path / "public.tsv"
    tsv.write_text("filename\tonset\toffset\tevent_label\n" + "".join(line + "\n" for line in lines))
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    for name in audio:
        (audio_dir / name).touch()
    return tsv, audio_dir


GOOD = [
    "a.wav\t0.500\t2.000\tDog",
    "a.wav\t1.000\t3.250\tSpeech",
    "a.wav\t0.100\t0.400\tCat",
    "b.wav\t0.000\t10.000\tFrying",  # only non-target events
    "c.wav\t\t\t",  # DESED's "no events" row
    "d.wav\t9.000\t10.400\tVacuum_cleaner",  # slightly past the end: clipped
]


def test_desed_valid_file(tmp_path):
    tsv, audio_dir = _desed(tmp_path, GOOD, ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"])
    ds = load_desed(tsv, audio_dir, TARGETS)
    assert isinstance(ds, StrongLabelSet) and ds.labels == TARGETS
    # e.wav is not in the tsv: a clip with no events, still part of the set
    assert ds.files == ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]
    assert ds.events.to_dict("records") == [
        {"filename": "a.wav", "onset": 0.1, "offset": 0.4, "event_label": "Cat"},
        {"filename": "a.wav", "onset": 0.5, "offset": 2.0, "event_label": "Dog"},
        {"filename": "d.wav", "onset": 9.0, "offset": 10.0, "event_label": "Vacuum_cleaner"},
    ]
    assert len(ds.all_events) == 5 and set(ds.all_events["event_label"]) >= {"Speech", "Frying"}
    assert ds.files_without_target_events == ["b.wav", "c.wav", "e.wav"]
    assert ds.n_clipped == 1 and ds.problems == [] and ds.clip_seconds == 10.0
    assert ds.path("a.wav") == audio_dir / "a.wav"
    assert ds.events_of("a.wav")["event_label"].tolist() == ["Cat", "Dog"]
    assert len(ds.events_of("a.wav", all_labels=True)) == 3


@pytest.mark.parametrize(
    "bad, what",
    [
        ("a.wav\t3.000\t2.000\tDog", "offset 2.0 is not after onset 3.0"),
        ("a.wav\t2.000\t2.000\tDog", "offset 2.0 is not after onset 2.0"),
        ("a.wav\t-0.500\t2.000\tDog", "negative onset"),
        ("a.wav\t0.500\t2.000\tDoggo", "unknown event_label 'Doggo'"),
        ("a.wav\tnan\t2.000\tDog", "not finite"),
        ("a.wav\t\t2.000\tDog", "not numbers"),
        ("a.wav\t0.5\t15.000\tDog", "far past the clip end"),
        ("a.wav\t10.0\t10.5\tDog", "at or past the clip end"),
        ("zzz.wav\t0.500\t2.000\tDog", "zzz.wav: audio file missing"),
    ],
)
def test_desed_bad_row_strict_names_file_and_line(tmp_path, bad, what):
    lines = ["a.wav\t0.000\t1.000\tCat", "a.wav\t4.000\t5.000\tDog", bad]  # bad row is on line 4
    tsv, audio_dir = _desed(tmp_path, lines, ["a.wav"])
    with pytest.raises(DatasetError) as err:
        load_desed(tsv, audio_dir, TARGETS)
    msg = str(err.value)
    assert str(tsv) in msg and ("line 4: " in msg or "line(s) 4: " in msg)
    assert what in msg


def test_desed_non_strict_reports_and_excludes_bad_rows(tmp_path):
    lines = [
        "a.wav\t0.000\t1.000\tCat",
        "a.wav\t3.000\t2.000\tDog",  # line 3
        "zzz.wav\t0.500\t2.000\tDog",  # line 4
        "zzz.wav\t2.500\t3.000\tCat",  # line 5
        "b.wav\t1.000\t2.000\tUnicorn",  # line 6
    ]
    tsv, audio_dir = _desed(tmp_path, lines, ["a.wav", "b.wav"])
    ds = load_desed(tsv, audio_dir, TARGETS, strict=False)
    assert ds.events[["filename", "event_label"]].values.tolist() == [["a.wav", "Cat"]]
    assert ds.files == ["a.wav", "b.wav"]  # b.wav stays: its audio exists, only its row was bad
    assert len(ds.problems) == 3
    assert ds.problems[0].startswith("line 3: a.wav: offset")
    assert ds.problems[1].startswith("line(s) 4, 5: zzz.wav: audio file missing")
    assert ds.problems[2].startswith("line 6: b.wav: unknown event_label 'Unicorn'")


def test_desed_all_problems_in_one_error(tmp_path):
    lines = ["a.wav\t3.000\t2.000\tDog", "a.wav\t-1\t2.000\tCat"]
    tsv, audio_dir = _desed(tmp_path, lines, ["a.wav"])
    with pytest.raises(DatasetError, match=r"2 bad row\(s\)") as err:
        load_desed(tsv, audio_dir, TARGETS)
    assert "line 2" in str(err.value) and "line 3" in str(err.value)


def test_desed_missing_tsv_column_folder_and_label(tmp_path):
    tsv, audio_dir = _desed(tmp_path, GOOD, ["a.wav"])
    with pytest.raises(DatasetError, match="nope.tsv: DESED label file not found"):
        load_desed(tmp_path / "nope.tsv", audio_dir, TARGETS)
    with pytest.raises(DatasetError, match="DESED audio folder not found"):
        load_desed(tsv, tmp_path / "no_audio", TARGETS)
    with pytest.raises(DatasetError, match="not DESED labels"):
        load_desed(tsv, audio_dir, ["Dog", "Horse"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("filename\tonset\tevent_label\na.wav\t1\tDog\n")
    with pytest.raises(DatasetError, match=r"bad.tsv: missing column\(s\) \['offset'\]"):
        load_desed(bad, audio_dir, TARGETS)


def test_desed_labels_constant():
    assert len(DESED_LABELS) == 10 and set(TARGETS) <= set(DESED_LABELS)


# ---------------------------------------------------------------------------------------------- explore
def _events(*rows: tuple[str, float, float, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


HAND = _events(
    ("a.wav", 0.0, 2.0, "Dog"),
    ("a.wav", 1.0, 4.0, "Cat"),
    ("a.wav", 3.0, 5.0, "Dog"),  # a second Dog: overlaps Cat 3-4, and the first Dog not at all
    ("b.wav", 0.0, 10.0, "Speech"),
    ("b.wav", 2.0, 3.0, "Cat"),
    ("c.wav", 5.0, 6.0, "Dog"),
)


def test_cooccurrence_matrix_by_hand():
    m = cooccurrence_matrix(HAND, ["Dog", "Cat", "Speech", "Blender"])
    # clips: Dog {a, c}, Cat {a, b}, Speech {b}; Blender nowhere
    assert m.values.tolist() == [[2, 1, 0, 0], [1, 2, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert list(m.index) == list(m.columns) == ["Dog", "Cat", "Speech", "Blender"]


def test_overlap_seconds_by_hand():
    m = overlap_seconds(HAND, ["Dog", "Cat", "Speech"])
    # Dog active 0-2, 3-5 (a) and 5-6 (c) = 5 s; Cat 1-4 (a) + 2-3 (b) = 4 s; Speech 10 s
    # Dog&Cat in a: [1,2] + [3,4] = 2 s; Cat&Speech in b: 1 s; Dog&Speech: 0
    assert m.values.tolist() == [[5.0, 2.0, 0.0], [2.0, 4.0, 1.0], [0.0, 1.0, 10.0]]


def test_overlap_seconds_merges_overlapping_events_of_one_label():
    m = overlap_seconds(_events(("a.wav", 0.0, 2.0, "Dog"), ("a.wav", 1.0, 3.0, "Dog")), ["Dog"])
    assert m.loc["Dog", "Dog"] == 3.0


def test_event_counts_durations_and_events_per_clip():
    counts = desed_event_counts(HAND, ["Dog", "Cat", "Blender"])
    assert counts.loc["Dog"].tolist() == [3, 2, 5.0] and counts.loc["Blender"].tolist() == [0, 0, 0.0]
    assert event_durations(HAND).tolist() == [2.0, 3.0, 2.0, 10.0, 1.0, 1.0]
    per_clip = events_per_clip(HAND, ["a.wav", "b.wav", "c.wav", "d.wav"])
    assert per_clip.to_dict() == {"a.wav": 3, "b.wav": 2, "c.wav": 1, "d.wav": 0}


def test_esc50_class_counts_targets_first(tmp_path):
    meta = load_esc50_meta(_esc50(tmp_path))
    counts = esc50_class_counts(meta, CLASSES)
    assert counts["category"].tolist() == ["dog", "cat", "clock_alarm", "rain"]
    assert counts["is_target"].tolist() == [True, True, True, False]
    assert counts["label"].tolist() == ["Dog", "Cat", "Alarm_bell_ringing", ""]
    assert counts["clips"].tolist() == [1, 1, 1, 1]


def test_plots_return_figures_with_the_events_drawn():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    labels = ["Dog", "Cat"]
    figs = [
        plot_class_counts(pd.Series({"Dog": 3, "Cat": 2, "Speech": 1}), highlight=labels),
        plot_event_durations(HAND, labels),
        plot_events_per_clip(events_per_clip(HAND, ["a.wav", "b.wav", "z.wav"])),
        plot_cooccurrence(HAND, labels),
    ]
    audio = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    fig = plot_waveform_and_logmel(audio, 16000, HAND[HAND["filename"] == "a.wav"], title="a", labels=labels)
    wave_ax, spec_ax, lane_ax = fig.axes
    assert not spec_ax.patches and not spec_ax.collections and not spec_ax.texts  # nothing over the image
    assert spec_ax.get_ylabel() == "frequency (Hz)"
    assert sum(len(c.get_paths()) for c in lane_ax.collections) == 3  # one bar per event, in the lane
    assert [t.get_text() for t in lane_ax.get_yticklabels()] == ["Dog", "Cat"]
    assert spec_ax.get_xlim() == lane_ax.get_xlim() == (0.0, 1.0)
    # the figure shows the model's own front end (torchaudio log-mel, dB re 1.0), not another log-mel
    from sed_utils.config import MelConfig
    from sed_utils.features.logmel import build_logmel

    with torch.inference_mode():
        want = build_logmel(MelConfig(), 16000)(torch.from_numpy(audio)).numpy()
    np.testing.assert_array_equal(np.asarray(spec_ax.images[0].get_array()), want)
    for f in [*figs, fig]:
        assert isinstance(f, matplotlib.figure.Figure)
        plt.close(f)


def test_labels_present_and_duration_summary():
    assert labels_present(HAND, ["Cat", "Dog", "Blender"]) == ["Cat", "Dog", "Blender", "Speech"]
    summary = duration_summary(HAND, ["Dog", "Cat", "Blender"])
    assert summary.loc["Dog"].tolist() == [3, 1.0, 2.0, 2.0]  # durations 2, 2, 1
    assert summary.loc["Cat"].tolist() == [2, 1.0, 2.0, 3.0]
    assert summary.loc["Blender", "events"] == 0


def test_clip_browser_shows_audio_figure_and_events_and_follows_the_dropdown(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from sed_utils.io.audio import write_wav
    from sed_utils.plots.explore import clip_browser

    lines = ["a.wav\t0.100\t0.500\tDog", "a.wav\t0.200\t0.900\tSpeech"]
    tsv, audio_dir = _desed(tmp_path, lines, [])
    for name in ("a.wav", "b.wav"):
        write_wav(audio_dir / name, 0.1 * np.sin(np.arange(8000) * 0.2), 8000)
    ds = load_desed(tsv, audio_dir, TARGETS)
    box = clip_browser(ds, 8000)
    dropdown, out = box.children
    assert [v for _, v in dropdown.options] == ["a.wav", "b.wav"]
    assert "(2 events)" in dropdown.options[0][0] and "(0 events)" in dropdown.options[1][0]
    kinds = [set(o["data"]) for o in out.outputs]
    assert len(kinds) == 3  # player, figure, event table
    assert "text/html" in kinds[0] and "image/png" in kinds[1] and "text/html" in kinds[2]
    dropdown.value = "b.wav"
    assert len(out.outputs) == 2  # no events: no table
