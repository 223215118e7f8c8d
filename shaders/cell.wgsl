// The mechanisms' recurrent cells (docs/spec.md §1.4): the gates of every mechanism's LSTM or
// GRU, after the grouped matmuls zx = u·W_x + b_x and zh = h·W_h + b_h. One thread per
// (batch row, mechanism, hidden unit). All N mechanisms are computed; the merge decides which
// results are kept.
// Layouts: zx, zh, act [T, B, N, G*H] (gate blocks of H: LSTM [i, f, g, o], GRU [r, z, n]);
// hs, cs [T+1, B, N*H] (state before step t at index t); hp, cp [T, B, N, H] (h', c').
// Backward: mask [T, B, N]; dres [3, B, N, H] (the merge's gradient into h' and c', then
// communication's into h'; one buffer so that GRU's backward stays within 8 storage bindings);
// dz [T, B, N, G*H] (LSTM: dzx = dzh, so one buffer serves both products); GRU: dzx and dzh
// [T, B, N, G*H] each (they differ in the n block). Separate buffers, not planes of one, keep
// each under the device's binding-size limit at paper size.
// dh, dc [B, N*H] (the gradient flowing to the previous state, accumulated).

//#include common
//#include gates

struct Params {
    batch: u32, n: u32, h: u32, t: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> zx: array<f32>;
@group(0) @binding(2) var<storage, read> zh: array<f32>;
@group(0) @binding(3) var<storage, read> hs: array<f32>;
@group(0) @binding(4) var<storage, read> cs: array<f32>;
@group(0) @binding(5) var<storage, read_write> act: array<f32>;
@group(0) @binding(6) var<storage, read_write> hp: array<f32>;
@group(0) @binding(7) var<storage, read_write> cp: array<f32>;
// Backward.
@group(0) @binding(8) var<storage, read> act_in: array<f32>;
@group(0) @binding(9) var<storage, read> cp_in: array<f32>;
@group(0) @binding(10) var<storage, read> mask: array<f32>;
@group(0) @binding(11) var<storage, read> dres: array<f32>;
@group(0) @binding(12) var<storage, read_write> dz: array<f32>;
@group(0) @binding(13) var<storage, read_write> dzh: array<f32>;
@group(0) @binding(14) var<storage, read_write> dcarry: array<f32>;

const WG: u32 = 64u;

// This thread's unit: row b·N + i of the B·N mechanism rows, G gate blocks.
fn site(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, gates: u32) -> Unit {
    return unit_of(wid, nwg, lid, WG, p.batch * p.n, p.h, gates, p.t);
}

@compute @workgroup_size(WG)
fn lstm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let s = site(wid, nwg, lid, 4u);
    if (!s.ok) {
        return;
    }
    let bnh = p.batch * p.n * p.h;
    let g0 = s.gate;
    let h = p.h;
    let zx4 = vec4<f32>(zx[g0], zx[g0 + h], zx[g0 + 2u * h], zx[g0 + 3u * h]);
    let zh4 = vec4<f32>(zh[g0], zh[g0 + h], zh[g0 + 2u * h], zh[g0 + 3u * h]);
    let u = lstm_step(zx4 + zh4, cs[p.t * bnh + s.unit]);
    for (var g = 0u; g < 4u; g++) {
        act[g0 + g * h] = u.act[g];
    }
    cp[p.t * bnh + s.unit] = u.c;
    hp[p.t * bnh + s.unit] = u.h;
}

@compute @workgroup_size(WG)
fn gru_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let s = site(wid, nwg, lid, 3u);
    if (!s.ok) {
        return;
    }
    let bnh = p.batch * p.n * p.h;
    let g0 = s.gate;
    let h = p.h;
    let u = gru_step(vec3<f32>(zx[g0], zx[g0 + h], zx[g0 + 2u * h]),
                     vec3<f32>(zh[g0], zh[g0 + h], zh[g0 + 2u * h]), hs[p.t * bnh + s.unit]);
    for (var g = 0u; g < 3u; g++) {
        act[g0 + g * h] = u.act[g];
    }
    hp[p.t * bnh + s.unit] = u.h;
}

// dh' = the merge's residual gradient + communication's (already blocked for inactive
// mechanisms: an inactive mechanism gets no gradient here at all, so it is skipped).
@compute @workgroup_size(WG)
fn lstm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let s = site(wid, nwg, lid, 4u);
    if (!s.ok) {
        return;
    }
    let bnh = p.batch * p.n * p.h;
    let h = p.h;
    let g0 = s.gate;
    var d: LstmGrads;  // zero for an inactive mechanism
    if (!(mask[p.t * p.batch * p.n + s.row] < 0.5)) {
        let a = vec4<f32>(act_in[g0], act_in[g0 + h], act_in[g0 + 2u * h], act_in[g0 + 3u * h]);
        d = lstm_grads(dres[s.unit] + dres[2u * bnh + s.unit], dres[bnh + s.unit], a,
                       cp_in[p.t * bnh + s.unit], cs[p.t * bnh + s.unit]);
        dcarry[s.unit] += d.dc_prev;
    }
    for (var g = 0u; g < 4u; g++) {
        dz[g0 + g * h] = d.dz[g];
    }
}

@compute @workgroup_size(WG)
fn gru_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let s = site(wid, nwg, lid, 3u);
    if (!s.ok) {
        return;
    }
    let bnh = p.batch * p.n * p.h;
    let h = p.h;
    let g0 = s.gate;
    var d: GruGrads;  // zero for an inactive mechanism
    if (!(mask[p.t * p.batch * p.n + s.row] < 0.5)) {
        let a = vec3<f32>(act_in[g0], act_in[g0 + h], act_in[g0 + 2u * h]);
        d = gru_grads(dres[s.unit] + dres[2u * bnh + s.unit], a, zh[g0 + 2u * h],
                      hs[p.t * bnh + s.unit]);
        dcarry[s.unit] += d.dh_prev;
    }
    for (var g = 0u; g < 3u; g++) {
        dz[g0 + g * h] = d.dzx[g];
        dzh[g0 + g * h] = d.dzh[g];
    }
}
