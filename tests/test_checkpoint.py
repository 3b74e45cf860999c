"""Checkpoints (format 3): a Detector of any registered kind saved with its settings loads back identical;
the post-processing chosen on validation travels inside; earlier formats and unknown kinds are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sed_utils.config import MelConfig
from sed_utils.core.errors import CheckpointError
from sed_utils.labels.grid import PostProcessing
from sed_utils.models.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointInfo,
    TrainedModel,
    checkpoint_info,
    load_trained,
    read_checkpoint,
    save_checkpoint,
    store_post_processing,
    weights_digest,
)
from sed_utils.models.kinds import build_detector

LABELS = ["Dog", "Cat", "Alarm_bell_ringing"]
MEL = MelConfig(n_mels=32, hop_length=320)
CONFIG = {"seed": 0, "train": {"lr": 0.001}}
KINDS = ["chunk", "frame"]


def _detector(kind: str = "chunk", seed: int = 0):
    torch.manual_seed(seed)
    d = build_detector(kind, LABELS, MEL, 16000, 0.5, np.linspace(-50, -30, 32).astype(np.float32), 9.0)
    d.train()
    with torch.no_grad():  # move the BatchNorm running statistics off their defaults
        d(torch.randn(8, 32, 26) * 9.0 - 40.0)
    return d.eval()


def _saved(tmp_path, kind: str = "chunk", **meta):
    d = _detector(kind)
    path = tmp_path / kind / "best.pt"
    save_checkpoint(path, d, config=CONFIG, epoch=3, selected_on="chunks", best_score=0.6, seconds=12.5,
                    complete=True, key="abc123", **meta)
    return d, path


def _post(**kw) -> PostProcessing:
    values = {"labels": tuple(LABELS), "thresholds": (0.3, 0.4, 0.5), "median_filters": (1, 3, 5),
              "min_durations": (0.0, 0.16, 0.32), "segment_thresholds": (0.2, 0.5, 0.7),
              "window_hop_seconds": 0.125, "chosen_on": "validation scenes"}
    return PostProcessing(**{**values, **kw})


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_gives_identical_outputs_and_metadata(tmp_path, kind):
    d, path = _saved(tmp_path, kind)
    assert not list(path.parent.glob("*.tmp"))  # written atomically
    tm = load_trained(path, device="cpu")
    assert isinstance(tm, TrainedModel) and tm.kind == tm.detector.kind == kind
    assert type(tm.detector.network) is type(d.network)
    assert not tm.detector.training and tm.labels == LABELS
    assert (tm.detector.sample_rate, tm.detector.mel, tm.detector.window_seconds) == (16000, MEL, 0.5)
    torch.testing.assert_close(tm.detector.normaliser.mean, d.normaliser.mean)  # per-mel statistics kept
    x = torch.randn(4, 32, 26) * 9.0 - 40.0
    waves = torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        pairs = ((tm.detector(x), d(x)), (tm.detector.forward_waveform(waves), d.forward_waveform(waves)))
        for got, want in pairs:
            assert set(got) == set(want) == ({"clip_logits", "frame_logits"} if kind == "frame"
                                             else {"clip_logits"})
            for name in want:
                torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
    assert tm.info == CheckpointInfo(path=path, kind=kind, labels=LABELS, config=CONFIG, epoch=3,
                                     best_score=0.6, selected_on="chunks", seconds=12.5, complete=True,
                                     pretrained_loaded=False, key="abc123",
                                     weights_digest=weights_digest(d.state_dict()), post_processing=None)
    assert tm.weights_key == weights_digest(d.state_dict())
    ckpt = read_checkpoint(path)
    assert (ckpt["format"], ckpt["format_version"], ckpt["kind"]) == (FORMAT, FORMAT_VERSION, kind)
    assert FORMAT_VERSION == 3
    assert checkpoint_info(ckpt, path) == tm.info
    assert torch.load(path, weights_only=True)["epoch"] == 3  # plain values: loadable without running code


@pytest.mark.parametrize("kind", KINDS)
def test_a_detector_with_other_categories_reports_its_classes_and_loads_back(tmp_path, kind):
    """targets: all: the network has outputs for more categories than it reports; the checkpoint keeps
    them, and everything that reads "clip_logits"/"frame_logits" sees the classes only."""
    torch.manual_seed(0)
    others = ["hen", "siren"]
    d = build_detector(kind, LABELS, MEL, 16000, 0.5, other_labels=others).eval()
    x = torch.randn(2, 32, 26) * 9.0 - 40.0
    with torch.no_grad():
        out, full = d(x), d.network(d.normaliser(x.unsqueeze(1)))
    assert set(out) == {f"{p}{n}" for p in ("", "other_") for n in full}
    for name, logits in full.items():
        assert logits.shape[-1] == 5
        torch.testing.assert_close(out[name], logits[..., :3], rtol=0, atol=0)
        torch.testing.assert_close(out[f"other_{name}"], logits[..., 3:], rtol=0, atol=0)
    path = tmp_path / "best.pt"
    save_checkpoint(path, d, config={}, epoch=1, best_score=0.5)
    tm = load_trained(path, device="cpu")
    assert tm.labels == LABELS and tm.detector.other_labels == others
    with torch.no_grad():
        torch.testing.assert_close(tm.detector(x)["clip_logits"], out["clip_logits"], rtol=0, atol=0)
    assert _detector(kind).other_labels == []  # a model of the classes alone has none


def test_info_defaults_for_metadata_not_given(tmp_path):
    path = tmp_path / "best.pt"
    d = _detector()
    save_checkpoint(path, d, config={}, epoch=1, best_score=0.25)
    info = load_trained(path, device="cpu").info
    assert (info.selected_on, info.seconds, info.complete, info.pretrained_loaded, info.key) == (
        "scenes", 0.0, False, False, "")
    assert info.post_processing is None and info.weights_digest == weights_digest(d.state_dict())


def _format_2(tmp_path, folder: str):
    """A checkpoint as the two-stack version wrote it: format 2, the kind under "model", in
    runs/<profile>/model/ (chunk) or runs/<profile>/frame_model/ (frame)."""
    ckpt = read_checkpoint(_saved(tmp_path)[1])
    del ckpt["kind"]
    path = tmp_path / "runs" / "demo" / folder / "best.pt"
    path.parent.mkdir(parents=True)
    torch.save({**ckpt, "format_version": 2, "model": "frame" if folder == "frame_model" else "chunk"}, path)
    return path


@pytest.mark.parametrize("folder", ["model", "frame_model"])
def test_a_format_2_checkpoint_is_refused_naming_notebooks_05_and_08(tmp_path, folder):
    old = _format_2(tmp_path, folder)
    for load in (read_checkpoint, load_trained, lambda p: store_post_processing(p, _post())):
        with pytest.raises(CheckpointError) as err:
            load(old)
        msg = str(err.value)
        assert "format 2" in msg and f"format {FORMAT_VERSION}" in msg and str(old) in msg
        assert f"delete the run folder {tmp_path / 'runs' / 'demo'}" in msg
        assert "re-run notebooks 05 and 08" in msg


def test_older_and_newer_formats_are_refused(tmp_path):
    d, path = _saved(tmp_path)
    folder = tmp_path / "runs" / "demo" / "model"
    folder.mkdir(parents=True)
    old = folder / "best.pt"
    # format 1: a bare ResNet18 state dict with the normalisation statistics beside it, no "format" key
    torch.save({"state_dict": d.network.resnet.state_dict(), "labels": LABELS, "config": {}, "mean": -40.0,
                "std": 12.0, "epoch": 1, "valid_macro_f1": 0.5, "complete": True}, old)
    for load in (read_checkpoint, load_trained):
        with pytest.raises(CheckpointError) as err:
            load(old)
        msg = str(err.value)
        assert "format 1" in msg and f"format {FORMAT_VERSION}" in msg and str(old) in msg
        assert "notebooks 05 and 08" in msg
    newer = tmp_path / "newer.pt"
    torch.save({**read_checkpoint(path), "format_version": FORMAT_VERSION + 1}, newer)
    with pytest.raises(CheckpointError, match=f"format {FORMAT_VERSION + 1}, written by a newer sed_utils"):
        load_trained(newer)
    other = tmp_path / "other.pt"
    torch.save({**read_checkpoint(path), "format": "someone-elses-model"}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt: a 'someone-elses-model' file, not a sed-tutorial"):
        load_trained(other)
    copied = tmp_path / "copied.pt"  # an old file outside a run folder: the advice names the file only
    old.rename(copied)
    with pytest.raises(CheckpointError, match=r"delete .*copied\.pt and re-run notebooks 05 and 08"):
        load_trained(copied)


def test_missing_damaged_and_incomplete_files_are_refused(tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(FileNotFoundError, match="train one first"):
        load_trained(tmp_path / "nothing.pt")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="damaged.pt: not a readable checkpoint"):
        load_trained(damaged)
    listed = tmp_path / "list.pt"
    torch.save([1, 2, 3], listed)
    with pytest.raises(CheckpointError, match="expected a dict checkpoint, found list"):
        load_trained(listed)
    incomplete = tmp_path / "incomplete.pt"
    ckpt = read_checkpoint(path)
    del ckpt["kind"]
    torch.save(ckpt, incomplete)
    with pytest.raises(CheckpointError, match=r"incomplete.pt: checkpoint lacks \['kind'\]"):
        load_trained(incomplete)


@pytest.mark.parametrize("kind", KINDS)
def test_weights_that_do_not_fit_the_labels_are_refused(tmp_path, kind):
    _, path = _saved(tmp_path, kind)
    ckpt = read_checkpoint(path)
    bad = tmp_path / "bad.pt"
    torch.save({**ckpt, "labels": ["Dog", "Cat"]}, bad)  # a 3-class head under 2 labels
    with pytest.raises(CheckpointError, match=rf"bad\.pt: weights do not fit a 2-class {kind} detector"):
        load_trained(bad)


def test_weights_of_another_kind_are_refused(tmp_path):
    _, path = _saved(tmp_path, "chunk")
    swapped = tmp_path / "swapped.pt"
    torch.save({**read_checkpoint(path), "kind": "frame"}, swapped)  # a tagger's weights labelled frame
    with pytest.raises(CheckpointError, match=r"swapped\.pt: weights do not fit a 3-class frame detector"):
        load_trained(swapped)


def test_an_unknown_kind_is_refused_with_the_registered_kinds(tmp_path):
    _, path = _saved(tmp_path, "frame")
    ckpt = read_checkpoint(path)
    ckpt["kind"] = "transformer"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        load_trained(path, device="cpu")
    msg = str(err.value)
    assert msg.startswith(f"{path}: no model kind 'transformer'; registered: ['chunk', 'frame'")
    assert "register that kind before loading its checkpoint" in msg
    assert read_checkpoint(path)["kind"] == "transformer"  # reading the metadata alone still works


@pytest.mark.parametrize("kind", KINDS)
def test_post_processing_is_stored_inside_and_the_weights_digest_stays(tmp_path, kind):
    d, path = _saved(tmp_path, kind)
    before = load_trained(path, device="cpu")
    assert before.info.post_processing is None
    # numpy values (as the evaluation's choice produces) are stored as plain numbers
    post = _post(thresholds=tuple(np.array([0.3, 0.4, 0.5])), median_filters=tuple(np.array([1, 3, 5])))
    store_post_processing(path, post)
    assert not list(path.parent.glob("*.tmp"))
    raw = torch.load(path, weights_only=True)  # weights_only loading still works
    assert raw["post_processing"] == _post().to_dict()
    assert type(raw["post_processing"]["median_filters"][1]) is int
    after = load_trained(path, device="cpu")
    assert after.info.post_processing == _post()
    assert after.info.weights_digest == before.info.weights_digest == weights_digest(d.state_dict())
    assert after.weights_key == before.weights_key  # the score caches survive the rewrite
    assert after.info == dataclasses.replace(before.info, post_processing=_post())
    x = torch.randn(2, 32, 26) * 9.0 - 40.0
    with torch.no_grad():
        torch.testing.assert_close(after.detector(x)["clip_logits"], d(x)["clip_logits"], rtol=0, atol=0)
    # a second choice replaces the first
    second = _post(thresholds=(0.5, 0.5, 0.5), chosen_on="valid + negatives")
    store_post_processing(path, second)
    assert load_trained(path, device="cpu").info.post_processing == second
    assert read_checkpoint(path)["weights_digest"] == before.weights_key
    # a choice made for other classes would decode events under the wrong names: refused, file kept
    with pytest.raises(CheckpointError, match="post-processing for .* but the model's classes are"):
        store_post_processing(path, dataclasses.replace(second, labels=tuple(reversed(second.labels))))
    assert load_trained(path, device="cpu").info.post_processing == second


def test_storing_post_processing_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        store_post_processing(tmp_path / "best.pt", _post())
    assert not (tmp_path / "best.pt").exists()


def test_weights_digest_names_the_weights_not_the_object(tmp_path):
    d = _detector()
    digest = weights_digest(d.state_dict())
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert weights_digest(_detector().state_dict()) == digest  # same seed, same weights
    assert weights_digest(_detector(seed=1).state_dict()) != digest
    assert weights_digest(_detector("frame").state_dict()) != digest
    state = {k: v.clone() for k, v in d.state_dict().items()}
    state["network.resnet.fc.bias"][0] += 1e-6
    assert weights_digest(state) != digest  # one value changed
    renamed = {("x." + k if k == "normaliser.std" else k): v for k, v in d.state_dict().items()}
    assert weights_digest(renamed) != digest  # the names count too


def test_a_checkpoint_without_a_stored_digest_gets_one_computed(tmp_path):
    d, path = _saved(tmp_path)
    ckpt = read_checkpoint(path)
    del ckpt["weights_digest"]
    torch.save(ckpt, path)
    assert load_trained(path, device="cpu").info.weights_digest == weights_digest(d.state_dict())
    # a model never saved (empty info digest): the key is its weights' digest now
    tm = TrainedModel(d, CheckpointInfo(path=path, kind="chunk", labels=LABELS, config={}, epoch=0,
                                        best_score=0.0))
    assert tm.weights_key == weights_digest(d.state_dict())
