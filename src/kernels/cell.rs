//! CPU twins of `shaders/cell.wgsl`.

use crate::kernels::CpuKernel;

/// The twin of each entry point.
pub fn twin(_entry: &str) -> Option<CpuKernel> {
    None
}
