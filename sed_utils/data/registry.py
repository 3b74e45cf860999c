"""Which datasets the series needs, where they come from, and how to tell that one arrived whole.

Notebook 01's dataset layer, on top of :mod:`sed_utils.io.download` (bytes) and
:mod:`sed_utils.io.extract` (unpacking). Why so much care for "download a zip": the complaints about
tutorial downloads are always the same (downloads that hang, stop half-way without a word, or leave
a half-extracted folder that fails much later with a confusing error). So here:

* a size / sha256 / md5 is checked whenever one is known (from :data:`DATASETS` or from a mirror's
  ``SHA256SUMS``), and the extracted CONTENT is always checked (every listed clip exists), with the
  same loaders the notebooks use;
* a completion marker (``.sed_complete.json``) records what was verified, so the next run skips the
  work as long as the content still passes its check;
* every failure raises :class:`~sed_utils.core.errors.DownloadError` naming the URL or folder, the problem
  and what to do.

On the demo profile the archives come from the synthetic mirror of :mod:`sed_utils.data.demo_data`,
"downloaded" through ``file://`` with the same code as a real download.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sed_utils.core import atomic
from sed_utils.core.errors import DownloadError
from sed_utils.core.locks import LOCK_NAME, folder_lock
from sed_utils.data.dataset_checks import (
    DESED_UPSTREAM_CLIPS,
    ESC50_UPSTREAM_CLIPS,
    check_desed_eval,
    check_esc50,
)
from sed_utils.data.demo_data import make_demo_mirror
from sed_utils.io.download import CHECKSUM_FILE, _download, _mirror_base, mirror_url, read_mirror_checksums
from sed_utils.io.extract import safe_extract

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "DATASETS",
    "DESED_UPSTREAM_CLIPS",
    "ESC50_UPSTREAM_CLIPS",
    "DatasetSpec",
    "check_desed_eval",
    "check_esc50",
    "fetch_all",
    "fetch_dataset",
    "folder_stats",
    "folder_tree",
    "needed_datasets",
    "prepare_datasets",
    "read_marker",
]

log = logging.getLogger(__name__)

MARKER_NAME = ".sed_complete.json"
#: Extraction failures that condemn the archive itself (it is removed): not an archive / truncated,
#: an unsafe member, content that fails its check. Disk full or a permission error keep it.
ARCHIVE_FAULTS = ("archive", "unsafe", "content")

# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset comes from and how to tell that it arrived whole (notebook 01 lists them).

    Attributes:
        name: registry key (``fetch_dataset(name, ...)``).
        title: human name.
        url: upstream download URL.
        filename: archive file name; also the name looked up under a mirror.
        folder: the folder the archive becomes under ``data_root``.
        sha256, md5, size: of the upstream archive, when they are stable and known (else None). Both are
            None as shipped: GitHub builds the ESC-50 zip on demand, so its bytes and size are not
            stable and upstream publishes no checksum (the content is verified instead); DESED's md5 and
            size, which Zenodo publishes, are not filled in (the comment in :data:`DATASETS` says how).
        check: content check of the extracted folder; returns a summary, raises DownloadError.
        page: where a human can read about the dataset (licence, citation).
    """

    name: str
    title: str
    url: str
    filename: str
    folder: str
    sha256: str | None
    md5: str | None
    size: int | None
    check: Callable[[Path], dict[str, Any]]
    page: str


DATASETS: dict[str, DatasetSpec] = {
    # GitHub builds branch archives on demand: the zip's bytes (timestamps, compression, even the
    # size) change whenever the repository or GitHub's zip writer changes, and upstream publishes no
    # checksum. A pinned size or hash would break the download for no real problem, so none is kept
    # and the extracted content is verified instead (check_esc50: csv hash + every clip present).
    "esc50": DatasetSpec(
        name="esc50",
        title="ESC-50 (Piczak 2015)",
        url="https://github.com/karolpiczak/ESC-50/archive/master.zip",
        filename="ESC-50-master.zip",
        folder="ESC-50-master",
        sha256=None,
        md5=None,
        size=None,
        check=check_esc50,
        page="https://github.com/karolpiczak/ESC-50",
    ),
    # Zenodo record 3588172 publishes an md5 and a size per file, not pinned here. To pin them: open
    # https://zenodo.org/api/records/3588172, take the entry of DESEDpublic_eval.tar.gz and copy
    # "checksum" (after "md5:") into md5 and "size" into size. download_file verifies what is filled in.
    "desed": DatasetSpec(
        name="desed",
        title="DESED public evaluation set (DCASE 2019 task 4)",
        url="https://zenodo.org/records/3588172/files/DESEDpublic_eval.tar.gz?download=1",
        filename="DESEDpublic_eval.tar.gz",
        folder="DESEDpublic_eval",
        sha256=None,
        md5=None,
        size=None,
        check=check_desed_eval,
        page="https://zenodo.org/records/3588172",
    ),
}


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DownloadError(
            f"unknown dataset {name!r}; known: {', '.join(DATASETS)}", reason="usage"
        ) from None



# --------------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------------


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The completion marker of an extracted dataset folder (what was verified, when), or None.
    Notebook 01 shows it."""
    try:
        data = json.loads((Path(folder) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(folder: Path, data: dict[str, Any]) -> None:
    atomic.write_json(folder / MARKER_NAME, data)


def _already_complete(spec: DatasetSpec, folder: Path, archive_sha256: str | None) -> bool:
    """True when ``folder`` carries our marker, still passes the content check, and (when the source's
    archive checksum is known without a request) was extracted from that very archive."""
    marker = read_marker(folder)
    if marker is None or marker.get("dataset") != spec.name:
        return False
    if archive_sha256 is not None and marker.get("archive_sha256") != archive_sha256:
        log.info("%s: the source archive changed (sha256 %s, extracted from %s); fetching it again",
                 folder, archive_sha256[:12], str(marker.get("archive_sha256"))[:12])
        return False
    try:
        spec.check(folder)  # cheap (a csv and a few thousand stat calls) and catches deleted files
    except DownloadError as e:
        log.warning("%s: marked complete but %s; extracting again", folder, e)
        return False
    log.info("%s: already complete (%s clips, %s), skipped", folder, marker.get("clips"),
             "upstream" if marker.get("upstream") else "not upstream")
    return True


def fetch_dataset(
    name: str,
    data_root: Path,
    *,
    mirror: str | None = None,
    timeout: float = 60,
    retries: int = 3,
    progress: bool = True,
    stall_seconds: float = 120.0,
) -> Path:
    """Download, extract and verify dataset ``name`` (``"esc50"`` or ``"desed"``) under ``data_root``
    (notebook 01, through :func:`fetch_all`).

    The archive goes to ``data_root/downloads/`` (kept, so a damaged extraction can be redone offline),
    the content to ``data_root/<folder>`` (``ESC-50-master`` or ``DESEDpublic_eval``), which is returned.
    A completion marker (``.sed_complete.json``: archive sha256, source, date, content summary) makes the
    next call return at once, without any request, as long as the content check still passes (and, for
    a local mirror, its ``SHA256SUMS`` still names the archive that was extracted).

    ``mirror`` (default: env ``SED_MIRROR``) is a base URL under which the archive's file name is fetched
    instead of upstream. When it holds a ``SHA256SUMS`` listing the archive, that checksum is enforced;
    otherwise the registry's (if any).

    One run at a time per data root (:func:`sed_utils.core.locks.folder_lock`): a second one waits, then
    finds the dataset finished.

    Args:
        timeout, retries, stall_seconds, progress: as :func:`~sed_utils.io.download.download_file` takes them.

    Raises:
        DownloadError: an unknown ``name``, a failed download (also a mirror without the archive), or
            an archive that fails to extract or the content check (the archive is then removed).
    """
    spec = _spec(name)
    with folder_lock(data_root, f"fetching {spec.folder}"):
        return _fetch_locked(spec, Path(data_root), mirror, timeout, retries, progress, stall_seconds)


def _fetch_locked(spec: DatasetSpec, data_root: Path, mirror: str | None, timeout: float, retries: int,
                  progress: bool, stall_seconds: float) -> Path:
    folder = data_root / spec.folder
    mirror = mirror or os.environ.get("SED_MIRROR") or None
    url = mirror_url(mirror, spec.filename) if mirror else spec.url
    # A local mirror's SHA256SUMS costs nothing to read, so a rebuilt mirror (the demo generator with
    # new parameters) is noticed at once; a remote one is only asked when something must be fetched.
    local = bool(mirror) and _mirror_base(mirror).startswith("file:")
    sums = read_mirror_checksums(mirror, timeout=timeout, stall_seconds=stall_seconds) if local else None
    if _already_complete(spec, folder, (sums or {}).get(spec.filename, spec.sha256)):
        return folder

    if mirror and not local:
        sums = read_mirror_checksums(mirror, timeout=timeout, stall_seconds=stall_seconds)
    sha256, md5, size = spec.sha256, spec.md5, spec.size
    if sums is not None and spec.filename in sums:
        # The mirror vouches for its own copy (which may be a rebuilt or subset archive).
        sha256, md5, size = sums[spec.filename], None, None
    elif sums is not None:
        log.warning("%s lists no %s; using the registry's checksum (%s)",
                    mirror_url(mirror, CHECKSUM_FILE), spec.filename,
                    "none known" if sha256 is None and md5 is None else "known")

    archive = data_root / "downloads" / spec.filename
    try:
        digest = _download(url, archive, sha256=sha256, md5=md5, size=size, timeout=timeout,
                           retries=retries, progress=progress, stall_seconds=stall_seconds)
    except DownloadError as e:
        if mirror and e.reason == "not_found":
            raise DownloadError(
                f"mirror file missing: the mirror {_mirror_base(mirror)} has no {spec.filename} ({e}) "
                f"Put the file there, or unset the mirror (SED_MIRROR / download.mirror) to use upstream.",
                reason="not_found",
                url=url,
            ) from e
        raise
    return _extract_verified(spec, archive, folder, digest, url, progress)


def _extract_verified(spec: DatasetSpec, archive: Path, folder: Path, digest: str, url: str,
                      progress: bool) -> Path:
    """Extract ``archive`` to ``folder`` with the content check and the marker done on the temporary
    folder; when the archive is the cause of a failure (damaged, unsafe, wrong content) it is
    removed, so the next run downloads it afresh instead of failing on it again."""
    checked: list[Path] = []

    def verify(extracted: Path) -> None:  # on the temporary folder: only a folder that passed moves in
        checked.append(extracted)
        summary = spec.check(extracted)
        (log.info if summary["upstream"] else log.warning)("%s: %s", spec.title, summary["note"])
        _write_marker(extracted, {
            "dataset": spec.name,
            "title": spec.title,
            "archive": spec.filename,
            "archive_sha256": digest,
            "source": url,
            "completed_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            **summary,
        })

    try:
        safe_extract(archive, folder, progress=progress, verify=verify)
    except DownloadError as e:
        if e.reason not in ARCHIVE_FAULTS:
            raise  # disk full, permissions: the archive is not to blame, keep it
        archive.unlink(missing_ok=True)
        # the temporary folder's paths in the problem are shown under the name the folder would have had
        detail = e.detail.replace(str(checked[0]), str(folder)) if checked else e.detail
        raise DownloadError(
            f"{archive}: {detail}. Nothing was put at {folder} (the half-extracted copy was deleted) and "
            f"the archive was removed, so the next run downloads it afresh; if it fails the same way, the "
            f"source itself is damaged (with a mirror: rebuild it).",
            reason=e.reason, url=url,
        ) from e
    return folder


def needed_datasets(cfg: Config) -> list[str]:
    """The datasets ``cfg`` needs: ESC-50 always, DESED only when it is the test set (notebook 01)."""
    return [name for name in DATASETS if name != "desed" or cfg.test_set == "desed"]


def fetch_all(cfg: Config, *, mirror: str | None = None, progress: bool = True) -> dict[str, Path]:
    """:func:`fetch_dataset` for every dataset ``cfg`` needs, with ``cfg.data_root`` and ``cfg.download``
    (notebook 01).

    ``mirror`` overrides ``cfg.download.mirror`` (the demo profile passes its generated mirror).
    With ``test_set: scenes`` DESED is not needed and not downloaded (see :func:`needed_datasets`).

    Args:
        cfg: gives ``data_root``, the ``download`` settings and the test set.

    Returns:
        ``{dataset name: its folder}``.

    Raises:
        DownloadError: as :func:`fetch_dataset`, at the first dataset that fails.
    """
    return {
        name: fetch_dataset(
            name,
            cfg.data_root,
            mirror=mirror or cfg.download.mirror,
            timeout=cfg.download.timeout_seconds,
            retries=cfg.download.retries,
            stall_seconds=cfg.download.stall_seconds,
            progress=progress,
        )
        for name in needed_datasets(cfg)
    }


def prepare_datasets(cfg: Config, *, progress: bool = True) -> dict[str, Path]:
    """What notebook 01 does, headless (``python -m sed_utils download``).

    Demo profile (``cfg.synthetic``): build the SYNTHETIC mirror, then download from it through
    ``file://`` with the real code. Otherwise: download from ``cfg.download.mirror`` or upstream.
    First, the temporary files of earlier runs that were killed are removed from the data root and
    the profile's run folder (:func:`sed_utils.core.atomic.remove_stale_temporaries`). All of it holds
    the data root's lock: a second run waits, then finds everything finished.
    """
    with folder_lock(cfg.data_root, "preparing the datasets"):
        for folder in (cfg.data_root, cfg.run_dir):
            for path in atomic.remove_stale_temporaries(folder):
                log.info("removed %s, left by a run that was killed", path)
        mirror = make_demo_mirror(cfg).as_uri() if cfg.synthetic else None
        return fetch_all(cfg, mirror=mirror, progress=progress)


# --------------------------------------------------------------------------------------------------
# Showing what arrived
# --------------------------------------------------------------------------------------------------


def folder_tree(path: Path, max_entries_per_dir: int = 5, max_depth: int = 6) -> str:
    """A short text tree of ``path``: folders first, at most ``max_entries_per_dir`` entries each
    (notebook 01).

    Folders show how many entries they hold, so "audio/ (2000 entries)" says more than 2000 lines would.

    Args:
        max_entries_per_dir: entries listed per folder; the rest become one "... N more" line.
        max_depth: how many levels of folders are listed; deeper folders show only their entry count.
    """
    path = Path(path)
    lines = [f"{path.name}/"]

    def walk(folder: Path, prefix: str, depth: int) -> None:
        entries = sorted((e for e in folder.iterdir() if e.name != LOCK_NAME),  # a lock is not content
                         key=lambda p: (not p.is_dir(), p.name))
        shown = entries[:max_entries_per_dir]
        hidden = len(entries) - len(shown)
        for i, entry in enumerate(shown):
            last = i == len(shown) - 1 and hidden == 0
            branch, indent = ("└── ", "    ") if last else ("├── ", "│   ")
            if entry.is_dir():
                n = sum(1 for _ in entry.iterdir())
                lines.append(f"{prefix}{branch}{entry.name}/  ({n} {'entry' if n == 1 else 'entries'})")
                if depth < max_depth:
                    walk(entry, prefix + indent, depth + 1)
            else:
                lines.append(f"{prefix}{branch}{entry.name}")
        if hidden:
            lines.append(f"{prefix}└── ... {hidden} more")

    walk(path, "", 1)
    return "\n".join(lines)


def folder_stats(path: Path) -> dict[str, Any]:
    """Files and bytes under ``path``: ``{"files": n, "bytes": n, "by_type": {".wav": n, ...}}``.

    For the "what arrived, and how much disk does it take" table of notebook 01 (the archives are kept
    next to the extracted folders, so a dataset costs roughly twice its archive).
    """
    by_type: dict[str, int] = {}
    total = 0
    for p in Path(path).rglob("*"):
        if p.is_file():
            kind = p.suffix.lower() or p.name
            by_type[kind] = by_type.get(kind, 0) + 1
            total += p.stat().st_size
    by_type = dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"files": sum(by_type.values()), "bytes": total, "by_type": by_type}
