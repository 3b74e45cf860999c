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
