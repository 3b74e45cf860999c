"""Fetch the two datasets of the series: resumable, verified, safely extracted, skipped when done.

Why so much care for "download a zip": the complaints about tutorial downloads are always the same
(downloads that hang, stop half-way without a word, or leave a half-extracted folder that fails much
later with a confusing error). So here:

* every download streams into ``<name>.part`` and is renamed only once complete and verified; a broken
  transfer is resumed with an HTTP ``Range`` request instead of starting over;
* a size / sha256 / md5 is checked whenever one is known (from the registry or from a mirror's
  ``SHA256SUMS``), and the extracted CONTENT is always checked (every listed clip exists);
* archives are extracted into a temporary folder beside the target and renamed into place, refusing
  members that would land outside it (``../x``, ``/etc/x``, links pointing out);
* every failure raises :class:`DownloadError` naming the URL or file, the problem and what to do.

A *mirror* is a base URL (``http://127.0.0.1:8000/`` or ``file:///path/to/dir``) under which the archive
file names are looked up instead of the upstream hosts: for offline machines, a lab cache, and the
demo profile (notebook 01 "downloads" the synthetic archives through ``file://``, so the demo runs the
same code path as a real download).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import io
import json
import logging
import os
import secrets
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from tqdm.auto import tqdm

from sed_utils.desed import DESED_LABELS, desed_audio_dir, desed_tsv, load_desed
from sed_utils.errors import DatasetError
from sed_utils.esc50 import load_esc50_meta

if TYPE_CHECKING:
    from sed_utils.config import Config

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DownloadError",
    "download_file",
    "fetch_all",
    "fetch_dataset",
    "folder_stats",
    "folder_tree",
    "mirror_url",
    "prepare_datasets",
    "read_marker",
    "read_mirror_checksums",
    "safe_extract",
]

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
USER_AGENT = "sed-tutorial/0.1 (Python urllib)"
MARKER_NAME = ".sed_complete.json"
CHECKSUM_FILE = "SHA256SUMS"
# Wait before retry k is k * this many seconds: long enough for a flaky link to recover, short enough
# not to look hung. Tests set it to 0.
RETRY_BACKOFF_SECONDS = 1.0
# Server answers worth retrying: timeouts, rate limits and server-side hiccups. Anything else (404, 403)
# will not change on a retry, so it is reported at once.
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
ARCHIVE_SUFFIXES = {".zip": "zip", ".tar": "tar", ".gz": "tar", ".tgz": "tar"}


class DownloadError(RuntimeError):
    """A download, checksum, archive or extracted dataset that cannot be used.

    The message names the URL or file, the problem, and what to do about it. ``reason`` is a short
    machine-readable tag (``http``, ``not_found``, ``network``, ``truncated``, ``checksum``,
    ``archive``, ``unsafe``, ``disk_full``, ``io``, ``content``, ``usage``) for callers that react
    differently.
    """

    def __init__(self, message: str, *, reason: str = "", url: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.url = url


class _Transient(Exception):
    """A failure a retry may cure (connection reset, timeout, short body, HTTP 5xx)."""

    def __init__(self, message: str, kind: str = "network"):
        super().__init__(message)
        self.kind = kind


class _Restart(Exception):
    """The server cannot continue the .part (HTTP 416, a wrong Content-Range): start from byte 0."""


# --------------------------------------------------------------------------------------------------
# Content checks (run after every extraction, and before trusting a completion marker)
# --------------------------------------------------------------------------------------------------

ESC50_UPSTREAM_CSV_SHA256 = "ca660da60191a97de289983a05821c9382d852a38a2ba8428980816b68cf6246"
ESC50_UPSTREAM_CLIPS = 2000
DESED_UPSTREAM_CLIPS = 692


def _content_error(folder: Path, problem: Exception | str) -> DownloadError:
    return DownloadError(
        f"{folder}: the extracted dataset is incomplete or damaged: {problem}. Delete {folder} and run "
        f"again to extract it afresh; if that fails again, delete the archive in "
        f"{folder.parent / 'downloads'} too (or rebuild your mirror).",
        reason="content",
    )


def check_esc50(folder: Path) -> dict[str, Any]:
    """Check an extracted ``ESC-50-master`` folder; return a summary for the completion marker.

    GitHub's archive has no stable checksum (see :data:`DATASETS`), so the content is what is verified:
    ``meta/esc50.csv`` parses with the upstream columns and every clip it lists exists (the rules of
    :func:`sed_utils.esc50.load_esc50_meta`, the loader notebook 02 uses). A csv whose sha256 is not
    upstream's (a mirror with a subset of classes, the synthetic demo) is accepted: the summary says so
    and :func:`fetch_dataset` logs a warning, because results on such data are not ESC-50 results.
    """
    try:
        meta = load_esc50_meta(folder)
    except DatasetError as e:
        raise _content_error(folder, e) from e
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
    """Check an extracted ``DESEDpublic_eval`` folder; return a summary for the completion marker.

    ``dataset/metadata/eval/public.tsv`` must parse (filename, onset, offset, event_label, validated by
    :func:`sed_utils.desed.load_desed`, the loader notebook 02 uses) and every clip it names must exist
    in ``dataset/audio/eval/public``. Upstream has 692 clips; another count is accepted with a warning.
    """
    root = folder / "dataset"
    try:
        desed = load_desed(desed_tsv(root), desed_audio_dir(root), DESED_LABELS)
    except DatasetError as e:
        raise _content_error(folder, e) from e
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


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset comes from and how to tell that it arrived whole.

    Attributes:
        name: registry key (``fetch_dataset(name, ...)``).
        title: human name.
        url: upstream download URL.
        filename: archive file name; also the name looked up under a mirror.
        folder: the folder the archive becomes under ``data_root``.
        sha256, md5, size: of the upstream archive, when they are stable and known (else None). Both are
            None as shipped, for different reasons: GitHub builds the ESC-50 zip on demand, so its bytes
            and size are not stable and upstream publishes no checksum (the content is verified
            instead); Zenodo does publish DESED's md5 and size, but they could not be read from the
            offline machine this was written on (the comment in :data:`DATASETS` says how to fill them).
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
    # Zenodo record 3588172 publishes an md5 and a size per file; they could not be read from the
    # offline machine this was written on. To pin them: open https://zenodo.org/api/records/3588172,
    # take the entry of DESEDpublic_eval.tar.gz and copy "checksum" (after "md5:") into md5 and "size"
    # into size. download_file verifies whatever is filled in.
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
# Small helpers
# --------------------------------------------------------------------------------------------------


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "an unknown amount"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def file_digests(path: Path, md5: bool = False) -> dict[str, str]:
    """sha256 (and md5 if asked) of a file in one streaming pass."""
    hashes = {"sha256": hashlib.sha256()}
    if md5:
        hashes["md5"] = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            for h in hashes.values():
                h.update(block)
    return {k: h.hexdigest() for k, h in hashes.items()}


def _verify(path: Path, sha256: str | None, md5: str | None, size: int | None) -> tuple[str | None, str]:
    """Return (problem or None, sha256 of the file). Size first: it is free and catches most damage."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size mismatch: expected {size} bytes, got {actual}", ""
    d = file_digests(path, md5=md5 is not None)
    if sha256 is not None and d["sha256"] != sha256.lower():
        return f"sha256 mismatch: expected {sha256.lower()}, got {d['sha256']}", d["sha256"]
    if md5 is not None and d["md5"] != md5.lower():
        return f"md5 mismatch: expected {md5.lower()}, got {d['md5']}", d["sha256"]
    return None, d["sha256"]


def _disk_full(e: OSError, where: Path, needed: int | None, done: str) -> DownloadError:
    free = shutil.disk_usage(where if where.exists() else where.parent).free
    need = f"about {_fmt_bytes(needed)} more" if needed is not None else "more (the total size is unknown)"
    return DownloadError(
        f"disk full while writing in {where}: it needs {need} free space and {_fmt_bytes(free)} are "
        f"free now ({e.strerror}). Free some space there, or point data_root (env SED_DATA_ROOT) at a "
        f"bigger disk, and run again. {done}",
        reason="disk_full",
    )


def _is_disk_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _write_chunk(out: IO[bytes], chunk: bytes) -> None:
    """One write to the .part file (a function of its own so tests can simulate a full disk)."""
    out.write(chunk)


def _file_url_path(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise DownloadError(f"{url}: file:// URLs must name a local path (file:///dir/file)", reason="usage")
    return Path(urllib.request.url2pathname(parsed.path))


# --------------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------------


def _open_http(url: str, offset: int, timeout: float) -> tuple[IO[bytes], int | None, int]:
    """Open ``url`` asking for bytes from ``offset``; return (body, total size or None, start offset).

    The start offset is ``offset`` when the server honoured the Range request (206), 0 when it sent
    the whole file again (200): the caller then restarts the .part instead of appending to it.
    """
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        content_range = e.headers.get("Content-Range", "") if e.headers else ""
        e.close()
        if e.code == 416 and offset:
            # Range not satisfiable: the .part is already whole (bytes */N with N == offset) or longer
            # than the file (then start over).
            if content_range.startswith("bytes */") and content_range[8:].strip() == str(offset):
                return io.BytesIO(b""), offset, offset
            raise _Restart(f"the server cannot resume at byte {offset} (HTTP 416)") from e
        if e.code in TRANSIENT_HTTP:
            raise _Transient(f"HTTP {e.code} {e.reason}") from e
        hint = {
            404: "the file is not at this address: check the URL (with a mirror: that the mirror folder "
            "holds this file)",
            401: "the server wants a login: this URL is not a public download",
            403: "access denied: the host refuses the download (rate limit or moved file); try later or "
            "use a mirror",
        }.get(e.code, "check the URL, or try again later / use a mirror")
        raise DownloadError(
            f"{url}: HTTP {e.code} {e.reason}: {hint}.",
            reason="not_found" if e.code == 404 else "http",
            url=url,
        ) from e
    except urllib.error.URLError as e:
        raise _Transient(f"cannot connect ({e.reason})") from e
    except (OSError, http.client.HTTPException) as e:
        raise _Transient(f"connection failed ({type(e).__name__}: {e})") from e

    length_text = resp.headers.get("Content-Length", "")
    length = int(length_text) if length_text.isdigit() else None
    if offset and resp.status == 206:
        # Content-Range: bytes START-END/TOTAL  (TOTAL may be "*")
        spec = resp.headers.get("Content-Range", "").removeprefix("bytes ").strip()
        first, _, total_text = spec.partition("/")
        start_text = first.split("-", 1)[0]
        if start_text != str(offset):
            resp.close()
            raise _Restart(f"the server resumed at the wrong place ({spec!r}, asked for {offset}-)")
        total = int(total_text) if total_text.isdigit() else (offset + length if length is not None else None)
        return resp, total, offset
    if offset:
        log.info("%s: the server ignored the resume request (HTTP %s); starting over", url, resp.status)
    return resp, length, 0


def _open_file(url: str, offset: int) -> tuple[IO[bytes], int, int]:
    path = _file_url_path(url)
    if not path.is_file():
        raise DownloadError(
            f"{url}: file not found ({path} does not exist). With a mirror, the mirror folder must hold "
            f"{path.name}; check the folder, or unset the mirror to download from upstream.",
            reason="not_found",
            url=url,
        )
    total = path.stat().st_size
    f = open(path, "rb")
    if 0 < offset <= total:
        f.seek(offset)
        return f, total, offset
    return f, total, 0


def _transfer(url: str, part: Path, *, timeout: float, size: int | None, progress: bool) -> None:
    """One attempt: append the missing bytes of ``url`` to ``part`` (or rewrite it). Raises _Transient."""
    offset = part.stat().st_size if part.exists() else 0
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme == "file":
        body, total, start = _open_file(url, offset)
    elif scheme in ("http", "https"):
        try:
            body, total, start = _open_http(url, offset, timeout)
        except _Restart as e:
            log.info("%s: %s; starting over", url, e)
            body, total, start = _open_http(url, 0, timeout)  # start 0: the .part is rewritten
    else:
        raise DownloadError(f"{url}: unsupported URL scheme {scheme!r}; use http(s):// or file://",
                            reason="usage", url=url)
    with body:
        if size is not None and total is not None and total != size:
            raise DownloadError(
                f"{url}: the server offers {total} bytes but {size} are expected: a different file "
                f"(moved or re-published upstream?). Check the URL / registry entry.",
                reason="checksum",
                url=url,
            )
        received = start
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=not progress)
        try:
            with open(part, "ab" if start else "wb") as out:
                while True:
                    try:
                        chunk = body.read(CHUNK_BYTES)
                    except (OSError, http.client.HTTPException) as e:
                        raise _Transient(
                            f"connection broke after {received} of {total or '?'} bytes "
                            f"({type(e).__name__}: {e})"
                        ) from e
                    if not chunk:
                        break
                    _write_chunk(out, chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except OSError as e:
            if _is_disk_full(e):
                needed = total - received if total is not None else None
                raise _disk_full(e, part.parent, needed,
                                 f"The {_fmt_bytes(part.stat().st_size)} downloaded so far stay in {part}; "
                                 f"the next run resumes from there.") from e
            raise DownloadError(f"cannot write {part}: {e}", reason="io", url=url) from e
        finally:
            bar.close()
    if total is not None and received < total:
        raise _Transient(f"truncated download: got {received} of {total} bytes", kind="truncated")


def _archive_kind(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".part")
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    return ARCHIVE_SUFFIXES.get(Path(name).suffix)


def _check_magic(part: Path, url: str) -> None:
    """Reject an archive-named download whose first bytes are no archive (an HTML error page...)."""
    kind = _archive_kind(part)
    if kind is None:
        return
    with open(part, "rb") as f:
        head = f.read(512)
    name = part.name.lower().removesuffix(".part")
    ok = {
        "zip": head[:4] in (b"PK\x03\x04", b"PK\x05\x06"),
        "tar": head[:2] == b"\x1f\x8b" if name.endswith((".gz", ".tgz")) else len(head) == 512,
    }[kind]
    if not ok:
        part.unlink()
        raise DownloadError(
            f"{url}: the downloaded file is not a valid {kind} archive (it starts with {head[:40]!r}; an "
            f"HTML page from a proxy, login wall or error page?). It was removed; check the URL or mirror.",
            reason="archive",
            url=url,
        )


def _download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    timeout: float = 60,
    retries: int = 3,
    progress: bool = True,
) -> str:
    """:func:`download_file`, returning the sha256 of ``dest`` (computed once, used for the marker)."""
    dest = Path(dest)
    if dest.is_file():
        problem, digest = _verify(dest, sha256, md5, size)
        if problem is None:
            log.info("%s: already downloaded and verified, skipped", dest)
            return digest
        log.warning("%s exists but fails verification (%s); downloading it again", dest, problem)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    if part.exists() and size is not None and part.stat().st_size > size:
        part.unlink()  # longer than the whole file: cannot be a prefix of it
    if part.exists():
        log.info("%s: resuming from %d bytes already in %s", url, part.stat().st_size, part)
    else:
        log.info("downloading %s -> %s", url, dest)

    attempts = max(1, retries + 1)
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, timeout=timeout, size=size, progress=progress)
            break
        except _Transient as e:
            if attempt == attempts:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"{url}: {e} (gave up after {attempts} attempt(s)). {_fmt_bytes(have)} are kept in "
                    f"{part} and the next run resumes from there; check the network, raise "
                    f"download.retries / download.timeout_seconds, or use a mirror (env SED_MIRROR).",
                    reason=e.kind,
                    url=url,
                ) from e
            log.warning("%s: %s; retry %d of %d", url, e, attempt, attempts - 1)
            time.sleep(RETRY_BACKOFF_SECONDS * attempt)

    problem, digest = _verify(part, sha256, md5, size)
    if problem is not None:
        part.unlink()
        raise DownloadError(
            f"{url}: {problem}. The bad file was removed. Run again to download it afresh; if it keeps "
            f"failing, the source changed: with a mirror, rebuild it or update its {CHECKSUM_FILE}.",
            reason="checksum",
            url=url,
        )
    _check_magic(part, url)
    os.replace(part, dest)
    log.info("%s: complete (%s, sha256 %s)", dest, _fmt_bytes(dest.stat().st_size), digest)
    return digest


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    timeout: float = 60,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download ``url`` (http, https or file) to ``dest``: resumable, verified, atomic.

    Bytes go to ``dest + ".part"``; a .part left by an earlier run or a broken connection is resumed
    with an HTTP Range request (when the server ignores it and answers 200, the .part is restarted).
    Connection resets, timeouts, truncated bodies and HTTP 5xx are retried up to ``retries`` times,
    each resuming. Only a complete file that matches ``size`` / ``sha256`` / ``md5`` (those given) is
    renamed to ``dest`` (``os.replace``), so ``dest`` existing means "complete": an existing ``dest``
    that verifies is returned without any request.

    Raises:
        DownloadError: HTTP error (status), checksum mismatch (the bad file is removed), truncated
            download after all retries (the .part is kept for the next run), a file that is not the
            archive its name says, disk full (how much is needed and where), missing file:// source.
    """
    _download(url, Path(dest), sha256=sha256, md5=md5, size=size, timeout=timeout, retries=retries,
              progress=progress)
    return Path(dest)


# --------------------------------------------------------------------------------------------------
# Mirrors
# --------------------------------------------------------------------------------------------------


def _mirror_base(mirror: str) -> str:
    """Normalise a mirror to a URL ending in '/'; a plain folder path becomes a file:// URL."""
    if "://" not in mirror:
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return mirror if mirror.endswith("/") else mirror + "/"


def mirror_url(mirror: str, filename: str) -> str:
    """URL of ``filename`` under a mirror base (``http://host/dir/``, ``file:///dir`` or a folder path)."""
    return _mirror_base(mirror) + urllib.parse.quote(filename)


def read_mirror_checksums(mirror: str, *, timeout: float = 60) -> dict[str, str] | None:
    """The mirror's ``SHA256SUMS`` as {file name: sha256}, or None when the mirror has none.

    Format as ``sha256sum`` writes it: ``<64 hex>  <name>`` per line (``*<name>`` in binary mode).
    """
    url = mirror_url(mirror, CHECKSUM_FILE)
    try:
        if url.startswith("file:"):
            path = _file_url_path(url)
            if not path.is_file():
                return None
            text = path.read_text()
        else:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode()
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 404:
            return None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason} while reading the mirror's checksums",
                            reason="http", url=url) from e
    except (urllib.error.URLError, OSError, UnicodeDecodeError) as e:
        raise DownloadError(f"{url}: cannot read the mirror's checksums ({e}); is the mirror reachable?",
                            reason="network", url=url) from e
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*").removeprefix("./")
        if len(digest) != 64 or not all(c in "0123456789abcdefABCDEF" for c in digest) or not name:
            raise DownloadError(f"{url}: line {n} is not '<sha256>  <file name>': {line!r}",
                                reason="checksum", url=url)
        sums[name] = digest.lower()
    return sums


# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------


def _unsafe(archive: Path, dest: Path, member: str, why: str) -> DownloadError:
    return DownloadError(
        f"{archive}: unsafe member {member!r} ({why}) would be written outside {dest}; nothing was "
        f"extracted. The archive is corrupt or was tampered with: delete it and download it again from a "
        f"trusted source.",
        reason="unsafe",
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


def safe_extract(archive: Path, dest: Path, *, progress: bool = False) -> Path:
    """Extract a zip or tar(.gz) archive so that its content becomes folder ``dest``; return ``dest``.

    Safety: members with absolute paths or ``..``, symlinks/hardlinks pointing outside, and special files
    are refused (DownloadError, nothing written). Atomicity: everything goes to a temporary folder beside
    ``dest`` that is renamed into place only when extraction finished, so an interrupted or failed
    extraction never leaves a half-filled ``dest`` (an existing ``dest`` is replaced only on success).

    Layout: when the archive wraps everything in one top folder named like ``dest`` (GitHub's
    ``ESC-50-master/``), that folder becomes ``dest``; otherwise (DESED's ``dataset/...``) the archive
    root does.
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
            raise DownloadError(
                f"{archive}: not a valid {kind} archive, or truncated/corrupt ({type(e).__name__}: {e}). "
                f"Delete {archive} and run again to download it afresh.",
                reason="archive",
            ) from e
        entries = list(tmp.iterdir())
        wrapped = len(entries) == 1 and entries[0].is_dir() and entries[0].name == dest.name
        _move_into_place(entries[0] if wrapped else tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The completion marker of an extracted dataset folder (what was verified, when), or None."""
    try:
        data = json.loads((Path(folder) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(folder: Path, data: dict[str, Any]) -> None:
    tmp = folder / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, folder / MARKER_NAME)


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
) -> Path:
    """Download, extract and verify dataset ``name`` (``"esc50"`` or ``"desed"``) under ``data_root``.

    The archive goes to ``data_root/downloads/`` (kept, so a damaged extraction can be redone offline),
    the content to ``data_root/<folder>`` (``ESC-50-master`` or ``DESEDpublic_eval``), which is returned.
    A completion marker (``.sed_complete.json``: archive sha256, source, date, content summary) makes the
    next call return at once, without any request, as long as the content check still passes (and, for
    a local mirror, its ``SHA256SUMS`` still names the archive that was extracted).

    ``mirror`` (default: env ``SED_MIRROR``) is a base URL under which the archive's file name is fetched
    instead of upstream. When it holds a ``SHA256SUMS`` listing the archive, that checksum is enforced;
    otherwise the registry's (if any).
    """
    spec = _spec(name)
    data_root = Path(data_root)
    folder = data_root / spec.folder
    mirror = mirror or os.environ.get("SED_MIRROR") or None
    url = mirror_url(mirror, spec.filename) if mirror else spec.url
    # A local mirror's SHA256SUMS costs nothing to read, so a rebuilt mirror (the demo generator with
    # new parameters) is noticed at once; a remote one is only asked when something must be fetched.
    local = bool(mirror) and _mirror_base(mirror).startswith("file:")
    sums = read_mirror_checksums(mirror, timeout=timeout) if local else None
    if _already_complete(spec, folder, (sums or {}).get(spec.filename, spec.sha256)):
        return folder

    if mirror and not local:
        sums = read_mirror_checksums(mirror, timeout=timeout)
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
                           retries=retries, progress=progress)
    except DownloadError as e:
        if mirror and e.reason == "not_found":
            raise DownloadError(
                f"mirror file missing: the mirror {_mirror_base(mirror)} has no {spec.filename} ({e}) "
                f"Put the file there, or unset the mirror (SED_MIRROR / download.mirror) to use upstream.",
                reason="not_found",
                url=url,
            ) from e
        raise
    safe_extract(archive, folder, progress=progress)
    summary = spec.check(folder)
    (log.info if summary["upstream"] else log.warning)("%s: %s", spec.title, summary["note"])
    _write_marker(folder, {
        "dataset": spec.name,
        "title": spec.title,
        "archive": spec.filename,
        "archive_sha256": digest,
        "source": url,
        "completed_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        **summary,
    })
    return folder


def needed_datasets(cfg: Config) -> list[str]:
    """The datasets ``cfg`` needs: ESC-50 always, DESED only when it is the test set."""
    return [name for name in DATASETS if name != "desed" or cfg.test_set == "desed"]


def fetch_all(cfg: Config, *, mirror: str | None = None, progress: bool = True) -> dict[str, Path]:
    """:func:`fetch_dataset` for every dataset ``cfg`` needs, with ``cfg.data_root`` and ``cfg.download``.

    ``mirror`` overrides ``cfg.download.mirror`` (the demo profile passes its generated mirror).
    With ``test_set: scenes`` DESED is not needed and not downloaded (see :func:`needed_datasets`).
    """
    return {
        name: fetch_dataset(
            name,
            cfg.data_root,
            mirror=mirror or cfg.download.mirror,
            timeout=cfg.download.timeout_seconds,
            retries=cfg.download.retries,
            progress=progress,
        )
        for name in needed_datasets(cfg)
    }


def prepare_datasets(cfg: Config, *, progress: bool = True) -> dict[str, Path]:
    """What notebook 01 does, headless (``python -m sed_utils download``).

    Demo profile (``cfg.synthetic``): build the SYNTHETIC mirror, then download from it through
    ``file://`` with the real code. Otherwise: download from ``cfg.download.mirror`` or upstream.
    """
    mirror = None
    if cfg.synthetic:
        from sed_utils.demo_data import make_demo_mirror

        mirror = make_demo_mirror(cfg).as_uri()
    return fetch_all(cfg, mirror=mirror, progress=progress)


# --------------------------------------------------------------------------------------------------
# Showing what arrived
# --------------------------------------------------------------------------------------------------


def folder_tree(path: Path, max_entries_per_dir: int = 5, max_depth: int = 6) -> str:
    """A short text tree of ``path``: folders first, at most ``max_entries_per_dir`` entries each.

    Folders show how many entries they hold, so "audio/ (2000 entries)" says more than 2000 lines would.
    """
    path = Path(path)
    lines = [f"{path.name}/"]

    def walk(folder: Path, prefix: str, depth: int) -> None:
        entries = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name))
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
