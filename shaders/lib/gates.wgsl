// The LSTM and GRU gates, forward and derivatives, shared by cell.wgsl (the mechanisms of RIMs)
// and recurrent.wgsl (the dense baselines), so the two cannot drift apart; pulled in with a
// line `//#include gates`. It includes common itself (sigmoid, safe_tanh); a shader that also
// includes common gets it once.
// Gate orders: LSTM [i, f, g, o] (PyTorch LSTMCell), GRU [r, z, n] (PyTorch GRUCell).
// Twin: src/kernels/gates.rs.

//#include common

// One LSTM unit's step: the activations (saved for the backward), c' and h'.
struct LstmStep {
    ig: f32,
    fg: f32,
    gg: f32,
    og: f32,
    c: f32,
    h: f32,
}

// From the four pre-activations (x·W_x + b_x + h·W_h + b_h, summed by the caller) and c.
fn lstm_step(zi: f32, zf: f32, zg: f32, zo: f32, c_prev: f32) -> LstmStep {
    var s: LstmStep;
    s.ig = sigmoid(zi);
    s.fg = sigmoid(zf);
    s.gg = safe_tanh(zg);
    s.og = sigmoid(zo);
    s.c = s.fg * c_prev + s.ig * s.gg;
    s.h = s.og * safe_tanh(s.c);
    return s;
}

// One GRU unit's step: the activations r, z, n (saved for the backward) and h'.
struct GruStep {
    rg: f32,
    zg: f32,
    ng: f32,
    h: f32,
}

// From the input side's pre-activations x·W_x + b_x [r, z, n], the recurrent side's
// h·W_h + b_h [r, z, n] (kept apart: r gates only the recurrent n term) and h.
fn gru_step(xr: f32, xz: f32, xn: f32, hr: f32, hz: f32, hn: f32, h_prev: f32) -> GruStep {
    var s: GruStep;
    s.rg = sigmoid(xr + hr);
    s.zg = sigmoid(xz + hz);
    s.ng = safe_tanh(xn + s.rg * hn);
    s.h = (1.0 - s.zg) * s.ng + s.zg * h_prev;
    return s;
}

// Pre-activation gradients of one LSTM unit, and the gradient flowing to c_{t-1}.
struct LstmGrads {
    di: f32,
    df: f32,
    dg: f32,
    d_o: f32,
    dc_prev: f32,
}

// From the gradients of h' and c' and the saved activations (i, f, g, o after their
// nonlinearities), the new cell state c' and the previous one.
fn lstm_grads(dh: f32, dc: f32, ig: f32, fg: f32, gg: f32, og: f32, c_new: f32, c_prev: f32) -> LstmGrads {
    var r: LstmGrads;
    let tc = safe_tanh(c_new);
    let dc_tot = dc + dh * og * (1.0 - tc * tc);
    r.di = dc_tot * gg * ig * (1.0 - ig);
    r.df = dc_tot * c_prev * fg * (1.0 - fg);
    r.dg = dc_tot * ig * (1.0 - gg * gg);
    r.d_o = dh * tc * og * (1.0 - og);
    r.dc_prev = dc_tot * fg;
    return r;
}

// Pre-activation gradients of one GRU unit: dzx for [r, z, n]; dzh equals dzx except in the n
// block, where it is dn · r. dh_prev is the direct part of the gradient of h_{t-1}.
struct GruGrads {
    dr: f32,
    dz: f32,
    dn: f32,
    dh_prev: f32,
}

// From the gradient of h', the saved activations r, z, n, the recurrent n pre-activation
// gh_n = h·W_hn + b_hn, and the previous state.
fn gru_grads(dh: f32, rg: f32, zg: f32, ng: f32, gh_n: f32, h_prev: f32) -> GruGrads {
    var g: GruGrads;
    g.dn = dh * (1.0 - zg) * (1.0 - ng * ng);
    g.dz = dh * (h_prev - ng) * zg * (1.0 - zg);
    g.dr = g.dn * gh_n * rg * (1.0 - rg);
    g.dh_prev = dh * zg;
    return g;
}
