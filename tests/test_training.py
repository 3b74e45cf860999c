"""The training loop on a tiny learnable problem: learning, early stopping, checkpoints, re-runs.

The synthetic task: 5 classes, each a bright horizontal band at its own mel row of a 1x32x40
"spectrogram" over noise; an item holds 0-2 bands (multilabel). A ResNet18 learns it in a few
epochs, so the tests exercise the real loop in seconds on a CPU.

The items are in "dB" (``MEAN + STD * x`` for a unit-scale ``x``) and the bundle carries
``MEAN``/``STD`` as its training statistics: the Detector's normaliser inside the model maps them
back to unit scale, so the classifier sees exactly the unit-scale task.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from sed_utils.checkpoint import FORMAT, FORMAT_VERSION, CheckpointInfo, load_trained
from sed_utils.config import load_config
from sed_utils.core.errors import CheckpointError
from sed_utils.inference import predict_proba
from sed_utils.metrics.f1 import macro_f1
from sed_utils.model import Detector
from sed_utils.plots.training import plot_class_f1, plot_history
from sed_utils.training import EarlyStopping, train_model

N_MELS, FRAMES = 32, 40
BAND_ROWS = [3, 9, 15, 21, 27]
MEAN, STD = -40.0, 12.0  # the bundle's training statistics: the items' dB scale


def band_data(n: int, seed: int) -> TensorDataset:
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 5), dtype=np.float32)
    for i in range(n):
        k = rng.integers(0, 3)  # 0, 1 or 2 active classes
        y[i, rng.choice(5, size=k, replace=False)] = 1.0
    x = rng.normal(0.0, 0.5, size=(n, 1, N_MELS, FRAMES)).astype(np.float32)
    for c, row in enumerate(BAND_ROWS):
        x[y[:, c] == 1, 0, row : row + 3, :] += 3.0
    x_db = (MEAN + STD * x).astype(np.float32)
    return TensorDataset(torch.from_numpy(x_db), torch.from_numpy(y))


class NoisyBands(Dataset):
    """Band items with on-the-fly noise from ONE generator kept across calls, like ChunkDataset."""

    def __init__(self, base: TensorDataset, seed: int = 0):
        self.base, self.seed, self._rng = base, seed, None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        x, y = self.base[i]
        return x + torch.from_numpy(self._rng.normal(0, 0.3 * STD, x.shape).astype(np.float32)), y


def make_bundle(n_train: int = 120, n_valid: int = 60) -> SimpleNamespace:
    cfg = load_config("demo")
    return SimpleNamespace(
        train=band_data(n_train, 1),
        valid=band_data(n_valid, 2),
        mean=np.float32(MEAN),
        std=np.float32(STD),
        labels=cfg.desed_labels,
        valid_scenes=None,  # train.select_on=chunks: no validation scenes needed
    )


def make_cfg(tmp_path, *extra: str):
    base = [
        f"runs_root={tmp_path}",
        "train.epochs=4",
        "train.batch_size=16",
        "train.patience=4",
        "train.lr=0.002",
        "train.num_threads=0",
        "train.select_on=chunks",
    ]
    return load_config("demo", [*base, *extra])


@pytest.fixture(scope="module")
def bundle():
    return make_bundle()


@pytest.fixture(scope="module")
def small_bundle():
    """For tests of the loop's mechanics (not of learning): fewer items, faster runs."""
    return make_bundle(48, 24)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, bundle):
    """One real training run shared by the tests that only read its outputs."""
    tmp = tmp_path_factory.mktemp("run")
    cfg = make_cfg(tmp)
    t0 = time.perf_counter()
    result = train_model(cfg, bundle, progress=False)
    return cfg, result, time.perf_counter() - t0


# ---- pure pieces ---------------------------------------------------------------------------
def test_cosine_schedule_lowers_the_learning_rate_to_zero(tmp_path, small_bundle):
    flat = make_cfg(tmp_path / "c", "train.epochs=3", "train.lr_schedule=constant")
    constant = train_model(flat, small_bundle, progress=False)
    assert list(constant.history["lr"]) == pytest.approx([0.002] * 3)
    cosine = train_model(make_cfg(tmp_path / "k", "train.epochs=3", "train.lr_schedule=cosine"), small_bundle,
                         progress=False)
    lr = cosine.history["lr"].to_numpy()
    assert lr[0] < 0.002 and np.all(np.diff(lr) < 0) and lr[-1] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="lr_schedule"):
        make_cfg(tmp_path, "train.lr_schedule=linear")


def test_selection_on_validation_scenes_picks_their_best_epoch(tmp_path, small_bundle):
    scenes_data = band_data(40, 3)
    # scene labels that disagree with the bands for two classes: the scene F1 then peaks elsewhere
    y = scenes_data.tensors[1].numpy().copy()
    y[:, :2] = y[:, :2][::-1]
    # as DataBundle.valid_scenes: (log-mels in dB [N, n_mels, frames], y [N, C])
    scenes = (scenes_data.tensors[0].numpy()[:, 0], y)
    bundle = SimpleNamespace(**{**vars(small_bundle), "valid_scenes": scenes})
    cfg = make_cfg(tmp_path, "train.select_on=scenes", "train.patience=0")
    result = train_model(cfg, bundle, progress=False)
    h = result.history
    assert result.selected_on == "scenes" and "valid_scenes_f1" in h
    assert result.best_epoch == int(h.loc[h["valid_scenes_f1"].idxmax(), "epoch"])
    assert result.best_score == pytest.approx(h["valid_scenes_f1"].max())
    chunk_f1 = h.loc[h["epoch"] == result.best_epoch, "valid_macro_f1"].iloc[0]
    assert result.best_valid_macro_f1 == pytest.approx(chunk_f1)  # chunk F1 of the chosen epoch
    again = train_model(cfg, bundle, progress=False)
    assert again.skipped and again.selected_on == "scenes"
    assert again.best_score == pytest.approx(result.best_score)
    with pytest.raises(ValueError, match="no validation scenes"):
        train_model(make_cfg(tmp_path / "other", "train.select_on=scenes"), small_bundle, progress=False)
    no_attribute = SimpleNamespace(**{k: v for k, v in vars(small_bundle).items() if k != "valid_scenes"})
    with pytest.raises(ValueError, match="no validation scenes"):
        train_model(make_cfg(tmp_path / "other", "train.select_on=scenes"), no_attribute, progress=False)




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


# ---- training ------------------------------------------------------------------------------


def test_training_learns_the_band_task(trained):
    cfg, result, seconds = trained
    assert result.best_valid_macro_f1 > 0.8, result.history
    assert not result.skipped and result.pretrained_loaded is False
    assert isinstance(result.info, CheckpointInfo) and result.info.complete
    assert result.selected_on == "chunks" and result.best_score == pytest.approx(result.best_valid_macro_f1)
    assert result.seconds > 0 and result.info.path == result.checkpoint
    assert (result.info.n_mels, result.info.frames) == (N_MELS, FRAMES)
    h = result.history
    assert list(h["epoch"]) == list(range(1, len(h) + 1))
    assert result.best_epoch == int(h.loc[h["valid_macro_f1"].idxmax(), "epoch"])
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    expected_cols = {"epoch", "train_loss", "valid_loss", "valid_macro_f1", "seconds"}
    expected_cols |= {f"valid_f1_{lab}" for lab in cfg.desed_labels}
    assert expected_cols <= set(h.columns)
    # macro F1 is the mean of the per-class columns
    per = h[[f"valid_f1_{lab}" for lab in cfg.desed_labels]].mean(axis=1)
    np.testing.assert_allclose(per, h["valid_macro_f1"])


def test_outputs_written_where_and_as_documented(trained, bundle):
    cfg, result, _ = trained
    out = cfg.run_dir / "model"
    assert result.checkpoint == out / "best.pt"
    ckpt = torch.load(result.checkpoint, weights_only=True)
    for key in (
        "format",
        "format_version",
        "state_dict",
        "labels",
        "config",
        "sample_rate",
        "mel",
        "window_seconds",
        "epoch",
        "valid_macro_f1",
        "n_mels",
        "frames",
    ):
        assert key in ckpt, key
    assert (ckpt["format"], ckpt["format_version"]) == (FORMAT, FORMAT_VERSION) == (FORMAT, 2)
    assert ckpt["complete"] is True
    assert ckpt["labels"] == cfg.desed_labels
    assert (ckpt["n_mels"], ckpt["frames"]) == (N_MELS, FRAMES)
    assert ckpt["epoch"] == result.best_epoch
    # the Detector is built from cfg: its front end settings travel with the weights
    assert ckpt["sample_rate"] == cfg.audio.sample_rate
    assert ckpt["window_seconds"] == cfg.chunking.chunk_seconds
    assert ckpt["mel"]["n_mels"] == cfg.mel.n_mels and ckpt["mel"]["hop_length"] == cfg.mel.hop_length
    # the training statistics live in the normaliser, inside the model's weights
    state = ckpt["state_dict"]
    assert float(state["normaliser.mean"]) == MEAN and float(state["normaliser.std"]) == STD
    assert any(k.startswith("classifier.") for k in state) and any(k.startswith("logmel.") for k in state)
    hist = pd.read_csv(out / "history.csv")
    pd.testing.assert_frame_equal(hist, result.history, check_dtype=False)
    preds = np.load(out / "valid_predictions.npz")
    assert preds["probs"].shape == (len(bundle.valid), 5)
    np.testing.assert_array_equal(preds["labels"], bundle.valid.tensors[1].numpy())
    assert list(preds["class_names"]) == cfg.desed_labels
    # the saved probabilities are those of the BEST checkpoint
    macro, _ = macro_f1(preds["labels"], preds["probs"], cfg.eval.threshold)
    assert macro == pytest.approx(result.best_valid_macro_f1)
    assert not list(out.glob("*.tmp"))


def test_checkpoint_round_trip_gives_identical_predictions(trained, bundle):
    cfg, result, _ = trained
    tm = load_trained(result.checkpoint, device="cpu")
    assert isinstance(tm.detector, Detector) and not tm.detector.training
    assert tm.labels == cfg.desed_labels
    assert tm.info.valid_macro_f1 == pytest.approx(result.best_valid_macro_f1)
    assert tm.info.config == torch.load(result.checkpoint, weights_only=True)["config"]
    assert tm.info == result.info  # one conversion from checkpoint to info
    assert float(tm.detector.normaliser.mean) == MEAN and float(tm.detector.normaliser.std) == STD
    saved = np.load(cfg.run_dir / "model" / "valid_predictions.npz")["probs"]
    from_dataset = predict_proba(tm.detector, bundle.valid, batch_size=7)
    from_array = predict_proba(tm.detector, bundle.valid.tensors[0].numpy()[:, 0])  # [N, mels, frames]
    np.testing.assert_allclose(from_dataset, saved, atol=1e-5)
    np.testing.assert_allclose(from_array, saved, atol=1e-5)
    assert ((from_dataset >= 0) & (from_dataset <= 1)).all()


def test_predict_proba_input_checks_and_empty_input(trained):
    _, result, _ = trained
    tm = load_trained(result.checkpoint, device="cpu")
    with pytest.raises(ValueError, match=r"\[N, 1, n_mels, frames\]"):
        predict_proba(tm.detector, np.zeros((2, 3, N_MELS, FRAMES), dtype=np.float32))
    assert predict_proba(tm.detector, np.zeros((0, 1, N_MELS, FRAMES), dtype=np.float32)).shape == (0, 5)


def test_rerun_with_same_config_skips_and_changed_config_retrains(tmp_path, small_bundle):
    cfg = make_cfg(tmp_path, "train.epochs=1")
    first = train_model(cfg, small_bundle, progress=False)
    mtime = first.checkpoint.stat().st_mtime_ns
    again = train_model(cfg, small_bundle, progress=False)
    assert again.skipped and not first.skipped
    assert first.checkpoint.stat().st_mtime_ns == mtime
    assert again.best_epoch == first.best_epoch
    assert again.best_valid_macro_f1 == pytest.approx(first.best_valid_macro_f1)
    pd.testing.assert_frame_equal(again.history, first.history, check_dtype=False, atol=1e-12)

    # An evaluation-only knob cannot change the model: the checkpoint is reused.
    eval_only = make_cfg(tmp_path, "train.epochs=1", "eval.onset_collar=0.5", "download.mirror=file:///x")
    assert train_model(eval_only, small_bundle, progress=False).skipped
    assert first.checkpoint.stat().st_mtime_ns == mtime

    changed = make_cfg(tmp_path, "train.epochs=1", "train.lr=0.001")
    third = train_model(changed, small_bundle, progress=False)
    assert not third.skipped
    assert torch.load(third.checkpoint, weights_only=True)["config"]["train"]["lr"] == 0.001


def test_incomplete_checkpoint_is_retrained(tmp_path, small_bundle):
    cfg = make_cfg(tmp_path, "train.epochs=1")
    first = train_model(cfg, small_bundle, progress=False)
    ckpt = torch.load(first.checkpoint, weights_only=True)
    ckpt["complete"] = False  # as if the run had been interrupted
    torch.save(ckpt, first.checkpoint)
    assert not train_model(cfg, small_bundle, progress=False).skipped


def test_a_folder_with_an_old_format_checkpoint_is_retrained_with_a_note(tmp_path, small_bundle, capsys):
    cfg = make_cfg(tmp_path, "train.epochs=1")
    first = train_model(cfg, small_bundle, progress=False)
    old = torch.load(first.checkpoint, weights_only=True)
    # what an older sed_utils wrote: a bare ResNet18 and its statistics, no "format" key, same config
    prefix = "classifier."
    classifier = {k[len(prefix):]: v for k, v in old["state_dict"].items() if k.startswith(prefix)}
    torch.save({"state_dict": classifier, "labels": old["labels"], "config": old["config"], "mean": MEAN,
                "std": STD, "epoch": 1, "valid_macro_f1": old["valid_macro_f1"], "complete": True},
               first.checkpoint)
    capsys.readouterr()
    again = train_model(cfg, small_bundle, progress=False)
    out = capsys.readouterr().out
    assert not again.skipped
    assert "Not reusing the saved model" in out and "format 1" in out and "training again" in out
    assert torch.load(again.checkpoint, weights_only=True)["format_version"] == FORMAT_VERSION
    assert load_trained(again.checkpoint, device="cpu").labels == cfg.desed_labels


def test_early_stopping_stops_when_validation_f1_does_not_improve(tmp_path, small_bundle, capsys):
    # A validation set without any positive label has macro F1 = 0 whatever the model predicts
    # (zero_division=0), so epoch 1 stays the best and, with patience 2, training must stop after
    # epoch 3 of 6.
    x, _ = small_bundle.valid.tensors
    no_positives = SimpleNamespace(
        **{**vars(small_bundle), "valid": TensorDataset(x, torch.zeros(len(x), 5))}
    )
    cfg = make_cfg(tmp_path, "train.epochs=6", "train.patience=2")
    result = train_model(cfg, no_positives, progress=True)
    assert list(result.history["epoch"]) == [1, 2, 3]
    assert list(result.history["valid_macro_f1"]) == [0.0, 0.0, 0.0]
    assert result.best_epoch == 1
    assert torch.load(result.checkpoint, weights_only=True)["epoch"] == 1
    assert "Early stopping" in capsys.readouterr().out


def test_seeded_runs_repeat_and_other_seed_differs(tmp_path, small_bundle):
    # The training set augments on the fly from a generator that persists across calls: the
    # second run on the SAME bundle object must still see the same augmentations as the first.
    augmented = SimpleNamespace(**{**vars(small_bundle), "train": NoisyBands(small_bundle.train)})
    a = train_model(make_cfg(tmp_path / "a", "train.epochs=2"), augmented, progress=False)
    b = train_model(make_cfg(tmp_path / "b", "train.epochs=2"), augmented, progress=False)
    c = train_model(make_cfg(tmp_path / "c", "train.epochs=2", "seed=1"), augmented, progress=False)
    np.testing.assert_array_equal(a.history["train_loss"], b.history["train_loss"])
    np.testing.assert_array_equal(a.history["valid_loss"], b.history["valid_loss"])
    assert not np.array_equal(a.history["train_loss"], c.history["train_loss"])


def test_bad_bundles_are_rejected_with_a_reason(tmp_path, small_bundle):
    cfg = make_cfg(tmp_path)
    wrong = SimpleNamespace(**{**vars(small_bundle), "labels": ["a", "b", "c", "d", "e"]})
    with pytest.raises(ValueError, match="desed_labels"):
        train_model(cfg, wrong, progress=False)
    empty = SimpleNamespace(**{**vars(small_bundle), "train": band_data(0, 0)})
    with pytest.raises(ValueError, match="training set is empty"):
        train_model(cfg, empty, progress=False)


def test_load_trained_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope" / "best.pt"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_trained(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_trained(corrupt)
    partial = tmp_path / "partial.pt"
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "state_dict": {}}, partial)
    with pytest.raises(CheckpointError, match=r"partial\.pt.*lacks"):
        load_trained(partial)
    not_a_dict = tmp_path / "list.pt"
    torch.save([1, 2], not_a_dict)
    with pytest.raises(CheckpointError, match=r"list\.pt.*expected a dict"):
        load_trained(not_a_dict)


def test_plots_mark_the_best_epoch(trained):
    _, result, _ = trained
    fig = plot_history(result.history)
    ax_loss, ax_f1 = fig.axes
    best_lines = [ln for ln in ax_f1.get_lines() if ln.get_label().startswith("kept epoch")]
    assert best_lines and best_lines[0].get_xdata()[0] == result.best_epoch
    assert len(ax_loss.get_lines()) == 3  # train, validation, best-epoch marker
    # with validation-scene scores: both curves, the kept epoch from the scenes, the chunks' best dotted
    h = result.history.assign(valid_scenes_f1=np.linspace(0.2, 0.6, len(result.history)))
    ax_f1 = plot_history(h).axes[1]
    marks = {ln.get_label(): ln.get_xdata()[0] for ln in ax_f1.get_lines() if "epoch" in ln.get_label()
             or ln.get_label().startswith("best on")}
    kept = [v for k, v in marks.items() if k.startswith("kept epoch")]
    assert kept == [h["epoch"].iloc[-1]]
    chunk_best = int(h.loc[h["valid_macro_f1"].idxmax(), "epoch"])
    assert chunk_best == h["epoch"].iloc[-1] or marks.get(f"best on chunks ({chunk_best})") == chunk_best
    bars = plot_class_f1(result.history).axes[0].patches
    best_row = result.history[result.history["epoch"] == result.best_epoch].iloc[0]
    assert [b.get_height() for b in bars] == pytest.approx(
        [best_row[f"valid_f1_{lab}"] for lab in load_config("demo").desed_labels]
    )
    # with scene scores the bars show the epoch the scenes kept (the checkpoint's), not the chunks' best
    assert plot_class_f1(h).axes[0].get_title().endswith(f"kept epoch {h['epoch'].iloc[-1]}")
    with pytest.raises(ValueError, match="no epochs"):
        plot_history(result.history.iloc[:0])


def test_the_textbook_loop_written_out_gives_fit_epoch_s_weights():
    """Notebook 05 writes the training loop out by hand; it must be the loop the package runs."""
    from torch import nn
    from torch.utils.data import DataLoader

    from sed_utils.config import MelConfig
    from sed_utils.model import build_detector, set_seed
    from sed_utils.training import fit_epoch

    data = band_data(48, seed=3)

    def fresh():
        set_seed(0)
        model = build_detector(["a", "b", "c", "d", "e"], MelConfig(n_mels=N_MELS), 16000, 0.4, MEAN, STD)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)

    by_hand, opt, schedule = fresh()
    by_hand.train()
    for x, y in DataLoader(data, batch_size=16):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(by_hand(x), y)
        loss.backward()
        opt.step()
        schedule.step()
    package, opt2, schedule2 = fresh()
    mean_loss = fit_epoch(package, DataLoader(data, batch_size=16), opt2, schedule2, progress=False)
    assert mean_loss > 0
    for (name, a), b in zip(by_hand.state_dict().items(), package.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs between the hand-written loop and fit_epoch"
