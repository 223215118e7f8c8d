"""What the tests share: the repository's paths, a small safetensors reader (the fixtures
and checkpoints are safetensors; the package itself needs no reader), tolerances."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "pytorch"

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "U32": np.uint32, "I64": np.int64}


def read_safetensors(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Every tensor of a safetensors file by name, and its metadata."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[base + start : base + end], dtype=_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out, meta


def section(tensors: Dict[str, np.ndarray], tag: str) -> Dict[str, np.ndarray]:
    """The tensors named `tag.*`, without the tag."""
    p = tag + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def assert_close(what: str, got, want, atol: float, rtol: float) -> None:
    """|got - want| <= atol + rtol |want| elementwise, naming the worst element."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} against {want.shape}"
    err = np.abs(got - want) - (atol + rtol * np.abs(want))
    worst = int(np.argmax(err)) if err.size else 0
    assert err.size == 0 or err.flat[worst] <= 0, (
        f"{what}: element {worst} is {got.flat[worst]!r}, expected {want.flat[worst]!r}"
    )
