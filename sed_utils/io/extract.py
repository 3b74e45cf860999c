"""Unpack a downloaded zip or tar(.gz) archive safely and atomically into one folder.

Separate from :mod:`sed_utils.io.download` because extraction is its own risk: a member named
``../x`` or ``/etc/x``, or a link pointing out, could write outside the target, and an interrupted
extraction could leave a half-filled folder that fails much later with a confusing error. So members
are checked before they are written, everything goes to a temporary folder beside the target that is
renamed into place only when complete, and every failure raises
:class:`~sed_utils.core.errors.DownloadError`. It reuses the transfer layer's archive-kind and disk-full
helpers; nothing here knows about a dataset.
"""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from sed_utils.core.errors import DownloadError
from sed_utils.core.progress import tqdm
from sed_utils.io.download import _archive_kind, _disk_full, _is_disk_full

__all__ = ["safe_extract"]


def _unsafe(archive: Path, dest: Path, member: str, why: str) -> DownloadError:
    detail = f"unsafe member {member!r} ({why}) would be written outside {dest}"
    return DownloadError(
        f"{archive}: {detail}; nothing was extracted. The archive is corrupt or was tampered with: delete "
        f"it and download it again from a trusted source.",
        reason="unsafe", detail=detail,
    )


def _escapes(root: Path, path: str) -> str | None:
    """Why archive path ``path`` would land outside ``root``, or None when it stays inside."""
    norm = path.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    if not (root / norm).resolve().is_relative_to(root.resolve()):
        return "resolves outside"
    return None


def _check_member(root: Path, archive: Path, dest: Path, name: str, *, symlink: str | None = None,
                  hardlink: str | None = None) -> None:
    """Refuse a member whose path has ``..``/is absolute, or whose link points outside ``root``.

    A symlink target is relative to the link's folder, a hard-link target to the archive root; links
    may use ``..`` as long as they resolve inside (``d/alias -> ../d/data``).
    """
    norm = name.replace("\\", "/")
    why = "'..' in its path" if ".." in PurePosixPath(norm).parts else _escapes(root, norm)
    if why is None and symlink is not None:
        target = symlink if symlink.startswith("/") else str(PurePosixPath(norm).parent / symlink)
        why = (w := _escapes(root, target)) and f"symlink to {symlink!r}: {w}"
    if why is None and hardlink is not None:
        why = (w := _escapes(root, hardlink)) and f"hard link to {hardlink!r}: {w}"
    if why:
        raise _unsafe(archive, dest, name, why)


def _extract_zip(archive: Path, tmp: Path, dest: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        for info in infos:  # check everything before writing anything
            link = z.read(info).decode(errors="replace") if stat.S_ISLNK(info.external_attr >> 16) else None
            _check_member(tmp, archive, dest, info.filename, symlink=link)
        needed = sum(i.file_size for i in infos)
        try:
            for info in tqdm(infos, desc=f"extract {archive.name}", unit="file", disable=not progress):
                z.extract(info, tmp)
        except OSError as e:
            if _is_disk_full(e):
                raise _disk_full(e, dest.parent, needed, "Nothing was left half-extracted.") from e
            raise


def _extract_tar(archive: Path, tmp: Path, dest: Path, progress: bool) -> None:
    # Python >= 3.11.4 has tarfile's own "data" filter: use it as a second line of defence.
    kwargs: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(archive, "r:*") as tar:
        bar = tqdm(desc=f"extract {archive.name}", unit="file", disable=not progress)
        try:
            for member in tar:  # one streaming pass: each member is checked before it is written
                if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                    raise _unsafe(archive, dest, member.name, "device or other special file")
                _check_member(tmp, archive, dest, member.name,
                              symlink=member.linkname if member.issym() else None,
                              hardlink=member.linkname if member.islnk() else None)
                tar.extract(member, tmp, **kwargs)
                bar.update(1)
        except OSError as e:
            if _is_disk_full(e):
                raise _disk_full(e, dest.parent, None, "Nothing was left half-extracted.") from e
            raise
        finally:
            bar.close()


def _move_into_place(src: Path, dest: Path) -> None:
    """Rename the extracted folder to ``dest``; an older ``dest`` is moved aside first, then deleted."""
    old = None
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir():
            raise DownloadError(f"{dest} exists and is not a folder; move it away and run again",
                                reason="usage")
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def safe_extract(archive: Path, dest: Path, *, progress: bool = False,
                 verify: Callable[[Path], None] | None = None) -> Path:
    """Extract a zip or tar(.gz) archive so that its content becomes folder ``dest``; return ``dest``.

    Notebook 01 extracts both datasets with it (via :func:`sed_utils.data.registry.fetch_dataset`).

    Safety: members with absolute paths or ``..``, symlinks/hardlinks pointing outside, and special files
    are refused (DownloadError, nothing written). Atomicity: everything goes to a temporary folder beside
    ``dest`` that is renamed into place only when extraction finished, so an interrupted or failed
    extraction never leaves a half-filled ``dest`` (an existing ``dest`` is replaced only on success).

    Layout: when the archive wraps everything in one top folder named like ``dest`` (GitHub's
    ``ESC-50-master/``), that folder becomes ``dest``; otherwise (DESED's ``dataset/...``) the archive
    root does.

    ``verify(folder)`` runs on the extracted folder while it still has its temporary name (the
    registry checks the content there and writes its completion marker into it); when it raises,
    the temporary folder is deleted and ``dest`` is left as it was. So whatever sits at ``dest``
    passed the check.

    Args:
        archive: the zip or tar(.gz) file (its kind comes from its name, else from its content).
        dest: the folder its content becomes.
        progress: show a progress bar over the members.
        verify: the check described above; None: none.

    Returns:
        ``dest``.

    Raises:
        DownloadError: the archive is missing, not a valid archive or truncated, holds an unsafe member,
            or the disk is full; or ``dest`` exists and is not a folder. Other OSErrors (permission
            denied) and what ``verify`` raises propagate as they are.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DownloadError(f"{archive}: archive not found", reason="archive")
    kind = _archive_kind(archive) or ("zip" if zipfile.is_zipfile(archive) else "tar")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for pattern in (f".{dest.name}.*.extracting", f".{dest.name}.old-*"):  # left by a killed run
        for stale in dest.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
    # Not tempfile.mkdtemp: its 0700 mode would stick to dest when the archive root becomes dest.
    tmp = dest.parent / f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.extracting"
    tmp.mkdir()
    try:
        try:
            if kind == "zip":
                _extract_zip(archive, tmp, dest, progress)
            else:
                _extract_tar(archive, tmp, dest, progress)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            # (an OSError with an errno, e.g. permission denied, is no archive problem: it propagates)
            detail = f"not a valid {kind} archive, or truncated/corrupt ({type(e).__name__}: {e})"
            raise DownloadError(
                f"{archive}: {detail}. Delete {archive} and run again to download it afresh.",
                reason="archive", detail=detail,
            ) from e
        entries = list(tmp.iterdir())
        wrapped = len(entries) == 1 and entries[0].is_dir() and entries[0].name == dest.name
        root = entries[0] if wrapped else tmp
        if verify is not None:
            verify(root)
        _move_into_place(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest

