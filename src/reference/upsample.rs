//! f64 oracle for `ops::upsample`: nearest-neighbour upsampling of the last two dimensions of
//! `[planes, height, width]` by an integer factor, and its backward.

/// `y[p, i, j] = x[p, i / f, j / f]`, y of `[planes, height·f, width·f]`.
pub fn nearest(x: &[f64], planes: usize, height: usize, width: usize, f: usize) -> Vec<f64> {
    assert_eq!(x.len(), planes * height * width, "x's length");
    let (oh, ow) = (height * f, width * f);
    let mut y = vec![0.0; planes * oh * ow];
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                y[(p * oh + i) * ow + j] = x[(p * height + i / f) * width + j / f];
            }
        }
    }
    y
}

/// The gradient of [`nearest`]: each output element's gradient goes to the input element it
/// copied.
pub fn nearest_backward(
    dy: &[f64],
    planes: usize,
    height: usize,
    width: usize,
    f: usize,
) -> Vec<f64> {
    let (oh, ow) = (height * f, width * f);
    assert_eq!(dy.len(), planes * oh * ow, "dy's length");
    let mut dx = vec![0.0; planes * height * width];
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                dx[(p * height + i / f) * width + j / f] += dy[(p * oh + i) * ow + j];
            }
        }
    }
    dx
}
