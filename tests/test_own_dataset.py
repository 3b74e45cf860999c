"""A user's own dataset (the own-sounds issue): found in its folder, every doctor finding caught on a
hand-made broken dataset with file and line, and the split by recording."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sed_utils.cli.runner import main
from sed_utils.core.errors import DatasetError
from sed_utils.labels.own_dataset import (
    MIN_PER_CLASS,
    SPLITS,
    class_table,
    scan_dataset,
    split_recordings,
    split_table,
)

SR = 16000


def _wav(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * SR), np.float32), SR)


def _dataset(root):
    """A clean dataset: dog, doorbell, kettle in 3+ recordings each, every layout once."""
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("dog\ndoorbell\nkettle\n")
    _wav(root / "recordings" / "r1.wav", 10)
    (root / "recordings" / "r1.txt").write_text("1.0\t2.0\tdog\n\\\t100\t3000\n3.0\t4.0\tdoorbell\n")
    _wav(root / "recordings" / "r2.flac", 10)
    (root / "recordings" / "r2.Table.1.selections.txt").write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\t"
        "Annotation\r\n"
        "1\tWaveform 1\t1\t0.5\t1.5\t0\t8000\tdog\r\n1\tSpectrogram 1\t1\t0.5\t1.5\t0\t8000\tdog\r\n"
        "2\tSpectrogram 1\t1\t6\t8\t0\t8000\tkettle\r\n")
    _wav(root / "long" / "r3.wav", 20)
    _wav(root / "long" / "r4.wav", 20)
    (root / "labels.tsv").write_text("filename\tonset\toffset\tevent_label\nr3.wav\t2\t5\tkettle\n"
                                     "long/r3.wav\t9\t9.5\tdoorbell\nr4.wav\t\t\t\n")
    for label, n in (("dog", 2), ("doorbell", 2), ("kettle", 1)):
        for i in range(n):
            _wav(root / "clips" / label / f"{label}{i}.wav", 2)
    _wav(root / "negatives" / "street.wav", 5)
    return root


def test_a_clean_dataset_is_read_from_every_layout(tmp_path):
    ds = scan_dataset(_dataset(tmp_path / "data"))
    assert ds.fatal == [] and ds.classes == ["dog", "doorbell", "kettle"]
    kinds = dict(zip(ds.recordings["filename"], ds.recordings["kind"], strict=True))
    assert kinds["recordings/r1.wav"] == kinds["recordings/r2.flac"] == kinds["long/r3.wav"] == "strong"
    assert kinds["long/r4.wav"] == "strong" and kinds["negatives/street.wav"] == "negative"  # no events
    assert kinds["clips/dog/dog0.wav"] == "clip"
    table = class_table(ds)
    assert table.loc["dog", "recordings"] == 4 and table.loc["dog", "events"] == 4  # r1, r2 (once), 2 clips
    assert table.loc["kettle", "seconds"] == pytest.approx(2 + 3 + 2)
    r3 = ds.events[ds.events["filename"] == "long/r3.wav"]
    assert sorted(r3["event_label"]) == ["doorbell", "kettle"]  # by name alone and by path
    sources = ds.events[ds.events["filename"] == "recordings/r1.wav"]["source"].tolist()
    assert sources == ["recordings/r1.txt line 1", "recordings/r1.txt line 3"]


@pytest.mark.parametrize("break_it, fatal, words", [
    (lambda r: (r / "recordings" / "r1.txt").write_text("1.0\t2.0\tdgo\n"), True,
     "recordings/r1.txt line 1: label 'dgo' is not in classes.txt; did you mean 'dog'?"),
    (lambda r: (r / "recordings" / "r1.txt").write_text("9.0\t12.0\tdog\n"), True,
     "recordings/r1.txt line 1: dog 9-12 s lies outside recordings/r1.wav (0-10.00 s)"),
    (lambda r: (r / "recordings" / "r1.txt").write_text("5\t5\tdoorbell\n"), True,
     "recordings/r1.txt line 1: onset 5 s is not before offset 5 s"),
    (lambda r: (r / "recordings" / "r1.txt").write_text("1\t2\tdog\n1.5\t2.5\tdog\n"), False,
     "recordings/r1.txt line 2: dog overlaps the event of recordings/r1.txt line 1: merged into one"),
    (lambda r: (r / "recordings" / "r1.txt").write_text("1\tabc\tdog\n"), True,
     "recordings/r1.txt line 1: end 'abc' is not a number"),
    (lambda r: (r / "labels.tsv").write_text("filename\tonset\toffset\tevent_label\nghost.wav\t1\t2\tdog\n"),
     True, "labels.tsv: names 'ghost.wav', which is not an audio file"),
    (lambda r: ((r / "recordings" / "bad.wav").write_bytes(b"RIFF junk"),
                (r / "recordings" / "bad.txt").write_text("1\t2\tdog\n")), True,
     "recordings/bad.wav: cannot read the audio"),
    (lambda r: _wav(r / "stray.wav", 1), False, "stray.wav: no labels beside it and not under negatives/"),
])
def test_each_finding_names_its_file_and_line(tmp_path, break_it, fatal, words):
    root = _dataset(tmp_path / "data")
    break_it(root)
    ds = scan_dataset(root)
    found = [p for p in ds.problems if words in str(p)]
    assert len(found) == 1 and found[0].fatal is fatal, [str(p) for p in ds.problems]
    if fatal:
        with pytest.raises(DatasetError, match="problem\\(s\\) to fix before training"):
            ds.check()


def test_a_class_too_small_to_split_is_refused_and_a_misspelling_named(tmp_path):
    root = _dataset(tmp_path / "data")
    (root / "classes.txt").unlink()  # the labels found are the classes
    (root / "recordings" / "r1.txt").write_text("1\t2\tdogg\n3\t4\tdoorbell\n")
    ds = scan_dataset(root)
    assert ds.classes == ["dog", "dogg", "doorbell", "kettle"]
    msgs = [str(p) for p in ds.fatal]
    assert msgs == [f"error: class 'dogg': 1 recording(s); a class needs {MIN_PER_CLASS} (train, validation, "
                    "test): a misspelling of 'dog'?"]


def test_the_split_keeps_each_recording_whole_and_each_class_in_every_split(tmp_path):
    root = _dataset(tmp_path / "data")
    for i in range(12):  # more dog recordings, so the shares can follow the fractions
        _wav(root / "clips" / "dog" / f"more{i}.wav", 1)
    ds = scan_dataset(root)
    split = split_recordings(ds, seed=3)
    assert split.index.is_unique and set(split.index) == set(ds.recordings["filename"])  # each one once
    with_split = ds.events.merge(split, left_on="filename", right_index=True)
    for label in ds.classes:
        assert set(with_split[with_split["event_label"] == label]["split"]) == set(SPLITS), label
    dogs = with_split[with_split["event_label"] == "dog"].drop_duplicates("filename")["split"].value_counts()
    assert dogs["train"] >= 2 * dogs["test"]  # 70 / 15 / 15
    table = split_table(ds, split)
    assert list(table.index) == ds.classes and list(table.columns) == list(SPLITS)
    assert table.loc["dog"].to_dict() == dogs.reindex(list(SPLITS), fill_value=0).to_dict()
    assert split.equals(split_recordings(ds, seed=3)) and not split.equals(split_recordings(ds, seed=4))
    (root / "clips" / "dog" / "valid").mkdir()
    (root / "clips" / "dog" / "more0.wav").rename(root / "clips" / "dog" / "valid" / "more0.wav")
    (root / "clips" / "dog" / "more1.wav").rename(root / "clips" / "dog" / "valid" / "more1.wav")
    by_folder = split_recordings(scan_dataset(root), seed=3)
    assert by_folder["clips/dog/valid/more0.wav"] == by_folder["clips/dog/valid/more1.wav"] == "valid"
    (root / "split.tsv").write_text("recordings/r1.wav\ttest\nclips/dog/valid/more1.wav\ttrain\n")
    ds = scan_dataset(root)
    assert split_recordings(ds, seed=3)["recordings/r1.wav"] == "test"  # the user's own split wins
    assert split_recordings(ds, seed=3)["clips/dog/valid/more1.wav"] == "train"  # over folders too
    (root / "split.tsv").write_text("recordings/r1.wav\ttesting\n")
    with pytest.raises(DatasetError, match="split.tsv line 1: split 'testing'"):
        split_recordings(ds)


def test_doctor_command_prints_the_table_and_exits_2_on_a_fatal_problem(tmp_path, capsys):
    root = _dataset(tmp_path / "data")
    assert main(["doctor", str(root)]) == 0
    out = capsys.readouterr().out
    assert "dog" in out and "kettle" in out and "recordings in train" in out and "recordings in test" in out
    (root / "recordings" / "r1.txt").write_text("1.0\t2.0\tdgo\n")
    assert main(["doctor", str(root)]) == 2
    assert "did you mean 'dog'?" in capsys.readouterr().out


# ---- training on your own sounds ----------------------------------------------------------------------
def _sound(kind, seconds):
    t = np.arange(int(seconds * SR)) / SR
    if kind == "beep":
        return 0.3 * np.sin(2 * np.pi * 1000 * t)
    return 0.3 * np.sin(2 * np.pi * np.cumsum(500 + 2500 * t / seconds) / SR)  # chirp: a rising sweep


def _generated(root, n=12, seconds=20.0, seed=0):
    """Recordings of noise with beeps and chirps, each with its Audacity label track; 3 negatives."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        x = 0.03 * rng.standard_normal(int(seconds * SR))
        lines = []
        for kind, at in (("beep", rng.uniform(0.5, 8)), ("chirp", rng.uniform(10, 17))):
            length = rng.uniform(0.6, 1.5)
            piece = _sound(kind, length)
            x[int(at * SR):int(at * SR) + len(piece)] += piece
            lines.append(f"{at:.3f}\t{at + length:.3f}\t{kind}\n")
        (root / "field").mkdir(parents=True, exist_ok=True)
        sf.write(root / "field" / f"rec{i:02d}.wav", x.astype(np.float32), SR)
        (root / "field" / f"rec{i:02d}.txt").write_text("".join(lines))
    for j in range(3):
        _wav(root / "negatives" / f"quiet{j}.wav", 10)
        for kind in ("beep", "chirp"):  # short clips of each class: mixed into training scenes
            (root / "clips" / kind).mkdir(parents=True, exist_ok=True)
            sf.write(root / "clips" / kind / f"{kind}{j}.wav", _sound(kind, 1.0).astype(np.float32), SR)
    return root


@pytest.mark.slow
def test_train_on_your_own_sounds_end_to_end(tmp_path, caplog):
    """doctor -> split -> train (1 epoch) -> post-processing chosen on validation -> report on test ->
    detect --run: the whole own-sounds path on generated audio, in about a minute."""
    import json
    import logging

    from sed_utils.evaluate.own_sounds import train_own
    from sed_utils.models import load_trained

    root = _generated(tmp_path / "data")
    out = tmp_path / "runs" / "mine"
    argv = ["train", str(root), "--out", str(out), "-p", "models.frame.epochs=1", "-p",
            "models.frame.batch_size=8", "-p", "train.lr=0.002", "-p", "train.lr_schedule=constant",
            "--device", "cpu"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    split = report["split"]
    assert sum(split.values()) == 21 and min(split.values()) >= 2 and report["recordings"] == split["test"]
    for key in ("event_f1", "segment_f1", "psds1"):
        assert 0.0 <= report[key] <= 1.0
    trained = load_trained(out / "frame" / "best.pt")
    assert list(trained.labels) == ["beep", "chirp"]
    assert trained.info.post_processing.chosen_on == f"{split['valid']} validation recordings of data"
    assert main(["detect", str(root / "field" / "rec00.wav"), "--run", str(out), "--quiet"]) == 0
    scenes = list((out / "cache").glob("*/clip_scenes-*/scene_*.wav"))  # the training clips, mixed
    split_now = split_recordings(scan_dataset(root))
    train_clips = [n for n, part in split_now.items() if n.startswith("clips/") and part == "train"]
    assert train_clips and len(scenes) == 4 * len(train_clips)
    caplog.set_level(logging.INFO, logger="sed_utils")
    ds = scan_dataset(root)
    overrides = [a for a in argv if "=" in a]
    again = train_own(ds, out, overrides=overrides, progress=False, device="cpu")
    assert "Skipping training" in caplog.text and again.checkpoint == out / "frame" / "best.pt"  # same data


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_train_runs_unchanged_under_torchrun_and_its_two_processes_keep_the_same_weights(tmp_path):
    """torchrun --nproc_per_node=2 (gloo, CPU): one model trained by two processes, each on its share of
    the examples; after every epoch both hold the same weights (checked by all_gather of a hash of every
    weight: the run fails otherwise), process 0 alone validates, saves and reports."""
    import json
    import os
    import re
    import subprocess
    import sys

    root = _generated(tmp_path / "data")
    out = tmp_path / "runs" / "mine"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "-m", "sed_utils", "train",
           str(root), "--out", str(out), "-p", "models.frame.epochs=2", "-p", "models.frame.batch_size=4",
           "-p", "train.lr=0.002", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SED_DATA_ROOT": str(tmp_path / "unused")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    agreed = re.findall(r"weights ([0-9a-f]{16}) after epoch (\d): the same on all 2 processes", done.stderr)
    assert [e for _, e in agreed] == ["1", "2"] and agreed[0][0] != agreed[1][0], done.stderr[-3000:]
    assert done.stdout.count("test split (") == 1  # process 0 reports; process 1 stays quiet
    report = json.loads((out / "report.json").read_text())
    assert 0.0 <= report["event_f1"] <= 1.0
    history = pd.read_csv(out / "frame" / "history.csv")
    assert list(history["epoch"]) == [1, 2]


def test_check_replicas_refuses_processes_whose_weights_differ(tmp_path):
    """The guard itself, on two processes joined as torchrun joins them: same seed passes, different fails."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from sed_utils.train import distributed\n"
        "distributed.setup(torch.device('cpu'))\n"
        "torch.manual_seed(0 if sys.argv[1] == 'same' else distributed.rank())\n"
        "net = torch.nn.Linear(4, 2)\n"
        "try:\n"
        "    print('agreed', distributed.check_replicas(net, 'at the start'))\n"
        "except RuntimeError as e:\n"
        "    print('refused', e)\n"
        "distributed.finish()\n")
    for case in ("same", "different"):
        port = _free_port()
        procs = [subprocess.Popen([sys.executable, "-c", script, case], stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r),
                                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
                 for r in range(2)]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        if case == "same":
            assert all(o.startswith("agreed") for o in outputs) and outputs[0] == outputs[1]
        else:
            assert all("refused" in o and "different weights at the start: rank 0:" in o for o in outputs)


def test_a_dataset_the_doctor_refuses_trains_nothing(tmp_path):
    from sed_utils.evaluate.own_sounds import train_own

    root = _dataset(tmp_path / "data")
    (root / "recordings" / "r1.txt").write_text("1.0\t2.0\tdgo\n")
    with pytest.raises(DatasetError, match="did you mean 'dog'"):
        train_own(scan_dataset(root), tmp_path / "runs" / "mine")
    assert not (tmp_path / "runs").exists()


def test_the_run_keeps_its_cache_and_key_under_its_folder_whatever_the_environment(tmp_path, monkeypatch):
    """$SED_DATA_ROOT names the series' data; a run on your own data keeps its feature cache (and the data's
    identity, part of the training key) under its own folder all the same."""
    from sed_utils.evaluate.own_sounds import own_config

    ds = scan_dataset(_dataset(tmp_path / "data"))
    monkeypatch.setenv("SED_DATA_ROOT", str(tmp_path / "elsewhere"))
    cfg = own_config(ds, tmp_path / "runs" / "mine")
    assert cfg.data_root.parent == (tmp_path / "runs" / "mine" / "cache").resolve()
    assert cfg.run_dir == (tmp_path / "runs" / "mine").resolve() and cfg.desed_labels == ds.classes
    _wav(ds.root / "negatives" / "one_more.wav", 2)
    again = own_config(scan_dataset(ds.root), tmp_path / "runs" / "mine")
    assert again.data_root != cfg.data_root  # new data, new cache and key


def test_fine_tuning_starts_from_the_trunk_of_another_model(tmp_path, caplog):
    """train.init_from: the network weights that fit (the trunk) come from the checkpoint, a head for other
    classes starts fresh, and the starting weights are part of the training key."""
    import logging

    import torch

    from sed_utils.config import MelConfig, load_config
    from sed_utils.models import build_detector, save_checkpoint
    from sed_utils.models.checkpoint import init_from_checkpoint
    from sed_utils.train.loop import training_key

    zeros = np.zeros(64, np.float32)
    torch.manual_seed(0)
    series = build_detector("frame", ["Dog", "Cat", "Alarm"], MelConfig(), SR, 10.0, zeros, 1.0)
    path = tmp_path / "series.pt"
    save_checkpoint(path, series, config={}, epoch=1, best_score=0.5, complete=True)
    torch.manual_seed(1)
    mine = build_detector("frame", ["beep", "chirp"], MelConfig(), SR, 10.0, zeros, 1.0)
    caplog.set_level(logging.INFO, logger="sed_utils")
    init_from_checkpoint(mine, path)
    theirs, ours = series.state_dict(), mine.state_dict()
    trunk = [k for k in ours if k.startswith("network.") and ours[k].shape == theirs[k].shape]
    assert trunk and all(torch.equal(ours[k], theirs[k]) for k in trunk)
    assert not torch.equal(ours["network.frame_head.weight"][:2], theirs["network.frame_head.weight"][:2])
    assert "fresh: network.attention_head, network.frame_head" in caplog.text
    cfg = load_config("demo", [f"train.init_from={path}"])
    assert cfg.train.init_from == str(path)
    assert training_key(cfg, "frame") != training_key(load_config("demo"), "frame")


def test_review_findings_stay_fixed(tmp_path, capsys):
    """A split that the greedy pass would leave uncovered is repaired; a table's name-only row may name a
    file of negatives/; brackets in a name keep its Raven table; a folder without labels is refused;
    unknown devices and split.tsv names are refused with one line."""
    from pathlib import Path as _Path

    import pandas as pd

    from sed_utils.labels.own_dataset import OwnDataset

    tags = {"r1": ["c1"], "r2": ["c1", "c2"], "r3": ["c0", "c1"], "r5": ["c0"], "r6": ["c1", "c2"],
            "r7": ["c0", "c2"]}
    events = pd.DataFrame([(n, 0.0, 1.0, t, "") for n, ts in tags.items() for t in ts],
                          columns=["filename", "onset", "offset", "event_label", "source"])
    recordings = pd.DataFrame({"filename": list(tags), "seconds": 10.0, "kind": "strong"})
    ds = OwnDataset(_Path(tmp_path), recordings, events, ["c0", "c1", "c2"])
    split = split_recordings(ds, seed=0)
    for c in ds.classes:
        assert {split[n] for n, ts in tags.items() if c in ts} == set(SPLITS), c

    root = _dataset(tmp_path / "data")
    _wav(root / "negatives" / "n1.wav", 3)
    (root / "labels.tsv").write_text((root / "labels.tsv").read_text() + "n1.wav\t\t\t\n")
    _wav(root / "field" / "bird [1].wav", 5)
    (root / "field" / "bird [1].Table.1.selections.txt").write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tAnnotation\n"
        "1\tSpectrogram 1\t1\t1\t2\tdog\n")
    found = scan_dataset(root)
    assert found.fatal == [], [str(p) for p in found.problems]
    assert "field/bird [1].wav" in set(found.events["filename"])
    (root / "split.tsv").write_text("nowhere.wav\ttest\n")
    with pytest.raises(DatasetError, match="nowhere.wav"):
        split_recordings(found)

    empty = tmp_path / "empty"
    _wav(empty / "negatives" / "n.wav", 1)
    assert [p.message for p in scan_dataset(empty).fatal][0].startswith("no labelled sound")
    assert main(["train", str(root), "--out", str(tmp_path / "r"), "--device", "gpu"]) == 2
    assert "--device 'gpu'" in capsys.readouterr().err
