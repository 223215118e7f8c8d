//! `rims`: a hand-written GPU compute engine (wgpu + WGSL) that trains and runs Recurrent
//! Independent Mechanisms, checked against an f64 CPU reference.
//!
//! Layers, bottom up: [`kernels`] (each shader's parameters and CPU twins), [`device`] (context,
//! pool, registry, recorder), [`tensor`], [`ops`] (the optimizers in [`ops::optim`]), [`tape`], [`nn`], [`train`];
//! [`reference`] is the f64 oracle beside them; [`rl`] holds the MiniGrid environments.
//! `docs/design.md` describes the layers and `docs/spec.md` what the model computes.

// Every public item is documented; keep it so (CI treats warnings as errors).
#![warn(missing_docs)]

pub mod data;
pub mod device;
pub mod error;
pub mod interop;
pub mod io;
pub mod kernels;
pub mod layout;
pub mod nn;
pub mod ops;
pub mod reference;
pub mod rl;
pub mod rng;
pub mod spec;
pub mod tape;
pub mod tensor;
pub mod train;
pub mod verify;

pub use device::{Context, DeviceRequest};
pub use error::{Error, Result};
pub use tensor::{DType, Tensor};

/// The README's Rust example is compiled as a doctest, so it cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
