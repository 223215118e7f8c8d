#!/usr/bin/env python3
"""Check the golden fixtures against an independent model of docs/spec.md (no PyTorch RIMs code).

For every fixture in tests/fixtures/pytorch/ this
  1. maps `state.*` to the canonical layout of spec section 4 (`to_canonical`: blockify and
     transpose the authors' dense LSTM/GRU matrices, reorder dido's LSTM gates [i,f,o,g] ->
     [i,f,g,o], take slot 1 of the authors' key/value GroupLinears, ...), exactly what
     `rims import` must do;
  2. runs the cell of spec section 1 (variant A) or section 3 (variant D) written from the text,
     with plain torch ops on the canonical tensors, in float64, letting the selection rank by the
     spec's rule (d = s_x - s_null for A, the raw head-averaged s_x for D; ties to the lower index);
  3. compares h, c and the masks with `output.*`, and the gradients of the fixture's loss
     (spec section 1.7 pseudo-gradient: blocked_grad as a stop-gradient on the inactive h')
     with `grad.*` mapped by the same `to_canonical` (so only the blocks of the authors' dense
     gradients are compared; their off-block part is not a parameter of the canonical model).
This is what the Rust tests should do, in f32, at 1e-5 relative.

  python3 tools/pytorch/spec_check.py [tests/fixtures/pytorch/*.safetensors]
"""
import glob
import math
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file


def to_canonical(sd, meta):
    """sd: a state_dict (or a gradient dict with the same names) -> canonical tensors (spec section 4)."""
    N, H, D = int(meta["N"]), int(meta["H"]), int(meta["D"])
    lstm = meta["cell"] == "LSTM"
    G = 4 if lstm else 3
    c = {}
    if meta["code"] == "authors":
        A = int(meta["d_vin"])
        NH = N * H
        c["in_q"] = sd["inp_att.GLN_qs.w"]
        c["in_k_w"] = sd["inp_att.GLN_ks.w"][1]
        c["in_v_w"] = sd["inp_att.GLN_vs.w"][1]
        c["in_k_b"] = torch.zeros(c["in_k_w"].shape[1], dtype=torch.float64)
        c["in_v_b"] = torch.zeros(c["in_v_w"].shape[1], dtype=torch.float64)
        pre = "block_lstm.lstm." if lstm else "block_lstm.gru."
        Wih, Whh = sd[pre + "weight_ih"], sd[pre + "weight_hh"]
        bih, bhh = sd[pre + "bias_ih"], sd[pre + "bias_hh"]
        wx = torch.zeros(N, A, G * H, dtype=torch.float64)
        wh = torch.zeros(N, H, G * H, dtype=torch.float64)
        bx = torch.zeros(N, G * H, dtype=torch.float64)
        bh = torch.zeros(N, G * H, dtype=torch.float64)
        for g in range(G):
            for j in range(N):
                rows = slice(g * NH + j * H, g * NH + (j + 1) * H)
                wx[j][:, g * H:(g + 1) * H] = Wih[rows, j * A:(j + 1) * A].T
                wh[j][:, g * H:(g + 1) * H] = Whh[rows, j * H:(j + 1) * H].T
                bx[j][g * H:(g + 1) * H] = bih[rows]
                bh[j][g * H:(g + 1) * H] = bhh[rows]
        c.update(rnn_wx=wx, rnn_wh=wh, rnn_bx=bx, rnn_bh=bh)
        c["comm_q"], c["comm_k"], c["comm_v"] = sd["mha.GLN_qs.w"], sd["mha.GLN_ks.w"], sd["mha.GLN_vs.w"]
        c["comm_fc_w"], c["comm_fc_b"] = sd["mha.fc.weight"].T, sd["mha.fc.bias"]
        c["comm_gate_w"], c["comm_gate_b"] = sd["mha.gate_fc.weight"].T, sd["mha.gate_fc.bias"]
    else:
        c["in_q"] = sd["query.w"]
        c["in_k_w"], c["in_k_b"] = sd["key.weight"].T, sd["key.bias"]
        c["in_v_w"], c["in_v_b"] = sd["value.weight"].T, sd["value.bias"]
        if lstm:
            perm = lambda w: torch.cat([w[..., 0:H], w[..., H:2 * H], w[..., 3 * H:4 * H], w[..., 2 * H:3 * H]], -1)
            c["rnn_wx"], c["rnn_wh"] = perm(sd["rnn.i2h.w"]), perm(sd["rnn.h2h.w"])
        else:
            c["rnn_wx"], c["rnn_wh"] = sd["rnn.x2h.w"], sd["rnn.h2h.w"]
        c["rnn_bx"] = torch.zeros(N, G * H, dtype=torch.float64)
        c["rnn_bh"] = torch.zeros(N, G * H, dtype=torch.float64)
        c["comm_q"], c["comm_k"], c["comm_v"] = sd["query_.w"], sd["key_.w"], sd["value_.w"]
        c["comm_out_w"] = sd["comm_attention_output.w"]
    return {k: v.clone() for k, v in c.items()}


def select(score, k):
    """Top-k with ties to the lower index (spec section 1.3)."""
    B, N = score.shape
    m = torch.zeros(B, N, dtype=torch.float64)
    for b in range(B):
        order = sorted(range(N), key=lambda i: (-float(score[b, i]), i))
        for i in order[:k]:
            m[b, i] = 1.0
    return m


def gl(x, w):  # GroupLinear: x [B, N, in], w [N, in, out]
    return torch.einsum("bni,nio->bno", x, w)


def step(p, meta, x, h, c):
    N, H, k = int(meta["N"]), int(meta["H"]), int(meta["k"])
    lstm = meta["cell"] == "LSTM"
    h_in, d_k, d_vin = int(meta["h_in"]), int(meta["d_k"]), int(meta["d_vin"])
    h_c, d_kc, d_vc = int(meta["h_c"]), int(meta["d_kc"]), int(meta["d_vc"])
    B = x.shape[0]
    A_variant = meta["variant"] == "A"
    hm = h.view(B, N, H)
    q = gl(hm, p["in_q"]).view(B, N, h_in, d_k)
    kx = (x @ p["in_k_w"] + p["in_k_b"]).view(B, h_in, d_k)
    kn = p["in_k_b"].view(h_in, d_k)
    vx = (x @ p["in_v_w"] + p["in_v_b"]).view(B, h_in, d_vin)
    vn = p["in_v_b"].view(h_in, d_vin)
    sx = torch.einsum("bned,bed->bne", q, kx) / math.sqrt(d_k)
    sn = torch.einsum("bned,ed->bne", q, kn) / math.sqrt(d_k)
    if A_variant:  # h_in = 1 in the authors' code
        ax = torch.sigmoid(sx - sn)
        u = (ax.unsqueeze(-1) * vx.unsqueeze(1) + (1 - ax).unsqueeze(-1) * vn).reshape(B, N, h_in * d_vin)
        m = select((sx - sn).mean(-1).detach(), k)
    else:  # dido: average scores and values over the heads, select on the raw s_x
        sxm, snm = sx.mean(-1), sn.mean(-1)
        m = select(sxm.detach(), k)
        ax = torch.sigmoid(sxm - snm)
        u = ax.unsqueeze(-1) * vx.mean(1).unsqueeze(1) + (1 - ax).unsqueeze(-1) * vn.mean(0)
        u = u * m.unsqueeze(-1)
    z = gl(u, p["rnn_wx"]) + p["rnn_bx"]
    zh = gl(hm, p["rnn_wh"]) + p["rnn_bh"]
    if lstm:
        a = z + zh
        i, f, g, o = (a[..., e * H:(e + 1) * H] for e in range(4))
        cn = torch.sigmoid(f) * c.view(B, N, H) + torch.sigmoid(i) * torch.tanh(g)
        hn = torch.sigmoid(o) * torch.tanh(cn)
    else:
        r = torch.sigmoid(z[..., :H] + zh[..., :H])
        zz = torch.sigmoid(z[..., H:2 * H] + zh[..., H:2 * H])
        n = torch.tanh(z[..., 2 * H:] + r * zh[..., 2 * H:])
        hn = (1 - zz) * n + zz * hm
        cn = hn
    m3 = m.unsqueeze(-1)
    hb = hn * m3 + (hn * (1 - m3)).detach()  # blocked_grad
    Q = gl(hb, p["comm_q"]).view(B, N, h_c, d_kc)
    K = gl(hb, p["comm_k"]).view(B, N, h_c, d_kc)
    V = gl(hb, p["comm_v"]).view(B, N, h_c, d_vc)
    P = torch.softmax(torch.einsum("bihd,bjhd->bhij", Q, K) / math.sqrt(d_kc), dim=-1)
    if not A_variant:
        P = P * m.view(B, 1, N, 1)
    ctx = torch.einsum("bhij,bjhd->bihd", P, V).reshape(B, N, h_c * d_vc)
    if A_variant:
        o_ = ctx @ p["comm_fc_w"] + p["comm_fc_b"]
        gam = torch.sigmoid(ctx @ p["comm_gate_w"] + p["comm_gate_b"])
        hh = hn + gam * torch.tanh(o_)
    else:
        hh = gl(ctx, p["comm_out_w"]) + hb
    h_t = (m3 * hh + (1 - m3) * hm).reshape(B, N * H)
    if lstm or A_variant:
        c_t = (m3 * cn + (1 - m3) * c.view(B, N, H)).reshape(B, N * H)
    else:
        c_t = torch.zeros_like(h_t)
    return h_t, c_t, m


def rel(a, b):
    """max |a - b| / max |b|, with max |b| floored at 1e-6 (dido's grad.key.bias is 0 up to
    round-off, ~1e-17: the two-slot softmax gradient sums to zero and both keys carry the bias)."""
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-6)


def check(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    fx = load_file(path)
    state = {k[6:]: v for k, v in fx.items() if k.startswith("state.")}
    grads = {k[5:]: v for k, v in fx.items() if k.startswith("grad.")}
    p = {k: v.requires_grad_(True) for k, v in to_canonical(state, meta).items()}
    x = fx["input.x"].clone().requires_grad_(True)
    h0 = fx["input.h0"].clone().requires_grad_(True)
    c0 = fx["input.c0"].clone().requires_grad_(True)
    lstm = meta["cell"] == "LSTM"
    h, c = h0, c0
    hs, cs, ms = [], [], []
    for t in range(x.shape[0]):
        h, c, m = step(p, meta, x[t], h, c)
        hs.append(h)
        cs.append(c)
        ms.append(m)
    H_, C_, M_ = torch.stack(hs), torch.stack(cs), torch.stack(ms)
    loss = (H_ * fx["loss.wh"]).sum() + ((C_[-1] * fx["loss.wc"]).sum() if lstm else 0.0)
    names = [n for n in p if n not in ("in_k_b", "in_v_b") or meta["variant"] == "D"]
    if meta["variant"] == "D":
        names = [n for n in names if not n.startswith("rnn_b")]
    gs = torch.autograd.grad(loss, [p[n] for n in names] + [x, h0, c0], allow_unused=True)
    ref_g = to_canonical(grads, meta)
    worst = 0.0
    res = [("h", rel(H_, fx["output.h"]))]
    if lstm:
        res.append(("c", rel(C_, fx["output.c"])))
    mask_ok = torch.equal(M_, fx["output.mask"])
    for n, g in zip(names, gs[:len(names)]):
        g = torch.zeros_like(p[n]) if g is None else g
        res.append((f"grad.{n}", rel(g, ref_g[n]) if float(ref_g[n].abs().max()) > 0 else float(g.abs().max())))
    for n, g in zip(("x", "h0", "c0"), gs[len(names):]):
        if n == "c0" and not lstm:
            continue
        res.append((f"grad.{n}", rel(g, fx[f"grad.{n}"])))
    worst = max(v for _, v in res)
    ok = mask_ok and worst < 1e-10
    print(f"{os.path.basename(path)}: masks {'equal' if mask_ok else 'DIFFER'}, worst rel diff {worst:.2e} "
          f"{'ok' if ok else 'FAIL'}")
    for n, v in res:
        if v >= 1e-10:
            print(f"   {n}: {v:.3e}")
    return ok


def main():
    torch.set_default_dtype(torch.float64)
    here = os.path.dirname(os.path.abspath(__file__))
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(here, "../../tests/fixtures/pytorch/*.safetensors")))
    ok = all([check(pth) for pth in paths])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
