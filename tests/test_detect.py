"""``sed_utils.detect`` and ``python -m sed_utils detect`` on generated audio (notebook 09).

Most tests use an untrained model, saved as a real checkpoint (format 3) with stored post-processing:
what they check is the plumbing (formats, rates, channels, padding, bad files, outputs), and with
threshold 0 every class is active everywhere, so the expected events are known exactly. The slow
tests train a small frame model on beeps with the package's training loop and check that it finds a
beep where it is, and run an hour-long file with the memory measured.
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import sed_utils
from sed_utils.cli.runner import main
from sed_utils.config import MelConfig, RunPaths
from sed_utils.core.errors import AudioError, CheckpointError
from sed_utils.detection import detect, detect_files, find_checkpoint, post_processing_of
from sed_utils.detection.output import events_text
from sed_utils.labels.grid import PostProcessing
from sed_utils.models import build_detector, load_trained, save_checkpoint, store_post_processing

LABELS = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]
REPO = Path(__file__).resolve().parent.parent
WINDOW = {"chunk": 1.0, "frame": 10.0}


def _post(chosen_on: str = "a test", **per_class) -> PostProcessing:
    """A post-processing as the evaluation stores it: thresholds 0.5, filters 3, no minimum duration."""
    n = len(LABELS)
    values = {"thresholds": (0.5,) * n, "median_filters": (3,) * n, "min_durations": (0.0,) * n,
              "segment_thresholds": (0.5,) * n, **{k: tuple(v) for k, v in per_class.items()}}
    return PostProcessing(tuple(LABELS), chosen_on=chosen_on, **values)


def _checkpoint(path: Path, kind: str, post: PostProcessing | None = None) -> Path:
    torch.manual_seed(0)
    d = build_detector(kind, LABELS, MelConfig(), 16000, WINDOW[kind], np.full(64, -40.0, np.float32), 10.0)
    save_checkpoint(path, d, config={}, epoch=1, best_score=0.5, complete=True)
    if post is not None:
        store_post_processing(path, post)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    run = RunPaths(root / "run")  # the layout training writes: runs/<profile>/<kind>/best.pt
    frame = _checkpoint(run.checkpoint("frame"), "frame", _post())
    chunk = _checkpoint(run.checkpoint("chunk"), "chunk", _post("the chunk test"))
    return {"run": run.root, "frame": frame, "chunk": chunk}


def _noise(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    x = 0.1 * np.random.default_rng(seed).standard_normal((int(seconds * sr), channels))
    return x.astype(np.float32)


# every format and sample layout the issue lists: (file, format, subtype, rate, channels, seconds)
GOOD = [("u8.wav", "WAV", "PCM_U8", 16000, 1, 2.0), ("s16.wav", "WAV", "PCM_16", 44100, 2, 2.5),
        ("s24.wav", "WAV", "PCM_24", 48000, 1, 2.0), ("s32.wav", "WAV", "PCM_32", 22050, 3, 1.5),
        ("float.wav", "WAV", "FLOAT", 48000, 2, 2.0), ("clip.flac", "FLAC", "PCM_16", 44100, 2, 3.0),
        ("clip.ogg", "OGG", "VORBIS", 48000, 2, 2.0), ("clip.mp3", "MP3", "MPEG_LAYER_III", 44100, 2, 2.0),
        ("short.wav", "WAV", "PCM_16", 44100, 1, 0.3)]


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    for k, (name, fmt, sub, sr, ch, sec) in enumerate(GOOD):
        sf.write(folder / name, _noise(sec, sr, ch, seed=k), sr, format=fmt, subtype=sub)
    return folder


def test_every_format_rate_and_layout_gives_the_events_of_threshold_0(models, good_files, tmp_path, capsys):
    out = tmp_path / "events.tsv"
    code = main(["detect", str(good_files), "--checkpoint", str(models["frame"]), "--threshold", "0",
                 "--out", str(out)])  # not --quiet: the progress messages are read below
    assert code == 0
    events = pd.read_csv(out, sep="\t")
    assert list(events.columns) == ["filename", "onset", "offset", "event_label", "score"]
    # threshold 0: every class active from start to end, one event per class per file
    assert len(events) == len(GOOD) * len(LABELS)
    for name, *_, seconds in GOOD:
        mine = events[events["filename"].str.endswith(name)]
        assert sorted(mine["event_label"]) == sorted(LABELS), name
        assert (mine["onset"] == 0).all() and np.allclose(mine["offset"], seconds, atol=0.002), name
    err = capsys.readouterr().err
    assert "short.wav: 0.30 s is shorter than 1 s: zero-padded" in err
    source = "chosen on a test (stored in the checkpoint), with the caller's overrides"  # --threshold 0
    assert f"[detect] post-processing: {source}" in err
    # the DCASE layout reads back into sed_eval
    import sed_eval  # noqa: F401  (dcase_util comes with it)
    from dcase_util.containers import MetaDataContainer

    back = MetaDataContainer().load(filename=str(out), file_format="CSV", delimiter="\t")
    assert len(back) == len(events) and set(back.unique_event_labels) == set(LABELS)


def test_block_reading_gives_what_one_read_gives(good_files):
    """read_recording decodes and resamples block by block; the result must be the one-shot read's."""
    from sed_utils.io.audio import read_audio, read_recording

    for name, fmt, sub, sr, ch, _ in GOOD:
        rec = read_recording(good_files / name, 16000, block_frames=4096)
        assert (rec.native_rate, rec.channels, rec.format) == (sr, ch, f"{fmt} {sub}"), name
        np.testing.assert_allclose(rec.audio, read_audio(good_files / name, 16000), atol=1e-6, err_msg=name)


def test_array_input_and_file_input_agree(models, tmp_path):
    x = _noise(4.0, 16000)[:, 0]
    sf.write(tmp_path / "x.wav", x, 16000, subtype="FLOAT")
    a = detect(tmp_path / "x.wav", models["frame"])
    b = sed_utils.detect(x, models["frame"], sample_rate=16000, filename="x.wav")
    assert sed_utils.detect is detect
    assert np.array_equal(a.scores, b.scores) and a.events.equals(b.events)
    assert a.bounds[-1] == pytest.approx(4.0) and a.scores.shape == (50, 5)  # 4 s / 80 ms
    assert a.labels == LABELS and a.sample_rate == 16000 and a.seconds == pytest.approx(4.0)
    with pytest.raises(ValueError, match="sample_rate"):
        detect(x, models["frame"])


def test_the_chunk_model_is_read_as_windows_at_the_stored_hop(models):
    trained = load_trained(models["chunk"])
    det = detect(_noise(3.0, 16000)[:, 0], trained, sample_rate=16000, thresholds=0.0)
    assert det.post.window_hop_seconds == 0.25
    # windows every 0.25 s, each standing for the hop around its centre; the last ends where the audio does
    np.testing.assert_allclose(np.diff(det.bounds[1:-1]), 0.25)
    assert det.bounds[0] == 0.0 and det.bounds[-1] == pytest.approx(3.0) and det.scores.shape[1] == 5
    assert len(det.events) == 5 and np.allclose(det.events["offset"], 3.0)


def test_thresholds_come_from_the_checkpoint_and_can_be_overridden(models):
    trained = load_trained(models["frame"])
    post, source = post_processing_of(trained)
    assert post == _post() and post.thresholds == (0.5,) * 5
    assert source == "chosen on a test (stored in the checkpoint)"
    post, source = post_processing_of(trained, thresholds={"Dog": 0.2}, median_filters=1)
    assert post.thresholds == (0.2, 0.5, 0.5, 0.5, 0.5) and post.median_filters == (1,) * 5
    assert post.min_durations == (0.0,) * 5 and post.chosen_on == "a test"  # the rest stays as stored
    assert source.endswith("with the caller's overrides")
    post, _ = post_processing_of(trained, thresholds=[0.1, 0.2, 0.3, 0.4, 0.6])
    assert post.thresholds == (0.1, 0.2, 0.3, 0.4, 0.6)
    with pytest.raises(ValueError, match="unknown class"):
        post_processing_of(trained, thresholds={"Bird": 0.2})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        post_processing_of(trained, thresholds=1.5)
    with pytest.raises(ValueError, match="odd numbers of frames >= 1"):
        post_processing_of(trained, median_filters=0)
    with pytest.raises(ValueError, match="3 values for 5 classes"):
        post_processing_of(trained, thresholds=[0.1, 0.2, 0.3])


def test_a_detection_says_where_its_post_processing_came_from_and_notes_only_the_file(models):
    """Every model kind stores one post-processing (the evaluation's): the source is reported once per
    detection, the notes hold what concerns the file itself (here: the padding of a short clip)."""
    for kind, chosen_on in (("chunk", "the chunk test"), ("frame", "a test")):
        trained = load_trained(models[kind])
        noise = 0.05 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)  # peak ~ -14 dBFS
        det = detect(noise, trained, sample_rate=16000)
        assert det.source == f"chosen on {chosen_on} (stored in the checkpoint)" and det.notes == [], kind
        assert det.post == trained.info.post_processing, kind
        short = detect(noise[:8000], trained, sample_rate=16000, thresholds=0.3)
        assert short.source.endswith("with the caller's overrides"), kind
        assert short.notes == ["0.50 s is shorter than 1 s: zero-padded to that length"], kind


def test_a_run_folder_picks_the_frame_model_unless_told(models, tmp_path):
    assert find_checkpoint(models["run"]) == models["frame"]
    assert find_checkpoint(models["run"], "frame") == models["frame"]
    assert find_checkpoint(models["run"], "chunk") == models["chunk"]
    assert find_checkpoint(models["chunk"]) == models["chunk"]  # a file is itself
    assert find_checkpoint(models["frame"].parent) == models["frame"]  # a folder holding best.pt
    with pytest.raises(FileNotFoundError, match="notebook 05"):
        find_checkpoint(models["run"] / "frame", "chunk")
    with pytest.raises(ValueError, match=r"kind must be one of \['chunk', 'frame'"):
        find_checkpoint(models["run"], "transformer")
    with pytest.raises(FileNotFoundError, match="no such checkpoint file or run folder"):
        find_checkpoint(tmp_path / "nowhere")
    # a run with the chunk model only uses it
    only = RunPaths(tmp_path / "only_chunk")
    only.model_dir("chunk").mkdir(parents=True)
    only.checkpoint("chunk").write_bytes(models["chunk"].read_bytes())
    assert find_checkpoint(only.root) == only.checkpoint("chunk")
    with pytest.raises(FileNotFoundError, match="notebook 08"):
        find_checkpoint(only.root, "frame")


def _bad_files(folder: Path) -> dict[str, str]:
    """name -> the words its error must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("not audio at all, just text " * 20)
    nan = _noise(1.0, 16000)
    nan[5000] = np.nan
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(folder / "inf.wav", np.full(8000, np.inf, np.float32), 16000, subtype="FLOAT")
    sf.write(folder / "full.wav", _noise(2.0, 16000), 16000, subtype="PCM_16")
    data = (folder / "full.wav").read_bytes()
    (folder / "cut.wav").write_bytes(data[: len(data) // 2])
    (folder / "full.wav").unlink()
    sf.write(folder / "full.flac", _noise(3.0, 44100), 44100)
    (folder / "cut.flac").write_bytes((folder / "full.flac").read_bytes()[:3000])
    (folder / "full.flac").unlink()
    sf.write(folder / "nosamples.wav", np.zeros(0, np.float32), 16000)
    sf.write(folder / "full.mp3", _noise(6.0, 16000), 16000, format="MP3")
    (folder / "cut.mp3").write_bytes((folder / "full.mp3").read_bytes()[:12000])  # about a third
    (folder / "full.mp3").unlink()
    return {"cut.mp3": "truncated MP3: its header declares 6.00 s",
            "empty.wav": "empty (0 bytes)", "notes.wav": "not an audio file", "nan.wav": "NaN or infinite",
            "inf.wav": "NaN or infinite", "cut.wav": "truncated WAV", "cut.flac": "decoding failed",
            "nosamples.wav": "no samples"}


def test_bad_files_are_named_with_their_reason_and_do_not_stop_the_batch(models, tmp_path, capsys):
    expected = _bad_files(tmp_path / "in")
    sf.write(tmp_path / "in" / "good.wav", _noise(2.0, 16000), 16000)
    out = tmp_path / "events.json"
    code = main(["detect", str(tmp_path / "in"), str(tmp_path / "missing.wav"), "--run", str(models["run"]),
                 "--threshold", "0", "--format", "json", "--out", str(out), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{len(expected) + 1} file(s) failed" in err
    for name, words in expected.items():
        line = next(x for x in err.splitlines() if x.strip().startswith(str(tmp_path / "in" / name)))
        assert words in line, (name, line)
    assert "missing.wav: no such file or folder" in err
    records = json.loads(out.read_text())  # the file that worked is written, and only it
    assert {r["filename"] for r in records} == {"good.wav"} and len(records) == 5  # named as DESED does
    for name, words in expected.items():  # the API raises the same errors
        with pytest.raises(AudioError, match=words.split(" (")[0]):
            detect(tmp_path / "in" / name, models["frame"])
    batch = detect_files([tmp_path / "in", tmp_path / "missing.wav"], models["frame"], progress=False)
    assert len(batch.detections) == 1 and len(batch.failures) == len(expected) + 1  # the API's batch too


def test_when_every_file_fails_no_output_is_left(models, tmp_path, capsys):
    _bad_files(tmp_path / "in")
    out = tmp_path / "events.tsv"
    assert main(["detect", str(tmp_path / "in" / "*.wav"), "--checkpoint", str(models["frame"]),
                 "--out", str(out), "--quiet"]) == 1
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    assert "nothing written" in capsys.readouterr().err


def test_the_output_is_replaced_atomically(models, tmp_path, monkeypatch):
    """The events file appears whole or not at all: an old one stays intact when the write fails."""
    from sed_utils.core import atomic

    sf.write(tmp_path / "a.wav", _noise(1.0, 16000), 16000)
    out = tmp_path / "events.tsv"
    out.write_text("the previous run's events\n")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted)  # atomic looks os.replace up on the os module
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]), "--out", str(out),
                 "--quiet"]) == 130  # Ctrl-C at the worst moment
    monkeypatch.undo()
    assert out.read_text() == "the previous run's events\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "events.tsv"]  # no partial file left
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]), "--out", str(out),
                 "--quiet"]) == 0
    assert out.read_text().startswith("filename\tonset\toffset\tevent_label\tscore")


def test_a_full_disk_fails_the_write_in_one_line_and_keeps_the_old_events(models, tmp_path):
    """The disk fills while the events are written: exit 1, one line naming the file, the previous events
    intact and no partial file. A real write error from the kernel: the child may write files of 100 bytes
    at most (RLIMIT_FSIZE; EFBIG is what ENOSPC is to the writer, an OSError part-way through the file)."""
    import resource
    import signal

    sf.write(tmp_path / "a.wav", _noise(2.0, 16000), 16000)
    out = tmp_path / "events.tsv"
    out.write_text("the previous run's events\n")

    def small_files_only():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process

    done = subprocess.run([sys.executable, "-m", "sed_utils", "detect", str(tmp_path / "a.wav"),
                           "--checkpoint", str(models["frame"]), "--threshold", "0", "--out", str(out),
                           "--quiet"],
                          capture_output=True, text=True, cwd=REPO, timeout=600, preexec_fn=small_files_only)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert errors == [f"[detect] error: cannot write {out}: File too large"], done.stderr
    assert out.read_text() == "the previous run's events\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "events.tsv"]


def test_bad_arguments_and_models_get_clear_errors(models, tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _noise(1.0, 16000), 16000)
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]),
                 "--threshold", "Bird=0.3"]) == 2
    assert "unknown class 'Bird'" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]),
                 "--threshold", "Dog=high"]) == 2
    assert "'high' is not a number" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]),
                 "--format", "xml"]) == 2
    assert "--format 'xml'" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "a.wav"), "--run", str(models["run"]),
                 "--model", "transformer"]) == 2
    assert "kind must be one of" in capsys.readouterr().err
    # a checkpoint never evaluated: no stored post-processing, so thresholds must be given
    bare = _checkpoint(tmp_path / "bare.pt", "frame")
    with pytest.raises(CheckpointError, match=r"holds no post-processing.*notebook 06 or 08"):
        detect(tmp_path / "a.wav", bare)
    given = detect(tmp_path / "a.wav", bare, thresholds=0.5)
    assert given.source == "given" and given.post.median_filters == (1,) * 5
    # checkpoints of earlier formats: 1 (a bare state dict) and 2 (the two stacks)
    old = tmp_path / "old.pt"
    torch.save({"state_dict": {}, "labels": LABELS, "config": {}, "epoch": 1, "valid_macro_f1": 0.5}, old)
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(old)]) == 2
    err = capsys.readouterr().err
    assert "format 1" in err and "re-run notebooks 05 and 08" in err
    two = tmp_path / "two.pt"
    torch.save({"format": "sed-tutorial-detector", "format_version": 2, "state_dict": {}, "labels": LABELS},
               two)
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(two)]) == 2
    err = capsys.readouterr().err
    assert "format 2" in err and "reads format 3" in err and "re-run notebooks 05 and 08" in err


def test_stdout_tsv_and_plots(models, tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _noise(3.0, 16000), 16000)
    sub = tmp_path / "b"
    sub.mkdir()
    sf.write(sub / "a.wav", _noise(2.0, 16000), 16000)  # same name, other folder
    plots = tmp_path / "figs"
    two = ["detect", str(tmp_path / "a.wav"), str(sub / "a.wav"), "--run", str(models["run"])]
    assert main(two) == 2  # by name alone, as DESED names files, the table could not tell them apart
    assert "share the name 'a.wav'" in capsys.readouterr().err and not plots.exists()
    assert main([*two, "--names", "path", "--model", "chunk", "--threshold", "0", "--plot", str(plots)
                 ]) == 0  # by path: both kept
    captured = capsys.readouterr()
    table = pd.read_csv(io.StringIO(captured.out), sep="\t")
    assert set(table["filename"]) == {str(tmp_path / "a.wav"), str(sub / "a.wav")}
    assert sorted(p.name for p in plots.iterdir()) == ["a-2.png", "a.png"]
    assert f"[detect] chunk model {models['chunk']}" in captured.err
    assert "post-processing: chosen on the chunk test (stored in the checkpoint)" in captured.err


def test_threshold_and_filter_overrides_apply_in_order():
    from sed_utils.cli.detect import parse_overrides

    assert parse_overrides([], LABELS, float, "threshold") is None  # nothing given: the stored values
    both = parse_overrides(["0.6", "Dog=0.4"], LABELS, float, "threshold")
    assert both == {"Dog": 0.4, **{label: 0.6 for label in LABELS[1:]}}
    assert parse_overrides(["Dog=0.4", "0.6"], LABELS, float, "threshold")["Dog"] == 0.6  # the later one wins
    assert parse_overrides(["Cat=5"], LABELS, int, "median-filter") == {"Cat": 5}
    with pytest.raises(ValueError, match="--median-filter 'Cat=2.5': '2.5' is not a number"):
        parse_overrides(["Cat=2.5"], LABELS, int, "median-filter")


def test_without_run_or_checkpoint_the_first_trained_run_is_used(models, tmp_path, monkeypatch, capsys):
    """runs/full, then runs/scenes, then runs/demo of the repository: real data first."""
    from sed_utils.cli import detect as cli_detect

    monkeypatch.setattr(cli_detect, "REPO_ROOT", tmp_path)  # _model_source looks the runs up from here
    sf.write(tmp_path / "a.wav", _noise(1.0, 16000), 16000)
    argv = ["detect", str(tmp_path / "a.wav"), "--threshold", "0"]  # not --quiet: which model is said
    assert main(argv) == 2
    assert "no trained model under runs/full, runs/scenes or runs/demo" in capsys.readouterr().err
    for profile, kind in (("demo", "frame"), ("scenes", "chunk")):
        target = RunPaths(tmp_path / "runs" / profile).checkpoint(kind)
        target.parent.mkdir(parents=True)
        target.write_bytes(models[kind].read_bytes())
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"using the model of {tmp_path / 'runs' / 'scenes'}" in err and "[detect] chunk model" in err
    assert main([*argv, "--model", "frame"]) == 0  # scenes has no frame model: demo's is used
    assert f"using the model of {tmp_path / 'runs' / 'demo'}" in capsys.readouterr().err
    # an interrupted training in runs/full: passed over for a finished model, used with a warning if alone
    full = RunPaths(tmp_path / "runs" / "full").checkpoint("chunk")
    full.parent.mkdir(parents=True)
    ckpt = torch.load(models["chunk"], weights_only=True)
    torch.save({**ckpt, "complete": False}, full)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"using the model of {tmp_path / 'runs' / 'scenes'}" in err and "warning" not in err
    assert main([*argv, "--run", str(tmp_path / "runs" / "full")]) == 0
    assert "warning: this model's training has not finished" in capsys.readouterr().err


def test_detect_files_keeps_memory_flat(models, good_files):
    batch = detect_files([good_files], models["frame"], progress=False)
    assert not batch.failures and len(batch.detections) == len(GOOD)
    assert all(d.audio.size == 0 for d in batch.detections)  # the audio is not kept per file
    kept = detect_files([good_files / "u8.wav"], models["frame"], progress=False, keep_audio=True)
    assert kept.detections[0].audio.size == 32000  # unless asked for


def test_the_stored_minimum_durations_drop_short_events(models, tmp_path):
    """The evaluation stores a minimum event duration per class; detect applies it (0 keeps every event)."""
    import shutil

    audio = _noise(3.0, 16000)[:, 0]
    before = detect(audio, load_trained(models["frame"]), sample_rate=16000, thresholds=0.0)
    assert len(before.events) == 5 and before.post.min_durations == (0.0,) * 5  # one 3 s event each
    ckpt = tmp_path / "best.pt"
    shutil.copy(models["frame"], ckpt)
    store_post_processing(ckpt, _post(min_durations=[0.5, 0.5, 5.0, 5.0, 5.0]))
    after = detect(audio, load_trained(ckpt), sample_rate=16000, thresholds=0.0)
    assert sorted(after.events["event_label"]) == ["Cat", "Dog"]  # 3 s events: shorter than 5 s, dropped


# --------------------------------------------------------------------------------------------
# Slow: an hour-long file, memory measured; a model trained in seconds finds a beep
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_hour_long_file_runs_in_bounded_memory(models, tmp_path):
    sr, minutes = 16000, 60
    path = tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as fh:  # silence with a tone every 30 s
        t = np.arange(sr) / sr
        for k in range(minutes * 2):
            block = np.zeros(30 * sr, np.float32)
            block[5 * sr:6 * sr] = 0.3 * np.sin(2 * np.pi * (500 + 10 * k) * t)
            block += 0.001 * rng.standard_normal(len(block)).astype(np.float32)
            fh.write(block)
    out = tmp_path / "hour.tsv"
    # the child notes its memory once torch and the model are loaded (~0.85 GB with PyPI's torch),
    # then detects: what the hour adds on top is what the block-wise reading and scoring bound
    script = ("import resource, sys\n"
              "from sed_utils.detection import load_model\n"
              "load_model(sys.argv[4])\n"
              "loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "from sed_utils.cli.runner import main\n"
              "code = main(sys.argv[1:])\n"
              "print('KB', loaded, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
              "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, "detect", str(path), "--checkpoint",
                           str(models["frame"]), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr
    loaded_kb, peak_kb = map(int, done.stdout.split("KB")[1].split())
    added_mb = (peak_kb - loaded_kb) / 1024
    # the hour is scored as it is decoded: its 16 kHz samples (230 MB), let alone the file's rate, float64,
    # one spectrogram or one window array (0.9 GB), are never held. (The process before any audio is 0.85-1.3
    # GB depending on the install, so only the audio's share is bounded here.)
    assert added_mb < 150, f"an hour of audio added {added_mb:.0f} MB over the loaded model"
    events = pd.read_csv(out, sep="\t")
    assert events["offset"].max() <= minutes * 60 + 1e-6
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 < 4096  # this process stayed small too


N_TRAIN, BATCH = 240, 8  # one epoch of 30 steps: about a minute of CPU on 2 cores
BEEP_SR, BEEP_SECONDS, FRAME_SECONDS = 16000, 4.0, 0.08


def _beep_scene(rng: np.random.Generator, onset: float, length: float) -> np.ndarray:
    x = 0.05 * rng.standard_normal(int(BEEP_SECONDS * BEEP_SR)).astype(np.float32)
    a, b = int(onset * BEEP_SR), int((onset + length) * BEEP_SR)
    x[a:b] += 0.3 * np.sin(2 * np.pi * 1000 * np.arange(b - a) / BEEP_SR).astype(np.float32)
    return x


def _beep_examples(rng: np.random.Generator, n: int, mel: MelConfig):
    """``n`` scenes of noise with one 1 kHz beep (labelled Alarm), as the training loop's examples:
    log-mels in dB (front end ``mel``, the model's) and the frame targets of the frame model's 80 ms grid."""
    from sed_utils.features.logmel import logmel_db
    from sed_utils.labels.grid import TimeGrid
    from sed_utils.train import Examples

    features, frames = [], []
    for _ in range(n):
        onset, length = rng.uniform(0.2, 2.5), rng.uniform(0.4, 1.2)
        features.append(logmel_db(_beep_scene(rng, onset, length), BEEP_SR, mel))
        grid = TimeGrid.regular(LABELS, FRAME_SECONDS, TimeGrid.frames_for(BEEP_SECONDS, FRAME_SECONDS))
        frames.append(grid.encode(pd.DataFrame({"onset": [onset], "offset": [onset + length],
                                                "event_label": ["Alarm_bell_ringing"]})))
    frames = np.stack(frames)
    return Examples(np.stack(features), frames.max(axis=1), frames)


@pytest.mark.slow
def test_a_frame_model_trained_in_seconds_finds_the_beep(tmp_path):
    """A frame model trained by sed_utils.train.train for one epoch (30 steps, about a minute) on noise
    with 1 kHz beeps (labelled Alarm) finds a beep at its place in a new file, through the CLI on the
    run folder, and the events score with sed_eval."""
    from sed_utils.config import load_config
    from sed_utils.metrics.f1 import event_metrics
    from sed_utils.train import ExampleDataset, TrainingData, train

    rng = np.random.default_rng(0)
    cfg = load_config("demo", [f"runs_root={tmp_path / 'runs'}", f"data_root={tmp_path / 'data'}",
                               "models.frame.epochs=1", f"models.frame.batch_size={BATCH}", "train.lr=0.002",
                               "train.lr_schedule=constant"])
    assert cfg.desed_labels == LABELS
    examples, valid = _beep_examples(rng, N_TRAIN, cfg.features), _beep_examples(rng, 16, cfg.features)
    data = TrainingData("frame", ExampleDataset(examples), {"scenes": valid},
                        float(examples.features.mean()), float(examples.features.std()), BEEP_SECONDS)
    result = train(cfg, "frame", data=data, progress=False, device="cpu")
    assert result.checkpoint == cfg.paths.checkpoint("frame") and result.info.complete
    assert result.info.post_processing is None  # training stores none: the evaluation does
    store_post_processing(result.checkpoint, _post("the test"))
    sf.write(tmp_path / "new.wav", _beep_scene(rng, 1.5, 1.0), BEEP_SR)
    out = tmp_path / "new.tsv"
    assert main(["detect", str(tmp_path / "new.wav"), "--run", str(cfg.run_dir), "--out", str(out),
                 "--quiet"]) == 0
    est = pd.read_csv(out, sep="\t")
    alarm = est[est["event_label"] == "Alarm_bell_ringing"]
    assert len(alarm) >= 1 and abs(alarm["onset"].iloc[0] - 1.5) < 0.25, est
    ref = pd.DataFrame({"filename": ["new.wav"], "onset": [1.5], "offset": [2.5],
                        "event_label": ["Alarm_bell_ringing"]})
    m = event_metrics(ref, est[["filename", "onset", "offset", "event_label"]], ["new.wav"],
                      LABELS)
    assert m["class_wise"]["Alarm_bell_ringing"]["recall"] == 1.0  # onset and offset within the collars
    assert set(est["event_label"]) == {"Alarm_bell_ringing"}  # and nothing else fires on noise
    assert load_trained(result.checkpoint).kind == "frame"


@pytest.mark.slow
def test_detect_applies_what_the_evaluation_chose_and_stored(tmp_path):
    """train -> evaluate -> detect on the demo data: the evaluation stores the post-processing it chose
    on the validation scenes in the checkpoint, and detect on a run folder applies it, giving a test
    clip exactly the events the evaluation found in it (one curve, one post-processing, for both)."""
    from sed_utils.config import load_config
    from sed_utils.data.registry import prepare_datasets
    from sed_utils.evaluate import evaluate
    from sed_utils.train import train

    cfg = load_config("demo", [f"data_root={tmp_path / 'data'}", f"runs_root={tmp_path / 'runs'}",
                               "models.chunk.epochs=1", "models.chunk.max_train_chunks=64",
                               "models.chunk.train_scenes=0", "scenes.valid=4",
                               "postprocess.thresholds=[0.2, 0.5]", "postprocess.median_filters=[1, 3]",
                               "postprocess.min_durations=[0, 0.5]"])
    prepare_datasets(cfg, progress=False)
    trained = train(cfg, "chunk", progress=False, device="cpu")
    assert trained.info.post_processing is None
    ev = evaluate(cfg, "chunk", progress=False)
    stored = load_trained(cfg.paths.checkpoint("chunk")).info.post_processing
    assert stored == ev.post and stored.chosen_on.startswith("4 validation scenes")
    assert ev.results["post_processing"] == stored.to_dict()
    busiest = ev.events["filename"].value_counts().index[0]
    det = detect(ev.test.path(busiest), cfg.run_dir, kind="chunk", filename=busiest)
    assert det.source == f"chosen on {stored.chosen_on} (stored in the checkpoint)" and det.post == stored
    mine = ev.events[ev.events["filename"] == busiest].sort_values(["event_label", "onset"])
    found = det.events.sort_values(["event_label", "onset"])
    assert len(found) == len(mine) > 0
    times = ["onset", "offset"]
    np.testing.assert_allclose(found[times].to_numpy(float), mine[times].to_numpy(float), atol=1e-6)
    assert list(found["event_label"]) == list(mine["event_label"])


def test_out_never_overwrites_an_input_and_bad_paths_stop_before_any_file(models, tmp_path, capsys):
    rec = tmp_path / "v.wav"
    sf.write(rec, _noise(1.0, 16000), 16000)
    before = rec.read_bytes()
    base = ["detect", str(rec), "--checkpoint", str(models["frame"]), "--quiet"]
    assert main([*base, "--out", str(rec)]) == 2
    assert "is one of the input recordings" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "x" / ".." / "v.wav")]) == 2  # the same file, another path
    assert rec.read_bytes() == before
    assert main([*base, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main([*base, "--plot", str(rec)]) == 2
    assert "--plot" in capsys.readouterr().err and rec.read_bytes() == before


@pytest.mark.parametrize("option, words", [
    (["--threshold", "nan"], "thresholds must lie in [0, 1]"),
    (["--threshold", "2"], "thresholds must lie in [0, 1]"),
    (["--threshold", "Dog=-0.1"], "thresholds must lie in [0, 1]"),
    (["--threshold", "inf"], "thresholds must lie in [0, 1]"),
    (["--median-filter", "2"], "odd numbers of frames"),
])
def test_bad_post_processing_is_refused_before_any_file_is_decoded(models, tmp_path, capsys, monkeypatch,
                                                                   option, words):
    from sed_utils.detection import recordings

    sf.write(tmp_path / "a.wav", _noise(1.0, 16000), 16000)
    decoded = []
    monkeypatch.setattr(recordings, "open_recording", lambda *a, **k: decoded.append(a))
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]), *option]) == 2
    assert words in capsys.readouterr().err and not decoded


def test_a_checkpoint_without_thresholds_is_refused_up_front(models, tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _noise(1.0, 16000), 16000)
    bare = _checkpoint(tmp_path / "bare.pt", "frame")
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(bare), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds no post-processing" in err and "file(s) failed" not in err


def test_ctrl_c_prints_one_line_and_writes_nothing(models, tmp_path, capsys, monkeypatch):
    from sed_utils.detection import recordings

    sf.write(tmp_path / "a.wav", _noise(1.0, 16000), 16000)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recordings, "open_recording", interrupt)
    out = tmp_path / "events.tsv"
    assert main(["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]), "--out", str(out),
                 "--quiet"]) == 130
    assert "interrupted; no output written" in capsys.readouterr().err and not out.exists()


def test_the_same_file_by_two_paths_is_scored_once(models, tmp_path, monkeypatch, capsys):
    (tmp_path / "x").mkdir()
    sf.write(tmp_path / "a.wav", _noise(1.0, 16000), 16000)
    monkeypatch.chdir(tmp_path)
    assert main(["detect", "a.wav", "x/../a.wav", str(tmp_path), "--checkpoint", str(models["frame"]),
                 "--threshold", "0", "--quiet"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), sep="\t")
    assert set(table["filename"]) == {"a.wav"}


def test_damaged_headers_and_absurd_samples_fail_their_file_only(models, tmp_path, capsys):
    """A header saying 1 Hz is refused before any buffer is sized from it; finite samples of 1e19 are
    refused instead of scoring NaN; a path is named once in its failure line."""
    sf.write(tmp_path / "one_hz.wav", _noise(1.0, 16000), 1, subtype="FLOAT")
    huge = _noise(1.0, 16000)
    huge[100] = 1e19
    sf.write(tmp_path / "huge.wav", huge, 16000, subtype="FLOAT")
    sf.write(tmp_path / "good.wav", _noise(1.0, 16000), 16000)
    assert main(["detect", str(tmp_path), "--checkpoint", str(models["frame"]), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "one_hz.wav: sample rate 1 Hz lies outside 1000-768000 Hz" in err
    assert "huge.wav: sample 100 (0.01 s) is 1e+19 times full scale" in err
    assert err.count(str(tmp_path / "huge.wav")) == 1


def test_arrays_in_every_layout_and_integer_pcm_give_the_float_files_scores(models):
    x = _noise(2.0, 16000)[:, 0]
    ref = detect(x, models["frame"], sample_rate=16000, thresholds=0)
    stereo = np.stack([x, x])
    for samples in (stereo, stereo.T, (x * 32768).astype(np.int16)):
        got = detect(samples, models["frame"], sample_rate=16000, thresholds=0)
        np.testing.assert_allclose(got.scores, ref.scores, atol=1e-3)
        assert got.seconds == ref.seconds
    u8 = np.round(x * 127 + 128).clip(0, 255).astype(np.uint8)
    np.testing.assert_allclose(detect(u8, models["frame"], sample_rate=16000, thresholds=0).scores,
                               ref.scores, atol=2e-2)
    with pytest.raises(AudioError, match=r"audio: sample 3 .* times full scale"):
        detect(np.where(np.arange(len(x)) == 3, 1e19, x), models["frame"], sample_rate=16000, thresholds=0)
    with pytest.raises(AudioError, match="sample rate 100 Hz"):
        detect(x, models["frame"], sample_rate=100, thresholds=0)
    with pytest.raises(AudioError, match="expected samples"):
        detect(x[None, None], models["frame"], sample_rate=16000, thresholds=0)


def test_a_file_name_that_is_not_utf8_is_read(models, tmp_path, capsys):
    """Latin-1 names exist on disks copied from old systems; Python hands them over with surrogates, which
    libsndfile's UTF-8 path API refused ("surrogates not allowed")."""
    import os

    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.wav")
    sf.write(tmp_path / "plain.wav", _noise(1.0, 16000), 16000)
    os.rename(tmp_path / "plain.wav", os.fsencode(name))
    assert main(["detect", str(tmp_path), "--checkpoint", str(models["frame"]), "--threshold", "0",
                 "--quiet"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), sep="\t")
    assert len(table) == 5 and set(table["filename"]) == {"caf\\xe9.wav"}


def test_a_long_recording_s_figure_draws_a_pooled_log_mel(models):
    """An hour's log-mel (360 000 frames) would cost the figure hundreds of MB for 1200 pixels of width:
    it is max-pooled in time to at most MAX_DRAWN_FRAMES columns, over the same time span."""
    import matplotlib.pyplot as plt

    from sed_utils.plots.detection import MAX_DRAWN_FRAMES, plot_detection

    det = detect(_noise(2.0, 16000)[:, 0], models["frame"], sample_rate=16000, thresholds=0)
    long_mel = np.full((64, 10 * MAX_DRAWN_FRAMES + 7), -80.0, np.float32)
    long_mel[5, 12345] = 0.0  # one loud frame must survive the pooling
    fig = plot_detection(det, long_mel, hop_seconds=0.01)
    image = fig.axes[0].images[0]
    assert image.get_array().shape[1] <= MAX_DRAWN_FRAMES and image.get_array().max() == 0.0
    assert image.get_extent()[1] == pytest.approx(long_mel.shape[1] // 11 * 11 * 0.01, rel=1e-6)
    plt.close(fig)


def test_threads_sets_torch_s_threads_and_refuses_zero(models, tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _noise(1.0, 16000), 16000)
    base = ["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]), "--quiet"]
    before = torch.get_num_threads()
    try:
        assert main([*base, "--threads", "1"]) == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main([*base, "--threads", "0"]) == 2
    assert "--threads 0: give 1 or more" in capsys.readouterr().err


def test_batch_size_changes_speed_not_events(models, tmp_path, capsys):
    """Blocks of a frame model (and windows of the chunk model) batched: the same curve, checked up front."""
    sf.write(tmp_path / "long.wav", _noise(35.0, 16000), 16000)  # 3 whole 10 s blocks and a part
    for kind in ("frame", "chunk"):
        one = detect(tmp_path / "long.wav", models[kind], batch_size=1)
        four = detect(tmp_path / "long.wav", models[kind], batch_size=4, device="cpu")
        np.testing.assert_array_equal(four.bounds, one.bounds)
        np.testing.assert_allclose(four.scores, one.scores, rtol=0, atol=1e-5)
    with pytest.raises((RuntimeError, ValueError)):  # a device that does not exist is not silently the CPU
        detect(tmp_path / "long.wav", models["frame"], device="nosuchdevice")
    base = ["detect", str(tmp_path / "long.wav"), "--checkpoint", str(models["frame"]), "--quiet"]
    assert main([*base, "--batch-size", "4"]) == 0
    assert main([*base, "--batch-size", "0"]) == 2
    assert "--batch-size 0: give 1 or more" in capsys.readouterr().err


def test_dcase_is_the_tsv_table_by_its_other_name(models, tmp_path):
    sf.write(tmp_path / "a.wav", _noise(2.0, 16000), 16000)
    base = ["detect", str(tmp_path / "a.wav"), "--checkpoint", str(models["frame"]), "--quiet",
            "--threshold", "0"]
    assert main([*base, "--format", "dcase", "--out", str(tmp_path / "d.tsv")]) == 0
    assert main([*base, "--format", "tsv", "--out", str(tmp_path / "t.tsv")]) == 0
    assert (tmp_path / "d.tsv").read_text() == (tmp_path / "t.tsv").read_text()
    assert (tmp_path / "d.tsv").read_text().startswith("filename\tonset\toffset\tevent_label")
    events = detect(tmp_path / "a.wav", models["frame"], thresholds=0.0).events  # the Python API too
    assert events_text(events, "dcase") == events_text(events, "tsv")
