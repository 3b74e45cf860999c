"""Fetch one file over HTTP(S) or from a mirror: resumable, retried, verified, atomic.

The transfer layer only: URLs, bytes and checksums, no datasets (what the series downloads and how
its content is checked is :mod:`sed_utils.data.registry`, one layer up; unpacking is
:mod:`sed_utils.io.extract`). Bytes stream into ``<name>.part``, a break is resumed with an HTTP
``Range`` request, transient failures are retried, a known size / sha256 / md5 is enforced, and the
file is renamed into place only when complete. A *mirror* is a base URL (``http://host/dir/`` or
``file:///dir``) under which the archive names are looked up instead of upstream: for offline
machines, a lab cache, and the demo profile of notebook 01.
"""

from __future__ import annotations

import errno
import http.client
import io
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO

from sed_utils.core.errors import DownloadError
from sed_utils.core.keys import file_digests
from sed_utils.core.progress import tqdm

__all__ = [
    "download_file",
    "mirror_url",
    "read_mirror_checksums",
]

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
USER_AGENT = "sed-tutorial/0.1 (Python urllib)"
CHECKSUM_FILE = "SHA256SUMS"
# Wait before retry k is k * this many seconds: long enough for a flaky link to recover, short enough
# not to look hung. Tests set it to 0.
RETRY_BACKOFF_SECONDS = 1.0
# Server answers worth retrying: timeouts, rate limits and server-side hiccups. Anything else (404, 403)
# will not change on a retry, so it is reported at once.
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
#: A transfer that brings fewer than this many bytes in ``stall_seconds`` has stalled (retried, then an
#: error). Needed besides the socket timeout: that one restarts with every byte, so a server that
#: drips a byte every few seconds would never time out.
STALL_MIN_BYTES = 16 * 1024
ARCHIVE_SUFFIXES = {".zip": "zip", ".tar": "tar", ".gz": "tar", ".tgz": "tar"}


class _Transient(Exception):
    """A failure a retry may cure (connection reset, timeout, short body, HTTP 5xx)."""

    def __init__(self, message: str, kind: str = "network"):
        super().__init__(message)
        self.kind = kind


class _Restart(Exception):
    """The server cannot continue the .part (HTTP 416, a wrong Content-Range): start from byte 0."""


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


def _transfer(url: str, part: Path, *, timeout: float, size: int | None, progress: bool,
              stall_seconds: float = 120.0) -> None:
    """One attempt: append the missing bytes of ``url`` to ``part`` (or rewrite it). Raises _Transient,
    also when fewer than :data:`STALL_MIN_BYTES` arrive in a window of ``stall_seconds``."""
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
        # read1: returns what one receive brings, so the stall check runs between receives
        # (read(n) would wait for all n bytes however slowly they drip in)
        read = getattr(body, "read1", body.read)
        window_start, window_bytes = time.monotonic(), 0
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name.removesuffix(".part"), disable=not progress)
        try:
            with open(part, "ab" if start else "wb") as out:
                while True:
                    try:
                        chunk = read(CHUNK_BYTES)
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
                    window_bytes += len(chunk)
                    if (waited := time.monotonic() - window_start) >= stall_seconds:
                        if window_bytes < STALL_MIN_BYTES:
                            raise _Transient(f"the transfer stalled: {window_bytes} bytes in the last "
                                             f"{waited:.0f} s (download.stall_seconds={stall_seconds:g})",
                                             kind="stalled")
                        window_start, window_bytes = time.monotonic(), 0
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
    stall_seconds: float = 120.0,
) -> str:
    """:func:`download_file`, returning the sha256 of ``dest`` (computed once, used for the marker).

    Private, yet used by :mod:`sed_utils.data.registry`, which needs the digest for its marker.
    """
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
            _transfer(url, part, timeout=timeout, size=size, progress=progress, stall_seconds=stall_seconds)
            break
        except _Transient as e:
            if attempt == attempts:
                have = part.stat().st_size if part.exists() else 0
                kept = (f"{_fmt_bytes(have)} are kept in {part} and the next run resumes from there"
                        if have else "Nothing was downloaded (no partial file is left)")
                raise DownloadError(
                    f"{url}: {e} (gave up after {attempts} attempt(s)). {kept}; check the "
                    f"network, raise download.retries / download.timeout_seconds / download.stall_seconds, "
                    f"or use a mirror (env SED_MIRROR).",
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
    stall_seconds: float = 120.0,
) -> Path:
    """Download ``url`` (http, https or file) to ``dest``: resumable, verified, atomic.

    The downloads of notebook 01 go through it (via :func:`sed_utils.data.registry.fetch_dataset`).

    Bytes go to ``dest + ".part"``; a .part left by an earlier run or a broken connection is resumed
    with an HTTP Range request (when the server ignores it and answers 200, the .part is restarted).
    Connection resets, timeouts, truncated bodies, HTTP 5xx and stalls (fewer than
    :data:`STALL_MIN_BYTES` in ``stall_seconds``) are retried up to ``retries`` times, each resuming.
    Only a complete file that matches ``size`` / ``sha256`` / ``md5`` (those given) is renamed to
    ``dest`` (``os.replace``), so ``dest`` existing means "complete": an existing ``dest`` that
    verifies is returned without any request.

    Args:
        url: an ``http://``, ``https://`` or ``file://`` URL.
        dest: where the complete file goes.
        sha256, md5, size: what the file must match (None: not checked).
        timeout: the socket timeout of each request, in seconds.
        retries: how many times a failure a retry may cure is retried.
        progress: show a progress bar.
        stall_seconds: the window in which fewer than :data:`STALL_MIN_BYTES` arriving counts as a stall.

    Returns:
        ``dest``, as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: HTTP error (status), checksum mismatch (the bad file is removed), truncated
            download after all retries (the .part is kept for the next run), a file that is not the
            archive its name says, disk full (how much is needed and where), missing file:// source.
    """
    _download(url, Path(dest), sha256=sha256, md5=md5, size=size, timeout=timeout, retries=retries,
              progress=progress, stall_seconds=stall_seconds)
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
    """URL of ``filename`` under a mirror base (``http://host/dir/``, ``file:///dir`` or a folder path).

    Used by the registry's downloads (notebook 01) to fetch from a mirror instead of upstream.
    """
    return _mirror_base(mirror) + urllib.parse.quote(filename)


#: The most a ``SHA256SUMS`` may hold: a line per file, so a few kB; more is not a checksum file.
MAX_CHECKSUM_BYTES = 1 << 20


def _read_small(resp: IO[bytes], url: str, deadline_seconds: float) -> bytes:
    """The whole body of a small response, or a :class:`DownloadError` when it takes longer than
    ``deadline_seconds`` (a server dripping bytes resets the socket timeout with each one) or grows past
    :data:`MAX_CHECKSUM_BYTES`."""
    start, parts, size = time.monotonic(), [], 0
    while chunk := resp.read1(65536):
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_CHECKSUM_BYTES:
            raise DownloadError(f"{url}: more than {_fmt_bytes(MAX_CHECKSUM_BYTES)}: not a checksum file",
                                reason="checksum", url=url)
        if (waited := time.monotonic() - start) > deadline_seconds:
            raise DownloadError(f"{url}: the checksum file stalled: {size} bytes in {waited:.0f} s "
                                f"(download.stall_seconds={deadline_seconds:g})", reason="stalled", url=url)
    return b"".join(parts)


def read_mirror_checksums(mirror: str, *, timeout: float = 60,
                          stall_seconds: float = 120.0) -> dict[str, str] | None:
    """The mirror's ``SHA256SUMS`` as {file name: sha256}, or None when the mirror has none.

    The registry enforces these checksums on the downloads of notebook 01. Format as ``sha256sum``
    writes it: ``<64 hex>  <name>`` per line (``*<name>`` in binary mode).

    Args:
        mirror: the mirror's base URL (``file://`` or ``http(s)://``).
        timeout: each socket read's timeout, in seconds.
        stall_seconds: the whole file (a few kB) must arrive within this many seconds.
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
                text = _read_small(resp, url, stall_seconds).decode()
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

