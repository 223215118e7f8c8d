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

// This thread's unit: row b of the B rows, G gate blocks.
fn site(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, gates: u32) -> Unit {
    return unit_of(wid, nwg, lid, WG, p.batch, p.h, gates, p.t);
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
    let u = lstm_step(vec4<f32>(gates[g0], gates[g0 + h], gates[g0 + 2u * h], gates[g0 + 3u * h]),
                      cs[p.t * bh + s.unit]);
    for (var g = 0u; g < 4u; g++) {
        gates[g0 + g * h] = u.act[g];
    }
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
    let u = gru_step(vec3<f32>(gates[g0], gates[g0 + h], gates[g0 + 2u * h]),
                     vec3<f32>(gh[g0], gh[g0 + h], gh[g0 + 2u * h]), hs[p.t * bh + s.unit]);
    for (var g = 0u; g < 3u; g++) {
        gates[g0 + g * h] = u.act[g];
    }
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
    let a = vec4<f32>(act[g0], act[g0 + h], act[g0 + 2u * h], act[g0 + 3u * h]);
    let d = lstm_grads(dy[p.t * bh + s.unit] + dh[s.unit], dc[s.unit], a,
                       cs_in[(p.t + 1u) * bh + s.unit], cs_in[p.t * bh + s.unit]);
    for (var g = 0u; g < 4u; g++) {
        dz[g0 + g * h] = d.dz[g];
    }
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
    let a = vec3<f32>(act[g0], act[g0 + h], act[g0 + 2u * h]);
    let d = gru_grads(dy[p.t * bh + s.unit] + dh[s.unit], a, gh_in[g0 + 2u * h],
                      hs_in[p.t * bh + s.unit]);
    for (var g = 0u; g < 3u; g++) {
        dz[g0 + g * h] = d.dzx[g];
        dzh[g0 + g * h] = d.dzh[g];
    }
    dh[s.unit] = d.dh_prev;
}
