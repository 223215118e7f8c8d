// RIMs communication attention (docs/spec.md §1.5): every mechanism queries every mechanism,
// active or not, with h_c heads:  P^m_ij = softmax_j(Q^m_i·K^m_j / sqrt(d_kc)),
// ctx_i = concat_m Σ_j P^m_ij V^m_j. The projections (grouped matmuls) and the output
// Linear layers are separate dispatches; this file is the attention itself.
// Layouts: qkv [3, T, B, N, W] (planes Q, K, V; W = max(h_c*d_kc, h_c*d_vc));
// probs [T, B, h_c, N, N]; ctx [T, B, N, h_c*d_vc]. Backward: dctx [B, N, h_c*d_vc] (this
// step), ds [B, h_c, N, N] (scratch), dqkv like qkv.
// Variant D (variant = 1, docs/spec.md §3): after the softmax each row i is multiplied by m_i
// (inactive queries read nothing) and dropped out (tensor 5, index ((b*h_c + m)*N + i)*N + j):
// P~ = P·m_i·keep. probs keeps P; the contexts use P~ and the backward recomputes it from the
// mask [T, B, N] and the hash. Variant A binds the mask too and ignores it.

//#include common

struct Params {
    batch: u32, n: u32, heads: u32, dk: u32,
    dv: u32, w: u32, t: u32, plane: u32,
    inv_sqrt_dk: f32, variant: u32, seed: u32, step: u32,
    threshold: u32, scale: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;
@group(0) @binding(3) var<storage, read_write> ctx: array<f32>;
// Backward.
@group(0) @binding(4) var<storage, read> probs_in: array<f32>;
@group(0) @binding(5) var<storage, read> dctx: array<f32>;
@group(0) @binding(6) var<storage, read_write> ds: array<f32>;
@group(0) @binding(7) var<storage, read> ds_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(9) var<storage, read> mask: array<f32>;

const WG: u32 = 64u;
// Mechanisms at most (checked on the host).
const MAX_N: u32 = 64u;

// (b, head, i) of this thread, or false past the end.
fn triple(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, out: ptr<function, vec3<u32>>) -> bool {
    let flat = (wid.x + wid.y * nwg.x) * WG + lid;
    if (flat >= p.batch * p.heads * p.n) {
        return false;
    }
    *out = vec3<u32>(flat / (p.heads * p.n), (flat / p.n) % p.heads, flat % p.n);
    return true;
}

// Index of element c of row (b, i) in plane s at this step.
fn at(s: u32, b: u32, i: u32, c: u32) -> u32 {
    return s * p.plane + ((p.t * p.batch + b) * p.n + i) * p.w + c;
}

fn prob_index(b: u32, m: u32, i: u32, j: u32) -> u32 {
    return (((p.t * p.batch + b) * p.heads + m) * p.n + i) * p.n + j;
}

const DROPOUT_COMM_PROBS: u32 = 5u;

// Variant D's factor of P_ij in P~: m_i·keep_ij (1 in variant A).
fn row_weight(b: u32, m: u32, i: u32, j: u32) -> f32 {
    if (p.variant == 0u) {
        return 1.0;
    }
    let keep = dropout_factor(p.seed, p.step, DROPOUT_COMM_PROBS, ((b * p.heads + m) * p.n + i) * p.n + j,
                              p.threshold, p.scale);
    return mask[(p.t * p.batch + b) * p.n + i] * keep;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    var x: vec3<u32>;
    if (!triple(wid, nwg, lid, &x)) {
        return;
    }
    let b = x.x;
    let m = x.y;
    let i = x.z;
    var s: array<f32, MAX_N>;
    var top = -3.0e38;
    for (var j = 0u; j < p.n; j++) {
        var acc = 0.0;
        for (var c = 0u; c < p.dk; c++) {
            acc += qkv[at(0u, b, i, m * p.dk + c)] * qkv[at(1u, b, j, m * p.dk + c)];
        }
        s[j] = acc * p.inv_sqrt_dk;
        top = max(top, s[j]);
    }
    var total = 0.0;
    for (var j = 0u; j < p.n; j++) {
        s[j] = exp(s[j] - top);
        total += s[j];
    }
    for (var j = 0u; j < p.n; j++) {
        s[j] = s[j] / total;
        probs[prob_index(b, m, i, j)] = s[j];
        s[j] = s[j] * row_weight(b, m, i, j);
    }
    let ctx_base = ((p.t * p.batch + b) * p.n + i) * p.heads * p.dv + m * p.dv;
    for (var c = 0u; c < p.dv; c++) {
        var acc = 0.0;
        for (var j = 0u; j < p.n; j++) {
            acc += s[j] * qkv[at(2u, b, j, m * p.dv + c)];
        }
        ctx[ctx_base + c] = acc;
    }
}

// Row i of each head: dS_i = P_i ⊙ (dP_i − <P_i, dP_i>) / sqrt(d_kc), with dP_ij = dctx_i·V_j;
// then dQ_i = Σ_j dS_ij K_j.
@compute @workgroup_size(WG)
fn backward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    var x: vec3<u32>;
    if (!triple(wid, nwg, lid, &x)) {
        return;
    }
    let b = x.x;
    let m = x.y;
    let i = x.z;
    let dctx_base = (b * p.n + i) * p.heads * p.dv + m * p.dv;
    var dp: array<f32, MAX_N>;
    var dot = 0.0;
    for (var j = 0u; j < p.n; j++) {
        var acc = 0.0;
        for (var c = 0u; c < p.dv; c++) {
            acc += dctx[dctx_base + c] * qkv[at(2u, b, j, m * p.dv + c)];
        }
        acc = acc * row_weight(b, m, i, j);
        dp[j] = acc;
        dot += acc * probs_in[prob_index(b, m, i, j)];
    }
    let ds_base = ((b * p.heads + m) * p.n + i) * p.n;
    for (var j = 0u; j < p.n; j++) {
        let d = probs_in[prob_index(b, m, i, j)] * (dp[j] - dot) * p.inv_sqrt_dk;
        dp[j] = d;
        ds[ds_base + j] = d;
    }
    for (var c = 0u; c < p.dk; c++) {
        var acc = 0.0;
        for (var j = 0u; j < p.n; j++) {
            acc += dp[j] * qkv[at(1u, b, j, m * p.dk + c)];
        }
        dqkv[at(0u, b, i, m * p.dk + c)] = acc;
    }
}

// Column j of each head: dK_j = Σ_i dS_ij Q_i and dV_j = Σ_i P_ij dctx_i (P~ in variant D).
@compute @workgroup_size(WG)
fn backward_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    var x: vec3<u32>;
    if (!triple(wid, nwg, lid, &x)) {
        return;
    }
    let b = x.x;
    let m = x.y;
    let j = x.z;
    for (var c = 0u; c < p.dk; c++) {
        var acc = 0.0;
        for (var i = 0u; i < p.n; i++) {
            acc += ds_in[((b * p.heads + m) * p.n + i) * p.n + j] * qkv[at(0u, b, i, m * p.dk + c)];
        }
        dqkv[at(1u, b, j, m * p.dk + c)] = acc;
    }
    for (var c = 0u; c < p.dv; c++) {
        var acc = 0.0;
        for (var i = 0u; i < p.n; i++) {
            let pt = probs_in[prob_index(b, m, i, j)] * row_weight(b, m, i, j);
            acc += pt * dctx[(b * p.n + i) * p.heads * p.dv + m * p.dv + c];
        }
        dqkv[at(2u, b, j, m * p.dv + c)] = acc;
    }
}
