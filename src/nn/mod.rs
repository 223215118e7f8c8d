//! Models and their parameters.

pub mod config;
pub mod params;

pub use config::{CellKind, RimsConfig};
pub use params::{HostParams, Init, ParamSpec, ParamStore};
