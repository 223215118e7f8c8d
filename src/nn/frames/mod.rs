//! The video model's frame networks (the bouncing-balls experiment, docs/spec.md §2.5): a
//! convolutional encoder that turns each frame into the recurrent core's input, and a
//! convolutional decoder that turns the core's state into the next frame's pixel logits. The
//! architecture is Relational-NEM's (van Steenkiste et al. 2018), which the RIMs paper reuses,
//! with the widths as settings so a laptop can run it smaller:
//!
//! - encoder: three 4×4 stride-2 convolutions (channels c1, c2, c3), each followed by ELU and
//!   layer normalisation over the feature map; then a dense layer to the core's input D, ELU,
//!   layer normalisation.
//! - decoder: a dense layer to `dense` units and one to c3 × (S/8)², each ReLU and layer
//!   normalisation; then three blocks of 2× nearest upsampling and a 4×4 stride-1 convolution
//!   with TensorFlow's "same" padding (one row before, two after), to c2, c1 and 1 channel; the
//!   first two ReLU and layer normalisation, the last one the logits (the sigmoid is folded into
//!   the binary cross-entropy).
//!
//! Frames are S×S with S a multiple of 8 (32 by default), one channel, values in [0, 1].

mod decoder;
mod encoder;

pub use decoder::decode;
pub use encoder::encode;

use crate::error::{Error, Result};
use crate::nn::params::{Init, ParamSpec};

/// The sizes of the frame networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameNet {
    /// S: frames are S×S, S a multiple of 8.
    pub size: usize,
    /// c1, c2, c3: the encoder's convolution channels (the decoder's in reverse).
    pub channels: [usize; 3],
    /// Units of the decoder's first dense layer (R-NEM: 512).
    pub dense: usize,
}

/// Added to the variance in every layer normalisation of the frame networks (TensorFlow's
/// and PyTorch's default magnitude).
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// ELU's alpha in the encoder (R-NEM's `tf.nn.elu`).
const ELU_ALPHA: f32 = 1.0;

impl FrameNet {
    /// R-NEM's widths at 32×32: channels 16, 32, 64 and a 512-unit dense layer.
    pub const R_NEM: FrameNet = FrameNet {
        size: 32,
        channels: [16, 32, 64],
        dense: 512,
    };

    /// Checks every size; returns `Error::Config` naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        if self.size < 8 || !self.size.is_multiple_of(8) {
            return Err(Error::config(
                "frame_size",
                format!(
                    "{} is not a multiple of 8 (three stride-2 convolutions halve it)",
                    self.size
                ),
            ));
        }
        if self.channels.contains(&0) {
            return Err(Error::config("channels", "every width must be at least 1"));
        }
        if self.dense == 0 {
            return Err(Error::config("dense", "must be at least 1"));
        }
        Ok(())
    }

    /// Pixels of a frame, S².
    pub fn pixels(&self) -> usize {
        self.size * self.size
    }

    /// Side of the feature map after encoder layer `i` (0, 1, 2): S/2, S/4, S/8.
    fn side(&self, i: usize) -> usize {
        self.size >> (i + 1)
    }

    /// Elements of the encoder's last feature map, c3 × (S/8)² (also the decoder's second
    /// dense layer's width).
    fn bottleneck(&self) -> usize {
        self.channels[2] * self.side(2) * self.side(2)
    }

    /// Values the frame networks keep per frame for a backward pass, a lower bound for memory
    /// budgets: each encoder map three times (convolution, ELU, normalisation), each decoder
    /// map four times (upsampled, convolution, ReLU, normalisation), the frame twice.
    pub fn activations_per_frame(&self) -> usize {
        let c = self.channels;
        let encoder: usize = (0..3).map(|i| c[i] * self.side(i) * self.side(i)).sum();
        let decoder = c[1] * self.side(1).pow(2) + c[0] * self.side(0).pow(2);
        3 * encoder + 4 * decoder + 2 * self.pixels() + 2 * self.dense
    }

    /// Every parameter of the encoder (ending in the core's input width `input`) and of the
    /// decoder (starting from the core's state width `state`).
    pub fn param_specs(&self, input: usize, state: usize) -> Vec<ParamSpec> {
        let mut specs = Vec::new();
        let c = self.channels;
        for (i, (from, to)) in [(1, c[0]), (c[0], c[1]), (c[1], c[2])]
            .into_iter()
            .enumerate()
        {
            let s = self.side(i);
            conv_specs(&mut specs, &format!("enc_conv{}", i + 1), from, to);
            norm_specs(&mut specs, &format!("enc_ln{}", i + 1), &[to, s, s]);
        }
        dense_specs(&mut specs, "enc_fc", self.bottleneck(), input);
        norm_specs(&mut specs, "enc_fc_ln", &[input]);
        dense_specs(&mut specs, "dec_fc1", state, self.dense);
        norm_specs(&mut specs, "dec_fc1_ln", &[self.dense]);
        dense_specs(&mut specs, "dec_fc2", self.dense, self.bottleneck());
        let s3 = self.side(2);
        norm_specs(&mut specs, "dec_fc2_ln", &[c[2], s3, s3]);
        for (i, (from, to)) in [(c[2], c[1]), (c[1], c[0]), (c[0], 1)]
            .into_iter()
            .enumerate()
        {
            conv_specs(&mut specs, &format!("dec_conv{}", i + 1), from, to);
            if i < 2 {
                let s = self.size >> (2 - i);
                norm_specs(&mut specs, &format!("dec_ln{}", i + 1), &[to, s, s]);
            }
        }
        specs
    }
}

/// PyTorch's default initialisation of a layer with `fan_in` inputs: U(±1/√fan_in) for the
/// weight and the bias.
fn fan_in_uniform(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f32).sqrt();
    Init::Uniform(-bound, bound)
}

/// A 4×4 convolution `NAME_w` [to, from, 4, 4] and `NAME_b` [to].
fn conv_specs(specs: &mut Vec<ParamSpec>, name: &str, from: usize, to: usize) {
    let init = fan_in_uniform(from * 16);
    specs.push(ParamSpec::new(
        &format!("{name}_w"),
        &[to, from, 4, 4],
        init,
    ));
    specs.push(ParamSpec::new(&format!("{name}_b"), &[to], init));
}

/// A dense layer `NAME_w` [from, to] and `NAME_b` [to].
fn dense_specs(specs: &mut Vec<ParamSpec>, name: &str, from: usize, to: usize) {
    let init = fan_in_uniform(from);
    specs.push(ParamSpec::new(&format!("{name}_w"), &[from, to], init));
    specs.push(ParamSpec::new(&format!("{name}_b"), &[to], init));
}

/// A layer normalisation's gain `NAME_g` (ones) and bias `NAME_b` (zeros) of `shape`.
fn norm_specs(specs: &mut Vec<ParamSpec>, name: &str, shape: &[usize]) {
    specs.push(ParamSpec::new(
        &format!("{name}_g"),
        shape,
        Init::Constant(1.0),
    ));
    specs.push(ParamSpec::new(&format!("{name}_b"), shape, Init::Zeros));
}
