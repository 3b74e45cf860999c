"""sed_utils.core.errors: one base class, each class also the built-in it refines, old import paths kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from sed_utils.core import errors


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (errors.ConfigError, ValueError),
        (errors.AudioError, ValueError),
        (errors.DatasetError, ValueError),
        (errors.DownloadError, RuntimeError),
        (errors.CheckpointError, RuntimeError),
        (errors.NotebookFailed, RuntimeError),
    ],
)
def test_every_error_is_a_sed_error_and_its_builtin(cls, builtin):
    assert issubclass(cls, errors.SedError) and issubclass(cls, builtin)
    assert cls.__name__ in errors.__all__


def test_the_stages_name_the_same_classes():
    from sed_utils import config, core
    from sed_utils.cli import runner
    from sed_utils.data import desed, esc50
    from sed_utils.io import audio

    assert config.ConfigError is core.ConfigError is errors.ConfigError
    assert runner.NotebookFailed is errors.NotebookFailed
    assert audio.AudioError is errors.AudioError
    assert esc50.DatasetError is desed.DatasetError is errors.DatasetError


def test_download_error_keeps_reason_and_url_and_notebook_failed_names_the_cell(tmp_path):
    e = errors.DownloadError("bad checksum", reason="checksum", url="http://x/y.zip")
    assert (str(e), e.reason, e.url) == ("bad checksum", "checksum", "http://x/y.zip")
    nb = errors.NotebookFailed(Path("05_train.ipynb"), 3, "train_model(cfg)\nmore", "ValueError: boom",
                               tmp_path / "out.ipynb")
    assert "05_train.ipynb" in str(nb) and "code cell 3" in str(nb) and "'train_model(cfg)'" in str(nb)
    assert "ValueError: boom" in str(nb) and str(tmp_path / "out.ipynb") in str(nb)
    assert "an unknown cell" in str(errors.NotebookFailed(Path("a.ipynb"), None, "", "x", tmp_path))
