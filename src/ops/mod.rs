//! GPU ops, one file per op family. Each checks shapes, fills its parameter struct and records
//! its dispatches; `shaders/<name>.wgsl` holds the kernels and `reference::<name>` the f64 oracle.

pub mod binary_cross_entropy;
pub mod cell;
pub mod communication;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod input_attention;
pub mod layer_norm;
pub mod matmul;
pub mod merge;
pub mod optim;
pub mod ppo_loss;
pub mod recurrent;
pub mod reduce;
pub mod squared_error;
pub mod upsample;

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// The checks of an elementwise loss (squared error, binary cross-entropy): two non-empty f32
/// tensors of one shape, `names` = (prediction, target); returns the element count as the
/// kernels' u32.
pub(crate) fn elementwise_loss_operands(
    op: &'static str,
    pred: &Tensor,
    target: &Tensor,
    names: (&str, &str),
) -> Result<u32> {
    pred.expect_dtype(op, DType::F32)?;
    target.expect_dtype(op, DType::F32)?;
    if pred.shape() != target.shape() {
        return Err(Error::shape(
            op,
            format!(
                "{} {:?} must have the shape of {} {:?}",
                names.1,
                target.shape(),
                names.0,
                pred.shape()
            ),
        ));
    }
    pred.expect_nonempty(op, names.0)?;
    let n = pred.len();
    u32::try_from(n).map_err(|_| Error::DeviceLimit {
        what: format!("{op} over {n} elements"),
        requested: n as u64,
        limit: u32::MAX as u64,
    })
}

/// A gradient factor, which must be finite (a NaN or infinity would poison every gradient).
pub(crate) fn finite_grad_scale(op: &'static str, grad_scale: f32) -> Result<f32> {
    if grad_scale.is_finite() {
        Ok(grad_scale)
    } else {
        Err(Error::invalid(
            op,
            format!("grad_scale must be finite, got {grad_scale}"),
        ))
    }
}
