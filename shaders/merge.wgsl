// The end of a RIMs step (docs/spec.md §1.5-1.6): the communication output's residual
// ĥ = h' + σ(gate)⊙tanh(dropout(o)), then the merge that keeps inactive mechanisms' state:
// h_t = m⊙ĥ + (1−m)⊙h_{t-1} and, for LSTM, c_t = m⊙c' + (1−m)⊙c_{t-1}.
// One thread per (batch row, mechanism, hidden unit).
// Layouts: og [T, B*N, 2, H] (o and gate pre-activations, one matmul with both weights);
// hp, cp [T, B, N, H]; mask [T, B, N]; hs, cs [T+1, B, N*H]; tg [T, B*N, 2, H] (saved
// tanh(o) and γ). Backward: dh_out [T, B, N*H] (the loss's gradient of each step's h_t);
// dh, dc [B, N*H] (carried from the step after); dres [2, B, N, H] (into h' and c');
// dog [T, B*N, 2, H] (into o and gate pre-activations, saved for the weight gradients).
// Variant D (variant = 1, docs/spec.md §3): ĥ = h' + o, no gate, tanh or dropout; og and dog
// are [T, B*N, H] (o alone) and tg is neither read nor written.

//#include common

struct Params {
    batch: u32, n: u32, h: u32, t: u32,
    seed: u32, step: u32, threshold: u32, scale: f32,
    variant: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> og: array<f32>;
@group(0) @binding(2) var<storage, read> hp: array<f32>;
@group(0) @binding(3) var<storage, read> cp: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> hs: array<f32>;
@group(0) @binding(6) var<storage, read_write> cs: array<f32>;
@group(0) @binding(7) var<storage, read_write> tg: array<f32>;
// Backward.
@group(0) @binding(8) var<storage, read> dh_out: array<f32>;
@group(0) @binding(9) var<storage, read> tg_in: array<f32>;
@group(0) @binding(10) var<storage, read_write> dh: array<f32>;
@group(0) @binding(11) var<storage, read_write> dc: array<f32>;
@group(0) @binding(12) var<storage, read_write> dres: array<f32>;
@group(0) @binding(13) var<storage, read_write> dog: array<f32>;

const WG: u32 = 64u;

struct Unit {
    ok: bool,
    flat: u32,    // (b, i, e) in [B, N, H] = (b, state column) in [B, N*H]
    pair: u32,    // index of o in a [B*N, 2, H] step (gate at + H)
    m: f32,
    keep: f32,    // dropout factor of o
}

fn unit(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> Unit {
    var u: Unit;
    let flat = (wid.x + wid.y * nwg.x) * WG + lid;
    let nh = p.n * p.h;
    u.ok = flat < p.batch * nh;
    if (!u.ok) {
        return u;
    }
    let row = flat / p.h;  // b * N + i
    let e = flat % p.h;
    u.flat = flat;
    u.pair = row * 2u * p.h + e;
    u.m = mask[p.t * p.batch * p.n + row];
    u.keep = dropout_factor(p.seed, p.step, 1u, flat, p.threshold, p.scale);
    return u;
}

// ĥ for one unit; saves tanh(o) and γ.
fn residual(u: Unit) -> f32 {
    let bnh = p.batch * p.n * p.h;
    if (p.variant == 1u) {
        return hp[p.t * bnh + u.flat] + og[p.t * bnh + u.flat];
    }
    let base = p.t * bnh * 2u + u.pair;
    let th = safe_tanh(og[base] * u.keep);
    let gamma = sigmoid(og[base + p.h]);
    tg[base] = th;
    tg[base + p.h] = gamma;
    return hp[p.t * bnh + u.flat] + gamma * th;
}

@compute @workgroup_size(WG)
fn forward_lstm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let u = unit(wid, nwg, lid);
    if (!u.ok) {
        return;
    }
    let bnh = p.batch * p.n * p.h;
    let h_hat = residual(u);
    let prev = p.t * bnh + u.flat;
    let next = prev + bnh;
    hs[next] = u.m * h_hat + (1.0 - u.m) * hs[prev];
    cs[next] = u.m * cp[p.t * bnh + u.flat] + (1.0 - u.m) * cs[prev];
}

@compute @workgroup_size(WG)
fn forward_gru(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let u = unit(wid, nwg, lid);
    if (!u.ok) {
        return;
    }
    let bnh = p.batch * p.n * p.h;
    let h_hat = residual(u);
    let prev = p.t * bnh + u.flat;
    hs[prev + bnh] = u.m * h_hat + (1.0 - u.m) * hs[prev];
}

// Gradient into h' (residual), o and the gate, and the copy path to h_{t-1}.
fn residual_backward(u: Unit) {
    let bnh = p.batch * p.n * p.h;
    let grad = dh[u.flat] + dh_out[p.t * bnh + u.flat];
    if (p.variant == 1u) {
        let at = p.t * bnh + u.flat;
        if (u.m > 0.5) {
            dog[at] = grad;
            dres[u.flat] = grad;
            dh[u.flat] = 0.0;
        } else {
            dog[at] = 0.0;
            dres[u.flat] = 0.0;
            dh[u.flat] = grad;
        }
        return;
    }
    let base = p.t * bnh * 2u + u.pair;
    if (u.m > 0.5) {
        let th = tg_in[base];
        let gamma = tg_in[base + p.h];
        dog[base] = grad * gamma * (1.0 - th * th) * u.keep;
        dog[base + p.h] = grad * th * gamma * (1.0 - gamma);
        dres[u.flat] = grad;
        dh[u.flat] = 0.0;
    } else {
        dog[base] = 0.0;
        dog[base + p.h] = 0.0;
        dres[u.flat] = 0.0;
        dh[u.flat] = grad;
    }
}

@compute @workgroup_size(WG)
fn backward_lstm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let u = unit(wid, nwg, lid);
    if (!u.ok) {
        return;
    }
    residual_backward(u);
    let bnh = p.batch * p.n * p.h;
    // dc' = m·dc_t; the copy path keeps (1−m)·dc_t for c_{t-1}.
    let g = dc[u.flat];
    dres[bnh + u.flat] = u.m * g;
    dc[u.flat] = (1.0 - u.m) * g;
}

@compute @workgroup_size(WG)
fn backward_gru(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let u = unit(wid, nwg, lid);
    if (!u.ok) {
        return;
    }
    residual_backward(u);
}
