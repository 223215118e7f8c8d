#!/usr/bin/env python3
"""Golden fixtures from the two PyTorch RIMs codes (docs/spec.md sections 1, 3, 4; issue 12).

Builds small seeded cells with the REAL modules, imported from checkouts given on the
command line (their code is never copied into this repository):
  * the authors' `blocks_core.BlocksCore` (anirudh9119/RIMs, event_based/, commit aa61773),
    driven the way `rnn_models_wiki.RNNModel.forward` drives it: `blockify_params()` once,
    then one `BlocksCore.forward(x_t, hx, cx, t, do_block=True)` per step;
  * dido1998's `RIM.RIMCell` (commit 26aa871), one `RIMCell.forward(x_t[:, None], hs, cs)`
    per step, hs/cs viewed as [B, N, H] as `RIM.layer` does.

Everything runs in float64 on the CPU in eval mode (dropout off). Each fixture is one
safetensors file, every tensor float64:
  state.<name>      the module's state_dict, original key names. For the authors' cell this is the
                    state BEFORE blockify: the dense block-LSTM/GRU matrices carry non-zero
                    off-block entries, as real checkpoints do; the run blockifies them first.
  input.x           [T, B, D]
  input.h0, input.c0 [B, N*H] (mechanism i owns columns iH..(i+1)H; c0 is zeros for GRU cells)
  output.h, output.c [T, B, N*H]  state after each step (output.c of a GRU cell is what the
                    code returns as cx and is meaningless, see spec section 1.4)
  output.mask       [T, B, N]  1 = active, as the code selected it
  output.score      [T, B, N]  the value the selection ranks (authors: d = s_x - s_null =
                    log(alpha_x/alpha_null); dido: the raw head-averaged score s_x)
  loss.wh           [T, B, N*H], loss.wc [B, N*H] (LSTM only): the scalar loss is
                    L = sum_t <output.h[t], loss.wh[t]> + <output.c[T-1], loss.wc>
  gradh.*           (LSTM only) the same gradients as grad.* for L_h = sum_t <output.h[t], loss.wh[t]>
                    alone; for GRU, grad.* already is that
  grad.<name>       dL/d parameter (the authors' cell: w.r.t. the blockified dense matrices, so
                    off-block entries of grad.block_lstm.* are non-zero; compare the blocks)
  grad.x, grad.h0, grad.c0   dL/d inputs
Metadata: code, repo, commit, cell, N, k, H, D, T, B, seed, the attention sizes, torch_version,
dtype, min_margin (smallest gap between the k-th and (k+1)-th ranked score over all steps).

Usage:
  python3 tools/pytorch/make_fixtures.py --authors-src /tmp/authors/event_based \\
      --dido-src /tmp/dido --out tests/fixtures/pytorch
"""
import argparse
import importlib
import os
import subprocess
import sys

import torch
from safetensors.torch import save_file

MARGIN_MIN = 1e-3
AUTHORS_COMMIT = "aa61773"
DIDO_COMMIT = "26aa871"


def git_commit(path):
    try:
        return subprocess.check_output(["git", "-C", path, "rev-parse", "--short", "HEAD"],
                                       stderr=subprocess.DEVNULL, text=True).strip()
    except Exception:  # noqa: BLE001  (archives extracted without .git)
        return None


def import_from(src, modname):
    src = os.path.abspath(src)
    if src not in sys.path:
        sys.path.insert(0, src)
    return importlib.import_module(modname)


class TopkRecorder:
    """Records the inputs of torch.topk calls made on [B, N] tensors during a forward."""

    def __init__(self, B, N):
        self.B, self.N, self.calls, self.orig = B, N, [], None

    def __enter__(self):
        self.orig = torch.topk
        rec = self

        def topk(inp, *a, **kw):
            if inp.dim() == 2 and tuple(inp.shape) == (rec.B, rec.N):
                rec.calls.append(inp.detach().clone())
            return rec.orig(inp, *a, **kw)

        torch.topk = topk
        return self

    def __exit__(self, *exc):
        torch.topk = self.orig


def margin_of(score, k):
    """Gap between the k-th and (k+1)-th largest score of every row (inf if k == N)."""
    N = score.shape[-1]
    if k >= N:
        return float("inf")
    s = torch.sort(score, dim=-1, descending=True).values
    return float((s[..., k - 1] - s[..., k]).min())


def randomise(module, gen, std_for):
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std_for(name, p))
        for name, b in module.named_buffers():
            pass  # none in these modules


def make_inputs(gen, T, B, D, NH, lstm):
    x = torch.randn(T, B, D, generator=gen, dtype=torch.float64)
    h0 = (torch.rand(B, NH, generator=gen, dtype=torch.float64) * 1.8 - 0.9)
    c0 = torch.randn(B, NH, generator=gen, dtype=torch.float64) if lstm else torch.zeros(B, NH, dtype=torch.float64)
    wh = torch.randn(T, B, NH, generator=gen, dtype=torch.float64)
    wc = torch.randn(B, NH, generator=gen, dtype=torch.float64)
    return x, h0, c0, wh, wc


def authors_std(name, p):
    if name.endswith("fc.weight"):
        return 0.15          # Linear(64 -> H): keep the gate/fc pre-activations O(1)
    if name.endswith("ln.weight"):
        return 1.0           # unused LayerNorms
    if "block_lstm" in name and name.endswith(("bias_ih", "bias_hh")):
        return 0.3
    if name.endswith("bias"):
        return 0.3
    return 0.5


def run_authors(bc_mod, cell, seed, N, k, H, D, T, B):
    lstm = cell == "LSTM"
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    nhid = N * H
    bc = bc_mod.BlocksCore(ninp=D, nhid=nhid, num_blocks_in=1, num_blocks_out=N, topkval=k,
                           step_att=True, do_gru=not lstm, num_modules_read_input=2).double()
    randomise(bc, gen, authors_std)
    bc.eval()
    # The checkpoint-like state: dense matrices with non-zero off-block entries.
    state = {kk: v.detach().clone().contiguous() for kk, v in bc.state_dict().items()}
    x, h0, c0, wh, wc = make_inputs(gen, T, B, D, nhid, lstm)
    x, h0, c0 = (t.clone().requires_grad_(True) for t in (x, h0, c0))

    bc.blockify_params()  # as RNNModel.forward does, once before the time loop
    hx, cx = h0, c0
    hs, cs, masks = [], [], []
    rec = TopkRecorder(B, N)
    with rec:
        for t in range(T):
            hx, cx, mask = bc(x[t], hx, cx, t, do_block=True)
            hs.append(hx)
            cs.append(cx)
            masks.append(mask.reshape(B, N, H)[:, :, 0].detach().clone())
    h_all, c_all = torch.stack(hs), torch.stack(cs)
    loss = (h_all * wh).sum() + ((c_all[-1] * wc).sum() if lstm else 0.0)
    params = dict(bc.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()) + [x, h0, c0], allow_unused=True,
                                retain_graph=lstm)
    grads_h = h_only_grads(h_all, wh, params, x, h0, c0) if lstm else None

    # The authors' topk reads alpha_null = iatt[:, :, 0]; rank by d = log(alpha_x / alpha_null).
    assert len(rec.calls) == T, f"expected {T} topk calls on [B, N], got {len(rec.calls)}"
    score = torch.stack([torch.log1p(-a) - torch.log(a) for a in rec.calls])
    out = finish(state, params, grads, grads_h, x, h0, c0, h_all, c_all, torch.stack(masks), score, wh, wc,
                 lstm)
    meta = dict(code="authors", repo="anirudh9119/RIMs", path="event_based/blocks_core.py",
                module="BlocksCore", commit=AUTHORS_COMMIT, cell=cell, N=N, k=k, H=H, D=D, T=T, B=B,
                seed=seed, d_k=64, h_in=1, d_vin=4 * H, h_c=4, d_kc=16, d_vc=16,
                raw_gate_order="ifgo" if lstm else "rzn", variant="A")
    return out, meta, margin_of(score, k)


def dido_std(name, p):
    return 0.5 if not name.endswith("bias") else 0.3


def run_dido(rim_mod, cell, seed, N, k, H, D, T, B, sizes):
    lstm = cell == "LSTM"
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rc = rim_mod.RIMCell(torch.device("cpu"), D, H, N, k, cell,
                         input_key_size=sizes["d_k"], input_value_size=sizes["d_vin"],
                         input_query_size=sizes["d_k"], num_input_heads=sizes["h_in"],
                         comm_key_size=sizes["d_kc"], comm_value_size=H, comm_query_size=sizes["d_kc"],
                         num_comm_heads=sizes["h_c"]).double()
    randomise(rc, gen, dido_std)  # also replaces GroupGRUCell's all-ones init
    rc.eval()
    state = {kk: v.detach().clone().contiguous() for kk, v in rc.state_dict().items()}
    x, h0, c0, wh, wc = make_inputs(gen, T, B, D, N * H, lstm)
    x, h0, c0 = (t.clone().requires_grad_(True) for t in (x, h0, c0))

    hs_, cs_ = h0.view(B, N, H), (c0.view(B, N, H) if lstm else None)
    hs, cs, masks = [], [], []
    rec = TopkRecorder(B, N)
    with rec:
        for t in range(T):
            before = len(rec.calls)
            hs_, cs_ = rc(x[t].unsqueeze(1), hs_, cs_)
            hs.append(hs_.reshape(B, N * H))
            cs.append(cs_.reshape(B, N * H) if lstm else torch.zeros(B, N * H, dtype=torch.float64))
            assert len(rec.calls) == before + 1
            s = rec.calls[-1]
            m = torch.zeros(B, N, dtype=torch.float64)
            m.scatter_(1, rec.orig(s, k, dim=1).indices, 1.0)  # not recorded
            masks.append(m)
    h_all, c_all = torch.stack(hs), torch.stack(cs)
    loss = (h_all * wh).sum() + ((c_all[-1] * wc).sum() if lstm else 0.0)
    params = dict(rc.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()) + [x, h0, c0], allow_unused=True,
                                retain_graph=lstm)
    grads_h = h_only_grads(h_all, wh, params, x, h0, c0) if lstm else None
    assert len(rec.calls) == T
    score = torch.stack(rec.calls)
    out = finish(state, params, grads, grads_h, x, h0, c0, h_all, c_all, torch.stack(masks), score, wh, wc,
                 lstm)
    meta = dict(code="dido", repo="dido1998/Recurrent-Independent-Mechanisms", path="RIM.py",
                module="RIMCell", commit=DIDO_COMMIT, cell=cell, N=N, k=k, H=H, D=D, T=T, B=B, seed=seed,
                d_k=sizes["d_k"], h_in=sizes["h_in"], d_vin=sizes["d_vin"], h_c=sizes["h_c"],
                d_kc=sizes["d_kc"], d_vc=H, raw_gate_order="ifog" if lstm else "rzn", variant="D")
    return out, meta, margin_of(score, k)


def h_only_grads(h_all, wh, params, x, h0, c0):
    """The gradients of L_h = sum_t <h_t, wh[t]> alone (an engine that keeps c off its tape can
    form only this loss)."""
    return torch.autograd.grad((h_all * wh).sum(), list(params.values()) + [x, h0, c0],
                               allow_unused=True)


def put_grads(out, tag, params, grads, c0):
    names = list(params)
    for n, g in zip(names, grads[:len(names)]):
        out[f"{tag}.{n}"] = torch.zeros_like(params[n]) if g is None else g
    gx, gh0, gc0 = grads[len(names):]
    out[f"{tag}.x"] = gx
    out[f"{tag}.h0"] = gh0
    out[f"{tag}.c0"] = gc0 if gc0 is not None else torch.zeros_like(c0)


def finish(state, params, grads, grads_h, x, h0, c0, h_all, c_all, mask, score, wh, wc, lstm):
    out = {f"state.{n}": v for n, v in state.items()}
    put_grads(out, "grad", params, grads, c0)
    if grads_h is not None:
        put_grads(out, "gradh", params, grads_h, c0)
    out.update({"input.x": x, "input.h0": h0, "input.c0": c0, "output.h": h_all, "output.c": c_all,
                "output.mask": mask, "output.score": score, "loss.wh": wh})
    if lstm:
        out["loss.wc"] = wc
    return {n: v.detach().to(torch.float64).contiguous().clone() for n, v in out.items()}


def build(fn, seed0, tries=50):
    for s in range(seed0, seed0 + tries):
        out, meta, margin = fn(s)
        if margin > MARGIN_MIN:
            return out, meta, margin
        print(f"  seed {s}: min top-k margin {margin:.2e} <= {MARGIN_MIN}, reseeding", file=sys.stderr)
    raise SystemExit(f"no seed in {seed0}..{seed0 + tries} gives a top-k margin > {MARGIN_MIN}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--authors-src", required=True, help="authors' event_based/ directory (commit aa61773)")
    ap.add_argument("--dido-src", required=True, help="dido's checkout root, holding RIM.py (commit 26aa871)")
    ap.add_argument("--out", default="tests/fixtures/pytorch")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--B", type=int, default=2)
    args = ap.parse_args()

    torch.set_default_dtype(torch.float64)
    os.makedirs(args.out, exist_ok=True)
    bc_mod = import_from(args.authors_src, "blocks_core")
    rim_mod = import_from(args.dido_src, "RIM")
    for src, want in ((args.authors_src, AUTHORS_COMMIT), (args.dido_src, DIDO_COMMIT)):
        got = git_commit(src)
        if got is not None and not want.startswith(got[:7]):
            print(f"warning: {src} is at {got}, the fixtures are documented for {want}", file=sys.stderr)

    N, k, H, D, T, B = 4, 3, 3, 5, args.T, args.B
    dido_sizes = dict(d_k=4, d_vin=6, h_in=2, h_c=2, d_kc=4)
    jobs = [
        ("authors_lstm", lambda s: run_authors(bc_mod, "LSTM", s, N, k, H, D, T, B)),
        ("authors_gru", lambda s: run_authors(bc_mod, "GRU", s, N, k, H, D, T, B)),
        ("dido_lstm", lambda s: run_dido(rim_mod, "LSTM", s, N, k, H, D, T, B, dido_sizes)),
        ("dido_gru", lambda s: run_dido(rim_mod, "GRU", s, N, k, H, D, T, B, dido_sizes)),
    ]
    for i, (name, fn) in enumerate(jobs):
        out, meta, margin = build(fn, args.seed + 100 * i)
        meta.update(torch_version=torch.__version__, dtype="float64", min_margin=f"{margin:.6g}",
                    margin_score=("d = log(alpha_x/alpha_null)" if meta["code"] == "authors"
                                  else "raw head-averaged s_x"),
                    loss="sum_t <output.h[t], loss.wh[t]> + <output.c[T-1], loss.wc> (LSTM)",
                    made_by="tools/pytorch/make_fixtures.py")
        path = os.path.join(args.out, f"{name}.safetensors")
        save_file(out, path, metadata={kk: str(v) for kk, v in meta.items()})
        act = out["output.mask"].sum(-1)
        assert torch.all(act == k), f"{name}: mask rows do not have k = {k} ones"
        print(f"{path}: {len(out)} tensors, {os.path.getsize(path)} bytes, seed {meta['seed']}, "
              f"min margin {margin:.4g}, masks per step (batch 0) "
              f"{[''.join(str(int(v)) for v in m) for m in out['output.mask'][:, 0]]}")


if __name__ == "__main__":
    main()
