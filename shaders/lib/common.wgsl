// Shared helpers, pulled into a shader by a line `//#include common`.

fn sigmoid(x: f32) -> f32 {
    // Split by sign so exp never overflows.
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn safe_tanh(x: f32) -> f32 {
    // Some drivers compute tanh through exp and return NaN for large |x|.
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

// Counter-based dropout, bit for bit the same as src/reference/dropout.rs: element `index` of
// tensor `tensor` at step `step` is kept iff its 24-bit draw >= threshold = round(p * 2^24).
fn hash32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn dropout_factor(seed: u32, step: u32, tensor: u32, index: u32, threshold: u32, scale: f32) -> f32 {
    if (threshold == 0u) {
        return 1.0;
    }
    let h = hash32(hash32(hash32(seed ^ (tensor * 0x9e3779b9u)) ^ step) ^ index) >> 8u;
    return select(0.0, scale, h >= threshold);
}
