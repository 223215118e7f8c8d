// RIMs input attention (docs/spec.md §1.1-1.3, variant A, h_in heads), fused with the queries
// and the top-k mask: one workgroup per batch row does, for time step t,
//   q_i = h_{t-1,i}·in_q_i;  s_i^e = q_i^e·k^e / sqrt(d_k);  α_i^e = σ(s_i^e)
//   rank by mean_e s_i^e, the k largest active (ties: lower index), or a caller's mask;
//   u_i[e*d_vin + a] = α_i^e · v^e[a] · dropout.
// The null slot has a zero key and value, so its score is 0 and it contributes nothing to u.
// Layouts (row-major): hs [T+1, B, N*H] (h_t at t+1), kv [T, B, h_in*d_k + A] (k | v for each
// x_t, one matmul before the time loop), q [T, B, N, h_in*d_k], alpha [T, B, N, h_in],
// mask [T, B, N], u [T, B, N, A].
// Variant D (docs/spec.md §3) has its own entry points, forward_dido and backward_dido, at the
// end of the file; their layouts are described there.

//#include common

struct Params {
    batch: u32, n: u32, h: u32, heads: u32,
    dk: u32, dv: u32, k_active: u32, t: u32,
    use_override: u32, seed: u32, step: u32, threshold: u32,
    scale: f32, inv_sqrt_dk: f32, inv_heads: f32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> hs: array<f32>;
@group(0) @binding(2) var<storage, read> in_q: array<f32>;
@group(0) @binding(3) var<storage, read> kv: array<f32>;
@group(0) @binding(4) var<storage, read> mask_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> q: array<f32>;
@group(0) @binding(6) var<storage, read_write> alpha: array<f32>;
@group(0) @binding(7) var<storage, read_write> mask: array<f32>;
@group(0) @binding(8) var<storage, read_write> u: array<f32>;
// Backward.
@group(0) @binding(9) var<storage, read> du: array<f32>;
@group(0) @binding(10) var<storage, read> q_in: array<f32>;
@group(0) @binding(11) var<storage, read> alpha_in: array<f32>;
@group(0) @binding(12) var<storage, read> mask_saved: array<f32>;
@group(0) @binding(13) var<storage, read_write> dq: array<f32>;
@group(0) @binding(14) var<storage, read_write> dkv: array<f32>;

const WG: u32 = 64u;
// Scores of one row: N * h_in at most (checked on the host).
const MAX_SCORES: u32 = 256u;

var<workgroup> scores: array<f32, MAX_SCORES>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    let n = p.n;
    let wq = p.heads * p.dk;
    let a_len = p.heads * p.dv;
    let row = p.t * p.batch + b;
    let h_base = row * n * p.h;       // h_{t-1} is hs[t]
    let q_base = row * n * wq;
    let kv_base = row * (wq + a_len);
    // 1. Queries of every mechanism.
    for (var o = lid; o < n * wq; o += WG) {
        let i = o / wq;
        let c = o % wq;
        var s = 0.0;
        for (var r = 0u; r < p.h; r++) {
            s += hs[h_base + i * p.h + r] * in_q[(i * p.h + r) * wq + c];
        }
        q[q_base + o] = s;
    }
    storageBarrier();
    workgroupBarrier();
    // 2. Scores against the input's key, per head; α is the softmax weight of the input slot.
    for (var o = lid; o < n * p.heads; o += WG) {
        let i = o / p.heads;
        let e = o % p.heads;
        var s = 0.0;
        for (var c = 0u; c < p.dk; c++) {
            s += q[q_base + i * wq + e * p.dk + c] * kv[kv_base + e * p.dk + c];
        }
        s *= p.inv_sqrt_dk;
        scores[o] = s;
        alpha[row * n * p.heads + o] = sigmoid(s);
    }
    workgroupBarrier();
    // 3. The mask: the k mechanisms whose mean score (s_x - s_null, s_null = 0) is largest.
    for (var i = lid; i < n; i += WG) {
        var m = 0.0;
        if (p.use_override != 0u) {
            m = select(0.0, 1.0, mask_in[row * n + i] > 0.5);
        } else {
            var ri = 0.0;
            for (var e = 0u; e < p.heads; e++) {
                ri += scores[i * p.heads + e];
            }
            var rank = 0u;
            for (var j = 0u; j < n; j++) {
                var rj = 0.0;
                for (var e = 0u; e < p.heads; e++) {
                    rj += scores[j * p.heads + e];
                }
                if (rj > ri || (rj == ri && j < i)) {
                    rank += 1u;
                }
            }
            m = select(0.0, 1.0, rank < p.k_active);
        }
        mask[row * n + i] = m;
    }
    // 4. Attended values for every mechanism, active or not, with dropout.
    for (var o = lid; o < n * a_len; o += WG) {
        let i = o / a_len;
        let col = o % a_len;
        let e = col / p.dv;
        let keep = dropout_factor(p.seed, p.step, 0u, (b * n + i) * a_len + col, p.threshold, p.scale);
        u[row * n * a_len + o] = sigmoid(scores[i * p.heads + e]) * kv[kv_base + wq + col] * keep;
    }
}

// Backward of one step, one workgroup per batch row. du is this step's gradient of u
// [B, N, A]; inactive mechanisms have du = 0 exactly and are skipped. Writes dq [T, B, N, wq]
// and d(k | v) [T, B, wq + A] for the weight gradients after the time loop.
@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    let n = p.n;
    let wq = p.heads * p.dk;
    let a_len = p.heads * p.dv;
    let row = p.t * p.batch + b;
    let q_base = row * n * wq;
    let kv_base = row * (wq + a_len);
    let du_base = b * n * a_len;
    // 1. ds = α(1-α)·<du', v> per mechanism and head (du' = du with dropout applied).
    for (var o = lid; o < n * p.heads; o += WG) {
        let i = o / p.heads;
        let e = o % p.heads;
        var ds = 0.0;
        if (mask_saved[row * n + i] > 0.5) {
            var da = 0.0;
            for (var a = 0u; a < p.dv; a++) {
                let col = e * p.dv + a;
                let keep = dropout_factor(p.seed, p.step, 0u, (b * n + i) * a_len + col, p.threshold, p.scale);
                da += du[du_base + i * a_len + col] * keep * kv[kv_base + wq + col];
            }
            let al = alpha_in[row * n * p.heads + o];
            ds = al * (1.0 - al) * da;
        }
        scores[o] = ds;
    }
    workgroupBarrier();
    // 2. dv = Σ_i α_i du'_i.
    for (var col = lid; col < a_len; col += WG) {
        let e = col / p.dv;
        var s = 0.0;
        for (var i = 0u; i < n; i++) {
            let keep = dropout_factor(p.seed, p.step, 0u, (b * n + i) * a_len + col, p.threshold, p.scale);
            s += alpha_in[row * n * p.heads + i * p.heads + e] * du[du_base + i * a_len + col] * keep;
        }
        dkv[kv_base + wq + col] = s;
    }
    // 3. dq_i = ds_i k / sqrt(d_k).
    for (var o = lid; o < n * wq; o += WG) {
        let i = o / wq;
        let c = o % wq;
        dq[q_base + o] = scores[i * p.heads + c / p.dk] * kv[kv_base + c] * p.inv_sqrt_dk;
    }
    // 4. dk = Σ_i ds_i q_i / sqrt(d_k).
    for (var c = lid; c < wq; c += WG) {
        var s = 0.0;
        for (var i = 0u; i < n; i++) {
            s += scores[i * p.heads + c / p.dk] * q_in[q_base + i * wq + c];
        }
        dkv[kv_base + c] = s * p.inv_sqrt_dk;
    }
}

// ---- Variant D (dido1998's RIMCell, docs/spec.md §3) ------------------------------------------
// One workgroup per batch row, for time step t:
//   k_x = x·W_k + b_k, k_null = b_k; v likewise (the null input is zeros through a biased Linear);
//   s_x[i] = mean_e q_i^e·k_x^e / sqrt(d_k), s_null[i] likewise with k_null;
//   the k largest raw s_x are active (ties: lower index), or a caller's mask;
//   α = softmax(s_x, s_null), dropout on the two probabilities (tensor 4, index (b*N + i)*2 + slot);
//   u_i = m_i·(α'_x·mean_e v_x^e + α'_null·mean_e v_null^e): inactive mechanisms get zero input.
// Layouts: kv [1 + T*B, h_in*d_k + h_in*d_vin]: row 0 is the null input's (b_k | b_v), row
// 1 + t*B + b is x_t's; alpha [T, B, N] (α_x before dropout); u [T, B, N, d_vin]; q and mask as
// in variant A. Backward: du [B, N, d_vin]; dkv [T, B, h_in*d_k + 2*h_in*d_vin] = (dk_x | dv_x |
// dv_null), each head's value column getting 1/h_in of the mean's gradient. The key bias's
// gradient is zero (the softmax sees s_x − s_null, from which b_k cancels), so no dk_null.

const DROPOUT_IN_PROBS: u32 = 4u;

// Row t*B + b's (x) and the null row's offsets into kv.
fn dido_kv_base(row: u32, wq: u32, wv: u32) -> u32 {
    return (1u + row) * (wq + wv);
}

@compute @workgroup_size(WG)
fn forward_dido(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    let n = p.n;
    let wq = p.heads * p.dk;
    let wv = p.heads * p.dv;
    let row = p.t * p.batch + b;
    let h_base = row * n * p.h;
    let q_base = row * n * wq;
    let kv_base = dido_kv_base(row, wq, wv);
    let scale = p.inv_sqrt_dk * p.inv_heads;
    // 1. Queries of every mechanism.
    for (var o = lid; o < n * wq; o += WG) {
        let i = o / wq;
        let c = o % wq;
        var s = 0.0;
        for (var r = 0u; r < p.h; r++) {
            s += hs[h_base + i * p.h + r] * in_q[(i * p.h + r) * wq + c];
        }
        q[q_base + o] = s;
    }
    storageBarrier();
    workgroupBarrier();
    // 2. Head-averaged scores on x (scores[i]) and on the null input (scores[n + i]).
    for (var i = lid; i < n; i += WG) {
        var sx = 0.0;
        var sn = 0.0;
        for (var c = 0u; c < wq; c++) {
            let qc = q[q_base + i * wq + c];
            sx += qc * kv[kv_base + c];
            sn += qc * kv[c];
        }
        sx *= scale;
        sn *= scale;
        scores[i] = sx;
        scores[n + i] = sn;
        alpha[row * n + i] = sigmoid(sx - sn);
    }
    workgroupBarrier();
    // 3. The mask: the k largest raw s_x (scores[2n + i] keeps it for step 4).
    for (var i = lid; i < n; i += WG) {
        var m = 0.0;
        if (p.use_override != 0u) {
            m = select(0.0, 1.0, mask_in[row * n + i] > 0.5);
        } else {
            let ri = scores[i];
            var rank = 0u;
            for (var j = 0u; j < n; j++) {
                let rj = scores[j];
                if (rj > ri || (rj == ri && j < i)) {
                    rank += 1u;
                }
            }
            m = select(0.0, 1.0, rank < p.k_active);
        }
        mask[row * n + i] = m;
        scores[2u * n + i] = m;
    }
    workgroupBarrier();
    // 4. u_i = m_i·(α'_x v̄_x + α'_null v̄_null).
    for (var o = lid; o < n * p.dv; o += WG) {
        let i = o / p.dv;
        let c = o % p.dv;
        var vx = 0.0;
        var vn = 0.0;
        for (var e = 0u; e < p.heads; e++) {
            vx += kv[kv_base + wq + e * p.dv + c];
            vn += kv[wq + e * p.dv + c];
        }
        vx *= p.inv_heads;
        vn *= p.inv_heads;
        let ax = sigmoid(scores[i] - scores[n + i]);
        let kx = dropout_factor(p.seed, p.step, DROPOUT_IN_PROBS, (b * n + i) * 2u, p.threshold, p.scale);
        let kn = dropout_factor(p.seed, p.step, DROPOUT_IN_PROBS, (b * n + i) * 2u + 1u, p.threshold, p.scale);
        u[row * n * p.dv + o] = scores[2u * n + i] * (ax * kx * vx + (1.0 - ax) * kn * vn);
    }
}

@compute @workgroup_size(WG)
fn backward_dido(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    let n = p.n;
    let wq = p.heads * p.dk;
    let wv = p.heads * p.dv;
    let row = p.t * p.batch + b;
    let q_base = row * n * wq;
    let kv_base = dido_kv_base(row, wq, wv);
    let dkv_base = row * (wq + 2u * wv);
    let du_base = b * n * p.dv;
    let scale = p.inv_sqrt_dk * p.inv_heads;
    // 1. Per active mechanism, the softmax's gradient: ds_x (scores[i]) and ds_null
    //    (scores[n + i]), from dα'_slot = m·keep_slot·<du_i, v̄_slot>.
    for (var i = lid; i < n; i += WG) {
        var dsx = 0.0;
        var dsn = 0.0;
        let m = mask_saved[row * n + i];
        if (m > 0.5) {
            var dax = 0.0;
            var dan = 0.0;
            for (var c = 0u; c < p.dv; c++) {
                var vx = 0.0;
                var vn = 0.0;
                for (var e = 0u; e < p.heads; e++) {
                    vx += kv[kv_base + wq + e * p.dv + c];
                    vn += kv[wq + e * p.dv + c];
                }
                let g = du[du_base + i * p.dv + c];
                dax += g * (vx * p.inv_heads);
                dan += g * (vn * p.inv_heads);
            }
            let kx = dropout_factor(p.seed, p.step, DROPOUT_IN_PROBS, (b * n + i) * 2u, p.threshold, p.scale);
            let kn = dropout_factor(p.seed, p.step, DROPOUT_IN_PROBS, (b * n + i) * 2u + 1u, p.threshold, p.scale);
            dax *= m * kx;
            dan *= m * kn;
            let ax = alpha_in[row * n + i];
            let an = 1.0 - ax;
            let dot = ax * dax + an * dan;
            dsx = ax * (dax - dot);
            dsn = an * (dan - dot);
        }
        scores[i] = dsx;
        scores[n + i] = dsn;
    }
    workgroupBarrier();
    // 2. dv_x and dv_null for every head's column c: Σ_i α'_slot,i du_i[c] / h_in.
    for (var col = lid; col < wv; col += WG) {
        let c = col % p.dv;
        var sx = 0.0;
        var sn = 0.0;
        for (var i = 0u; i < n; i++) {
            let m = mask_saved[row * n + i];
            let g = du[du_base + i * p.dv + c];
            let ax = alpha_in[row * n + i];
            let kx = dropout_factor(p.seed, p.step, DROPOUT_IN_PROBS, (b * n + i) * 2u, p.threshold, p.scale);
            let kn = dropout_factor(p.seed, p.step, DROPOUT_IN_PROBS, (b * n + i) * 2u + 1u, p.threshold, p.scale);
            sx += ax * (m * kx) * g;
            sn += (1.0 - ax) * (m * kn) * g;
        }
        dkv[dkv_base + wq + col] = sx * p.inv_heads;
        dkv[dkv_base + wq + wv + col] = sn * p.inv_heads;
    }
    // 3. dq_i = (ds_x k_x + ds_null k_null)·scale.
    for (var o = lid; o < n * wq; o += WG) {
        let i = o / wq;
        let c = o % wq;
        dq[q_base + o] = (scores[i] * kv[kv_base + c] + scores[n + i] * kv[c]) * scale;
    }
    // 4. dk_x = Σ_i ds_x,i q_i·scale.
    for (var c = lid; c < wq; c += WG) {
        var s = 0.0;
        for (var i = 0u; i < n; i++) {
            s += scores[i] * q_in[q_base + i * wq + c];
        }
        dkv[dkv_base + c] = s * scale;
    }
}
