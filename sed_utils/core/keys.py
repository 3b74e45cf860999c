"""Cache keys and content digests: short, stable names for "the data these parameters produce".

Why one module: every cache of the series (resampled audio, chunk tables, features, scenes,
evaluation scores) names its file after what made it, so a changed parameter can never read stale
data, and the download code verifies archives with the same digests. Keeping the hashing in one
place means one definition of "the same input" everywhere. Nothing here imports the rest of the
package.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["params_key", "frame_hash", "file_digests", "sha256_file", "file_identity", "digest", "json_clean"]

_BLOCK_BYTES = 1 << 20


def params_key(params: Any) -> str:
    """Short sha256 (12 hex) of a json-serialisable description of what produced a cached file.

    Used by the chunk tables (notebook 03), the feature cache (notebook 04) and the scenes
    (notebook 07) to name their files.
    """
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def frame_hash(df: pd.DataFrame) -> str:
    """Content hash of a table (values only, row order matters): in the chunk-table keys (notebook 03)."""
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes()).hexdigest()[:16]


def file_digests(path: Path, md5: bool = False) -> dict[str, str]:
    """sha256 (and md5 if asked) of a file in one streaming pass (downloads in notebook 01)."""
    hashes = {"sha256": hashlib.sha256()}
    if md5:
        hashes["md5"] = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(_BLOCK_BYTES):
            for h in hashes.values():
                h.update(block)
    return {k: h.hexdigest() for k, h in hashes.items()}


def file_identity(paths: Iterable[str | Path]) -> str:
    """16-hex digest of each file's size and modification time (ns), in the given order: the
    "source" part of every cache key over audio files (notebooks 03-08).

    Why not a content hash: hashing the 2000 ESC-50 clips on every cache lookup would cost seconds
    each time; size + mtime is what ``make`` and pip trust, and a replaced, re-encoded or edited
    file changes its mtime. A copy that keeps both size and mtime (``cp -p`` of a same-sized file)
    is not noticed: delete ``data_root/cache`` after such a swap.
    """
    h = hashlib.sha256()
    for p in paths:
        st = Path(p).stat()
        h.update(f"{st.st_size}|{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed: what a mirror's ``SHA256SUMS`` lists (notebook 01)."""
    return file_digests(path)["sha256"]


def json_clean(x: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so results.json (notebook 06) is strict JSON."""
    if isinstance(x, dict):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def digest(*parts: Any) -> str:
    """16-hex digest of arrays (shape, dtype and bytes), files (their content) and json-able values.

    Names the evaluation's score caches (notebook 06): a checkpoint file, a feature array and the
    parameters of a run together say which scores a cache file holds.
    """
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.shape, p.dtype.str)).encode())
            h.update(memoryview(np.ascontiguousarray(p)).cast("B"))
        elif isinstance(p, Path):
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
        else:
            h.update(json.dumps(json_clean(p), sort_keys=True).encode())
        h.update(b"|")
    return h.hexdigest()[:16]
