#!/usr/bin/env python3
"""Run an exported state_dict in the REAL PyTorch module and compare with given outputs.

The counterpart of `rims infer` (issue 12, item 3): `rims export --to authors|dido` writes a
state_dict as safetensors; this script builds the real module (the authors' `BlocksCore`, or
dido's `RIMCell`), loads the file with `load_state_dict(strict=True)`, runs it in eval mode on the
inputs of a `rims infer` input file, and prints the max abs / rel differences of h, c, the masks
and (when the state holds the authors' decoder) the logits against a `rims infer` output file.

Accepted names:
  state file   bare cell keys (`inp_att.GLN_qs.w`, ... / `query.w`, ...), or the fixture form
               `state.<key>`, or for the authors the whole RNNModel: `encoder.weight`,
               `bc_lst.0.<cell key>`, `decoder.weight`, `decoder.bias` (one layer only). Any
               other key is an error (strict).
  inputs file  `x` [T,B,D] (or `tokens` [T,B] with an encoder), `h0`, `c0` [B,N*H];
               or the fixture names `input.x`, `input.h0`, `input.c0`. `mask` (an override) is
               reported but cannot be injected into the PyTorch modules.
  outputs file `h`, `c`, `mask`, `logits` or `output.h`, `output.c`, `output.mask`.

Sizes are inferred from the shapes; k comes from --active or from the files' metadata (`k`), and
dido's number of input heads from --input-heads or the metadata (`h_in`).

Examples (self-check on a fixture; every difference should be ~1e-16):
  python3 tools/pytorch/check_export.py --code authors --src /tmp/authors/event_based \\
      --state tests/fixtures/pytorch/authors_lstm.safetensors \\
      --inputs tests/fixtures/pytorch/authors_lstm.safetensors \\
      --outputs tests/fixtures/pytorch/authors_lstm.safetensors
  python3 tools/pytorch/check_export.py --code dido --src /tmp/dido --active 3 \\
      --state exported.safetensors --inputs x.safetensors --outputs y.safetensors
Exit status: 0 when every compared tensor is within --rtol (relative to its max |value|) and the
masks agree, 1 otherwise, 2 on bad input.
"""
import argparse
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import TopkRecorder, import_from  # noqa: E402


def die(msg):
    print(f"check_export: error: {msg}", file=sys.stderr)
    sys.exit(2)


def meta_of(path):
    with safe_open(path, "pt") as f:
        return f.metadata() or {}


def pick(d, *names):
    for n in names:
        if n in d:
            return d[n]
    return None


def split_state(sd, code):
    """Returns (cell_state, extras) with extras holding encoder/decoder tensors (authors)."""
    if any(k.startswith("state.") for k in sd):
        sd = {k[len("state."):]: v for k, v in sd.items() if k.startswith("state.")}
    extras = {}
    if code == "authors" and any(k.startswith("bc_lst.") for k in sd):
        cell, unknown = {}, []
        for k, v in sd.items():
            if k.startswith("bc_lst.0."):
                cell[k[len("bc_lst.0."):]] = v
            elif k in ("encoder.weight", "decoder.weight", "decoder.bias"):
                extras[k] = v
            else:
                unknown.append(k)
        if unknown:
            die(f"unexpected keys for a one-layer RNNModel: {sorted(unknown)}")
        return cell, extras
    return sd, extras


def need(sd, key, code):
    if key not in sd:
        die(f"the state has no `{key}`, which a {code} cell must have; keys: {sorted(sd)[:20]}")
    return sd[key]


def build_authors(src, sd, k):
    bc_mod = import_from(src, "blocks_core")
    q = need(sd, "inp_att.GLN_qs.w", "authors")
    N, H = q.shape[0], q.shape[1]
    D = need(sd, "inp_att.GLN_ks.w", "authors").shape[1]
    gru = any(key.startswith("block_lstm.gru.") for key in sd)
    bc = bc_mod.BlocksCore(ninp=D, nhid=N * H, num_blocks_in=1, num_blocks_out=N, topkval=k, step_att=True,
                           do_gru=gru, num_modules_read_input=2).double()
    return bc, dict(N=N, H=H, D=D, cell="GRU" if gru else "LSTM")


def build_dido(src, sd, k, h_in):
    rim_mod = import_from(src, "RIM")
    q = need(sd, "query.w", "dido")
    N, H = q.shape[0], q.shape[1]
    D = need(sd, "key.weight", "dido").shape[1]
    gru = "rnn.x2h.w" in sd
    d_vin = need(sd, "rnn.x2h.w" if gru else "rnn.i2h.w", "dido").shape[1]
    hv = need(sd, "value.weight", "dido").shape[0]
    if h_in is None:
        if hv % d_vin:
            die(f"value.weight has {hv} rows, not a multiple of the cell input {d_vin}")
        h_in = hv // d_vin
    d_k = q.shape[2] // h_in
    h_c = need(sd, "value_.w", "dido").shape[2] // H
    d_kc = need(sd, "key_.w", "dido").shape[2] // h_c
    rc = rim_mod.RIMCell(torch.device("cpu"), D, H, N, k, "GRU" if gru else "LSTM", input_key_size=d_k,
                         input_value_size=d_vin, input_query_size=d_k, num_input_heads=h_in, comm_key_size=d_kc,
                         comm_value_size=H, comm_query_size=d_kc, num_comm_heads=h_c).double()
    return rc, dict(N=N, H=H, D=D, cell="GRU" if gru else "LSTM", h_in=h_in, d_k=d_k, d_vin=d_vin, h_c=h_c,
                    d_kc=d_kc)


def run(code, mod, sizes, x, h0, c0):
    N, H = sizes["N"], sizes["H"]
    T, B = x.shape[0], x.shape[1]
    lstm = sizes["cell"] == "LSTM"
    hs, cs, masks = [], [], []
    with torch.no_grad():
        if code == "authors":
            mod.blockify_params()  # as RNNModel.forward does
            hx, cx = h0, c0
            for t in range(T):
                hx, cx, m = mod(x[t], hx, cx, t, do_block=True)
                hs.append(hx)
                cs.append(cx)
                masks.append(m.reshape(B, N, H)[:, :, 0])
        else:
            rec = TopkRecorder(B, N)
            h, c = h0.view(B, N, H), (c0.view(B, N, H) if lstm else None)
            with rec:
                for t in range(T):
                    h, c = mod(x[t].unsqueeze(1), h, c)
                    hs.append(h.reshape(B, N * H))
                    cs.append(c.reshape(B, N * H) if lstm else torch.zeros(B, N * H, dtype=x.dtype))
                    m = torch.zeros(B, N, dtype=x.dtype)
                    m.scatter_(1, rec.orig(rec.calls[-1], mod.k, dim=1).indices, 1.0)
                    masks.append(m)
    return torch.stack(hs), torch.stack(cs), torch.stack(masks)


def compare(name, got, ref, rtol):
    ref = ref.to(torch.float64)
    if tuple(got.shape) != tuple(ref.shape):
        print(f"{name:8s} SHAPE MISMATCH: PyTorch {tuple(got.shape)} vs file {tuple(ref.shape)}")
        return False
    diff = (got - ref).abs()
    scale = float(ref.abs().max()) or 1.0
    max_abs = float(diff.max())
    floor = 1e-3 * scale
    max_rel = float((diff / ref.abs().clamp(min=floor)).max())
    ok = max_abs <= rtol * scale
    print(f"{name:8s} max|ref| {scale:.3e}  max abs diff {max_abs:.3e}  max rel diff {max_rel:.3e} "
          f"(elementwise, floor 1e-3*max|ref|)  {'ok' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code", choices=["authors", "dido"], required=True)
    ap.add_argument("--src", required=True, help="authors' event_based/ directory, or dido's checkout root")
    ap.add_argument("--state", required=True, help="exported state_dict (.safetensors)")
    ap.add_argument("--inputs", required=True, help="rims infer input file (x, h0, c0)")
    ap.add_argument("--outputs", required=True, help="rims infer output file (h, c, mask, logits)")
    ap.add_argument("--active", type=int, default=None, help="k, when no file's metadata gives it")
    ap.add_argument("--input-heads", type=int, default=None, help="dido: number of input heads")
    ap.add_argument("--rtol", type=float, default=1e-5, help="pass when max abs diff <= rtol * max|ref|")
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)

    metas = {p: meta_of(p) for p in (args.state, args.inputs, args.outputs)}
    k = args.active
    if k is None:
        ks = {m["k"] for m in metas.values() if "k" in m}
        if len(ks) != 1:
            die(f"k is not given (--active) and the files' metadata give {sorted(ks) or 'none'}")
        k = int(ks.pop())
    h_in = args.input_heads
    if h_in is None and "h_in" in metas[args.state]:
        h_in = int(metas[args.state]["h_in"])

    sd, extras = split_state(load_file(args.state), args.code)
    if args.code == "authors":
        mod, sizes = build_authors(args.src, sd, k)
    else:
        mod, sizes = build_dido(args.src, sd, k, h_in)
    try:
        mod.load_state_dict({kk: v.to(torch.float64) for kk, v in sd.items()}, strict=True)
    except RuntimeError as e:
        die(f"load_state_dict(strict=True) failed: {e}")
    mod.eval()
    print(f"loaded {len(sd)} tensors into the real {type(mod).__name__} (strict), sizes {sizes}, k={k}")

    inp, out = load_file(args.inputs), load_file(args.outputs)
    x = pick(inp, "x", "input.x")
    if x is None:
        tok = pick(inp, "tokens", "input.tokens")
        if tok is None or "encoder.weight" not in extras:
            die("the inputs hold no `x` (and no `tokens` with an encoder in the state)")
        x = extras["encoder.weight"].to(torch.float64)[tok.long()]
    x = x.to(torch.float64)
    T, B = x.shape[0], x.shape[1]
    NH = sizes["N"] * sizes["H"]
    h0 = pick(inp, "h0", "input.h0")
    c0 = pick(inp, "c0", "input.c0")
    h0 = torch.zeros(B, NH) if h0 is None else h0.to(torch.float64)
    c0 = torch.zeros(B, NH) if c0 is None else c0.to(torch.float64)
    if pick(inp, "mask", "input.mask") is not None:
        print("note: the inputs hold a mask override; the PyTorch modules cannot take one, so their own "
              "selection is compared", file=sys.stderr)

    h, c, m = run(args.code, mod, sizes, x, h0, c0)
    ok = True
    ref_h = pick(out, "h", "output.h")
    if ref_h is None:
        die("the outputs hold no `h`")
    ok &= compare("h", h, ref_h, args.rtol)
    ref_c = pick(out, "c", "output.c")
    if ref_c is not None and sizes["cell"] == "LSTM":
        ok &= compare("c", c, ref_c, args.rtol)
    ref_m = pick(out, "mask", "output.mask")
    if ref_m is not None:
        bad = int((m != ref_m.to(torch.float64)).any(-1).sum())
        print(f"mask     {bad} of {T * B} (step, batch) rows differ  {'ok' if bad == 0 else 'FAIL'}")
        ok &= bad == 0
    ref_l = pick(out, "logits", "output.logits")
    if ref_l is not None:
        if "decoder.weight" in extras:
            logits = h @ extras["decoder.weight"].to(torch.float64).T + extras["decoder.bias"].to(torch.float64)
            ok &= compare("logits", logits, ref_l, args.rtol)
        else:
            print("logits   not compared: the state holds no decoder")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
