//! Models and their parameters.

pub mod config;
pub mod model;
pub mod params;
pub mod rims;

pub use config::{CellKind, RimsConfig};
pub use params::{HostParams, Init, ParamSpec, ParamStore};
pub use rims::{Rims, RimsOptions, RimsOutput};
