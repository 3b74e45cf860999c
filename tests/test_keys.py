"""Cache keys and digests: stable names for "the data these parameters produce"."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from sed_utils.core.keys import digest, file_digests, frame_hash, json_clean, params_key, sha256_file


def test_params_key_is_short_stable_and_ignores_key_order():
    a = params_key({"mel": {"n_mels": 64, "hop": 160}, "sr": 16000})
    assert len(a) == 12 and a == params_key({"sr": 16000, "mel": {"hop": 160, "n_mels": 64}})
    assert a != params_key({"mel": {"n_mels": 32, "hop": 160}, "sr": 16000})
    assert params_key({"p": Path("/x")}) == params_key({"p": "/x"})  # default=str


def test_frame_hash_depends_on_values_and_row_order_not_on_the_index():
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert len(frame_hash(df)) == 16
    assert frame_hash(df) == frame_hash(df.set_index(pd.Index([7, 8, 9])))
    assert frame_hash(df) != frame_hash(df.iloc[::-1])
    assert frame_hash(df) != frame_hash(df.assign(a=[1, 2, 4]))


def test_file_digests_match_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 5000  # more than one read block
    path.write_bytes(data)
    got = file_digests(path, md5=True)
    assert got == {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}
    assert sha256_file(path) == got["sha256"] and set(file_digests(path)) == {"sha256"}


def test_digest_of_arrays_files_and_values(tmp_path):
    x = np.arange(6, dtype=np.float32)
    assert len(digest(x)) == 16 and digest(x) == digest(x.copy())
    assert digest(x) != digest(x.reshape(2, 3))  # shape counts
    assert digest(x) != digest(x.astype(np.float64))  # dtype counts
    assert digest(x[::2]) == digest(np.ascontiguousarray(x[::2]))
    f = tmp_path / "ckpt.pt"
    f.write_bytes(b"weights")
    assert digest(f) == digest(Path(f))
    g = tmp_path / "other.pt"
    g.write_bytes(b"weights")
    assert digest(f) == digest(g)  # a file counts by its content, not its name
    assert digest(f, {"hop": 0.25}) != digest(f, {"hop": 0.5})
    assert digest("a", "b") != digest("ab")  # parts are separated


def test_json_clean_makes_strict_json():
    out = json_clean({"nan": float("nan"), "inf": np.float32("inf"), "i": np.int64(3), "b": np.bool_(True),
                      "arr": np.array([1.5, np.nan]), "t": (1, 2), "p": Path("/x"), 4: "key"})
    assert out == {"nan": None, "inf": None, "i": 3, "b": True, "arr": [1.5, None], "t": [1, 2], "p": "/x",
                   "4": "key"}
    json.dumps(out, allow_nan=False)
    assert math.isclose(json_clean(np.float32(0.5)), 0.5) and type(json_clean(np.float32(0.5))) is float
