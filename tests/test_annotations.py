"""Annotation files (DCASE strong/weak tsv, Audacity labels, Raven selection tables): each layout written
and read back to the same events; the files other tools write read as they are; bad files named with
their line. And ``detect``'s outputs in those layouts: per recording, resumable, read back."""

import io

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sed_utils.cli.runner import main
from sed_utils.core.errors import DatasetError
from sed_utils.labels.annotations import EVENT_COLUMNS, annotations_text, guess_format, read_annotations

EVENTS = pd.DataFrame({"filename": ["a.wav", "a.wav", "b.wav"], "onset": [0.25, 3.5, 1.0],
                       "offset": [1.75, 4.125, 9.5], "event_label": ["Dog", "Cat", "Dog"]})


def _write(path, text):
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize("fmt", ["dcase", "audacity", "raven"])
def test_each_layout_reads_back_what_it_wrote(tmp_path, fmt):
    events = EVENTS[EVENTS["filename"] == "a.wav"] if fmt in ("audacity", "raven") else EVENTS
    files = ["a.wav", "b.wav", "quiet.wav"] if fmt == "dcase" else []
    path = _write(tmp_path / "a.txt", annotations_text(events, fmt, files=files))
    back = read_annotations(path, filename="a.wav")
    assert back.format == fmt and guess_format(path.read_text()) == fmt
    pd.testing.assert_frame_equal(back.events[EVENT_COLUMNS], events.reset_index(drop=True))
    assert back.files == (["a.wav", "b.wav", "quiet.wav"] if fmt == "dcase" else ["a.wav"])  # a negative kept


def test_weak_labels_read_back_as_label_sets(tmp_path):
    path = _write(tmp_path / "weak.tsv", annotations_text(EVENTS, "weak", files=["c.wav"]))
    assert path.read_text() == "filename\tevent_labels\na.wav\tCat,Dog\nb.wav\tDog\nc.wav\t\n"
    back = read_annotations(path)
    assert back.format == "weak" and back.files == ["a.wav", "b.wav", "c.wav"]
    assert back.events.groupby("filename")["event_label"].apply(set).to_dict() == {"a.wav": {"Cat", "Dog"},
                                                                                   "b.wav": {"Dog"}}
    assert back.events["onset"].isna().all()


def test_scores_travel_in_the_dcase_table(tmp_path):
    scored = EVENTS.assign(score=[0.9, 0.25, 0.5])
    back = read_annotations(_write(tmp_path / "e.tsv", annotations_text(scored, "dcase")))
    assert back.events["score"].tolist() == [0.9, 0.25, 0.5]


def test_files_as_the_tools_write_them(tmp_path):
    """Audacity with spectral selections (``\\ low high`` lines); Raven as it saves a table: CRLF, a BOM,
    each selection once per view, the label in a column the user named, a ``Begin File`` column."""
    audacity = _write(tmp_path / "rec.txt", "1.500000\t2.000000\tDog\n\\\t200.000000\t4000.000000\n"
                                            "3.000000\t3.000000\tclick\n")
    back = read_annotations(audacity)
    assert back.events.values.tolist() == [["rec", 1.5, 2.0, "Dog"], ["rec", 3.0, 3.0, "click"]]
    raven = ("\ufeffSelection\tView\tChannel\tBegin File\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
             "High Freq (Hz)\tSpecies\r\n"
             "1\tWaveform 1\t1\tyard.wav\t0.5\t1.25\t0\t8000\tdog\r\n"
             "1\tSpectrogram 1\t1\tyard.wav\t0.5\t1.25\t0\t8000\tdog\r\n"
             "2\tSpectrogram 1\t1\tporch.flac\t4\t6\t100\t3000\tcat\r\n")
    back = read_annotations(_write(tmp_path / "field.Table.1.selections.txt", raven))
    assert back.format == "raven" and back.files == ["yard", "porch"]
    assert back.events.values.tolist() == [["yard", 0.5, 1.25, "dog"], ["porch", 4.0, 6.0, "cat"]]
    one = read_annotations(_write(tmp_path / "kitchen.Table.1.selections.txt",
                                  raven.replace("\tBegin File", "").replace("\tyard.wav", "")
                                  .replace("\tporch.flac", "")))
    assert one.files == ["kitchen"] and len(one.events) == 2  # named after the table, as Raven names it


@pytest.mark.parametrize("name, text, fmt, words", [
    ("a.tsv", "filename\tonset\toffset\tevent_label\na.wav\t1.0\tx\tDog\n", None,
     "line 2: offset 'x' is not a number"),
    ("a.tsv", "filename\tonset\tevent_label\na.wav\t1.0\tDog\n", None, "line 1: the header lacks ['offset']"),
    ("a.tsv", "filename\tonset\toffset\tevent_label\na.wav\t1.0\t2.0\t\n", None,
     "line 2: an event without a label"),
    ("a.txt", "0.5\t1.0\tDog\n1.0\tinf\tCat\n", None, "line 2: end 'inf' is not a finite number"),
    ("a.txt", "0.5\t1.0\n", None, "line 1: a label without text"),
    ("r.txt", "Selection\tView\tBegin Time (s)\tEnd Time (s)\tNotes\n1\tS\t0\t1\tdog\n", None,
     "no label column"),
    ("a.tsv", "\n\n", "dcase", "the file is empty"),
    ("a.txt", "0.5\t1.0\tDog\n", "praat", "unknown annotation format 'praat'"),
])
def test_bad_files_are_named_with_their_line(tmp_path, name, text, fmt, words):
    path = _write(tmp_path / name, text)
    with pytest.raises(DatasetError, match=r"^" + str(path).replace(".", r"\.")) as err:
        read_annotations(path, fmt)
    assert words in str(err.value)


def test_a_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("0.5\t1.0\tchien aboie \xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="labels.txt: not UTF-8 text"):
        read_annotations(path)


def test_one_recording_layouts_refuse_several():
    for fmt in ("audacity", "raven"):
        with pytest.raises(ValueError, match="holds one recording"):
            annotations_text(EVENTS, fmt)


# ---- detect's outputs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def detect_models(tmp_path_factory):
    """An untrained frame model saved as training saves it, with stored post-processing (test_detect's)."""
    from test_detect import _checkpoint, _post

    return {"frame": _checkpoint(tmp_path_factory.mktemp("models") / "frame" / "best.pt", "frame", _post())}


def _recordings(folder, names=("a.wav", "sub/b.wav")):
    rng = np.random.default_rng(0)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, 0.1 * rng.standard_normal(32000).astype(np.float32), 16000)
    return [folder / n for n in names]


def test_per_file_outputs_resume_and_read_back(detect_models, tmp_path, capsys):
    a, b = _recordings(tmp_path / "in")
    base = ["detect", str(tmp_path / "in"), "--checkpoint", str(detect_models["frame"]), "--threshold", "0",
            "--quiet"]
    assert main([*base, "--per-file", "--format", "raven"]) == 0
    tables = [a.parent / "a.Table.1.selections.txt", b.parent / "b.Table.1.selections.txt"]
    assert all(t.is_file() for t in tables)
    assert main([*base, "--out", str(tmp_path / "all.tsv")]) == 0
    combined = read_annotations(tmp_path / "all.tsv").events
    for rec, table in zip((a, b), tables, strict=True):
        got = read_annotations(table, filename=rec.name).events[EVENT_COLUMNS]  # + detect's Score
        want = combined[combined["filename"] == rec.name].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want[EVENT_COLUMNS])  # the same events, in Raven's table
    stamp = tables[0].stat().st_mtime_ns
    tables[1].unlink()  # an interrupted batch: one output missing
    capsys.readouterr()
    assert main([*base[:-1], "--per-file", "--format", "raven", "--skip-existing"]) == 0  # not --quiet
    err = capsys.readouterr().err
    assert "1 recording(s) skipped: their output exists" in err and "1 output(s) written" in err
    assert tables[1].is_file() and tables[0].stat().st_mtime_ns == stamp


def test_scores_are_what_sed_scores_eval_reads(detect_models, tmp_path):
    from sed_scores_eval.base_modules.io import read_sed_scores

    _recordings(tmp_path / "in")
    out = tmp_path / "scores"
    assert main(["detect", str(tmp_path / "in"), "--checkpoint", str(detect_models["frame"]), "--per-file",
                 "--format", "scores", "--out", str(out), "--quiet"]) == 0
    scores = read_sed_scores(out)  # sed_scores_eval's own reader validates the layout
    assert sorted(scores) == ["a", "b"]
    assert list(scores["a"].columns[2:]) == ["Dog", "Cat", "Alarm_bell_ringing", "Running_water",
                                             "Vacuum_cleaner"]
    assert scores["a"]["offset"].iloc[-1] == pytest.approx(2.0, abs=0.1)


def test_output_choices_are_checked_before_any_file(detect_models, tmp_path, capsys):
    _recordings(tmp_path / "in", ("a.wav", "b.wav", "x/a.wav"))
    base = ["detect", str(tmp_path / "in"), "--checkpoint", str(detect_models["frame"]), "--quiet", "--names",
            "path"]
    cases = [
        (base[:-2], "share the name 'a.wav'"),
        ([*base, "--format", "audacity"], "holds one recording and 3 were given"),
        ([*base, "--skip-existing"], "--skip-existing needs --per-file"),
        ([*base, "--per-file", "--out", str(tmp_path / "o")], "would both write"),
        ([*base, "--min-duration", "-1"], "minimum durations must be seconds >= 0"),
        ([*base, "--format", "praat"], "choose one of"),
        ([*base, "--device", "gpu"], "--device 'gpu': not a device torch knows"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        assert words in capsys.readouterr().err, argv
    assert not (tmp_path / "o").exists()


def test_min_duration_drops_short_events_and_a_file_without_events_keeps_its_row(detect_models, tmp_path,
                                                                                 capsys):
    a, _ = _recordings(tmp_path / "in", ("a.wav", "b.wav"))
    argv = ["detect", str(a), "--checkpoint", str(detect_models["frame"]), "--threshold", "0", "--quiet",
            "--device", "cpu"]
    assert main(argv) == 0
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out), sep="\t")) == 5
    assert main([*argv, "--min-duration", "60"]) == 0  # every event is shorter than a minute
    back = capsys.readouterr().out
    assert back == "filename\tonset\toffset\tevent_label\tscore\na.wav\t\t\t\t\n"


def test_quiet_keeps_warnings_and_errors_only(detect_models, tmp_path, capsys):
    """``--quiet``: no progress messages; a note on a file (a warning) and the failures still show."""
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    argv = ["detect", str(tmp_path / "silent.wav"), str(tmp_path / "missing.wav"), "--checkpoint",
            str(detect_models["frame"]), "--out", str(tmp_path / "e.tsv")]
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "[detect] warning: silent.wav: peak -inf dBFS" in err and "1 file(s) failed" in err
    assert "frame model" not in err and "post-processing" not in err and "events from" not in err
    assert main(argv) == 1
    assert "[detect] frame model" in capsys.readouterr().err  # the default shows them
    assert main(["-q", *argv]) == 1 and "frame model" not in capsys.readouterr().err  # sed-utils -q detect


def test_an_empty_audacity_track_is_a_recording_without_events(tmp_path):
    back = read_annotations(_write(tmp_path / "quiet.txt", ""))
    assert back.format == "audacity" and back.files == ["quiet"] and back.events.empty
