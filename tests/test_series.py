"""The whole notebook series on the demo profile, as `make demo` runs it, in a fresh data folder.

This is the test that proves a fresh clone works end to end: notebook 01 generates the synthetic
demo archives and downloads them through the real download code, 02-09 run on what it produced,
and the evaluation's results must show a model that actually learned (a broken label,
feature or threshold step drops these numbers far below the bars). The series runs once per pytest
session (the ``demo_series`` fixture, tests/conftest.py): the browser test reuses its notebooks 01-05.
"""

import json
import re

import pandas as pd
import pytest

from sed_utils.cli.runner import list_notebooks
from sed_utils.models import load_trained

# Bars a working pipeline clears on the synthetic demo data and a broken one misses: chance level for
# 5 independent binary detectors on these sets is well below 0.3.
MIN_VALID_MACRO_F1 = 0.7
MIN_SEGMENT_MACRO_F1 = 0.5


def _bar_states(cell: dict) -> tuple[int, int]:
    """How many progress-bar states a saved cell holds, and how many bars started in it: a plain bar
    (``sed_utils.core.progress``) saves its start and its end, so states <= 2 x starts; a bar redrawn
    every few seconds would save a fragment per redraw."""
    streams = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
    text = "".join("".join(o.get("text", "")) for o in streams)
    states = [f for f in re.split(r"[\r\n]", text) if re.search(r"\d+%\|", f)]
    return len(states), sum(bool(re.search(r"(?<!\d)0%\|", f)) for f in states)


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
        for i, cell in enumerate(executed["cells"]):
            states, starts = _bar_states(cell)
            assert states <= 2 * starts, f"{run.name} cell {i}: {states} progress states for {starts} bars"

    # notebooks 06 and 08: both models through the one evaluation, post-processing chosen on validation
    chunk = json.loads((out / "chunk" / "results.json").read_text())
    assert chunk["profile"] == "demo" and chunk["model"] == "chunk"
    assert chunk["training"]["best_score"] >= MIN_VALID_MACRO_F1  # the kept epoch's validation-scene F1
    seg = chunk["segment_based"]
    assert seg["macro"]["f1"] >= MIN_SEGMENT_MACRO_F1
    assert set(seg["class_wise"]) == {"Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"}
    for model in ("chunk", "frame"):
        res = json.loads((out / model / "results.json").read_text())
        assert res["model"] == model and res["synthetic_data"] is True
        assert 0.0 <= res["event_based"]["macro"]["f1"] <= 1.0
        for key in ("psds1", "psds2"):
            assert 0.0 <= res[key]["value"] <= 1.0
        assert res["negatives"]["clips"] > 0
        stored = load_trained(out / model / "best.pt").info.post_processing
        assert stored is not None and stored.to_dict() == res["post_processing"]  # what detect will use
    assert (out / "frame" / "results_negatives.json").is_file()  # notebook 08's negatives-aware choice
    assert (out / "heldout_scenes" / "demo" / "chunk" / "results.json").is_file()  # notebook 07

    # notebook 10: your own sounds, trained, chosen on validation and reported on test
    report = json.loads((out / "own_sounds" / "run" / "report.json").read_text())
    assert report["split"]["test"] >= 1 and 0.0 <= report["event_f1"] <= 1.0
    assert load_trained(out / "own_sounds" / "run" / "frame" / "best.pt").info.post_processing is not None

    # notebook 09: the frame model on a generated stereo 44.1 kHz recording, API and CLI agreeing
    own = out / "own_recordings"
    api = pd.read_csv(own / "demo_recording_events.tsv", sep="\t")
    cli = pd.read_csv(own / "demo_recording_events_cli.tsv", sep="\t")
    assert list(api.columns) == ["filename", "onset", "offset", "event_label", "score"]
    assert api.round(3).equals(cli.round(3))  # both name the file as DESED's tables do: its name alone
