"""Atomic writes: complete or absent, never half-written, no temporary files left behind."""

import numpy as np
import pandas as pd
import pytest

from sed_utils.core import atomic


def test_writes_land_complete_and_leave_no_temporary(tmp_path):
    atomic.write_csv(pd.DataFrame({"a": [1, 2]}), tmp_path / "sub" / "t.csv")
    atomic.save_npz(tmp_path / "a.npz", x=np.arange(3))
    atomic.save_npy(tmp_path / "b.npy", np.ones(2))
    atomic.write_json(tmp_path / "c.json", {"k": 1})
    assert pd.read_csv(tmp_path / "sub" / "t.csv")["a"].tolist() == [1, 2]
    assert np.load(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]  # no ".npz.npz": a handle was used
    assert np.load(tmp_path / "b.npy").tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []


def test_a_failing_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "results.json"
    atomic.write_json(target, {"old": True})

    def explode(fh):
        fh.write(b'{"new": tr')  # half a file, then the process "dies"
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic.write_with(target, explode)
    assert target.read_text().strip() == '{\n  "old": true\n}'
    assert list(tmp_path.iterdir()) == [target]


def test_temporaries_of_killed_writers_are_removed_and_those_of_live_ones_kept(tmp_path):
    """A writer killed with SIGKILL cannot clean up; the next run's sweep removes what it left (files and
    folders), and leaves the temporaries of a writer that is still running."""
    import signal
    import subprocess
    import sys

    from sed_utils.core.atomic import remove_stale_temporaries

    script = ("import sys, time\nfrom pathlib import Path\n"
              "from sed_utils.core.atomic import atomic_dir, atomic_path\n"
              "root = Path(sys.argv[1])\n"
              "with atomic_path(root / 'cache' / 'feats.npy') as tmp, atomic_dir(root / 'scenes') as d:\n"
              "    tmp.write_bytes(b'half'); (d / 'a.wav').write_bytes(b'x')\n"
              "    print('ready', flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        left = sorted(p.name for p in tmp_path.rglob("*.tmp"))
        assert left == [f".scenes.{writer.pid}.tmp", f"feats.npy.{writer.pid}.tmp"]
        assert remove_stale_temporaries(tmp_path) == []  # the writer is alive: nothing is touched
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        assert len(list(tmp_path.rglob("*.tmp"))) == 2  # what a killed run leaves behind
        (tmp_path / "cache" / "download.tar.gz.part").write_bytes(b"resumable")
        removed = remove_stale_temporaries(tmp_path)
        assert sorted(p.name for p in removed) == left
        assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "download.tar.gz.part"]
    finally:
        writer.kill()
    assert remove_stale_temporaries(tmp_path / "missing") == []
