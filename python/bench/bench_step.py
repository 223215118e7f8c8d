"""Training-step and stepping speed of the Python package against the engine alone and against
dido1998's PyTorch RIMCell, in one run on the same CPU threads (docs/perf.md, "From Python").

    python python/bench/bench_step.py --dido-src /tmp/dido          # paper size, 2 threads
    python python/bench/bench_step.py --config small --repeat 10

Rows (median of --repeat timed steps after --warmup):
- "torch + rims.torch.RIMs (authors)": the `rims bench` model in torch (embedding of 2 tokens,
  dropout 0.5, the RIMs layer, dropout, a 10-class decoder at the last step, cross-entropy,
  torch.optim.Adam), variant A with the bench's sizes; compare with `rims bench`'s training
  step for the bridge's cost;
- "torch + rims.torch.RIMs (dido)": the same with variant D (d_vc = H), what dido's code computes;
- "torch + dido RIMCell": the same model around dido's RIMCell, stepped over T as its RIM.layer
  does (needs --dido-src, a directory holding their RIM.py; its code is not in this repository);
- "rims.Runner batch-1 step": one Python call of Runner.step on a checkpoint of the bench's model.

The script runs nothing of the engine's Rust benchmarks: run `rims bench --device cpu --config
paper` beside it (same threads) for the engine's own figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import rims
from rims.torch import RIMs

CONFIGS = {
    # B, T, N, H, k, D, A (input value), d_k, comm heads, comm key/value
    "paper": dict(batch=64, steps=196, n=6, h=100, k=4, d=600, a=400, dk=64, hc=4, dc=16),
    "small": dict(batch=16, steps=32, n=6, h=32, k=4, d=32, a=32, dk=32, hc=4, dc=16),
}


class RimsModel(nn.Module):
    def __init__(self, c, variant):
        super().__init__()
        self.embed = nn.Embedding(2, c["d"])
        self.rims = RIMs(c["d"], c["h"], c["n"], c["k"], variant=variant, input_key_size=c["dk"],
                         input_value_size=c["a"], num_comm_heads=c["hc"], comm_key_size=c["dc"],
                         comm_value_size=c["h"] if variant == "dido" else c["dc"],
                         input_dropout=0.1, comm_dropout=0.1)
        self.drop = nn.Dropout(0.5)
        self.decoder = nn.Linear(c["n"] * c["h"], 10)

    def forward(self, tokens):
        h, _, _ = self.rims(self.drop(self.embed(tokens)))
        return self.decoder(self.drop(h[-1]))


class DidoModel(nn.Module):
    def __init__(self, c, rim_module):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(2, c["d"])
        self.cell = rim_module.RIMCell(torch.device("cpu"), c["d"], c["h"], c["n"], c["k"], "LSTM",
                                       input_key_size=c["dk"], input_value_size=c["a"], input_query_size=c["dk"],
                                       num_input_heads=1, input_dropout=0.1, comm_key_size=c["dc"],
                                       comm_value_size=c["h"], comm_query_size=c["dc"], num_comm_heads=c["hc"],
                                       comm_dropout=0.1)
        self.drop = nn.Dropout(0.5)
        self.decoder = nn.Linear(c["n"] * c["h"], 10)

    def forward(self, tokens):
        x = self.drop(self.embed(tokens))
        b = x.shape[1]
        hs = torch.zeros(b, self.c["n"], self.c["h"])
        cs = torch.zeros(b, self.c["n"], self.c["h"])
        for t in range(x.shape[0]):  # as RIM.layer steps it
            hs, cs = self.cell(x[t].unsqueeze(1), hs, cs)
        return self.decoder(self.drop(hs.reshape(b, -1)))


def time_steps(model, c, warmup, repeat, bridge=None):
    """Median and min seconds of a training step; with `bridge` (a list), also appends each
    timed step's seconds spent in the rims layer's calls outside the engine's own work."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 2, (c["steps"], c["batch"]), generator=g)
    labels = torch.randint(0, 10, (c["batch"],), generator=g)
    times = []
    for i in range(warmup + repeat):
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(tokens), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            if bridge is not None:
                fwd_engine, fwd_call, bwd_engine, bwd_call = model.rims._core.timings
                bridge.append((fwd_call - fwd_engine, bwd_call - bwd_engine, fwd_engine + bwd_engine))
    return statistics.median(times), min(times)


def runner_latency(c, repeat):
    """Median seconds of one batch-1 Runner.step on a checkpoint of the bench's sizes (sMNIST,
    trained one step on a few digits: only its shape matters here)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        rims.train(out, "smnist", progress=False, mechanisms=c["n"], active=c["k"], hidden=c["h"], embed=c["d"],
                   input_key=c["dk"], input_value=c["a"], comm_heads=c["hc"], comm_key=c["dc"], comm_value=c["dc"],
                   batch=8, epochs=1, limit=16, eval_every=1, resolution=4, seed=1)
        runner = rims.Runner(out, batch=1)
        token = np.array([1], dtype=np.uint32)
        for _ in range(20):
            runner.step(token)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            runner.step(token)
            times.append(time.perf_counter() - start)
        return statistics.median(times), min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    p.add_argument("--threads", type=int, default=2, help="torch's and the engine's CPU threads")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dido-src", type=Path, help="a directory with dido1998's RIM.py")
    p.add_argument("--only", choices=["authors", "dido-rims", "dido", "runner"], action="append")
    p.add_argument("--flush-denormal", action="store_true",
                   help="torch.set_flush_denormal(True), as the engine's CPU device does inside its kernels")
    args = p.parse_args()
    c = CONFIGS[args.config]
    torch.set_num_threads(args.threads)
    rims.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        raise SystemExit("this CPU cannot flush subnormals in torch (no SSE3)")
    print(f"config {args.config}: {c}; torch {torch.__version__} on {torch.get_num_threads()} threads; "
          f"subnormals {'flushed' if args.flush_denormal else 'kept'}; "
          f"engine: {rims.device_info('cpu')}")
    rows = []
    want = set(args.only or ["authors", "dido-rims", "dido", "runner"])
    torch.manual_seed(0)
    bridge = []
    if "authors" in want:
        rows.append(("torch + rims.torch.RIMs (authors)",
                     time_steps(RimsModel(c, "authors"), c, args.warmup, args.repeat, bridge)))
    if "dido-rims" in want:
        rows.append(("torch + rims.torch.RIMs (dido)", time_steps(RimsModel(c, "dido"), c, args.warmup, args.repeat)))
    if "dido" in want and args.dido_src:
        sys.path.insert(0, str(args.dido_src))
        import RIM  # dido1998's module, from the directory given

        rows.append(("torch + dido RIMCell", time_steps(DidoModel(c, RIM), c, args.warmup, args.repeat)))
    if "runner" in want:
        med, low = runner_latency(c, 200)
        rows.append(("rims.Runner batch-1 step", (med, low)))
    print("| model | training step (median) | min |")
    print("|---|---:|---:|")
    for name, (med, low) in rows:
        unit, scale = ("ms", 1e3)
        print(f"| {name} | {med * scale:.2f} {unit} | {low * scale:.2f} {unit} |")
    if bridge:
        fwd = statistics.median(b[0] for b in bridge)
        bwd = statistics.median(b[1] for b in bridge)
        engine = statistics.median(b[2] for b in bridge)
        print(f"authors model, per step (medians): the layer's engine work {engine * 1e3:.1f} ms; the bridge "
              f"(checks, copies, read-backs) {fwd * 1e3:.1f} ms in the forward call + {bwd * 1e3:.1f} ms in the "
              f"backward call = {100 * (fwd + bwd) / engine:.1f}% of the engine work")


if __name__ == "__main__":
    main()
