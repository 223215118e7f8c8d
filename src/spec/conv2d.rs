//! The 2-D convolution's geometry, named once for `ops::conv2d` (which runs it) and
//! `reference::conv2d` (which checks it).

/// Stride and zero padding of a 2-D convolution, the same on both spatial axes.
///
/// `pad_before` zero rows go above the input and as many zero columns left of it, `pad_after`
/// below and right, so TensorFlow's "same" padding of an even kernel (4×4 at stride 1: one
/// before, two after) is expressible as well as PyTorch's symmetric `padding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dSpec {
    /// Step between windows, at least 1.
    pub stride: usize,
    /// Zeros above and left of the input.
    pub pad_before: usize,
    /// Zeros below and right of the input.
    pub pad_after: usize,
}

impl Conv2dSpec {
    /// Stride `stride`, `pad` zeros on every side (PyTorch's `stride` and `padding`).
    pub fn new(stride: usize, pad: usize) -> Self {
        Conv2dSpec {
            stride,
            pad_before: pad,
            pad_after: pad,
        }
    }

    /// Outputs along one axis of `input` positions with a kernel of `kernel`:
    /// ⌊(input + pad_before + pad_after − kernel) / stride⌋ + 1, or None when the kernel is
    /// larger than the padded input, or the stride or the kernel is 0.
    pub fn output_len(&self, input: usize, kernel: usize) -> Option<usize> {
        if self.stride == 0 || kernel == 0 {
            return None;
        }
        let padded = input
            .checked_add(self.pad_before)?
            .checked_add(self.pad_after)?;
        Some(padded.checked_sub(kernel)? / self.stride + 1)
    }
}
