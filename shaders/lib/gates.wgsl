// The LSTM and GRU gates, forward and derivatives, and where a thread's unit lies, shared by
// cell.wgsl (the mechanisms of RIMs: rows b·N + i) and recurrent.wgsl (the dense baselines:
// rows b), so the two cannot drift apart; pulled in with a line `//#include gates`. It
// includes common itself (sigmoid, safe_tanh); a shader that also includes common gets it once.
// Gate orders: LSTM [i, f, g, o] (PyTorch LSTMCell), GRU [r, z, n] (PyTorch GRUCell); a
// vector holds one unit's value of each gate block, component g for block g.
// Twin: src/kernels/gates.rs.

//#include common

// One thread's unit of a step: `rows` rows of H units, one thread per unit.
struct Unit {
    ok: bool,   // inside the rows·H units (threads past the end do nothing)
    row: u32,   // its row: b for a dense layer, b·N + i for the mechanisms
    unit: u32,  // index into a [rows, H] per-step tensor (add step·rows·H for a step)
    gate: u32,  // index of gate block 0 of this unit at step t in a [T, rows, G·H] tensor
}

// The unit of thread `lid` of workgroup `wid` (of `wg` threads, in a grid of `nwg`
// workgroups, device::grid) at step t, for G = `gates` gate blocks.
fn unit_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg: u32, rows: u32, h: u32, gates: u32,
           t: u32) -> Unit {
    var u: Unit;
    let flat = (wid.x + wid.y * nwg.x) * wg + lid;
    u.ok = flat < rows * h;
    u.row = flat / h;
    u.unit = flat;
    u.gate = (t * rows + u.row) * gates * h + flat % h;
    return u;
}

// One LSTM unit's step: the activations [i, f, g, o] (saved for the backward), c' and h'.
struct LstmStep {
    act: vec4<f32>,
    c: f32,
    h: f32,
}

// From the four pre-activations z (x·W_x + b_x + h·W_h + b_h, summed by the caller) and c.
fn lstm_step(z: vec4<f32>, c_prev: f32) -> LstmStep {
    var s: LstmStep;
    s.act = vec4<f32>(sigmoid(z.x), sigmoid(z.y), safe_tanh(z.z), sigmoid(z.w));
    s.c = s.act.y * c_prev + s.act.x * s.act.z;
    s.h = s.act.w * safe_tanh(s.c);
    return s;
}

// One GRU unit's step: the activations [r, z, n] (saved for the backward) and h'.
struct GruStep {
    act: vec3<f32>,
    h: f32,
}

// From the input side's pre-activations x = x·W_x + b_x [r, z, n], the recurrent side's
// hh = h·W_h + b_h [r, z, n] (kept apart: r gates only the recurrent n term) and h.
fn gru_step(x: vec3<f32>, hh: vec3<f32>, h_prev: f32) -> GruStep {
    var s: GruStep;
    let rg = sigmoid(x.x + hh.x);
    let zg = sigmoid(x.y + hh.y);
    let ng = safe_tanh(x.z + rg * hh.z);
    s.act = vec3<f32>(rg, zg, ng);
    s.h = (1.0 - zg) * ng + zg * h_prev;
    return s;
}

// Pre-activation gradients [i, f, g, o] of one LSTM unit (dzx = dzh), and the gradient
// flowing to c_{t-1}.
struct LstmGrads {
    dz: vec4<f32>,
    dc_prev: f32,
}

// From the gradients of h' and c', the saved activations (i, f, g, o after their
// nonlinearities), the new cell state c' and the previous one.
fn lstm_grads(dh: f32, dc: f32, act: vec4<f32>, c_new: f32, c_prev: f32) -> LstmGrads {
    var r: LstmGrads;
    let ig = act.x;
    let fg = act.y;
    let gg = act.z;
    let og = act.w;
    let tc = safe_tanh(c_new);
    let dc_tot = dc + dh * og * (1.0 - tc * tc);
    r.dz = vec4<f32>(dc_tot * gg * ig * (1.0 - ig), dc_tot * c_prev * fg * (1.0 - fg),
                     dc_tot * ig * (1.0 - gg * gg), dh * tc * og * (1.0 - og));
    r.dc_prev = dc_tot * fg;
    return r;
}

// Pre-activation gradients of one GRU unit: dzx for [r, z, n], and dzh, equal to dzx except
// in the n block, where it is dn · r. dh_prev is the direct part of the gradient of h_{t-1}.
struct GruGrads {
    dzx: vec3<f32>,
    dzh: vec3<f32>,
    dh_prev: f32,
}

// From the gradient of h', the saved activations [r, z, n], the recurrent n pre-activation
// gh_n = h·W_hn + b_hn, and the previous state.
fn gru_grads(dh: f32, act: vec3<f32>, gh_n: f32, h_prev: f32) -> GruGrads {
    var g: GruGrads;
    let rg = act.x;
    let zg = act.y;
    let ng = act.z;
    let dn = dh * (1.0 - zg) * (1.0 - ng * ng);
    let dz = dh * (h_prev - ng) * zg * (1.0 - zg);
    let dr = dn * gh_n * rg * (1.0 - rg);
    g.dzx = vec3<f32>(dr, dz, dn);
    g.dzh = vec3<f32>(dr, dz, dn * rg);
    g.dh_prev = dh * zg;
    return g;
}
