"""The whole notebook series on the demo profile, as `make demo` runs it, in a fresh data folder.

This is the test that proves a fresh clone works end to end: notebook 01 generates the synthetic
demo archives and downloads them through the real download code, 02-07 run on what it produced,
and the evaluation's results.json must show a model that actually learned (a broken label,
feature or threshold step drops these numbers far below the bars). The series runs once per pytest
session (the ``demo_series`` fixture, tests/conftest.py): the browser test reuses its notebooks 01-05.
"""

import json

import pandas as pd
import pytest

from sed_utils.checkpoint import load_trained
from sed_utils.runner import list_notebooks

# Bars a working pipeline clears on the synthetic demo data and a broken one misses: chance level for
# 5 independent binary detectors on these sets is well below 0.3.
MIN_VALID_MACRO_F1 = 0.7
MIN_SEGMENT_MACRO_F1 = 0.5


@pytest.mark.slow
def test_demo_series_runs_and_learns(demo_series):
    runs = demo_series.runs
    assert [r.name for r in runs] == [p.name for p in list_notebooks()]
    out = demo_series.root / "runs" / "demo"
    for run in runs:
        executed = json.loads(run.output.read_text())
        outputs = [o for c in executed["cells"] for o in c.get("outputs", [])]
        errors = [o for o in outputs if o.get("output_type") == "error"]
        assert not errors, f"{run.name} has error outputs"

    results = json.loads((out / "results.json").read_text())
    assert results["profile"] == "demo"
    assert results["valid"]["macro_f1"] >= MIN_VALID_MACRO_F1
    seg = results["segment_based"]
    assert seg["macro"]["f1"] >= MIN_SEGMENT_MACRO_F1
    assert 0.0 <= results["event_based"]["macro"]["f1"] <= 1.0
    assert set(seg["class_wise"]) == {"Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"}
    assert 0.0 <= results["psds1"]["value"] <= 1.0  # notebook 06 reports PSDS of the sliding windows too

    # notebook 08: both models read as score curves, post-processing chosen on validation scenes
    for model in ("chunk", "frame"):
        events = json.loads((out / f"events_{model}.json").read_text())
        assert events["model"] == model and events["synthetic_data"] is True
        for key in ("psds1", "psds2"):
            assert 0.0 <= events[key]["value"] <= 1.0
        assert events["negatives"]["clips"] > 0
    assert (out / "events_frame_negatives.json").is_file()  # notebook 08's negatives-aware choice

    # notebook 09: the frame model on a generated stereo 44.1 kHz recording, API and CLI agreeing
    own = out / "own_recordings"
    api = pd.read_csv(own / "demo_recording_events.tsv", sep="\t")
    cli = pd.read_csv(own / "demo_recording_events_cli.tsv", sep="\t")
    assert list(api.columns) == ["filename", "onset", "offset", "event_label", "score"]
    timing = ["onset", "offset", "event_label", "score"]  # the CLI names files by their full path
    assert api[timing].round(3).equals(cli[timing].round(3))
    stored = load_trained(out / "frame_model" / "best.pt").info.post_processing
    assert set(stored) == {"events"} and len(stored["events"]["event_thresholds"]) == 5
    assert set(load_trained(out / "model" / "best.pt").info.post_processing) == {"segments", "events"}
