"""What every notebook of the series offers a reader, checked without running anything.

The series teaches: each notebook opens with where it sits in the series (links to all the others),
what the reader will learn and how long it runs, and ends with a summary, 2-4 exercises that say what
to expect, references and previous/next links. A notebook added or edited without them fails here.
"""

import json
import re

import pytest

from sed_utils.cli.runner import NOTEBOOK_DIR, list_notebooks

NOTEBOOKS = list_notebooks()
LINK = re.compile(r"\]\(([^)]+)\)")


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _markdown(path):
    return ["".join(c["source"]) for c in _cells(path) if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_opening_cell_places_the_notebook_in_the_series(path):
    first = _markdown(path)[0]
    assert first.startswith(f"# {path.name[:2]} ")
    assert "**Series:**" in first and "**You will learn:**" in first and "**Run time**" in first
    linked = {t for t in LINK.findall(first) if t.endswith(".ipynb")}
    assert linked == {p.name for p in NOTEBOOKS} - {path.name}, "the series line links every other notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_ends_with_summary_exercises_references_and_neighbours(path):
    text = "\n".join(_markdown(path))
    for heading in ("## Summary", "## Try it yourself", "## References"):
        assert heading in text, f"{path.name}: no '{heading}'"
    exercises = text.split("## Try it yourself", 1)[1].split("## References", 1)[0]
    items = re.findall(r"^\d+\. \*\*", exercises, re.M)
    assert 2 <= len(items) <= 4, f"{path.name}: {len(items)} exercises"
    assert exercises.count("*Expect:*") == len(items), f"{path.name}: every exercise says what to expect"
    references = text.split("## References", 1)[1]
    assert re.search(r"\]\(https://", references), f"{path.name}: no linked reference"
    index = [p.name for p in NOTEBOOKS].index(path.name)
    if index > 0:
        assert "Previous: [" in references and f"({NOTEBOOKS[index - 1].name})" in references
    if index < len(NOTEBOOKS) - 1:
        assert "Next: [" in references and f"({NOTEBOOKS[index + 1].name})" in references


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_links_to_files_resolve_and_the_notebook_is_committed_clean(path):
    for text in _markdown(path):
        for target in LINK.findall(text):
            if not target.startswith(("http://", "https://", "#")):
                assert (NOTEBOOK_DIR / target).exists(), f"{path.name}: broken link {target}"
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code)
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "strip the outputs"
