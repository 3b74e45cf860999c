"""The real download code against a local HTTP server and file:// mirrors (no internet, no ../shared).

The server (127.0.0.1, a free port) serves archives built in tmp_path and can misbehave on purpose:
drop the connection mid-body, ignore Range requests, announce more bytes than it sends, answer 503.
Every request is recorded, so "skipped" and "resumed" are asserted from what went over the wire.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import socket
import stat
import tarfile
import threading
import time
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sed_utils.config import load_config
from sed_utils.core.errors import DownloadError
from sed_utils.data import registry
from sed_utils.data.registry import fetch_all, fetch_dataset, folder_stats, folder_tree, read_marker
from sed_utils.io import download as dl
from sed_utils.io.download import download_file, read_mirror_checksums
from sed_utils.io.extract import safe_extract

ESC_COLUMNS = "filename,fold,target,category,esc10,src_file,take"


# ------------------------------------------------------------------------------------------------
# A small, misbehaving-on-demand HTTP server
# ------------------------------------------------------------------------------------------------


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)  # "/name" -> body
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    honour_range: bool = True
    drop_first: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before hanging up (once)
    lie_extra: dict[str, int] = field(default_factory=dict)  # path -> bytes announced but never sent
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> status answered once
    drip: dict[str, float] = field(default_factory=dict)  # path -> seconds between single bytes
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]


class Handler(BaseHTTPRequestHandler):
    timeout = 5  # a stuck client cannot hold a server thread forever

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        st: ServerState = self.server.state
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        with st.lock:
            st.requests.append((path, dict(self.headers)))
            status = st.fail_first.pop(path, None)
            drop = st.drop_first.pop(path, None)
        if status is not None:
            self.send_error(status)
            return
        body = st.files.get(path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and st.honour_range:
            start = int(match[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload) + st.lie_extra.get(path, 0)))
        self.end_headers()
        if path in st.drip:  # a byte at a time: each resets the client's socket timeout
            try:
                for i in range(len(payload)):
                    self.wfile.write(payload[i:i + 1])
                    self.wfile.flush()
                    time.sleep(st.drip[path])
            except OSError:  # the client gave up
                pass
            return
        self.wfile.write(payload if drop is None else payload[:drop])
        self.wfile.flush()


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.state = ServerState()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_port}/"
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _fast_and_isolated(monkeypatch):
    monkeypatch.setattr(dl, "RETRY_BACKOFF_SECONDS", 0.0)
    monkeypatch.delenv("SED_MIRROR", raising=False)
    monkeypatch.delenv("SED_DATA_ROOT", raising=False)


# ------------------------------------------------------------------------------------------------
# Tiny archives in the upstream layouts
# ------------------------------------------------------------------------------------------------


def _wav_bytes(seed: int, seconds: float = 0.05, sr: int = 8000) -> bytes:
    """A tiny noise WAV. ESC-50 clips are 5 s (the content check opens each header), so the ESC-50
    archives use ``seconds=5`` at a low rate to stay small."""
    buf = io.BytesIO()
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * sr)).astype(np.float32)
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


ESC_ROWS = [
    ("1-100032-A-0.wav", 1, 0, "dog", "True", "100032", "A"),
    ("2-100648-A-43.wav", 2, 43, "chirping_birds", "False", "100648", "A"),
    ("5-200334-A-1.wav", 5, 1, "rooster", "False", "200334", "A"),
]


def make_esc50_zip(rows=ESC_ROWS, *, skip_audio: tuple[str, ...] = ()) -> bytes:
    csv = ESC_COLUMNS + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ESC-50-master/meta/esc50.csv", csv)
        z.writestr("ESC-50-master/README.md", "tiny test copy\n")
        for i, r in enumerate(rows):
            if r[0] not in skip_audio:
                z.writestr(f"ESC-50-master/audio/{r[0]}", _wav_bytes(i, seconds=5.0, sr=1000))
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_desed_targz() -> bytes:
    tsv = "filename\tonset\toffset\tevent_label\nclip_a.wav\t0.5\t2.0\tDog\nclip_a.wav\t1.0\t9.5\tSpeech\n"
    tsv += "clip_b.wav\t3.25\t10.0\tVacuum_cleaner\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        _add(tar, "dataset/metadata/eval/public.tsv", tsv.encode())
        _add(tar, "dataset/audio/eval/public/clip_a.wav", _wav_bytes(10))
        _add(tar, "dataset/audio/eval/public/clip_b.wav", _wav_bytes(11))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sums_file(**named: bytes) -> bytes:
    return "".join(f"{sha(data)}  {name}\n" for name, data in named.items()).encode()


@pytest.fixture(scope="module")
def esc_zip() -> bytes:
    return make_esc50_zip()


@pytest.fixture(scope="module")
def desed_tgz() -> bytes:
    return make_desed_targz()


def _esc50_mirror(mirror: Path, archive: bytes) -> Path:
    """A local mirror folder holding ``archive`` as ESC-50-master.zip and its SHA256SUMS."""
    mirror.mkdir(exist_ok=True)
    (mirror / "ESC-50-master.zip").write_bytes(archive)
    (mirror / "SHA256SUMS").write_bytes(sums_file(**{"ESC-50-master.zip": archive}))
    return mirror


def _no_leftovers(folder: Path) -> list[str]:
    """Temporary or partial files that a finished/failed run must not leave behind."""
    names = [p.name for p in folder.rglob("*")]
    return [n for n in names if n.endswith((".extracting", ".tmp", ".part")) or ".old-" in n]


# ------------------------------------------------------------------------------------------------
# fetch_dataset: success, skip, mirrors
# ------------------------------------------------------------------------------------------------


def test_fetch_esc50_over_http_verifies_extracts_and_marks(server, tmp_path, esc_zip, caplog):
    sums = sums_file(**{"ESC-50-master.zip": esc_zip})
    server.state.files = {"/ESC-50-master.zip": esc_zip, "/SHA256SUMS": sums}
    root = tmp_path / "data"
    with caplog.at_level("INFO", logger="sed_utils"):
        out = fetch_dataset("esc50", root, mirror=server.base, progress=False)

    assert out == root / "ESC-50-master"
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(r[0] for r in ESC_ROWS)
    assert (root / "downloads" / "ESC-50-master.zip").read_bytes() == esc_zip  # archive kept
    assert not (root / "downloads" / "ESC-50-master.zip.part").exists()
    marker = read_marker(out)
    assert marker["archive_sha256"] == sha(esc_zip)
    assert marker["clips"] == 3 and marker["upstream"] is False
    assert marker["source"] == server.base + "ESC-50-master.zip"
    # 3 clips is not upstream ESC-50: a warning says so, the data is still accepted
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("NOT the upstream ESC-50" in m for m in warnings)
    assert server.state.paths() == ["/SHA256SUMS", "/ESC-50-master.zip"]
    assert _no_leftovers(root) == []


def test_second_call_returns_at_once_without_any_request(server, tmp_path, esc_zip):
    server.state.files = {"/ESC-50-master.zip": esc_zip}
    root = tmp_path / "data"
    first = fetch_dataset("esc50", root, mirror=server.base, progress=False)
    n = len(server.state.requests)
    assert n == 2  # SHA256SUMS (404 here: no checksums) and the archive
    second = fetch_dataset("esc50", root, mirror=server.base, progress=False)
    assert second == first
    assert len(server.state.requests) == n


def test_deleted_clip_breaks_the_marker_and_is_re_extracted_from_the_kept_archive(server, tmp_path, esc_zip):
    server.state.files = {"/ESC-50-master.zip": esc_zip}
    root = tmp_path / "data"
    out = fetch_dataset("esc50", root, mirror=server.base, progress=False)
    (out / "audio" / ESC_ROWS[0][0]).unlink()
    fetch_dataset("esc50", root, mirror=server.base, progress=False)
    assert (out / "audio" / ESC_ROWS[0][0]).is_file()
    assert server.state.paths().count("/ESC-50-master.zip") == 1  # the archive was not fetched again


def test_fetch_desed_over_file_url_mirror(tmp_path, desed_tgz):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "DESEDpublic_eval.tar.gz").write_bytes(desed_tgz)
    root = tmp_path / "data"
    out = fetch_dataset("desed", root, mirror=mirror.as_uri(), progress=False)
    assert out == root / "DESEDpublic_eval"
    audio = out / "dataset/audio/eval/public"
    assert sorted(p.name for p in audio.iterdir()) == ["clip_a.wav", "clip_b.wav"]
    assert (out / "dataset/metadata/eval/public.tsv").is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not a private temp dir
    marker = read_marker(out)
    assert (marker["clips"], marker["events"], marker["upstream"]) == (2, 3, False)
    assert marker["archive_sha256"] == sha(desed_tgz)


def test_a_rebuilt_local_mirror_is_fetched_again(tmp_path, esc_zip):
    """The demo mirror is regenerated when its parameters change: stale extracted data must not win."""
    mirror = _esc50_mirror(tmp_path / "m", esc_zip)
    root = tmp_path / "data"
    out = fetch_dataset("esc50", root, mirror=mirror.as_uri(), progress=False)
    assert read_marker(out)["clips"] == 3
    smaller = make_esc50_zip(ESC_ROWS[:2])
    _esc50_mirror(mirror, smaller)
    fetch_dataset("esc50", root, mirror=mirror.as_uri(), progress=False)
    assert read_marker(out)["clips"] == 2 and read_marker(out)["archive_sha256"] == sha(smaller)
    assert len(list((out / "audio").iterdir())) == 2


def test_sed_mirror_env_var_is_used_when_no_mirror_is_given(tmp_path, esc_zip, monkeypatch):
    mirror = tmp_path / "m"
    mirror.mkdir()
    (mirror / "ESC-50-master.zip").write_bytes(esc_zip)
    monkeypatch.setenv("SED_MIRROR", str(mirror))  # a plain folder path works too
    out = fetch_dataset("esc50", tmp_path / "data", progress=False)
    assert read_marker(out)["source"] == (mirror / "ESC-50-master.zip").as_uri()


def test_fetch_all_uses_the_config(server, tmp_path, esc_zip, desed_tgz):
    server.state.files = {
        "/ESC-50-master.zip": esc_zip,
        "/DESEDpublic_eval.tar.gz": desed_tgz,
        "/SHA256SUMS": sums_file(**{"ESC-50-master.zip": esc_zip, "DESEDpublic_eval.tar.gz": desed_tgz}),
    }
    cfg = load_config("full", [f"data_root={tmp_path / 'data'}", f"download.mirror={server.base}",
                               "download.retries=0"])
    paths = fetch_all(cfg, progress=False)
    assert paths == {"esc50": cfg.data_root / "ESC-50-master", "desed": cfg.data_root / "DESEDpublic_eval"}
    assert all(read_marker(p) is not None for p in paths.values())


def test_unknown_dataset_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DownloadError, match="unknown dataset 'esc-50'.*esc50, desed"):
        fetch_dataset("esc-50", tmp_path)


# ------------------------------------------------------------------------------------------------
# download_file: resume, Range ignored, retries, skip
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def blob() -> bytes:
    return np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


def test_resume_after_the_connection_drops_mid_body(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    server.state.drop_first = {"/blob.bin": 100_000}
    dest = tmp_path / "blob.bin"
    download_file(server.base + "blob.bin", dest, sha256=sha(blob), retries=1, progress=False)
    assert dest.read_bytes() == blob
    (p1, h1), (p2, h2) = server.state.requests
    assert "Range" not in h1
    assert h2["Range"] == "bytes=100000-"
    assert not dest.with_name("blob.bin.part").exists()


def test_a_part_left_by_an_earlier_run_is_resumed(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(blob[:123_456])
    download_file(server.base + "blob.bin", dest, sha256=sha(blob), progress=False)
    assert dest.read_bytes() == blob
    assert [h.get("Range") for _, h in server.state.requests] == ["bytes=123456-"]


def test_server_ignoring_range_restarts_instead_of_appending(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    server.state.honour_range = False
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(b"garbage!" * 1000)  # appending to this would corrupt
    download_file(server.base + "blob.bin", dest, progress=False)
    assert dest.read_bytes() == blob
    assert server.state.requests[0][1]["Range"] == "bytes=8000-"


def test_a_complete_part_is_finished_from_a_416_answer(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(blob)  # killed after the last byte, before the rename
    download_file(server.base + "blob.bin", dest, sha256=sha(blob), progress=False)
    assert dest.read_bytes() == blob
    assert len(server.state.requests) == 1


def test_a_part_longer_than_the_file_is_restarted_after_a_416(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(blob + b"junk")
    download_file(server.base + "blob.bin", dest, sha256=sha(blob), retries=0, progress=False)
    assert dest.read_bytes() == blob
    assert [h.get("Range") for _, h in server.state.requests] == [f"bytes={len(blob) + 4}-", None]


def test_a_503_is_retried(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    server.state.fail_first = {"/blob.bin": 503}
    dest = download_file(server.base + "blob.bin", tmp_path / "blob.bin", retries=1, progress=False)
    assert dest.read_bytes() == blob
    assert len(server.state.requests) == 2


def test_existing_file_that_verifies_is_skipped_and_a_bad_one_replaced(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    dest = tmp_path / "blob.bin"
    dest.write_bytes(blob)
    download_file(server.base + "blob.bin", dest, sha256=sha(blob), size=len(blob), progress=False)
    assert server.state.requests == []
    dest.write_bytes(blob[:-1] + b"\x00")  # same size, wrong content
    download_file(server.base + "blob.bin", dest, sha256=sha(blob), size=len(blob), progress=False)
    assert dest.read_bytes() == blob
    assert len(server.state.requests) == 1


def test_md5_is_verified_too(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    expected = "md5 mismatch: expected 0{32}, got " + hashlib.md5(blob).hexdigest()
    with pytest.raises(DownloadError, match=expected):
        download_file(server.base + "blob.bin", tmp_path / "blob.bin", md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Errors, each with a message that names the URL/file, the problem, and what to do
# ------------------------------------------------------------------------------------------------


def test_http_404_names_the_url_and_the_status(server, tmp_path):
    url = server.base + "nothing-here.zip"
    with pytest.raises(DownloadError) as err:
        download_file(url, tmp_path / "x.zip", retries=3, progress=False)
    assert url in str(err.value) and "404" in str(err.value)
    assert err.value.reason == "not_found"
    assert len(server.state.requests) == 1  # a 404 is not retried
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["http", "file"])
def test_missing_mirror_file_says_so(server, tmp_path, kind):
    folder = tmp_path / "empty_mirror"
    folder.mkdir()
    mirror = server.base if kind == "http" else folder.as_uri()
    with pytest.raises(DownloadError, match=r"mirror file missing: .* has no ESC-50-master\.zip") as err:
        fetch_dataset("esc50", tmp_path / "data", mirror=mirror, retries=0, progress=False)
    assert "ESC-50-master.zip" in err.value.url
    assert not (tmp_path / "data" / "ESC-50-master").exists()


def test_checksum_mismatch_from_sha256sums_removes_the_file(server, tmp_path, esc_zip):
    wrong = sha(b"something else")
    sums = f"{wrong}  ESC-50-master.zip\n".encode()
    server.state.files = {"/ESC-50-master.zip": esc_zip, "/SHA256SUMS": sums}
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as err:
        fetch_dataset("esc50", root, mirror=server.base, progress=False)
    msg = str(err.value)
    assert f"expected {wrong}, got {sha(esc_zip)}" in msg and "removed" in msg
    assert err.value.reason == "checksum"
    assert list((root / "downloads").iterdir()) == []  # neither the archive nor a .part
    assert not (root / "ESC-50-master").exists()


@pytest.mark.parametrize("name", ["ESC-50-master.zip", "DESEDpublic_eval.tar.gz"])
def test_truncated_archive_with_a_matching_checksum_is_a_clear_error(
    server, tmp_path, esc_zip, desed_tgz, name
):
    data = {"ESC-50-master.zip": esc_zip, "DESEDpublic_eval.tar.gz": desed_tgz}[name]
    cut = data[: len(data) * 2 // 3]
    server.state.files = {f"/{name}": cut, "/SHA256SUMS": sums_file(**{name: cut})}
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as err:
        fetch_dataset("esc50" if name.endswith("zip") else "desed", root, mirror=server.base, progress=False)
    archive = root / "downloads" / name
    assert str(archive) in str(err.value) and "truncated/corrupt" in str(err.value)
    assert "the archive was removed" in str(err.value)
    assert err.value.reason == "archive"
    assert not archive.exists()  # the cause is gone: the next run downloads afresh
    assert sorted(p.name for p in root.iterdir()) == [".sed.lock", "downloads"]  # no half-extracted folder
    assert _no_leftovers(root) == []


def test_server_announcing_more_bytes_than_it_sends_is_reported_as_truncated(server, tmp_path, blob):
    server.state.files = {"/blob.bin": blob}
    server.state.lie_extra = {"/blob.bin": 5000}
    server.state.honour_range = False  # every attempt gets the same short body
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError) as err:
        download_file(server.base + "blob.bin", dest, retries=2, progress=False)
    assert f"got {len(blob)} of {len(blob) + 5000} bytes" in str(err.value)
    assert "blob.bin" in str(err.value) and err.value.reason == "truncated"
    assert len(server.state.requests) == 3
    assert not dest.exists()


def test_html_page_instead_of_an_archive_is_rejected(server, tmp_path):
    server.state.files = {"/ESC-50-master.zip": b"<!DOCTYPE html><html>Please log in</html>"}
    with pytest.raises(DownloadError, match="not a valid zip archive.*DOCTYPE") as err:
        download_file(server.base + "ESC-50-master.zip", tmp_path / "ESC-50-master.zip", progress=False)
    assert err.value.reason == "archive"
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_gives_up_after_the_retries(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.zip"
    with pytest.raises(DownloadError, match=r"cannot connect.*gave up after 2 attempt") as err:
        download_file(url, tmp_path / "x.zip", retries=1, timeout=2, progress=False)
    assert err.value.url == url and err.value.reason == "network"


def test_disk_full_while_downloading_then_resume_after_freeing_space(server, tmp_path, blob, monkeypatch):
    server.state.files = {"/blob.bin": blob}
    monkeypatch.setattr(dl, "CHUNK_BYTES", 64 * 1024)
    real_write = dl._write_chunk
    written = []

    def write_until_full(out, chunk):
        if sum(written) >= 128 * 1024:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(out, chunk)
        written.append(len(chunk))

    monkeypatch.setattr(dl, "_write_chunk", write_until_full)
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError) as err:
        download_file(server.base + "blob.bin", dest, sha256=sha(blob), progress=False)
    msg = str(err.value)
    assert "disk full" in msg and str(tmp_path) in msg
    part = dest.with_name("blob.bin.part")
    have = part.stat().st_size  # reads return what one receive brings, so the cut is near 128 KiB
    assert have == sum(written) >= 128 * 1024
    assert f"about {(len(blob) - have) / 1000:.1f} KB more" in msg  # what is still missing
    assert err.value.reason == "disk_full"
    assert not dest.exists()  # nothing claims to be complete
    assert len(server.state.requests) == 1  # a full disk is not retried

    monkeypatch.setattr(dl, "_write_chunk", real_write)  # space freed: the next run resumes
    download_file(server.base + "blob.bin", dest, sha256=sha(blob), progress=False)
    assert dest.read_bytes() == blob
    assert server.state.requests[-1][1]["Range"] == f"bytes={have}-"


def test_disk_full_while_extracting_leaves_nothing_behind(tmp_path, esc_zip, monkeypatch):
    archive = tmp_path / "ESC-50-master.zip"
    archive.write_bytes(esc_zip)

    def no_space(self, member, path=None, pwd=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "extract", no_space)
    with pytest.raises(DownloadError, match="disk full") as err:
        safe_extract(archive, tmp_path / "ESC-50-master")
    assert err.value.reason == "disk_full"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ESC-50-master.zip"]


def test_content_check_names_the_missing_clip(tmp_path):
    mirror = tmp_path / "m"
    mirror.mkdir()
    (mirror / "ESC-50-master.zip").write_bytes(make_esc50_zip(skip_audio=(ESC_ROWS[1][0],)))
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=re.escape(ESC_ROWS[1][0])) as err:
        fetch_dataset("esc50", root, mirror=str(mirror), progress=False)
    assert err.value.reason == "content"
    assert read_marker(root / "ESC-50-master") is None  # never marked complete


# ------------------------------------------------------------------------------------------------
# Nothing bad stays behind (issue 12): what a failed check invalidated is removed
# ------------------------------------------------------------------------------------------------


def test_a_truncated_archive_without_any_checksum_is_removed_and_a_fixed_source_then_works(
    server, tmp_path, esc_zip
):
    """Upstream ESC-50 publishes no checksum: a cut-off zip passes the transfer. Before, it stayed in
    downloads/ and every later run reused it and failed the same way, even after the source was fixed."""
    server.state.files = {"/ESC-50-master.zip": esc_zip[: len(esc_zip) // 2]}  # whole body, no SHA256SUMS
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="truncated/corrupt") as err:
        fetch_dataset("esc50", root, mirror=server.base, progress=False)
    assert "the archive was removed" in str(err.value) and err.value.reason == "archive"
    assert not (root / "downloads" / "ESC-50-master.zip").exists()
    assert not (root / "ESC-50-master").exists() and _no_leftovers(root) == []

    server.state.files = {"/ESC-50-master.zip": esc_zip}  # the source is fixed: the next run recovers
    out = fetch_dataset("esc50", root, mirror=server.base, progress=False)
    assert read_marker(out)["archive_sha256"] == sha(esc_zip)
    assert server.state.paths().count("/ESC-50-master.zip") == 2


def test_content_check_runs_before_the_rename_and_a_failing_archive_is_removed(server, tmp_path, esc_zip):
    """A zip missing one wav: before, ESC-50-master/ was renamed into place first and then failed its
    check, so an incomplete dataset sat at its final path and the bad archive was kept."""
    server.state.files = {"/ESC-50-master.zip": make_esc50_zip(skip_audio=(ESC_ROWS[1][0],))}
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=re.escape(ESC_ROWS[1][0])) as err:
        fetch_dataset("esc50", root, mirror=server.base, progress=False)
    message = str(err.value)
    assert err.value.reason == "content" and "Nothing was put at" in message
    assert ".extracting" not in message  # names the archive and the final folder, not the temporary one
    assert not (root / "ESC-50-master").exists()
    assert not (root / "downloads" / "ESC-50-master.zip").exists()
    assert _no_leftovers(root) == []

    server.state.files = {"/ESC-50-master.zip": esc_zip}
    out = fetch_dataset("esc50", root, mirror=server.base, progress=False)
    assert read_marker(out)["clips"] == 3 and len(list((out / "audio").iterdir())) == 3


def test_an_existing_good_dataset_is_kept_when_a_new_archive_fails_its_check(tmp_path, esc_zip):
    mirror = _esc50_mirror(tmp_path / "m", esc_zip)
    root = tmp_path / "data"
    out = fetch_dataset("esc50", root, mirror=str(mirror), progress=False)
    _esc50_mirror(mirror, make_esc50_zip(skip_audio=(ESC_ROWS[0][0],)))  # the mirror is rebuilt, badly
    with pytest.raises(DownloadError, match="content|incomplete"):
        fetch_dataset("esc50", root, mirror=str(mirror), progress=False)
    assert read_marker(out)["archive_sha256"] == sha(esc_zip)  # the good copy is untouched
    assert (out / "audio" / ESC_ROWS[0][0]).is_file()


@pytest.mark.parametrize(
    "member, fragment",
    [(b"this is not audio, just text", "not readable audio"), ("short", "1.000 s long, expected 5 s")],
)
def test_content_check_opens_every_clip_header(tmp_path, member, fragment):
    """Before, a text file at a listed wav path passed: only existence was checked."""
    data = _wav_bytes(3, seconds=1.0, sr=1000) if member == "short" else member
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ESC-50-master/meta/esc50.csv",
                   ESC_COLUMNS + "\n" + "".join(",".join(map(str, r)) + "\n" for r in ESC_ROWS))
        for i, r in enumerate(ESC_ROWS):
            z.writestr(f"ESC-50-master/audio/{r[0]}", data if i == 1 else _wav_bytes(i, seconds=5.0, sr=1000))
    mirror = tmp_path / "m"
    mirror.mkdir()
    (mirror / "ESC-50-master.zip").write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match=re.escape(fragment)) as err:
        fetch_dataset("esc50", tmp_path / "data", mirror=str(mirror), progress=False)
    assert ESC_ROWS[1][0] in str(err.value)
    assert not (tmp_path / "data" / "ESC-50-master").exists()


def test_desed_content_check_refuses_a_clip_that_is_not_audio(tmp_path):
    tsv = "filename\tonset\toffset\tevent_label\nclip_a.wav\t0.5\t2.0\tDog\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        _add(tar, "dataset/metadata/eval/public.tsv", tsv.encode())
        _add(tar, "dataset/audio/eval/public/clip_a.wav", b"<html>moved</html>")
    mirror = tmp_path / "m"
    mirror.mkdir()
    (mirror / "DESEDpublic_eval.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match=r"clip_a\.wav: not readable audio"):
        fetch_dataset("desed", tmp_path / "data", mirror=str(mirror), progress=False)
    assert not (tmp_path / "data" / "DESEDpublic_eval").exists()
    assert not (tmp_path / "data" / "downloads" / "DESEDpublic_eval.tar.gz").exists()


def test_a_server_dripping_the_checksum_file_is_stopped_by_the_stall_deadline(server):
    """SHA256SUMS comes through the same deadline: a byte every 50 ms of a 2 kB file stops after
    stall_seconds with one clear error, instead of hanging for 100 s."""
    server.state.files = {"/SHA256SUMS": b"".join(b"%064x  file%d.zip\n" % (k, k) for k in range(30))}
    server.state.drip = {"/SHA256SUMS": 0.05}
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"SHA256SUMS: the checksum file stalled") as err:
        read_mirror_checksums(server.base, timeout=5, stall_seconds=0.6)
    assert time.monotonic() - t0 < 5 and err.value.reason == "stalled"
    server.state.drip = {}
    assert len(read_mirror_checksums(server.base, timeout=5, stall_seconds=0.6)) == 30


def test_a_server_dripping_bytes_is_timed_out_by_the_stall_deadline(server, tmp_path, blob):
    """The socket timeout restarts with every byte, so a byte every 50 ms never trips it; the stall
    deadline does (fewer than STALL_MIN_BYTES in stall_seconds), is retried, then a clear error."""
    server.state.files = {"/blob.bin": blob}
    server.state.drip = {"/blob.bin": 0.05}
    dest = tmp_path / "blob.bin"
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"stalled: \d+ bytes in the last \d+ s") as err:
        download_file(server.base + "blob.bin", dest, retries=1, timeout=5, stall_seconds=0.6, progress=False)
    assert time.monotonic() - t0 < 10
    assert err.value.reason == "stalled" and "download.stall_seconds" in str(err.value)
    assert server.state.paths() == ["/blob.bin", "/blob.bin"]  # tried, retried (resuming), gave up
    assert not dest.exists() and "are kept in" in str(err.value)


def test_a_failure_before_any_byte_does_not_claim_a_partial_file(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        download_file(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", retries=0, timeout=2,
                      progress=False)
    assert "Nothing was downloaded" in str(err.value) and "are kept in" not in str(err.value)
    assert not (tmp_path / "x.zip.part").exists()


# ------------------------------------------------------------------------------------------------
# safe_extract: hostile members, layout, atomic replacement
# ------------------------------------------------------------------------------------------------


def _zip_with(path: Path, *names: str) -> None:
    """A zip of the given member names; "SYMLINK" adds a symlink member pointing outside."""
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            if name == "SYMLINK":
                info = zipfile.ZipInfo("good/link")
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                z.writestr(info, "../../../evil.txt")
            else:
                z.writestr(zipfile.ZipInfo(name), b"payload")


def _tar_with(path: Path, *members: tarfile.TarInfo) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"payload") if info.isfile() else None)


def _file_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(b"payload")
    return info


def _link_info(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "kind, bad",
    [
        ("zip", "../evil.txt"),
        ("zip", "ok/../../evil.txt"),
        ("zip", "ABSOLUTE"),
        ("zip", "symlink"),
        ("tar", "../evil.txt"),
        ("tar", "ABSOLUTE"),
        ("tar", "symlink"),
        ("tar", "hardlink"),
    ],
)
def test_members_escaping_the_destination_are_refused(tmp_path, kind, bad):
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "evil.txt"
    absolute = tmp_path / "abs_evil.txt"
    archive = work / ("a.zip" if kind == "zip" else "a.tar.gz")
    if kind == "zip":
        _zip_with(archive, "good/first.txt", {"ABSOLUTE": str(absolute), "symlink": "SYMLINK"}.get(bad, bad))
    else:
        member = {
            "../evil.txt": _file_info("../evil.txt"),
            "ABSOLUTE": _file_info(str(absolute)),
            "symlink": _link_info("good/link", "../../../evil.txt", tarfile.SYMTYPE),
            "hardlink": _link_info("good/hard", "../evil.txt", tarfile.LNKTYPE),
        }[bad]
        _tar_with(archive, _file_info("good/first.txt"), member)
    dest = work / "out"
    with pytest.raises(DownloadError, match="unsafe member") as err:
        safe_extract(archive, dest)
    assert err.value.reason == "unsafe" and str(archive) in str(err.value)
    assert not outside.exists() and not absolute.exists()
    assert sorted(p.name for p in work.iterdir()) == [archive.name]  # no dest, no temp folder


@pytest.mark.parametrize("target", ["data.txt", "../d/data.txt"])
def test_links_inside_the_destination_are_fine(tmp_path, target):
    archive = tmp_path / "a.tar.gz"
    _tar_with(archive, _file_info("d/data.txt"), _link_info("d/alias.txt", target, tarfile.SYMTYPE),
              _link_info("d/hard.txt", "d/data.txt", tarfile.LNKTYPE))
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "d" / "alias.txt").read_bytes() == b"payload"
    assert (out / "d" / "hard.txt").read_bytes() == b"payload"


def test_wrapping_folder_named_like_dest_is_unwrapped_and_old_dest_replaced(tmp_path, esc_zip):
    archive = tmp_path / "ESC-50-master.zip"
    archive.write_bytes(esc_zip)
    dest = tmp_path / "ESC-50-master"
    (dest / "stale").mkdir(parents=True)
    safe_extract(archive, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "audio", "meta"]
    assert _no_leftovers(tmp_path) == []


def test_not_an_archive_at_all(tmp_path):
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(b"\x1f\x8b" + b"\x00" * 50)
    with pytest.raises(DownloadError, match=r"(?s)x\.tar\.gz: not a valid tar archive.*Delete") as err:
        safe_extract(archive, tmp_path / "out")
    assert err.value.reason == "archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tar.gz"]


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------


def test_read_mirror_checksums_accepts_sha256sum_output_and_rejects_junk(tmp_path):
    a, b = sha(b"a"), sha(b"b")
    (tmp_path / "SHA256SUMS").write_text(f"{a}  one.zip\n\n{b.upper()} *./two.tar.gz\n")
    assert read_mirror_checksums(tmp_path.as_uri()) == {"one.zip": a, "two.tar.gz": b}
    (tmp_path / "SHA256SUMS").write_text(f"{a}  one.zip\nnot-a-hash  two.zip\n")
    with pytest.raises(DownloadError, match="line 2 is not"):
        read_mirror_checksums(str(tmp_path))
    assert read_mirror_checksums((tmp_path / "nowhere").as_uri()) is None


def test_folder_tree_shows_folders_first_counts_and_truncates(tmp_path):
    root = tmp_path / "ds"
    (root / "audio").mkdir(parents=True)
    for i in range(7):
        (root / "audio" / f"{i}.wav").write_bytes(b"")
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text("x")
    assert folder_tree(root, max_entries_per_dir=3) == "\n".join([
        "ds/",
        "├── audio/  (7 entries)",
        "│   ├── 0.wav",
        "│   ├── 1.wav",
        "│   ├── 2.wav",
        "│   └── ... 4 more",
        "└── meta/  (1 entry)",
        "    └── esc50.csv",
    ])
    assert folder_stats(root) == {"files": 8, "bytes": 1, "by_type": {".wav": 7, ".csv": 1}}


def test_marker_is_json_with_the_archive_hash(tmp_path, desed_tgz):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "DESEDpublic_eval.tar.gz").write_bytes(desed_tgz)
    out = fetch_dataset("desed", tmp_path / "d", mirror=str(tmp_path / "m"), progress=False)
    data = json.loads((out / ".sed_complete.json").read_text())
    assert data["dataset"] == "desed" and data["archive_sha256"] == sha(desed_tgz)


def test_prepare_datasets_fetches_the_synthetic_demo_through_file_urls(tmp_path):
    """The demo profile runs the real download path: generated mirror -> file:// -> verified folders."""
    cfg = load_config("demo", [f"data_root={tmp_path / 'demo'}"])
    paths = registry.prepare_datasets(cfg, progress=False)
    mirror = cfg.data_root / "mirror"
    sums = read_mirror_checksums(str(mirror))
    for name, path in paths.items():
        marker = read_marker(path)
        spec = registry.DATASETS[name]
        assert path == cfg.data_root / spec.folder
        assert marker["source"] == (mirror / spec.filename).as_uri()
        assert marker["archive_sha256"] == sums[spec.filename]
        assert marker["upstream"] is False and marker["clips"] > 0
