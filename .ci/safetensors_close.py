#!/usr/bin/env python3
"""Compares the F32 tensors of two safetensors files (the standard library only).

usage: safetensors_close.py A B [--atol X] [--rtol Y]

Both files must hold the same tensor names and shapes; every element must satisfy
|a - b| <= atol + rtol * |b|. Prints the worst element and exits 1 when one does not.
"""
import argparse
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {info['dtype']}, not F32")
        lo, hi = info["data_offsets"]
        count = (hi - lo) // 4
        tensors[name] = (info["shape"], struct.unpack(f"<{count}f", body[lo:hi]))
    return tensors


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--rtol", type=float, default=1e-4)
    args = p.parse_args()
    a, b = read(args.a), read(args.b)
    if sorted(a) != sorted(b):
        print(f"different tensors: {sorted(set(a) ^ set(b))}")
        return 1
    worst = (0.0, None)
    values = 0
    for name in sorted(a):
        (sa, va), (sb, vb) = a[name], b[name]
        if sa != sb:
            print(f"{name}: shape {sa} against {sb}")
            return 1
        for i, (x, y) in enumerate(zip(va, vb)):
            excess = abs(x - y) - (args.atol + args.rtol * abs(y))
            if worst[1] is None or excess > worst[0]:
                worst = (excess, (name, i, x, y))
        values += len(va)
    name, i, x, y = worst[1]
    verdict = "ok" if worst[0] <= 0 else "DIFFERENT"
    print(
        f"{verdict}: {len(a)} tensors, {values} values; worst {name}[{i}]: {x!r} against {y!r} "
        f"(|diff| {abs(x - y):.3g}, atol {args.atol:g}, rtol {args.rtol:g})"
    )
    return 0 if worst[0] <= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
