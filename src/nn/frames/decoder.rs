//! The frame decoder: the core's state `[rows, state]` to next-frame pixel logits
//! `[rows, S·S]`.

use super::FrameNet;
use super::encoder::norm;
use crate::device::Context;
use crate::error::Result;
use crate::nn::params::ParamStore;
use crate::ops::conv2d::Conv2dSpec;
use crate::tape::{Tape, Var};

/// The decoder's convolutions: 4×4, stride 1, TensorFlow's "same" padding for an even kernel
/// (one row and column before, two after), so the side is kept.
const SAME: Conv2dSpec = Conv2dSpec {
    stride: 1,
    pad_before: 1,
    pad_after: 2,
};

/// Decodes `state` (a tape value `[rows, state]`) to the logits of the next frame,
/// `[rows, S·S]`; σ of them is the predicted frame.
pub fn decode(
    ctx: &Context,
    tape: &mut Tape,
    store: &ParamStore,
    net: &FrameNet,
    state: Var,
) -> Result<Var> {
    let rows = tape.value(state).shape()[0];
    let mut y = state;
    for layer in ["dec_fc1", "dec_fc2"] {
        let (w, b) = (
            tape.param(store, &format!("{layer}_w"))?,
            tape.param(store, &format!("{layer}_b"))?,
        );
        y = tape.matmul(ctx, y, w, Some(b))?;
        y = tape.relu(ctx, y)?;
        if layer == "dec_fc2" {
            let s3 = net.side(2);
            y = tape.reshape(y, &[rows, net.channels[2], s3, s3])?;
        }
        y = norm(ctx, tape, store, &format!("{layer}_ln"), y)?;
    }
    for layer in 1..=3 {
        y = tape.upsample_nearest(ctx, y, 2)?;
        let (w, b) = (
            tape.param(store, &format!("dec_conv{layer}_w"))?,
            tape.param(store, &format!("dec_conv{layer}_b"))?,
        );
        y = tape.conv2d(ctx, y, w, Some(b), SAME)?;
        if layer < 3 {
            y = tape.relu(ctx, y)?;
            y = norm(ctx, tape, store, &format!("dec_ln{layer}"), y)?;
        }
    }
    tape.reshape(y, &[rows, net.pixels()])
}
