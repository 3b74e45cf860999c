"""The one-command runner: order, parameters, resume, and a failing cell named."""

import json

import nbformat
import pytest

from sed_utils.cli.runner import NotebookFailed, list_notebooks, run_series, select_notebooks


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "demo"\noverrides = []')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_numbered_notebooks_in_order(tmp_path):
    for name in ["02_b.ipynb", "01_a.ipynb", "notes.ipynb", "10_c.ipynb"]:
        _notebook(tmp_path / name)
    names = [p.name for p in list_notebooks(tmp_path)]
    assert names == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    found = list_notebooks(tmp_path)
    assert [p.name for p in select_notebooks(found, "02")] == ["02_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in select_notebooks(found, None, "02")] == ["01_a.ipynb", "02_b.ipynb"]
    with pytest.raises(ValueError, match="no notebook"):
        select_notebooks(list_notebooks(tmp_path), "11")


def test_the_repository_series_is_numbered_from_01():
    names = [p.name for p in list_notebooks()]
    assert names[0].startswith("01_") and len(names) >= 6


@pytest.mark.slow
def test_runner_passes_parameters_stops_at_failing_cell_and_resumes(tmp_path):
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    marker = tmp_path / "atexit_ran.txt"  # the kernel's quick exit still runs the atexit handlers
    _notebook(nbs / "01_ok.ipynb", "print('profile', profile, overrides)",
              f"import atexit, pathlib\natexit.register(pathlib.Path({str(marker)!r}).write_text, 'bye')")
    _notebook(nbs / "02_fail.ipynb", "x = 1", "raise ValueError('boom in cell two')")
    _notebook(nbs / "03_never.ipynb", "print('should not run')")

    with pytest.raises(NotebookFailed) as err:
        run_series("demo", ["models.chunk.epochs=1"], notebook_dir=nbs, output_dir=out, log=lambda *_: None)
    message = str(err.value)
    assert "02_fail.ipynb" in message and "code cell 3" in message and "boom in cell two" in message
    assert not (out / "03_never.ipynb").exists()

    executed = json.loads((out / "01_ok.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "profile demo ['models.chunk.epochs=1']" in printed
    assert "01_ok.ipynb" in json.loads((out / "timings.json").read_text())
    assert marker.read_text() == "bye"
    # the kernel's start-up line is not a cell: the copy holds the notebook's cells, counted from 1
    counts = [c["execution_count"] for c in executed["cells"]]  # papermill adds the injected parameters
    assert counts == list(range(1, len(executed["cells"]) + 1))
    assert not any("_exit" in c["source"] for c in executed["cells"])

    runs = run_series("demo", notebook_dir=nbs, output_dir=out, start="03", log=lambda *_: None)
    assert [r.name for r in runs] == ["03_never.ipynb"]


def test_bad_override_fails_before_any_kernel_starts(tmp_path):
    from sed_utils.config import ConfigError

    with pytest.raises(ConfigError):
        run_series("demo", ["train.nope=1"], notebook_dir=tmp_path, output_dir=tmp_path / "o")
    with pytest.raises(ConfigError, match="is now scenes.valid"):  # a moved key, too
        run_series("demo", ["eval.valid_scenes=4"], notebook_dir=tmp_path, output_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_expected_errors_print_one_line_and_a_hint_not_a_traceback(tmp_path, capsys, monkeypatch):
    """Issue 12: a bad config value or a failed download is reported as one line (what is wrong) plus
    a hint, exit status 2; the traceback only with --debug or SED_DEBUG=1."""
    from sed_utils.cli.runner import main

    monkeypatch.delenv("SED_DEBUG", raising=False)
    monkeypatch.delenv("SED_MIRROR", raising=False)
    assert main(["run", "--profile", "demo", "-p", "models.chunk.epochs=0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("[sed_utils] ConfigError: ") and "models.chunk.epochs = 0 is not allowed" in err
    assert "hint: check config.yml" in err and "--debug" in err
    # a key of the earlier layout: the same one line, naming where it went
    assert main(["run", "--profile", "demo", "-p", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("[sed_utils] ConfigError: ")
    assert "train.epochs is now per model" in err and "models.chunk." in err and len(err.splitlines()) == 3
    assert main(["run", "--profile", "demo", "--from", "abc"]) == 2  # not a notebook number
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--from 'abc': give a notebook number" in err

    empty = tmp_path / "mirror"
    empty.mkdir()
    argv = ["download", "--profile", "full", "-p", f"data_root={tmp_path / 'data'}",
            "-p", f"download.mirror={empty.as_uri()}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    first_error = next(i for i, line in enumerate(err.splitlines()) if line.startswith("[sed_utils] "))
    assert "Traceback" not in err
    assert err.splitlines()[first_error].startswith("[sed_utils] DownloadError: mirror file missing")
    assert "hint: README, 'Data'" in err
    assert "downloading" in err  # the download's own progress lines (logging) reach the command line
    assert main(["--quiet", *argv]) == 2
    assert capsys.readouterr().err.startswith("[sed_utils] DownloadError: ")  # --quiet: the error alone

    assert main(["--debug", *argv]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv("SED_DEBUG", "1")
    assert main(argv) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.slow
def test_saved_copies_keep_figures_and_finished_progress_bars_under_a_headless_backend(tmp_path, monkeypatch):
    """CI exports MPLBACKEND=Agg; the executed notebooks must still hold their figures, and a progress
    bar must be saved at its end ("3/3"), not as a widget's first frame ("0/3")."""
    import os

    from sed_utils.core.progress import PLAIN_PROGRESS_ENV

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv(PLAIN_PROGRESS_ENV, raising=False)
    nbs, out = tmp_path / "nbs", tmp_path / "out"
    nbs.mkdir()
    _notebook(nbs / "01_fig.ipynb", "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
              "from sed_utils.core.progress import tqdm\nsum(1 for _ in tqdm(range(3), desc='loop'))")
    (run,) = run_series("demo", output_dir=out, notebook_dir=nbs, log=lambda *_: None)
    cells = {"".join(c["source"]).split("\n")[0]: c for c in json.loads(run.output.read_text())["cells"]}
    figure, loop = cells["import matplotlib.pyplot as plt"], cells["from sed_utils.core.progress import tqdm"]
    assert any("image/png" in o.get("data", {}) for o in figure["outputs"]), "the figure is missing"
    text = "".join("".join(o["text"]) for o in loop["outputs"] if o.get("output_type") == "stream")
    assert "3/3" in text and "loop" in text
    assert os.environ["MPLBACKEND"] == "Agg" and PLAIN_PROGRESS_ENV not in os.environ  # restored
