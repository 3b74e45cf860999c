"""One writer per folder (``sed_utils.core.locks``): with two real processes, the second waits for the first
(or gives up naming it), a killed holder's lock is taken over, and two downloads or two scene builds
started together both succeed on one intact result."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_download import _esc50_mirror, make_esc50_zip, server  # noqa: F401 (server: a fixture)
from test_scenes import write_fake_esc50

from sed_utils.core.errors import LockError
from sed_utils.core.locks import LOCK_NAME, folder_lock, lock_holder

REPO = Path(__file__).resolve().parent.parent
HOLD = ("import sys, time\nfrom sed_utils.core.locks import folder_lock\n"
        "with folder_lock(sys.argv[1], 'holding for a test'):\n"
        "    print('held', flush=True)\n    time.sleep(float(sys.argv[2]))\n")


def _holder(folder: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_waits_for_the_holder_or_gives_up_naming_it(tmp_path, caplog):
    holder = _holder(tmp_path, 1.5)
    try:
        assert lock_holder(tmp_path)["pid"] == holder.pid
        with pytest.raises(LockError, match=rf"in use by pid {holder.pid} on .*holding for a test"):
            with folder_lock(tmp_path, "a test", wait_seconds=0.3):
                pass
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING), folder_lock(tmp_path, "a test"):  # waits, then holds
            waited = time.monotonic() - t0
            assert lock_holder(tmp_path)["what"] == "a test"
        assert 0.5 < waited < 10 and holder.wait(10) == 0
        assert f"in use by pid {holder.pid}" in caplog.text and "waiting before a test" in caplog.text
        assert lock_holder(tmp_path) is None  # released cleanly: nobody to report
    finally:
        holder.kill()


def test_a_killed_holder_s_lock_is_taken_over_with_a_note(tmp_path, caplog):
    holder = _holder(tmp_path, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert lock_holder(tmp_path)["pid"] == holder.pid  # what it left behind
    with caplog.at_level(logging.WARNING), folder_lock(tmp_path, "after a kill", wait_seconds=1):
        pass
    assert f"taking over from pid {holder.pid}" in caplog.text


def test_the_lock_is_reentrant_within_a_process_and_not_content(tmp_path):
    with folder_lock(tmp_path, "outer"), folder_lock(tmp_path, "inner", wait_seconds=0):
        assert lock_holder(tmp_path)["what"] == "outer"
    assert (tmp_path / LOCK_NAME).is_file()
    with folder_lock(tmp_path, "again", wait_seconds=0):  # released: free at once
        pass


def _start_together(tmp_path: Path, imports: str, action: str,
                    *args: str) -> list[subprocess.CompletedProcess]:
    """Run ``action`` in two processes that start it at the same moment: each imports first, then waits for a
    file (so a slower import cannot let one finish before the other begins)."""
    go = tmp_path / "go"
    barrier = (f"import time\nfrom pathlib import Path\nwhile not Path({str(go)!r}).exists():\n"
               "    time.sleep(0.01)\n")
    procs = [subprocess.Popen([sys.executable, "-c", imports + barrier + action, *args], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    time.sleep(8.0)  # both imported and polling (a loaded CI machine needs a few seconds for the imports)
    go.touch()
    return [subprocess.CompletedProcess(p.args, p.wait(120), *p.communicate()) for p in procs]


def test_two_downloads_started_together_both_succeed_on_one_intact_dataset(tmp_path, server):  # noqa: F811
    """The issue's case: two ``download`` runs at once both failed (a FileNotFoundError, a sha256 mismatch).
    The archive arrives slowly here (2 ms a byte), so the second run is sure to find the first at work."""
    archive = make_esc50_zip()
    mirror = _esc50_mirror(tmp_path / "mirror", archive)
    server.state.files = {"/ESC-50-master.zip": archive, "/SHA256SUMS": (mirror / "SHA256SUMS").read_bytes()}
    server.state.drip = {"/ESC-50-master.zip": 0.002}
    imports = ("import logging, sys\nlogging.basicConfig()\n"
               "from sed_utils.data.registry import fetch_dataset\n")
    action = "print(fetch_dataset('esc50', sys.argv[1], mirror=sys.argv[2], progress=False))\n"
    runs = _start_together(tmp_path, imports, action, str(tmp_path / "data"), server.base)
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == str(tmp_path / "data" / "ESC-50-master")
    assert sum("in use by pid" in run.stderr for run in runs) == 1  # exactly one of them waited
    assert server.state.paths().count("/ESC-50-master.zip") == 1  # and it did not download again
    assert (tmp_path / "data" / "downloads" / "ESC-50-master.zip").read_bytes() == archive
    assert not [p for p in (tmp_path / "data").rglob("*") if p.name.endswith((".tmp", ".part"))]


def test_two_scene_builds_started_together_both_read_a_whole_folder(tmp_path):
    """The issue's case: of two scene builds started together, one failed with "audio file not found"
    (the other replaced the folder it was reading). Each run here builds, then reads every scene for 4 s."""
    write_fake_esc50(tmp_path / "data", (4, 5), seed=123, take_b_hz=50.0)
    imports = ("import sys, time\nimport soundfile as sf\nfrom sed_utils.config import load_config\n"
               "from sed_utils.data import scenes\n")
    action = ("cfg = load_config('demo', [f'data_root={sys.argv[1]}'])\n"
              "out = scenes.build_scenes(cfg, n_scenes=40, folds=(5,), seed=7, progress=False)\n"
              "t0 = time.monotonic()\n"
              "while time.monotonic() - t0 < 4:  # a later step reading while the other run works\n"
              "    files = sorted((out / 'audio').glob('*.wav'))\n"
              "    frames = sum(sf.info(str(f)).frames for f in files)\n"
              "print(out, len(files), frames)\n")
    runs = _start_together(tmp_path, imports, action, str(tmp_path / "data"))
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.split()[1] == "40"
