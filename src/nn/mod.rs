//! Models and their parameters.

pub mod params;

pub use params::{Init, ParamSpec, ParamStore};
