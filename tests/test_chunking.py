"""Chunk starts, silence, segment labels (checked against sed_eval), and the cached chunk/segment tables.

The fixtures write a tiny ESC-50 and DESED layout with soundfile into tmp_path; the helpers
``make_esc50`` / ``make_desed`` / ``tiny_config`` are also used by test_features and test_dataset.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sed_utils.config import load_config
from sed_utils.data.test_sets import load_test_set
from sed_utils.labels.chunks import (
    build_esc50_chunks,
    build_segments,
    chunk_rms_db,
    chunk_starts,
    chunk_statistics,
    segment_labels,
    silent_chunks,
)
from sed_utils.plots import chunking as chunk_plots

LABELS = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]
SR = 16000
# category, n clips per fold used in the fixture
TARGETS = ["dog", "cat", "clock_alarm", "pouring_water", "vacuum_cleaner"]
NEGATIVES = ["rain", "rooster", "engine"]


# ------------------------------------------------------------------------------------------------
# fixtures shared with the other test files
# ------------------------------------------------------------------------------------------------
def tiny_config(root: Path, *overrides: str):
    """The demo config pointed at ``root``, 2 s clips, hop 0.5 -> 3 candidate chunks per clip."""
    return load_config("demo", [f"data_root={root}", "chunking.hop_seconds=0.5", *overrides])


def make_esc50(root: Path, folds: tuple[int, ...] = (1, 5), seconds: float = 2.0) -> pd.DataFrame:
    """ESC-50 layout with one 2 s clip per category and fold; clip ``1-*`` of dog is half digital silence."""
    rng = np.random.default_rng(123)
    audio_dir = root / "ESC-50-master" / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    (root / "ESC-50-master" / "meta").mkdir(parents=True, exist_ok=True)
    rows = []
    n = int(seconds * SR)
    for t, category in enumerate(TARGETS + NEGATIVES):
        for fold in folds:
            name = f"{fold}-{100 + t}-A-{t}.wav"
            freq = 200.0 * (t + 1)
            wave = 0.3 * np.sin(2 * np.pi * freq * np.arange(n) / SR) + 0.01 * rng.standard_normal(n)
            if category == "dog" and fold == folds[0]:
                wave[n // 2 :] = 0.0  # second half digital silence: its last chunk must be dropped
            sf.write(audio_dir / name, wave.astype(np.float32), SR, subtype="PCM_16")
            rows.append(
                {
                    "filename": name,
                    "fold": fold,
                    "target": t,
                    "category": category,
                    "esc10": False,
                    "src_file": f"{100 + t}",
                    "take": "A",
                }
            )
    meta = pd.DataFrame(rows)
    meta.to_csv(root / "ESC-50-master" / "meta" / "esc50.csv", index=False)
    return meta


def make_desed(root: Path) -> pd.DataFrame:
    """DESED layout: three 10 s clips; c.wav has only a non-target event (Speech)."""
    base = root / "DESEDpublic_eval" / "dataset"
    audio_dir = base / "audio" / "eval" / "public"
    audio_dir.mkdir(parents=True, exist_ok=True)
    (base / "metadata" / "eval").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for name in ("a.wav", "b.wav", "c.wav"):
        sf.write(
            audio_dir / name, (0.1 * rng.standard_normal(10 * SR)).astype(np.float32), SR, subtype="PCM_16"
        )
    events = pd.DataFrame(
        [
            ("a.wav", 0.5, 2.0, "Dog"),
            ("a.wav", 1.2, 3.4, "Cat"),
            ("a.wav", 9.0, 10.0, "Speech"),
            ("b.wav", 3.0, 4.0, "Running_water"),
            ("b.wav", 3.5, 6.25, "Vacuum_cleaner"),
            ("c.wav", 0.0, 10.0, "Speech"),
        ],
        columns=["filename", "onset", "offset", "event_label"],
    )
    events.to_csv(base / "metadata" / "eval" / "public.tsv", sep="\t", index=False)
    return events


# ------------------------------------------------------------------------------------------------
# chunk_starts
# ------------------------------------------------------------------------------------------------
def test_chunk_starts_exact_values():
    np.testing.assert_array_equal(chunk_starts(5.0, 1.0, 0.25), np.arange(17) * 0.25)
    np.testing.assert_array_equal(chunk_starts(2.5, 1.0, 1.0), [0.0, 1.0])
    np.testing.assert_array_equal(chunk_starts(1.0, 1.0, 0.5), [0.0])  # exactly one chunk long


def test_chunk_starts_float_edge_cases():
    starts = chunk_starts(5.0, 1.0, 0.1)  # (5 - 1) / 0.1 == 39.99999... in floating point
    assert len(starts) == 41
    assert starts[-1] == 4.0 and starts[3] == 0.3  # rounded, not 0.30000000000000004
    starts = chunk_starts(5.0, 1.0, 0.3)
    assert len(starts) == 14 and starts[-1] == 3.9
    assert len(chunk_starts(0.999, 1.0, 0.25)) == 0  # shorter than one chunk
    with pytest.raises(ValueError):
        chunk_starts(5.0, 1.0, 0.0)


# ------------------------------------------------------------------------------------------------
# silence
# ------------------------------------------------------------------------------------------------
def test_rms_db_values_and_digital_silence():
    audio = np.concatenate([np.full(SR, 0.5), np.zeros(SR)])
    rms = chunk_rms_db(audio, SR, np.array([0.0, 0.5, 1.0]), 1.0)
    assert rms[0] == pytest.approx(20 * math.log10(0.5))
    assert rms[1] == pytest.approx(20 * math.log10(0.5 * math.sqrt(0.5)))  # half the samples at 0.5
    assert rms[2] == -np.inf


def test_silence_dropping_on_half_silent_clip():
    audio = np.concatenate([np.full(SR, 0.5), np.zeros(SR)])
    rms = chunk_rms_db(audio, SR, chunk_starts(2.0, 1.0, 0.5), 1.0)
    np.testing.assert_array_equal(silent_chunks(rms, -35.0), [False, False, True])
    # a quiet (not digitally silent) chunk: 40 dB below the loudest is dropped, 30 dB below is not
    np.testing.assert_array_equal(silent_chunks(np.array([-10.0, -50.0, -40.0]), -35.0), [False, True, False])
    assert silent_chunks(np.array([-np.inf, -np.inf]), -35.0).all()  # an all-silent clip


# ------------------------------------------------------------------------------------------------
# segment labels
# ------------------------------------------------------------------------------------------------
def _events(*rows):
    return pd.DataFrame(list(rows), columns=["onset", "offset", "event_label"])


def test_segment_labels_boundaries():
    y = segment_labels(_events((0.5, 2.0, "Dog"), (2.0, 2.5, "Cat")), 4, 1.0, LABELS)
    # Dog ends exactly at 2.0: segments 0, 1 only; Cat starts exactly at 2.0: segment 2
    np.testing.assert_array_equal(y[:, 0], [1, 1, 0, 0])
    np.testing.assert_array_equal(y[:, 1], [0, 0, 1, 0])


def test_segment_labels_overlap_other_classes_and_clipping():
    events = _events(
        (1.2, 3.4, "Cat"), (0.5, 2.0, "Dog"), (0.0, 10.0, "Speech"), (8.5, 11.0, "Running_water")
    )
    y = segment_labels(events, 10, 1.0, LABELS)
    assert y.shape == (10, 5)
    np.testing.assert_array_equal(y[:, 1], [0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(y[:, 3], [0] * 8 + [1, 1])  # runs past the clip: clipped
    assert y[1].sum() == 2  # Dog and Cat together: a multilabel segment
    assert y[:, 4].sum() == 0  # Speech is not a target class


def test_segment_labels_empty_file():
    y = segment_labels(_events(), 10, 1.0, LABELS)
    assert y.shape == (10, 5) and y.sum() == 0


@pytest.mark.parametrize(
    "events,segment",
    [
        ([(0.5, 2.0, "Dog"), (2.0, 2.5, "Cat")], 1.0),
        ([(0.0, 10.0, "Vacuum_cleaner"), (3.999, 4.001, "Dog")], 1.0),
        ([(1.2, 3.4, "Cat"), (3.4, 3.4001, "Cat"), (7.25, 9.75, "Alarm_bell_ringing")], 1.0),
        ([(0.1, 0.3, "Dog"), (0.3, 0.7, "Running_water"), (4.75, 9.95, "Cat")], 0.5),
        ([(0.3, 0.6, "Dog"), (0.6, 0.9, "Dog"), (2.7, 2.9, "Cat")], 0.1),
    ],
)
def test_segment_labels_match_sed_eval_event_roll(events, segment):
    from sed_eval.util.event_roll import event_list_to_event_roll

    n_seg = int(round(10.0 / segment))
    mine = segment_labels(_events(*events), n_seg, segment, LABELS)
    ev_list = [{"event_onset": a, "event_offset": b, "event_label": c} for a, b, c in events]
    ref = event_list_to_event_roll(ev_list, LABELS, time_resolution=segment)
    ref = np.vstack([ref, np.zeros((max(n_seg - len(ref), 0), len(LABELS)))])[:n_seg]
    np.testing.assert_array_equal(mine, ref.astype(np.int8))


# ------------------------------------------------------------------------------------------------
# cached tables
# ------------------------------------------------------------------------------------------------
def test_esc50_chunk_table(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    make_esc50(tmp_path)
    cfg = tiny_config(tmp_path, "chunking.negative_ratio=0.5")
    table = build_esc50_chunks(cfg, progress=False)
    assert list(table.columns[:10]) == [
        "filename",
        "path",
        "fold",
        "category",
        "is_target",
        "start",
        "end",
        "rms_db",
        "silent",
        "kept",
    ]
    assert len(table) == 8 * 2 * 3  # 8 categories x 2 folds x 3 starts (0, 0.5, 1.0)
    dog = table[(table.category == "dog") & (table.fold == 1)]
    np.testing.assert_array_equal(dog["silent"], [False, False, True])
    np.testing.assert_array_equal(dog["kept"], [True, True, False])
    # one-hot labels for targets, all-zero for negatives
    targets = table[table.is_target]
    assert (targets[LABELS].sum(axis=1) == 1).all()
    assert (table.loc[~table.is_target, LABELS].to_numpy() == 0).all()
    assert (targets.loc[targets.category == "clock_alarm", "Alarm_bell_ringing"] == 1).all()
    # negatives: per fold, round(0.5 x kept target chunks), all non-silent
    for fold in (1, 5):
        f = table[table.fold == fold]
        n_target = int((f.is_target & f.kept).sum())
        assert int((~f.is_target & f.kept).sum()) == round(0.5 * n_target)
    assert not (table.kept & table.silent).any()


def test_esc50_negative_ratio_zero_and_determinism(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    make_esc50(tmp_path)
    none = build_esc50_chunks(tiny_config(tmp_path, "chunking.negative_ratio=0"), progress=False)
    assert not (none.kept & ~none.is_target).any()
    a = build_esc50_chunks(tiny_config(tmp_path, "chunking.negative_ratio=0.3"), progress=False)
    for f in sorted((tmp_path / "cache" / "chunks").glob("*.csv")):
        f.unlink()  # force a rebuild: the same seed must draw the same negatives
    b = build_esc50_chunks(tiny_config(tmp_path, "chunking.negative_ratio=0.3"), progress=False)
    pd.testing.assert_frame_equal(a, b)


def test_esc50_chunk_cache_hit_and_invalidation(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    make_esc50(tmp_path)
    cfg = tiny_config(tmp_path)
    first = build_esc50_chunks(cfg, progress=False)
    files = sorted((tmp_path / "cache" / "chunks").glob("esc50-*.csv"))
    assert len(files) == 1

    def boom(*args, **kwargs):
        raise AssertionError("audio read on a cache hit")

    monkeypatch.setattr("sed_utils.labels.chunks.cached_resampled", boom)  # the name chunking calls
    pd.testing.assert_frame_equal(build_esc50_chunks(cfg, progress=False), first)
    with pytest.raises(AssertionError, match="cache hit"):  # a changed parameter rebuilds
        build_esc50_chunks(tiny_config(tmp_path, "chunking.silence_db=-20"), progress=False)
    assert not list((tmp_path / "cache" / "chunks").glob("*.tmp"))


def test_desed_segments_table(tmp_path, monkeypatch):
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)
    make_desed(tmp_path)
    cfg = tiny_config(tmp_path)
    seg = build_segments(cfg, load_test_set(cfg))
    assert len(seg) == 30 and list(seg.filename.unique()) == ["a.wav", "b.wav", "c.wav"]
    a = seg[seg.filename == "a.wav"]
    np.testing.assert_array_equal(a["Dog"], [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(a["Cat"], [0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(a["n_active"], [1, 2, 1, 1, 0, 0, 0, 0, 0, 0])
    b = seg[seg.filename == "b.wav"]
    np.testing.assert_array_equal(b["Vacuum_cleaner"], [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    assert seg.loc[seg.filename == "c.wav", LABELS].to_numpy().sum() == 0  # kept, with empty labels
    assert seg["start"].iloc[3] == 3.0 and seg["end"].iloc[9] == 10.0
    assert Path(seg["path"].iloc[0]).is_file()
    assert len(list((tmp_path / "cache" / "chunks").glob("desed-*.csv"))) == 1
    pd.testing.assert_frame_equal(build_segments(cfg, load_test_set(cfg)), seg)


def test_chunk_statistics_counts():
    esc = pd.DataFrame(
        {
            "is_target": [True, True, True, False, False, False],
            "silent": [False, True, False, False, True, False],
            "kept": [True, False, True, True, False, False],
            **{lab: [0] * 6 for lab in LABELS},
        }
    )
    esc.loc[:2, "Dog"] = 1
    desed = pd.DataFrame(
        np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 1, 1, 0]]), columns=LABELS
    )
    st = chunk_statistics(esc, desed, LABELS)
    assert st["esc50_per_class"].loc["Dog"].tolist() == [2, 1, 0]
    assert st["esc50_per_class"].loc["negatives"].tolist() == [1, 1, 1]
    assert st["desed_active"] == 3 and st["desed_multilabel"] == 2 and st["desed_empty"] == 1
    assert st["multilabel_share"] == pytest.approx(2 / 3)
    assert st["cooccurrence"].loc["Dog", "Cat"] == 1 and st["cooccurrence"].loc["Cat", "Cat"] == 2
    assert st["n_active_hist"].to_dict() == {0: 1, 1: 1, 2: 1, 3: 1}
    for fig in (
        chunk_plots.plot_chunks_per_class(st),
        chunk_plots.plot_segment_activity(st),
        chunk_plots.plot_cooccurrence(st),
    ):
        assert fig.axes
        plt.close(fig)
