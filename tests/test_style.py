import io

"""One look across the series: fixed class colours, mel axes in Hz, text progress bars when headless."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torchaudio
from tqdm import std as tqdm_std

from sed_utils.config import MelConfig
from sed_utils.core import progress
from sed_utils.plots.style import (
    CLASS_COLORS,
    OTHER_COLOR,
    label_color_list,
    label_colors,
    mel_band_hz,
    set_mel_hz_axis,
)


def test_a_class_keeps_its_colour_whatever_the_other_labels():
    five = ["Dog", "Cat", "Alarm_bell_ringing", "Running_water", "Vacuum_cleaner"]
    ten = ["Speech", "Frying", *reversed(five), "Dishes", "Blender", "Electric_shaver_toothbrush"]
    assert label_colors(five)["Dog"] == label_colors(ten)["Dog"] == label_colors(["Dog"])["Dog"]
    assert len(set(CLASS_COLORS.values())) == len(CLASS_COLORS) == 10
    assert OTHER_COLOR not in CLASS_COLORS.values()
    mine = label_colors(["Dog", "my_kettle", "my_doorbell"])  # a user's own labels get colours too
    assert mine["my_kettle"] != mine["my_doorbell"] and mine["Dog"] == CLASS_COLORS["Dog"]
    assert label_color_list(["Cat", "Dog"]) == [CLASS_COLORS["Cat"], CLASS_COLORS["Dog"]]  # bars, in order


def test_mel_band_centres_are_where_the_front_end_s_filters_peak():
    mel = MelConfig()
    fb = torchaudio.functional.melscale_fbanks(mel.n_fft // 2 + 1, mel.f_min, mel.f_max, mel.n_mels, 16000)
    freqs = np.linspace(0, 8000, mel.n_fft // 2 + 1)
    peaks = freqs[fb.numpy().argmax(axis=0)]
    bin_width = freqs[1]
    np.testing.assert_allclose(mel_band_hz(mel), peaks, atol=bin_width)


def test_hz_axis_ticks_are_increasing_and_inside_the_bands():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    mel = MelConfig()
    set_mel_hz_axis(ax, mel)
    ticks = ax.get_yticks()
    assert list(ticks) == sorted(ticks) and 0 <= ticks[0] and ticks[-1] <= mel.n_mels
    assert [t.get_text() for t in ax.get_yticklabels()][:3] == ["100", "250", "500"]
    assert ax.get_ylabel() == "frequency (Hz)"
    plt.close(fig)


@pytest.mark.parametrize("value, text", [("1", True), ("", False), ("0", False)])
def test_progress_bars_are_text_when_the_runner_asks(monkeypatch, value, text):
    monkeypatch.setenv(progress.PLAIN_PROGRESS_ENV, value)
    out = io.StringIO()
    bar = progress.tqdm(range(3), file=out)
    # outside a notebook both are text bars; the runner's write their start and end only
    assert isinstance(bar, tqdm_std.tqdm) and (bar.mininterval == float("inf")) == text
    bar.close()


def test_a_plain_bar_saves_its_start_and_its_end_only(monkeypatch):
    """A saved copy of a long loop held a fragment per redraw (217 in notebook 05's training cell)."""
    import time

    monkeypatch.setenv(progress.PLAIN_PROGRESS_ENV, "1")
    out = io.StringIO()
    for _ in progress.tqdm(range(60), file=out, miniters=1):
        time.sleep(0.1)  # 6 s: longer than any redraw interval a text bar would use
    states = [s for s in out.getvalue().replace("\n", "\r").split("\r") if s.strip()]
    assert len(states) == 2 and states[0].startswith("  0%") and "60/60" in states[1]


def test_progress_bars_never_start_an_iterator_of_their_own():
    """tqdm.auto's asyncio mixin calls iter() in its __init__: a DataLoader then starts a second iterator
    per epoch, which draws from the loader's random generator (changing the shuffle) or starts workers."""
    started = []

    class Loader:
        def __iter__(self):
            started.append(1)
            return iter(range(3))

        def __len__(self):
            return 3

    assert list(progress.tqdm(Loader(), disable=True)) == [0, 1, 2]
    assert started == [1]
