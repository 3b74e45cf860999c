"""What a downloaded dataset must hold: the content checks that run after every extraction and before a
completion marker is trusted (notebook 01, through :mod:`sed_utils.data.registry`).

Every listed clip must be there, open as audio and have its length; ESC-50's table must load with the
notebooks' own loader; DESED's label files must load and name only its 10 classes. A subset or the
synthetic demo passes with a note that it is not the upstream dataset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import soundfile as sf

from sed_utils.core.errors import DatasetError, DownloadError
from sed_utils.core.keys import file_digests
from sed_utils.data.desed import DESED_CLIP_SECONDS, DESED_LABELS, desed_audio_dir, desed_tsv, load_desed
from sed_utils.data.esc50 import ESC50_CLIP_SECONDS, load_esc50_meta

__all__ = ["ESC50_UPSTREAM_CSV_SHA256", "ESC50_UPSTREAM_CLIPS", "DESED_UPSTREAM_CLIPS", "check_esc50",
           "check_desed_eval", "content_error"]



ESC50_UPSTREAM_CSV_SHA256 = "ca660da60191a97de289983a05821c9382d852a38a2ba8428980816b68cf6246"
ESC50_UPSTREAM_CLIPS = 2000
DESED_UPSTREAM_CLIPS = 692
#: A clip may be this much off its expected length (a few samples of rounding in a re-encode).
LENGTH_TOLERANCE_SECONDS = 0.05


def content_error(folder: Path, problem: Exception | str) -> DownloadError:
    """The error for an extracted dataset that fails its check: what is wrong, and to delete and re-run
    (notebook 01, through the checks and ``sed_utils.data.registry``)."""
    detail = f"the extracted dataset is incomplete or damaged: {problem}"
    return DownloadError(
        f"{folder}: {detail}. Delete {folder} and run again to extract it afresh; if that fails again, "
        f"delete the archive in {folder.parent / 'downloads'} too (or rebuild your mirror).",
        reason="content", detail=detail,
    )


def _audio_problems(paths: list[Path], seconds: float, at_most: bool) -> list[str]:
    """What is wrong with the audio files ``paths``: each header must open (soundfile.info) and say
    ``seconds`` long (``at_most``: any length up to it). A text file or an HTML page saved under a
    clip's name, or a clip cut short, fails here rather than in notebook 04."""
    problems = []
    tol = LENGTH_TOLERANCE_SECONDS
    for path in paths:
        try:
            length = float(sf.info(os.fsencode(path)).duration)
        except Exception as e:  # LibsndfileError / RuntimeError: not audio
            problems.append(f"{path.name}: not readable audio ({str(e).splitlines()[0][:80]})")
            continue
        ok = 0 < length <= seconds + tol if at_most else abs(length - seconds) <= tol
        if not ok:
            want = f"at most {seconds:g} s" if at_most else f"{seconds:g} s"
            problems.append(f"{path.name}: {length:.3f} s long, expected {want}")
    return problems


def _check_audio(folder: Path, paths: list[Path], seconds: float, *, at_most: bool = False) -> None:
    problems = _audio_problems(paths, seconds, at_most)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        problem = DatasetError(f"{len(problems)} of {len(paths)} audio file(s) are not usable: {shown}")
        raise content_error(folder, problem) from problem


def check_esc50(folder: Path) -> dict[str, Any]:
    """Check an extracted ``ESC-50-master`` folder; return a summary for the completion marker
    (notebook 01, through :func:`fetch_dataset`).

    GitHub's archive has no stable checksum (see :data:`DATASETS`), so the content is what is verified:
    ``meta/esc50.csv`` parses with the upstream columns and every clip it lists exists (the rules of
    :func:`sed_utils.data.esc50.load_esc50_meta`, the loader notebook 02 uses). A csv whose sha256 is not
    upstream's (a mirror with a subset of classes, the synthetic demo) is accepted: the summary says so
    and :func:`fetch_dataset` logs a warning, because results on such data are not ESC-50 results.
    Every clip's header is opened too (soundfile.info, ~0.2 ms a clip): it must be audio of 5 s.
    """
    try:
        meta = load_esc50_meta(folder)
    except DatasetError as e:
        raise content_error(folder, e) from e
    _check_audio(folder, list(meta["path"]), ESC50_CLIP_SECONDS)
    csv_sha = file_digests(folder / "meta" / "esc50.csv")["sha256"]
    upstream = csv_sha == ESC50_UPSTREAM_CSV_SHA256
    if upstream:
        note = f"complete upstream ESC-50: {len(meta)} clips, metadata identical to upstream"
    else:
        note = (
            f"NOT the upstream ESC-50 metadata (esc50.csv sha256 {csv_sha[:12]}... differs; upstream lists "
            f"{ESC50_UPSTREAM_CLIPS} clips, this one {len(meta)}): a subset mirror or the synthetic demo. "
            f"All {len(meta)} listed clips are present; results on it are not comparable to ESC-50 results"
        )
    return {"clips": len(meta), "upstream": upstream, "metadata_sha256": csv_sha, "note": note}


def check_desed_eval(folder: Path) -> dict[str, Any]:
    """Check an extracted ``DESEDpublic_eval`` folder; return a summary for the completion marker
    (notebook 01, through :func:`fetch_dataset`).

    ``dataset/metadata/eval/public.tsv`` must parse (filename, onset, offset, event_label, validated by
    :func:`sed_utils.data.desed.load_desed`, the loader notebook 02 uses) and every clip it names must exist
    in ``dataset/audio/eval/public``, as audio of at most 10 s (its header is opened). Upstream has
    692 clips; another count is accepted with a warning.
    """
    root = folder / "dataset"
    try:
        desed = load_desed(desed_tsv(root), desed_audio_dir(root), DESED_LABELS)
    except DatasetError as e:
        raise content_error(folder, e) from e
    _check_audio(folder, [desed.path(f) for f in desed.files], DESED_CLIP_SECONDS, at_most=True)
    n = len(desed.files)
    upstream = n == DESED_UPSTREAM_CLIPS
    if upstream:
        note = f"DESED public eval: {n} clips and {len(desed.all_events)} labelled events, as upstream"
    else:
        note = (
            f"NOT the upstream DESED public eval ({n} clips; upstream has {DESED_UPSTREAM_CLIPS}): a subset "
            f"mirror or the synthetic demo. All clips named in public.tsv are present; results on it are "
            f"not comparable to DESED results"
        )
    return {"clips": n, "events": len(desed.all_events), "upstream": upstream, "note": note}
