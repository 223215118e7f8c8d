//! The frame encoder: frames `[rows, S, S]` to the core's input `[rows, D]`.

use super::{ELU_ALPHA, FrameNet, LAYER_NORM_EPS};
use crate::device::Context;
use crate::error::Result;
use crate::nn::params::ParamStore;
use crate::ops::conv2d::Conv2dSpec;
use crate::tape::{Tape, Var};

/// R-NEM's encoder convolutions: 4×4, stride 2, one pixel of padding, so each halves the side.
const DOWN: Conv2dSpec = Conv2dSpec {
    stride: 2,
    pad_before: 1,
    pad_after: 1,
};

/// Encodes `frames` (a tape value `[rows, S, S]`, any rows: time steps × batch) as `[rows, D]`,
/// D the width of `enc_fc_b`.
pub fn encode(
    ctx: &Context,
    tape: &mut Tape,
    store: &ParamStore,
    net: &FrameNet,
    frames: Var,
) -> Result<Var> {
    let rows = tape.value(frames).len() / net.pixels();
    let mut x = tape.reshape(frames, &[rows, 1, net.size, net.size])?;
    for layer in 1..=3 {
        let (w, b) = (
            tape.param(store, &format!("enc_conv{layer}_w"))?,
            tape.param(store, &format!("enc_conv{layer}_b"))?,
        );
        x = tape.conv2d(ctx, x, w, Some(b), DOWN)?;
        x = tape.elu(ctx, x, ELU_ALPHA)?;
        x = norm(ctx, tape, store, &format!("enc_ln{layer}"), x)?;
    }
    let flat = tape.reshape(x, &[rows, net.bottleneck()])?;
    let (w, b) = (
        tape.param(store, "enc_fc_w")?,
        tape.param(store, "enc_fc_b")?,
    );
    let y = tape.matmul(ctx, flat, w, Some(b))?;
    let y = tape.elu(ctx, y, ELU_ALPHA)?;
    norm(ctx, tape, store, "enc_fc_ln", y)
}

/// Layer normalisation with the parameters `NAME_g`, `NAME_b` (shared with the decoder).
pub(super) fn norm(
    ctx: &Context,
    tape: &mut Tape,
    store: &ParamStore,
    name: &str,
    x: Var,
) -> Result<Var> {
    let g = tape.param(store, &format!("{name}_g"))?;
    let b = tape.param(store, &format!("{name}_b"))?;
    tape.layer_norm(ctx, x, g, b, LAYER_NORM_EPS)
}
