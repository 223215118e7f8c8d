//! The counter-based dropout mask shared, bit for bit, by the WGSL kernels
//! (`shaders/lib/common.wgsl`) and the CPU reference: element `index` of tensor `tensor` at
//! time step `step` under `seed` is kept iff `(hash >> 8) >= threshold`, where
//! `threshold = round(p · 2^24)`. Kept values are scaled by 1 / (1 − p).

/// A 32-bit integer hash with good avalanche (the "lowbias32" finaliser).
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The 24-bit draw for one element.
pub fn draw(seed: u32, step: u32, tensor: u32, index: u32) -> u32 {
    let h = hash32(seed ^ tensor.wrapping_mul(0x9e37_79b9));
    let h = hash32(h ^ step);
    hash32(h ^ index) >> 8
}

/// The integer threshold for drop probability `p`: the reference's own copy of
/// `kernels::common::dropout_threshold`, which the product uses (`tests/ops/dropout.rs` checks
/// that the two agree).
pub fn threshold(p: f32) -> u32 {
    (p as f64 * 16_777_216.0).round() as u32
}

/// The multiplier of element `index`: 0 if dropped, 1 / (1 − p) if kept (1 when p = 0).
pub fn factor(seed: u32, step: u32, tensor: u32, index: u32, p: f32) -> f64 {
    if p == 0.0 {
        return 1.0;
    }
    if draw(seed, step, tensor, index) >= threshold(p) {
        1.0 / (1.0 - p as f64)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_rate_is_close_to_p() {
        let p = 0.1;
        let kept = (0..100_000)
            .filter(|&i| factor(7, 3, 0, i, p) > 0.0)
            .count();
        let rate = 1.0 - kept as f64 / 100_000.0;
        assert!((rate - 0.1).abs() < 0.005, "drop rate {rate}");
        // Different steps, tensors and seeds give different masks.
        let mask = |s, t, x| {
            (0..64)
                .map(|i| factor(s, t, x, i, p) > 0.0)
                .collect::<Vec<_>>()
        };
        assert_ne!(mask(1, 0, 0), mask(1, 1, 0));
        assert_ne!(mask(1, 0, 0), mask(1, 0, 1));
        assert_ne!(mask(1, 0, 0), mask(2, 0, 0));
        assert_eq!(hash32(0), 0);
        assert_ne!(hash32(1), hash32(2));
    }
}
