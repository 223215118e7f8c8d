//! CPU twins of `shaders/embedding.wgsl`.

use crate::kernels::CpuKernel;

/// The twin of each entry point.
pub fn twin(_entry: &str) -> Option<CpuKernel> {
    None
}
