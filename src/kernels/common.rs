//! The CPU twin of `shaders/lib/common.wgsl`: the activations every twin shares ([`sigmoid`],
//! [`tanh`], over an [`exp_neg`] the compiler vectorises) and the counter-based dropout draw
//! (`hash32`, `dropout_factor`), bit for bit: element `index` of tensor `tensor` at step `step` under `seed` is kept iff the
//! top 24 bits of its hash are at least `threshold` (= round(p · 2^24), computed on the host),
//! and a kept element is multiplied by `scale` (= 1 / (1 − p)).
//!
//! The first two rounds of the hash depend on the dispatch only, not on the element: a twin
//! that draws many elements takes a [`DropoutStream`] once and calls [`DropoutStream::factor`]
//! per element, which gives the same values as [`dropout_factor`] with one hash per element.

/// The "lowbias32" integer finaliser (`hash32` in lib/common.wgsl).
#[inline]
pub fn hash32(v: u32) -> u32 {
    let mut x = v;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The integer threshold for drop probability `p`: round(p · 2^24), computed on the host and
/// passed to the kernels in their `Params` (an element is kept iff its 24-bit draw is at least
/// this; 0 keeps everything). `reference::dropout::threshold` is the checker's own copy.
pub fn dropout_threshold(p: f32) -> u32 {
    (p as f64 * 16_777_216.0).round() as u32
}

/// The multiplier of element `index`: 1 when `threshold` is 0 (no dropout), else 0 if the
/// element is dropped and `scale` if it is kept (`dropout_factor` in lib/common.wgsl).
#[inline]
pub fn dropout_factor(
    seed: u32,
    step: u32,
    tensor: u32,
    index: u32,
    threshold: u32,
    scale: f32,
) -> f32 {
    DropoutStream::new(seed, step, tensor, threshold, scale).factor(index)
}

/// The draws of one tensor at one step: [`dropout_factor`] with the element-independent part
/// of the hash computed once.
#[derive(Clone, Copy, Debug)]
pub struct DropoutStream {
    key: u32,
    threshold: u32,
    scale: f32,
}

impl DropoutStream {
    /// The stream of tensor `tensor` at step `step` under `seed`.
    #[inline]
    pub fn new(seed: u32, step: u32, tensor: u32, threshold: u32, scale: f32) -> Self {
        DropoutStream {
            key: hash32(hash32(seed ^ tensor.wrapping_mul(0x9e37_79b9)) ^ step),
            threshold,
            scale,
        }
    }

    /// Whether every factor is 1 (threshold 0): callers may skip the multiplication, which
    /// leaves every value bit for bit unchanged.
    #[inline]
    pub fn is_identity(&self) -> bool {
        self.threshold == 0
    }

    /// The multiplier of element `index`, equal to [`dropout_factor`]'s.
    #[inline]
    pub fn factor(&self, index: u32) -> f32 {
        if self.threshold == 0 {
            return 1.0;
        }
        if hash32(self.key ^ index) >> 8 >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }

    /// Fills `out[j]` with the factor of element `first + j` (a loop the compiler vectorises;
    /// with AVX2's 32-bit multiplies where the processor has them: integer arithmetic, so the
    /// same bits either way).
    #[inline]
    pub fn fill(&self, first: u32, out: &mut [f32]) {
        if self.threshold == 0 {
            out.fill(1.0);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2 (just checked).
            unsafe { self.fill_avx2(first, out) };
            return;
        }
        self.fill_draws(first, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fill_avx2(&self, first: u32, out: &mut [f32]) {
        self.fill_draws(first, out);
    }

    #[inline(always)]
    fn fill_draws(&self, first: u32, out: &mut [f32]) {
        let (key, threshold, scale) = (self.key, self.threshold, self.scale);
        for (j, o) in out.iter_mut().enumerate() {
            let h = hash32(key ^ first.wrapping_add(j as u32)) >> 8;
            *o = if h >= threshold { scale } else { 0.0 };
        }
    }
}

/// e^x for x ≤ 0 (the only exponent the gates need), in f32 arithmetic the compiler
/// vectorises: Cephes' `expf` (range reduction by ln 2 in two parts, a degree-6 polynomial,
/// the power of two built in the exponent bits), within 2 ulp of the correctly rounded value.
/// Results below the normal range are 0, as GPUs flush them; NaN stays NaN.
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    /// 1.5 · 2²³: adding it rounds to an integer, held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    /// Just above ln(f32::MIN_POSITIVE): below it e^x is subnormal (or nearly).
    const LOWEST: f32 = -87.336_54;
    let xc = x.max(LOWEST);
    let shifted = xc * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 = 0.6933594 (355/512 exactly, so n · it is exact) − 2.1219444e-4.
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n for n in [−126, 0]: n sits in the low bits of `shifted`.
    let k = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(k.wrapping_add(127) << 23);
    let e = y * scale;
    if x < LOWEST {
        0.0
    } else if x.is_nan() {
        x
    } else {
        e
    }
}

/// σ(x) with the formula of `sigmoid` in lib/common.wgsl (split by sign so exp never
/// overflows), branch-free over [`exp_neg`] so that loops over it vectorise. Results in the
/// subnormal range are 0, as GPUs flush them.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp_neg(-x.abs());
    // 1 / (1 + e) for x ≥ 0, e / (1 + e) below: one division.
    let y = if x >= 0.0 { 1.0 } else { e } / (1.0 + e);
    if y < f32::MIN_POSITIVE { 0.0 } else { y }
}

/// tanh(x) as `safe_tanh` in lib/common.wgsl, sign(x)·(1 − e)/(1 + e) with e = e^(−2|x|),
/// branch-free over [`exp_neg`].
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp_neg(-2.0 * x.abs());
    let t = (1.0 - e) / (1.0 + e);
    if x < 0.0 {
        -t
    } else if x > 0.0 {
        t
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WGSL function written out as it reads, three rounds per element.
    fn direct(seed: u32, step: u32, tensor: u32, index: u32, threshold: u32, scale: f32) -> f32 {
        if threshold == 0 {
            return 1.0;
        }
        let h = hash32(hash32(hash32(seed ^ tensor.wrapping_mul(0x9e37_79b9)) ^ step) ^ index) >> 8;
        if h >= threshold { scale } else { 0.0 }
    }

    #[test]
    fn stream_matches_the_wgsl_function() {
        assert_eq!(hash32(0), 0);
        // lowbias32 of 1, computed by hand from the constants.
        assert_eq!(hash32(1), {
            let mut x = 1u32;
            x ^= x >> 16;
            x = x.wrapping_mul(0x7feb352d);
            x ^= x >> 15;
            x = x.wrapping_mul(0x846ca68b);
            x ^ (x >> 16)
        });
        let threshold = dropout_threshold(0.3);
        for (seed, step, tensor) in [(0, 0, 0), (7, 3, 0), (12345, 99, 2), (u32::MAX, 1, 1)] {
            let s = DropoutStream::new(seed, step, tensor, threshold, 1.5);
            let mut buf = [0.0f32; 100];
            s.fill(1000, &mut buf);
            for i in 0..100u32 {
                let want = direct(seed, step, tensor, 1000 + i, threshold, 1.5);
                assert_eq!(s.factor(1000 + i), want);
                assert_eq!(buf[i as usize], want);
                assert_eq!(
                    dropout_factor(seed, step, tensor, 1000 + i, threshold, 1.5),
                    want
                );
            }
        }
        assert_eq!(dropout_factor(1, 2, 3, 4, 0, 9.0), 1.0);
    }

    /// Within `ulps` units in the last place of `want` (or both 0, or both NaN).
    fn close(got: f32, want: f32, ulps: u32) -> bool {
        if want.is_nan() {
            return got.is_nan();
        }
        let diff = (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs();
        got.signum() == want.signum() && diff <= ulps as u64 || got == want
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0u64;
        for i in 0..=2_000_000u32 {
            let x = -(i as f32) * 4.5e-5; // 0 down to −90, past the normal range
            let want = (x as f64).exp();
            let want = if want < f32::MIN_POSITIVE as f64 {
                0.0
            } else {
                want as f32
            };
            let got = exp_neg(x);
            assert!(close(got, want, 2), "exp({x}): {got} vs {want}");
            worst = worst.max((got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs());
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-0.0), 1.0);
        assert_eq!(exp_neg(f32::NEG_INFINITY), 0.0);
        assert!(exp_neg(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_and_tanh_follow_the_f64_formulas() {
        for (x, s, t) in [
            (0.0f32, 0.5f32, 0.0f32),
            (-0.0, 0.5, 0.0),
            (200.0, 1.0, 1.0),
            (-200.0, 0.0, -1.0),
            (-90.0, 0.0, -1.0),
            (f32::INFINITY, 1.0, 1.0),
            (f32::NEG_INFINITY, 0.0, -1.0),
        ] {
            assert_eq!((sigmoid(x), tanh(x)), (s, t), "x = {x}");
        }
        for i in -1_000_000..=1_000_000i32 {
            let x = i as f32 * 1e-4;
            let ws = 1.0 / (1.0 + (-(x as f64)).exp());
            // Below the normal f32 range the twins flush to 0, as GPUs do.
            let ws = if ws < f32::MIN_POSITIVE as f64 {
                0.0
            } else {
                ws
            };
            let wt = (x as f64).tanh();
            let (s, t) = (sigmoid(x) as f64, tanh(x) as f64);
            assert!((s - ws).abs() <= 3e-7 * ws, "sigmoid({x}): {s} vs {ws}");
            assert!((t - wt).abs() <= 2e-7, "tanh({x}): {t} vs {wt}");
        }
        // NaN: sigmoid keeps it; tanh's sign test fails both ways and gives 0, as the earlier
        // libm-based twin did.
        assert!(sigmoid(f32::NAN).is_nan());
        assert_eq!(tanh(f32::NAN), 0.0);
    }
}
