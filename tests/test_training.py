"""The one training loop (sed_utils.train.loop) on a tiny learnable problem, for both model kinds:
learning, the kept epoch, early stopping, checkpoints, re-runs, the training key and resuming.

The task: 5 classes, each a bright horizontal band at its own mel row of a 32x40 "spectrogram" over
noise; an item holds 0-2 bands (multilabel). For the chunk kind a band spans the whole item (clip
targets); for the frame kind it spans a random run of the network's 8-frame blocks, and the frame
targets ``[N, 5, C]`` say which (``ceil(40 / 8) = 5`` output frames). A ResNet18 learns either in a
few epochs, so the tests run the real loop in seconds on a CPU.

The items are in "dB" (``MEAN + STD * x`` for a unit-scale ``x``) and the TrainingData carries
``MEAN``/``STD`` as its training statistics: the Detector's normaliser maps them back to unit scale.
The config's ``features.n_mels`` matches the fake features (the front end itself only runs on
waveforms, which training never feeds).
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import sed_utils.train.loop as loop
from sed_utils.config import AugmentConfig, MelConfig, load_config
from sed_utils.core.errors import CheckpointError
from sed_utils.metrics.f1 import macro_f1_at_chosen_thresholds
from sed_utils.models.checkpoint import FORMAT, FORMAT_VERSION, CheckpointInfo, load_trained, read_checkpoint
from sed_utils.models.curves import predict, predict_proba, sigmoid
from sed_utils.models.detector import Detector, set_seed
from sed_utils.models.kinds import build_detector, get_kind, settings_of
from sed_utils.models.precision import resolve_precision
from sed_utils.plots.training import plot_class_f1, plot_history
from sed_utils.train import (
    EarlyStopping,
    ExampleDataset,
    Examples,
    TrainingData,
    fit_epoch,
    train,
    training_key,
    validate,
)

N_MELS, FRAMES, STRIDE = 32, 40, 8
OUT_FRAMES = FRAMES // STRIDE  # the frame network's output frames for 40 mel frames
BAND_ROWS = [3, 9, 15, 21, 27]
MEAN, STD = -40.0, 12.0  # the data's training statistics: the items' dB scale
WINDOW_SECONDS = FRAMES * 160 / 16000  # 40 frames at the demo's 10 ms hop
LABELS = load_config("demo").desed_labels


def band_examples(n: int, seed: int, *, frames: bool = False) -> Examples:
    """``n`` band items: clip targets, and for ``frames`` frame targets on the 8-frame grid."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.5, size=(n, N_MELS, FRAMES)).astype(np.float32)
    targets = np.zeros((n, OUT_FRAMES, 5), dtype=np.float32)
    for i in range(n):
        for c in rng.choice(5, size=int(rng.integers(0, 3)), replace=False):
            a, b = 0, OUT_FRAMES  # a clip target: the whole item
            if frames:  # a run of output frames
                a = int(rng.integers(0, OUT_FRAMES))
                b = int(rng.integers(a + 1, OUT_FRAMES + 1))
            targets[i, a:b, c] = 1.0
            x[i, BAND_ROWS[c]:BAND_ROWS[c] + 3, STRIDE * a:STRIDE * b] += 3.0
    x_db = (MEAN + STD * x).astype(np.float32)
    return Examples(x_db, targets.max(axis=1), targets if frames else None)


def make_data(kind: str, n_train: int = 16, n_valid: int = 8, *, augment: AugmentConfig | None = None,
              seed: int = 1) -> TrainingData:
    """Band examples as a kind's TrainingData: the chunk kind validates on "chunks" and "scenes", the
    frame kind on "scenes" (frame targets)."""
    frames = kind == "frame"
    train_set = ExampleDataset(band_examples(n_train, seed, frames=frames), augment=augment, seed=0,
                               fill_db=MEAN)
    valid = {"scenes": band_examples(n_valid, seed + 1, frames=frames)}
    if not frames:
        valid["chunks"] = band_examples(n_valid, seed + 2)
    return TrainingData(kind, train_set, valid, MEAN, STD, WINDOW_SECONDS)


def make_cfg(tmp_path, *extra: str):
    base = [
        f"runs_root={tmp_path}",
        "features.n_mels=32",
        "models.chunk.epochs=4",
        "models.chunk.batch_size=16",
        "models.chunk.select_on=chunks",
        "models.frame.epochs=4",
        "models.frame.batch_size=16",
        "train.lr=0.002",
        "train.num_threads=1",  # 2 threads on 2 shared cores run ~6x slower than 1
    ]
    return load_config("demo", [*base, *extra])


def weights(path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for the loops run here outside train() (see make_cfg)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def chunk_trained(tmp_path_factory):
    """A chunk model trained long enough to learn the task (select_on: chunks; ~7 s on 2 idle cores)."""
    cfg = make_cfg(tmp_path_factory.mktemp("chunk"))
    data = make_data("chunk", 120, 40)
    return cfg, train(cfg, "chunk", data=data, progress=False), data


@pytest.fixture(scope="module")
def frame_trained(tmp_path_factory):
    """A frame model trained long enough to learn the task (selected on the "scenes", frame targets)."""
    cfg = make_cfg(tmp_path_factory.mktemp("frame"))
    data = make_data("frame", 120, 40)
    return cfg, train(cfg, "frame", data=data, progress=False), data


RESUME_EPOCHS = 3


def resume_data(kind: str) -> TrainingData:
    """Fresh data augmented on the fly (mixes, noise, gains, shifts, masks), so a resumed run must
    restore the data's random stream to repeat the uninterrupted one."""
    aug = AugmentConfig(mix_prob=0.7, noise_prob=0.5, background_prob=0.0)
    return make_data(kind, 24, 12, augment=aug)


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """Per kind: ``(cfg, result, data)`` of a short run that nothing interrupted, whose outputs several
    tests read (and the resume tests compare with)."""
    runs = {}
    for kind in ("chunk", "frame"):
        cfg = make_cfg(tmp_path_factory.mktemp(f"short_{kind}"), f"models.{kind}.epochs={RESUME_EPOCHS}")
        data = resume_data(kind)
        runs[kind] = (cfg, train(cfg, kind, data=data, progress=False), data)
    return runs


# ---- pure pieces ---------------------------------------------------------------------------
def test_early_stopping_counts_epochs_without_strict_improvement():
    s = EarlyStopping(patience=2)
    assert s.step(1, 0.5) is True
    assert s.step(2, 0.5) is False  # equal is not better: the earlier epoch is kept
    assert not s.should_stop
    assert s.step(3, 0.6) is True  # a new best resets the count
    assert s.step(4, 0.1) is False and not s.should_stop
    assert s.step(5, 0.59) is False and s.should_stop
    assert (s.best_epoch, s.best_score) == (3, 0.6)


def test_early_stopping_with_zero_patience_never_stops():
    s = EarlyStopping(patience=0)
    s.step(1, 0.9)
    for e in range(2, 20):
        s.step(e, 0.0)
    assert not s.should_stop and s.best_epoch == 1


# what changes each kind's model (True) and what does not (False): (override, chunk key, frame key)
KEY_CASES = [
    ("chunking.hop_seconds=0.1", True, False),  # how ESC-50 chunks are cut: chunk examples only
    ("chunking.negative_ratio=0.2", True, False),
    ("chunking.segment_seconds=0.5", True, False),  # the training scenes' 1 s segments
    ("chunking.silence_db=-30", True, True),  # also trims the clips inserted into the scenes
    ("scenes.valid=7", True, True),  # the validation scenes pick the epoch
    ("scenes.seed=3", True, True),
    ("scenes.test=7", False, False),  # the test scenes never touch training
    ("folds.scenes_train=[1, 2]", False, False),  # with test_set desed the scene folds are unused
    ("eval.onset_collar=0.5", False, False),
    ("eval.reference_threshold=0.3", False, False),
    ("postprocess.thresholds=[0.5]", False, False),
    ("postprocess.window_hop_seconds=0.5", False, False),
    ("download.mirror=file:///elsewhere", False, False),
    ("models.chunk.epochs=9", True, False),  # another kind's settings never retrain a model
    ("models.chunk.select_on=chunks", True, False),
    ("models.frame.epochs=9", False, True),
    ("models.frame.negative_clips=2", False, True),
    ("models.frame.weak_weight=0.2", False, True),
    ("train.lr=0.01", True, True),
    ("augment.mix_prob=0.9", True, True),
    ("features.n_mels=32", True, True),
    ("features.reference=absolute", True, True),  # settings added later: their neutral value keeps old keys,
    ("augment.gain_min_db=-40", True, True),  # any other value trains anew
    ("models.frame.precision=float32", False, True),  # the frame model's default is auto
    ("models.chunk.precision=float32", True, False),  # so is the chunk model's
    ("seed=3", True, True),
    ("folds.train=[1, 2]", True, True),
    ("test_set=scenes", False, False),  # the demo's DESED folds are the scenes': one model (notebook 07)
    ("folds.valid=[5]", True, True),
    ("models.frame.clip_pool=all", False, True),
    ("augment.band_limit_prob=0.0", True, True),  # the default is 0.3
]


@pytest.mark.parametrize(("override", "chunk_changes", "frame_changes"), KEY_CASES,
                         ids=[case[0] for case in KEY_CASES])
def test_training_key_covers_exactly_what_changes_the_model(override, chunk_changes, frame_changes):
    base = load_config("demo")
    changed = load_config("demo", [override])
    assert (training_key(changed, "chunk") != training_key(base, "chunk")) is chunk_changes
    assert (training_key(changed, "frame") != training_key(base, "frame")) is frame_changes


def test_training_key_is_repeatable_and_names_the_kind():
    cfg = load_config("demo")
    assert training_key(cfg, "chunk") == training_key(load_config("demo"), get_kind("chunk"))
    assert training_key(cfg, "chunk") != training_key(cfg, "frame")


def test_fit_epoch_is_the_loop_notebook_05_writes_out_by_hand_chunk():
    """Notebook 05 writes the training loop out by hand; it must be the loop the package runs."""
    data = ExampleDataset(band_examples(48, seed=3))

    def fresh():
        set_seed(0)
        model = build_detector("chunk", LABELS, MelConfig(n_mels=N_MELS), 16000, WINDOW_SECONDS, MEAN, STD)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)

    by_hand, opt, schedule = fresh()
    by_hand.train()
    losses = []
    for x, targets in DataLoader(data, batch_size=16):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(by_hand(x)["clip_logits"], targets["clip"])
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.item())
    package, opt2, schedule2 = fresh()
    settings = settings_of(load_config("demo"), "chunk")
    mean_loss = fit_epoch(package, DataLoader(data, batch_size=16), opt2, schedule2,
                          loss_fn=lambda out, t: get_kind("chunk").loss(out, t, settings), progress=False)
    assert mean_loss == pytest.approx(np.mean(losses), rel=1e-5)  # 3 equal batches: the mean of the three
    assert_same_weights(by_hand.state_dict(), package.state_dict())
    assert schedule2.last_epoch == 3  # one schedule step per batch


def test_fit_epoch_is_the_hand_written_loop_for_the_frame_loss_too():
    """The frame model's loss: BCE of every frame + weak_weight x BCE of the clip (dropout included)."""
    data = ExampleDataset(band_examples(32, seed=4, frames=True))
    settings = settings_of(load_config("demo", ["models.frame.weak_weight=0.25"]), "frame")

    def fresh():
        set_seed(0)
        model = build_detector("frame", LABELS, MelConfig(n_mels=N_MELS), 16000, WINDOW_SECONDS, MEAN, STD)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    by_hand, opt = fresh()
    by_hand.train()
    for x, targets in DataLoader(data, batch_size=16):
        opt.zero_grad()
        out = by_hand(x)
        bce = nn.functional.binary_cross_entropy_with_logits
        loss = bce(out["frame_logits"], targets["frames"]) + 0.25 * bce(out["clip_logits"], targets["clip"])
        loss.backward()
        opt.step()
    package, opt2 = fresh()
    loss_fn = partial(get_kind("frame").loss, settings=settings)
    fit_epoch(package, DataLoader(data, batch_size=16), opt2, loss_fn=loss_fn, progress=False)
    assert_same_weights(by_hand.state_dict(), package.state_dict())


@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_bfloat16_autocast_trains_with_float32_weights_and_a_loss_close_to_float32(kind):
    """``models.<kind>.precision: bfloat16``: the same batches give a loss within bfloat16's precision of the
    float32 loss, the weights stay float32, and they move."""
    data = ExampleDataset(band_examples(32, seed=5, frames=kind == "frame"))
    settings = settings_of(load_config("demo"), kind)
    loss_fn = partial(get_kind(kind).loss, settings=settings)
    losses, states = {}, {}
    for precision in ("float32", "bfloat16"):
        set_seed(0)
        model = build_detector(kind, LABELS, MelConfig(n_mels=N_MELS), 16000, WINDOW_SECONDS, MEAN, STD)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        losses[precision] = fit_epoch(model, DataLoader(data, batch_size=16), opt, loss_fn=loss_fn,
                                      precision=precision, progress=False)
        states[precision] = model.state_dict()
        assert all(v.dtype == before[k].dtype for k, v in states[precision].items())
        assert any(not torch.equal(v, before[k]) for k, v in states[precision].items())
    assert np.isfinite(losses["bfloat16"])
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.05)
    assert losses["bfloat16"] != losses["float32"]  # autocast did run in bfloat16


def test_validate_scores_every_set_and_the_selection_set_per_class():
    set_seed(0)
    model = build_detector("frame", LABELS, MelConfig(n_mels=N_MELS), 16000, WINDOW_SECONDS, MEAN, STD)
    scenes, more = band_examples(12, 5, frames=True), band_examples(10, 6, frames=True)
    loss_fn = partial(get_kind("frame").loss, settings=settings_of(load_config("demo"), "frame"))
    row = validate(model, {"scenes": scenes, "more": more}, loss_fn, LABELS, "scenes", batch_size=5)
    assert set(row) == {"valid_scenes_loss", "valid_scenes_f1", "valid_more_loss", "valid_more_f1",
                        *(f"valid_f1_{lab}" for lab in LABELS)}
    for name, ex in (("scenes", scenes), ("more", more)):
        out = predict(model, ex.features)
        # frame sets are scored on their frames (every frame of every item), not on their clips
        macro, per_class, _ = macro_f1_at_chosen_thresholds(ex.frames.reshape(-1, 5),
                                                            sigmoid(out["frame_logits"]).reshape(-1, 5))
        assert row[f"valid_{name}_f1"] == pytest.approx(macro)
        want = loss_fn({k: torch.from_numpy(v) for k, v in out.items()},
                       {"clip": torch.from_numpy(ex.clip), "frames": torch.from_numpy(ex.frames)})
        assert row[f"valid_{name}_loss"] == pytest.approx(float(want), rel=1e-5)
        if name == "scenes":  # the per-class columns are the selection set's
            assert [row[f"valid_f1_{lab}"] for lab in LABELS] == pytest.approx(list(per_class))
    assert model.training  # validation restores the mode


@pytest.mark.parametrize("setting", ["auto", "float32"])
def test_each_epoch_is_validated_in_the_arithmetic_the_evaluation_scores_in(tmp_path, monkeypatch, setting):
    """A bfloat16 model's epochs are picked by a validation in what ``eval.precision`` scores it in later:
    bfloat16 under ``auto`` where the machine has it, float32 under ``float32`` (which joins the key)."""
    seen = []

    def spy(model, *args, **kwargs):
        seen.append(model.precision)
        return real(model, *args, **kwargs)

    real = loop.validate
    monkeypatch.setattr(loop, "validate", spy)
    cfg = make_cfg(tmp_path, "models.chunk.epochs=1", "models.chunk.precision=bfloat16",
                   f"eval.precision={setting}")
    train(cfg, "chunk", data=make_data("chunk", 16, 8), progress=False)
    want = resolve_precision("auto", torch.device("cpu")) if setting == "auto" else "float32"
    assert seen == [want]
    assert ("validated_in" in loop.training_key(cfg, "chunk")) == (setting != "auto")


# ---- learning ------------------------------------------------------------------------------
def test_a_tiny_chunk_model_learns_the_band_task(chunk_trained):
    cfg, result, _ = chunk_trained
    h = result.history
    assert result.best_score > 0.8, h
    assert not result.skipped and result.resumed_from == 0 and result.info.pretrained_loaded is False
    assert isinstance(result.info, CheckpointInfo) and result.info.complete and result.info.kind == "chunk"
    assert result.selected_on == "chunks"  # models.chunk.precision is "auto" too: what this machine has
    assert result.info.precision == resolve_precision("auto", torch.device("cpu"))
    assert set(h.columns) == {"epoch", "train_loss", "valid_chunks_loss", "valid_chunks_f1",
                              "valid_scenes_loss", "valid_scenes_f1", "lr", "seconds",
                              *(f"valid_f1_{lab}" for lab in LABELS)}
    assert list(h["epoch"]) == [1, 2, 3, 4]
    # the kept epoch is the best on the selection set (the earliest of equals), with its score
    assert result.best_epoch == int(h.loc[h["valid_chunks_f1"].idxmax(), "epoch"])
    assert result.best_score == pytest.approx(h["valid_chunks_f1"].max())
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    # macro F1 of the selection set is the mean of its per-class columns
    np.testing.assert_allclose(h[[f"valid_f1_{lab}" for lab in LABELS]].mean(axis=1), h["valid_chunks_f1"])
    assert (h["seconds"] > 0).all() and result.seconds == pytest.approx(h["seconds"].sum())


def test_a_tiny_frame_model_learns_the_band_task_on_its_frames(frame_trained):
    cfg, result, data = frame_trained
    h = result.history
    truth = data.valid["scenes"].frames.reshape(-1, 5)
    share = truth.mean(axis=0)
    chance = float(np.mean(2 * share / (1 + share)))  # macro F1 of calling every frame positive
    assert chance < 0.3 and result.best_score > max(0.6, 2 * chance), h
    assert result.selected_on == "scenes" and result.info.kind == "frame" and result.info.complete
    # models.frame.precision is "auto": the checkpoint says what this machine trained in
    saved = load_trained(cfg.paths.checkpoint("frame")).info
    assert saved.precision == resolve_precision("auto", torch.device("cpu"))
    assert set(h.columns) == {"epoch", "train_loss", "valid_scenes_loss", "valid_scenes_f1", "lr", "seconds",
                              *(f"valid_f1_{lab}" for lab in LABELS)}
    assert result.best_epoch == int(h.loc[h["valid_scenes_f1"].idxmax(), "epoch"])
    assert result.best_score == pytest.approx(h["valid_scenes_f1"].max())
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]


@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_outputs_written_where_and_as_documented(kind, short_runs):
    cfg, result, data = short_runs[kind]
    assert result.checkpoint == cfg.run_dir / kind / "best.pt" == cfg.paths.checkpoint(kind)
    ckpt = torch.load(result.checkpoint, weights_only=True)
    assert (ckpt["format"], ckpt["format_version"]) == (FORMAT, FORMAT_VERSION) == (FORMAT, 3)
    assert ckpt["kind"] == kind and ckpt["complete"] is True and ckpt["labels"] == LABELS
    assert ckpt["key"] == training_key(cfg, kind) and ckpt["epoch"] == result.best_epoch
    assert ckpt["selected_on"] == ("chunks" if kind == "chunk" else "scenes")
    assert ckpt["config"] == cfg.to_dict()
    # the Detector's front end settings travel with the weights; its window is the data's
    assert ckpt["sample_rate"] == cfg.audio.sample_rate and ckpt["window_seconds"] == WINDOW_SECONDS
    assert ckpt["mel"]["n_mels"] == N_MELS and ckpt["mel"]["hop_length"] == cfg.features.hop_length
    state = ckpt["state_dict"]
    assert float(state["normaliser.mean"]) == MEAN and float(state["normaliser.std"]) == STD
    hist = pd.read_csv(cfg.paths.history(kind))
    pd.testing.assert_frame_equal(hist, result.history, check_dtype=False)
    assert not cfg.paths.last_state(kind).exists()  # the resume state goes once the run is complete
    assert not list(cfg.paths.model_dir(kind).glob("*.tmp"))


@pytest.mark.parametrize("kind", ["chunk", "frame"])
def test_the_checkpoint_holds_the_kept_epoch_s_weights(kind, short_runs):
    cfg, result, data = short_runs[kind]
    tm = load_trained(result.checkpoint, device="cpu")
    assert isinstance(tm.detector, Detector) and not tm.detector.training and tm.kind == kind
    assert tm.info == result.info  # one conversion from checkpoint to info
    # its front end makes features like the ones it trained on (32 mel bands, the config's hop)
    assert tm.detector.features(torch.zeros(1, int(WINDOW_SECONDS * 16000))).shape == (1, N_MELS, FRAMES + 1)
    loss_fn = partial(get_kind(kind).loss, settings=settings_of(cfg, kind))
    again = validate(tm.detector, data.valid, loss_fn, LABELS, result.selected_on, 64)
    kept = result.history.set_index("epoch").loc[result.best_epoch]
    for column, value in again.items():  # the kept epoch's row, not the last epoch's
        assert value == pytest.approx(kept[column], rel=1e-3, abs=1e-4), column


def test_selection_on_the_validation_scenes_picks_their_best_epoch(tmp_path):
    data = make_data("chunk", 32, 16)
    # scene labels that disagree with the bands for two classes: the scene F1 then peaks elsewhere
    scenes = data.valid["scenes"]
    data.valid["scenes"] = Examples(scenes.features, np.ascontiguousarray(scenes.clip[:, [1, 0, 2, 3, 4]]))
    cfg = make_cfg(tmp_path, "models.chunk.select_on=scenes", "models.chunk.epochs=3")
    result = train(cfg, "chunk", data=data, progress=False)
    h = result.history
    assert result.selected_on == "scenes"
    assert result.best_epoch == int(h.loc[h["valid_scenes_f1"].idxmax(), "epoch"])
    assert result.best_score == pytest.approx(h["valid_scenes_f1"].max())
    # the per-class columns are the selection set's
    np.testing.assert_allclose(h[[f"valid_f1_{lab}" for lab in LABELS]].mean(axis=1), h["valid_scenes_f1"])
    again = train(cfg, "chunk", data=data, progress=False)
    assert again.skipped and again.selected_on == "scenes"
    assert again.best_score == pytest.approx(result.best_score)
    no_chunks = dataclasses.replace(data, valid={"scenes": data.valid["scenes"]})
    with pytest.raises(ValueError, match="select_on 'chunks'"):
        train(make_cfg(tmp_path / "other"), "chunk", data=no_chunks, progress=False)


def test_cosine_schedule_lowers_the_learning_rate_to_zero(tmp_path):
    data = make_data("chunk")
    constant = train(make_cfg(tmp_path / "c", "models.chunk.epochs=3", "train.lr_schedule=constant"), "chunk",
                     data=data, progress=False)
    assert list(constant.history["lr"]) == pytest.approx([0.002] * 3)
    cosine = train(make_cfg(tmp_path / "k", "models.chunk.epochs=3", "train.lr_schedule=cosine"), "chunk",
                   data=data, progress=False)
    lr = cosine.history["lr"].to_numpy()
    assert lr[0] < 0.002 and np.all(np.diff(lr) < 0) and lr[-1] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="lr_schedule"):
        make_cfg(tmp_path, "train.lr_schedule=linear")


def test_early_stopping_stops_when_the_selection_score_does_not_improve(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sed_utils")
    # A validation set without any positive label has macro F1 = 0 whatever the model predicts, so
    # epoch 1 stays the best and, with patience 2, training must stop after epoch 3 of 6.
    data = make_data("chunk")
    chunks = data.valid["chunks"]
    data.valid["chunks"] = Examples(chunks.features, np.zeros_like(chunks.clip))
    cfg = make_cfg(tmp_path, "models.chunk.epochs=6", "train.patience=2")
    result = train(cfg, "chunk", data=data, progress=True)
    assert list(result.history["epoch"]) == [1, 2, 3]
    assert list(result.history["valid_chunks_f1"]) == [0.0, 0.0, 0.0]
    assert result.best_epoch == 1 and read_checkpoint(result.checkpoint)["epoch"] == 1
    assert "Early stopping" in caplog.text


def test_seeded_runs_repeat_and_another_seed_differs(tmp_path):
    # The training set augments on the fly from a generator kept across items: a second run on the
    # SAME data object must still see the same augmentations as the first (train reseeds it).
    data = make_data("chunk", augment=AugmentConfig(mix_prob=0.5, noise_prob=0.5))
    a = train(make_cfg(tmp_path / "a", "models.chunk.epochs=2"), "chunk", data=data, progress=False)
    b = train(make_cfg(tmp_path / "b", "models.chunk.epochs=2"), "chunk", data=data, progress=False)
    c = train(make_cfg(tmp_path / "c", "models.chunk.epochs=2", "seed=1"), "chunk", data=data, progress=False)
    for column in ("train_loss", "valid_chunks_loss", "valid_scenes_loss"):
        np.testing.assert_array_equal(a.history[column], b.history[column])
    assert_same_weights(weights(a.checkpoint), weights(b.checkpoint))
    assert not np.array_equal(a.history["train_loss"], c.history["train_loss"])


def test_bad_data_is_rejected_with_a_reason(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(ValueError, match="built for the 'frame' model"):
        train(cfg, "chunk", data=make_data("frame"), progress=False)
    data = make_data("chunk")
    empty = dataclasses.replace(data, train=ExampleDataset(band_examples(0, 0)))
    with pytest.raises(ValueError, match="empty training or validation set"):
        train(cfg, "chunk", data=empty, progress=False)
    no_valid = dataclasses.replace(data, valid={**data.valid, "scenes": band_examples(0, 0)})
    with pytest.raises(ValueError, match="empty training or validation set"):
        train(cfg, "chunk", data=no_valid, progress=False)
    assert not cfg.paths.checkpoint("chunk").exists()


# ---- re-runs -------------------------------------------------------------------------------
def test_rerun_skips_a_finished_run_and_retrains_only_when_the_model_would_change(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sed_utils")
    data = make_data("chunk")
    cfg = make_cfg(tmp_path, "models.chunk.epochs=1")
    first = train(cfg, "chunk", data=data, progress=False)
    mtime = first.checkpoint.stat().st_mtime_ns
    caplog.clear()
    again = train(cfg, "chunk", data=data, progress=False)
    assert again.skipped and not first.skipped and "Skipping training" in caplog.text
    assert first.checkpoint.stat().st_mtime_ns == mtime
    assert (again.best_epoch, again.best_score, again.info.key) == (first.best_epoch, first.best_score,
                                                                     first.info.key)
    pd.testing.assert_frame_equal(again.history, first.history, check_dtype=False, atol=1e-12)

    # evaluation-only settings and the other kind's settings cannot change this model: it is reused
    for override in ("eval.onset_collar=0.5", "postprocess.thresholds=[0.5]", "models.frame.epochs=9",
                     "scenes.test=7", "download.mirror=file:///x"):
        assert train(make_cfg(tmp_path, "models.chunk.epochs=1", override), "chunk", data=data,
                     progress=False).skipped, override
    assert first.checkpoint.stat().st_mtime_ns == mtime

    longer = train(make_cfg(tmp_path, "models.chunk.epochs=2"), "chunk", data=data, progress=False)
    assert not longer.skipped and len(longer.history) == 2
    assert read_checkpoint(longer.checkpoint)["config"]["models"]["chunk"]["epochs"] == 2
    changed = train(make_cfg(tmp_path, "models.chunk.epochs=2", "train.lr=0.001"), "chunk", data=data,
                    progress=False)
    assert not changed.skipped and read_checkpoint(changed.checkpoint)["config"]["train"]["lr"] == 0.001


def test_a_finished_model_of_the_same_key_is_reused_from_another_run_folder(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="sed_utils")
    """Notebook 07's case: the held-out scenes' model, trained with exactly notebook 05's settings, is
    copied, not trained again; with any difference in its training key it trains."""
    from sed_utils.evaluate import heldout_scenes_config
    from sed_utils.train import loop

    data = make_data("chunk")
    folds = ["folds.train=[1,2,3]", "folds.valid=[4]"]
    source = make_cfg(tmp_path / "a", "models.chunk.epochs=1", *folds)
    first = train(source, "chunk", data=data, progress=False)
    held = heldout_scenes_config(source)  # test_set scenes: folds.scenes_train/valid are 1-3 / 4 too
    assert held.run_dir != source.run_dir

    def no_training(*args, **kwargs):
        raise AssertionError("trained although an identical model was there")

    monkeypatch.setattr(loop, "_fit", no_training)
    caplog.clear()
    reused = train(held, "chunk", data=data, progress=False, reuse_from=source)
    assert "Reusing the chunk model" in caplog.text and reused.skipped
    assert reused.checkpoint == held.paths.checkpoint("chunk") and reused.checkpoint.is_file()
    assert_same_weights(weights(reused.checkpoint), weights(first.checkpoint))
    other = heldout_scenes_config(make_cfg(tmp_path / "b", "models.chunk.epochs=1", "seed=5"))
    with pytest.raises(AssertionError, match="trained although"):
        train(other, "chunk", data=data, progress=False, reuse_from=source)


def test_a_frame_run_is_kept_when_only_chunk_settings_change(tmp_path):
    data = make_data("frame")
    cfg = make_cfg(tmp_path, "models.frame.epochs=1")
    first = train(cfg, "frame", data=data, progress=False)
    for override in ("models.chunk.epochs=9", "chunking.hop_seconds=0.1", "postprocess.median_filters=[1]"):
        assert train(make_cfg(tmp_path, "models.frame.epochs=1", override), "frame", data=data,
                     progress=False).skipped, override
    retrained = train(make_cfg(tmp_path, "models.frame.epochs=1", "chunking.silence_db=-30"), "frame",
                      data=data, progress=False)
    assert not retrained.skipped and retrained.info.key != first.info.key


def test_incomplete_checkpoint_is_retrained(tmp_path):
    data = make_data("chunk")
    cfg = make_cfg(tmp_path, "models.chunk.epochs=1")
    first = train(cfg, "chunk", data=data, progress=False)
    ckpt = torch.load(first.checkpoint, weights_only=True)
    ckpt["complete"] = False  # as if the run had been interrupted
    torch.save(ckpt, first.checkpoint)
    again = train(cfg, "chunk", data=data, progress=False)
    assert not again.skipped and again.info.complete


def test_a_folder_with_an_old_format_checkpoint_is_retrained_with_a_note(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sed_utils")
    data = make_data("chunk")
    cfg = make_cfg(tmp_path, "models.chunk.epochs=1")
    first = train(cfg, "chunk", data=data, progress=False)
    old = torch.load(first.checkpoint, weights_only=True)
    old["format_version"] = 2  # what the two-stack sed_utils wrote, same config and key
    torch.save(old, first.checkpoint)
    caplog.clear()
    again = train(cfg, "chunk", data=data, progress=False)
    out = caplog.text
    assert not again.skipped
    assert "Not reusing the saved model" in out and "format 2" in out and "training again" in out
    assert torch.load(again.checkpoint, weights_only=True)["format_version"] == FORMAT_VERSION
    assert load_trained(again.checkpoint, device="cpu").labels == LABELS


# ---- resuming an interrupted run -----------------------------------------------------------
def interrupt_after(monkeypatch, k: int) -> None:
    """Make the (k+1)-th call of fit_epoch raise KeyboardInterrupt (Ctrl-C during epoch k + 1), once."""
    real, calls = loop.fit_epoch, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k + 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "fit_epoch", flaky)


@pytest.mark.parametrize(("kind", "k"), [("chunk", 1), ("frame", 2)])
def test_an_interrupted_run_resumes_to_bit_identical_weights(kind, k, tmp_path, monkeypatch, caplog,
                                                             short_runs):
    cfg = make_cfg(tmp_path, f"models.{kind}.epochs={RESUME_EPOCHS}")
    interrupt_after(monkeypatch, k)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, kind, data=resume_data(kind), progress=False)
    best, last = cfg.paths.checkpoint(kind), cfg.paths.last_state(kind)
    assert best.is_file() and last.is_file()
    assert read_checkpoint(best)["complete"] is False  # a re-run must not take it for a finished one
    assert torch.load(last, weights_only=True)["epoch"] == k
    assert len(pd.read_csv(cfg.paths.history(kind))) == k
    caplog.clear()
    caplog.set_level(logging.INFO, logger="sed_utils")

    resumed = train(cfg, kind, data=resume_data(kind), progress=False)  # as a re-run notebook builds it anew
    assert f"Resuming {kind} training after epoch {k}" in caplog.text
    assert resumed.resumed_from == k and not resumed.skipped and resumed.info.complete
    full = short_runs[kind][1]
    assert_same_weights(weights(resumed.checkpoint), weights(full.checkpoint))
    assert resumed.best_epoch == full.best_epoch and resumed.best_score == full.best_score
    columns = [c for c in full.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(resumed.history[columns], full.history[columns])
    assert not last.exists() and read_checkpoint(best)["complete"] is True


def test_a_saved_state_of_another_training_key_is_not_resumed(tmp_path, monkeypatch, short_runs):
    cfg = make_cfg(tmp_path, f"models.chunk.epochs={RESUME_EPOCHS}")
    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, "chunk", data=resume_data("chunk"), progress=False)
    last = cfg.paths.last_state("chunk")
    state = torch.load(last, weights_only=True)
    state["key"] = training_key(make_cfg(tmp_path, "train.lr=0.5"), "chunk")  # written by another config
    torch.save(state, last)
    result = train(cfg, "chunk", data=resume_data("chunk"), progress=False)
    assert result.resumed_from == 0 and len(result.history) == RESUME_EPOCHS
    assert_same_weights(weights(result.checkpoint), weights(short_runs["chunk"][1].checkpoint))
    assert not last.exists()


def test_a_saved_state_without_its_best_checkpoint_trains_from_the_start(tmp_path, monkeypatch, short_runs):
    cfg = make_cfg(tmp_path, f"models.chunk.epochs={RESUME_EPOCHS}")
    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, "chunk", data=resume_data("chunk"), progress=False)
    cfg.paths.checkpoint("chunk").unlink()  # the user deleted best.pt but not last.pt
    result = train(cfg, "chunk", data=resume_data("chunk"), progress=False)
    assert result.resumed_from == 0
    assert_same_weights(weights(result.checkpoint), weights(short_runs["chunk"][1].checkpoint))


# ---- reading a trained model ---------------------------------------------------------------
def test_plots_mark_the_kept_epoch(short_runs):
    _, result, _ = short_runs["chunk"]
    h = result.history
    fig = plot_history(h, selected_on="chunks")
    ax_loss, ax_f1 = fig.axes
    kept = [ln for ln in ax_f1.get_lines() if ln.get_label().startswith("kept epoch")]
    assert kept and kept[0].get_xdata()[0] == result.best_epoch
    assert len(ax_loss.get_lines()) == 4  # training, two validation sets, the kept-epoch marker
    # the epoch the other set would have kept is marked dotted when it differs
    h2 = h.assign(valid_scenes_f1=np.linspace(0.6, 0.2, len(h)))  # the scenes' best: epoch 1
    lines = plot_history(h2, selected_on="chunks").axes[1].get_lines()
    marks = {ln.get_label(): ln.get_xdata()[0] for ln in lines
             if ln.get_label().startswith(("kept epoch", "best on"))}
    assert marks[f"kept epoch ({result.best_epoch}, best on chunks)"] == result.best_epoch
    assert result.best_epoch == 1 or marks["best on scenes (1)"] == 1
    bars = plot_class_f1(h, selected_on="chunks").axes[0].patches
    best_row = h[h["epoch"] == result.best_epoch].iloc[0]
    assert [b.get_height() for b in bars] == pytest.approx([best_row[f"valid_f1_{lab}"] for lab in LABELS])
    assert plot_class_f1(h2, selected_on="scenes").axes[0].get_title().endswith("kept epoch 1")
    with pytest.raises(ValueError, match="no epochs"):
        plot_history(h.iloc[:0])


def test_predict_proba_input_checks_and_empty_input():
    set_seed(0)
    model = build_detector("chunk", LABELS, MelConfig(n_mels=N_MELS), 16000, WINDOW_SECONDS, MEAN, STD)
    with pytest.raises(ValueError, match=r"\[N, 1, n_mels, frames\]"):
        predict_proba(model, np.zeros((2, 3, N_MELS, FRAMES), dtype=np.float32))
    assert predict_proba(model, np.zeros((0, 1, N_MELS, FRAMES), dtype=np.float32)).shape == (0, 5)
    probs = predict_proba(model, band_examples(3, 0).features)
    assert probs.shape == (3, 5) and ((probs >= 0) & (probs <= 1)).all()


def test_load_trained_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope" / "best.pt"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_trained(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_trained(corrupt)
    partial_ckpt = tmp_path / "partial.pt"
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "state_dict": {}}, partial_ckpt)
    with pytest.raises(CheckpointError, match=r"partial\.pt.*lacks"):
        load_trained(partial_ckpt)
    not_a_dict = tmp_path / "list.pt"
    torch.save([1, 2], not_a_dict)
    with pytest.raises(CheckpointError, match=r"list\.pt.*expected a dict"):
        load_trained(not_a_dict)


@pytest.mark.parametrize("kind", ["frame", "crnn"])
def test_bfloat16_training_stays_finite(kind):
    """bfloat16 (``models.frame.precision``) once trained the frame model into NaN from its first epoch:
    under autocast its attention pooling clamped probabilities to 1 - 1e-7, which rounds to 1 in bfloat16,
    and logit(1) is inf. A few steps of both frame kinds must keep a finite, falling loss."""
    cfg = load_config("demo")
    k, settings = get_kind(kind), settings_of(cfg, kind)
    rng = np.random.default_rng(0)
    feats = (rng.standard_normal((16, 64, 1001)) * 10 - 40).astype(np.float32)
    frames = (rng.random((16, 126, len(LABELS))) > 0.9).astype(np.float32)
    torch.manual_seed(0)
    model = build_detector(kind, LABELS, cfg.features, 16000, 10.0, -40.0, 10.0)
    examples = ExampleDataset(Examples(feats, frames.max(axis=1), frames), augment=cfg.augment, seed=0,
                              fill_db=-40.0)
    loader = DataLoader(examples, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = partial(k.loss, settings=settings)
    losses = [fit_epoch(model, loader, optimiser, None, loss_fn=loss_fn, device="cpu", channels_last=True,
                        precision="bfloat16", progress=False) for _ in range(3)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
