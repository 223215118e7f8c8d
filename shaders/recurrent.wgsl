// Dense LSTM and GRU sequence layers (the paper's baselines): the gates of one time step,
// forward and backward, after the products. One thread per (batch row, hidden unit).
// Gate blocks of H columns: LSTM [i, f, g, o], GRU [r, z, n] (PyTorch's order).
// Layouts: gates [T, B, G*H]: x·Wx + bx for every step (LSTM: plus the step's h·Wh + bh,
// accumulated by its product), overwritten by the step's post-activation gates;
// gh [T, B, G*H] (GRU): h·Wh + bh; hs, cs [T+1, B, H] (the state before step t at index t).
// Backward: dy [T, B, H] the incoming gradient of every h_t; dh, dc [B, H] the gradients carried
// to the previous state; dz [T, B, G*H] (dzx; for LSTM also dzh, which is equal);
// dzh [T, B, G*H] (GRU only: a buffer of its own, so each stays under the binding-size limit).

//#include common
//#include gates

struct Params {
    batch: u32, h: u32, t: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Forward.
@group(0) @binding(1) var<storage, read_write> gates: array<f32>;
@group(0) @binding(2) var<storage, read> gh: array<f32>;
@group(0) @binding(3) var<storage, read_write> hs: array<f32>;
@group(0) @binding(4) var<storage, read_write> cs: array<f32>;
// Backward.
@group(0) @binding(5) var<storage, read> act: array<f32>;
@group(0) @binding(6) var<storage, read> gh_in: array<f32>;
@group(0) @binding(7) var<storage, read> hs_in: array<f32>;
@group(0) @binding(8) var<storage, read> cs_in: array<f32>;
@group(0) @binding(9) var<storage, read> dy: array<f32>;
@group(0) @binding(10) var<storage, read_write> dh: array<f32>;
@group(0) @binding(11) var<storage, read_write> dc: array<f32>;
@group(0) @binding(12) var<storage, read_write> dz: array<f32>;
@group(0) @binding(13) var<storage, read_write> dzh: array<f32>;

const WG: u32 = 64u;

struct Site {
    ok: bool,
    unit: u32,  // index into a [B, H] state (add t*B*H for step t)
    gate: u32,  // index of gate block 0 of this unit at step t in a [T, B, G*H] tensor
}

fn site(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, g: u32) -> Site {
    var s: Site;
    let flat = (wid.x + wid.y * nwg.x) * WG + lid;
    s.ok = flat < p.batch * p.h;
    s.unit = flat;
    let b = flat / p.h;
    let r = flat % p.h;
    s.gate = (p.t * p.batch + b) * g * p.h + r;
    return s;
}

@compute @workgroup_size(WG)
fn lstm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let s = site(wid, nwg, lid, 4u);
    if (!s.ok) {
        return;
    }
    let h = p.h;
    let bh = p.batch * p.h;
    let g0 = s.gate;
    let u = lstm_step(gates[g0], gates[g0 + h], gates[g0 + 2u * h], gates[g0 + 3u * h],
                      cs[p.t * bh + s.unit]);
    gates[g0] = u.ig;
    gates[g0 + h] = u.fg;
    gates[g0 + 2u * h] = u.gg;
    gates[g0 + 3u * h] = u.og;
    cs[(p.t + 1u) * bh + s.unit] = u.c;
    hs[(p.t + 1u) * bh + s.unit] = u.h;
}

@compute @workgroup_size(WG)
fn gru_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let s = site(wid, nwg, lid, 3u);
    if (!s.ok) {
        return;
    }
    let h = p.h;
    let bh = p.batch * p.h;
    let g0 = s.gate;
    let u = gru_step(gates[g0], gates[g0 + h], gates[g0 + 2u * h], gh[g0], gh[g0 + h], gh[g0 + 2u * h],
                     hs[p.t * bh + s.unit]);
    gates[g0] = u.rg;
    gates[g0 + h] = u.zg;
    gates[g0 + 2u * h] = u.ng;
    hs[(p.t + 1u) * bh + s.unit] = u.h;
}

// dz of step t from the gradient of h_t (dy plus the carried dh) and of c_t (the carried dc);
// dc becomes the gradient of c_{t-1}. The step's product then writes dh = dz·Whᵀ.
@compute @workgroup_size(WG)
fn lstm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let s = site(wid, nwg, lid, 4u);
    if (!s.ok) {
        return;
    }
    let h = p.h;
    let bh = p.batch * p.h;
    let g0 = s.gate;
    let dh_new = dy[p.t * bh + s.unit] + dh[s.unit];
    let d = lstm_grads(dh_new, dc[s.unit], act[g0], act[g0 + h], act[g0 + 2u * h], act[g0 + 3u * h],
                       cs_in[(p.t + 1u) * bh + s.unit], cs_in[p.t * bh + s.unit]);
    dz[g0] = d.di;
    dz[g0 + h] = d.df;
    dz[g0 + 2u * h] = d.dg;
    dz[g0 + 3u * h] = d.d_o;
    dc[s.unit] = d.dc_prev;
}

// dzx and dzh of step t (they differ in the n block: dzh_n = dzx_n ⊙ r); dh becomes the direct
// part of the gradient of h_{t-1} (dh_t ⊙ z), to which the step's product adds dzh·Whᵀ.
@compute @workgroup_size(WG)
fn gru_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let s = site(wid, nwg, lid, 3u);
    if (!s.ok) {
        return;
    }
    let h = p.h;
    let bh = p.batch * p.h;
    let g0 = s.gate;
    let dh_new = dy[p.t * bh + s.unit] + dh[s.unit];
    let rg = act[g0];
    let d = gru_grads(dh_new, rg, act[g0 + h], act[g0 + 2u * h], gh_in[g0 + 2u * h], hs_in[p.t * bh + s.unit]);
    dz[g0] = d.dr;
    dz[g0 + h] = d.dz;
    dz[g0 + 2u * h] = d.dn;
    dzh[g0] = d.dr;
    dzh[g0 + h] = d.dz;
    dzh[g0 + 2u * h] = d.dn * rg;
    dh[s.unit] = d.dh_prev;
}
