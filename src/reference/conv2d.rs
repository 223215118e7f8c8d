//! f64 oracle for `ops::conv2d`: 2-D convolution (cross-correlation, NCHW) and its gradients,
//! straight from the definition, every tap visited and the padding skipped.

use crate::spec::conv2d::Conv2dSpec;

/// The sizes of one convolution: x [n, c_in, h, w], weight [c_out, c_in, kh, kw].
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
}

impl Sizes {
    /// (h_out, w_out) under `spec`; asserts that the kernel fits the padded input.
    pub fn output(&self, spec: Conv2dSpec) -> (usize, usize) {
        let ho = spec
            .output_len(self.h, self.kh)
            .expect("kernel fits the padded height");
        let wo = spec
            .output_len(self.w, self.kw)
            .expect("kernel fits the padded width");
        (ho, wo)
    }

    /// The (x, weight, y) indices of every tap that reads the input (not the padding), in
    /// the order n, co, oh, ow, ci, ky, kx: forward and gradients are sums over these.
    fn taps(&self, spec: Conv2dSpec) -> Vec<[usize; 3]> {
        let (ho, wo) = self.output(spec);
        let mut out = Vec::new();
        for n in 0..self.n {
            for co in 0..self.c_out {
                for oh in 0..ho {
                    for ow in 0..wo {
                        for ci in 0..self.c_in {
                            for ky in 0..self.kh {
                                for kx in 0..self.kw {
                                    let ih =
                                        (oh * spec.stride + ky) as isize - spec.pad_before as isize;
                                    let iw =
                                        (ow * spec.stride + kx) as isize - spec.pad_before as isize;
                                    if ih < 0
                                        || iw < 0
                                        || ih >= self.h as isize
                                        || iw >= self.w as isize
                                    {
                                        continue;
                                    }
                                    let (ih, iw) = (ih as usize, iw as usize);
                                    let xi = ((n * self.c_in + ci) * self.h + ih) * self.w + iw;
                                    let wi = ((co * self.c_in + ci) * self.kh + ky) * self.kw + kx;
                                    let yi = ((n * self.c_out + co) * ho + oh) * wo + ow;
                                    out.push([xi, wi, yi]);
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn check(&self, x: &[f64], weight: &[f64]) {
        assert_eq!(x.len(), self.n * self.c_in * self.h * self.w, "x length");
        assert_eq!(
            weight.len(),
            self.c_out * self.c_in * self.kh * self.kw,
            "weight length"
        );
    }
}

/// `y[n, co, oh, ow] = bias[co] + Σ x[n, ci, oh·s + ky − pad, ow·s + kx − pad] ·
/// weight[co, ci, ky, kx]` over the taps inside the input (y is [n, c_out, h_out, w_out]).
pub fn forward(
    s: Sizes,
    x: &[f64],
    weight: &[f64],
    bias: Option<&[f64]>,
    spec: Conv2dSpec,
) -> Vec<f64> {
    s.check(x, weight);
    let (ho, wo) = s.output(spec);
    let mut y = vec![0.0; s.n * s.c_out * ho * wo];
    if let Some(b) = bias {
        assert_eq!(b.len(), s.c_out, "bias length");
        for (i, v) in y.iter_mut().enumerate() {
            *v = b[(i / (ho * wo)) % s.c_out];
        }
    }
    for [xi, wi, yi] in s.taps(spec) {
        y[yi] += x[xi] * weight[wi];
    }
    y
}

/// (dx, dweight, dbias) of [`forward`] given dy [n, c_out, h_out, w_out].
pub fn backward(
    s: Sizes,
    x: &[f64],
    weight: &[f64],
    dy: &[f64],
    spec: Conv2dSpec,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    s.check(x, weight);
    let (ho, wo) = s.output(spec);
    assert_eq!(dy.len(), s.n * s.c_out * ho * wo, "dy length");
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; weight.len()];
    for [xi, wi, yi] in s.taps(spec) {
        dx[xi] += dy[yi] * weight[wi];
        dw[wi] += dy[yi] * x[xi];
    }
    let mut db = vec![0.0; s.c_out];
    for (i, g) in dy.iter().enumerate() {
        db[(i / (ho * wo)) % s.c_out] += g;
    }
    (dx, dw, db)
}
