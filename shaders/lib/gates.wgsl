// The LSTM and GRU gate derivatives, shared by cell.wgsl (the mechanisms of RIMs) and
// recurrent.wgsl (the dense baselines); pulled in with a line `//#include gates`.
// Gate orders: LSTM [i, f, g, o] (PyTorch LSTMCell), GRU [r, z, n] (PyTorch GRUCell).

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
    let tc = tanh_stable(c_new);
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

// tanh that never returns NaN for large |x| (some drivers build tanh from exp).
fn tanh_stable(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}
