"""Where a run keeps what it writes: one object names every file of ``runs/<profile>/``.

Layout (each model kind has a folder of its own; notebooks 05-09 and the command line)::

    runs/<profile>/
        chunk/ frame/ ...      one folder per model kind
            best.pt            the kept checkpoint (written at each improvement, complete at the end)
            last.pt            the state after the last finished epoch (resuming an interrupted run)
            history.csv        one row per epoch
            results.json       every metric of the evaluation, the post-processing chosen on validation
            events.tsv         the test set's predicted events (DCASE layout)
        notebooks/             executed copies of the notebooks (the runner)
        own_recordings/        notebook 09's uploads and saved events
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunPaths"]


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder (every notebook through ``cfg.paths``; the command line).

    Args:
        root: the run folder, ``runs_root / profile`` (``Config.run_dir``).
    """

    root: Path

    def model_dir(self, kind: str) -> Path:
        """The folder of one model kind: ``<root>/<kind>``."""
        return self.root / kind

    def checkpoint(self, kind: str) -> Path:
        """The kept checkpoint of ``kind`` (``best.pt``)."""
        return self.model_dir(kind) / "best.pt"

    def last_state(self, kind: str) -> Path:
        """The training state after the last finished epoch (``last.pt``): what a resumed run starts from."""
        return self.model_dir(kind) / "last.pt"

    def history(self, kind: str) -> Path:
        """One row per training epoch (``history.csv``)."""
        return self.model_dir(kind) / "history.csv"

    def results(self, kind: str, tag: str = "") -> Path:
        """Every number of the evaluation of ``kind`` (``results<tag>.json``; a tag names a variant)."""
        return self.model_dir(kind) / f"results{tag}.json"

    def events(self, kind: str, tag: str = "") -> Path:
        """The test set's predicted events of ``kind`` in the DCASE layout (``events<tag>.tsv``)."""
        return self.model_dir(kind) / f"events{tag}.tsv"

    @property
    def notebooks(self) -> Path:
        """The executed copies of the notebooks (``python -m sed_utils run``)."""
        return self.root / "notebooks"

    @property
    def own_recordings(self) -> Path:
        """Notebook 09's uploads, demo recording and saved events."""
        return self.root / "own_recordings"
