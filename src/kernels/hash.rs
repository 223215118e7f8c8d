//! The counter-based dropout draw of `shaders/lib/common.wgsl` (`hash32`, `dropout_factor`),
//! bit for bit: element `index` of tensor `tensor` at step `step` under `seed` is kept iff the
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
        let threshold = (0.3f64 * 16_777_216.0).round() as u32;
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
}
