//! Models and their parameters.

pub mod config;
pub mod frames;
pub mod model;
pub mod params;
pub mod recurrent;
pub mod rims;
pub mod runner;

pub use config::{CellKind, RimsConfig, Variant};
pub use params::{HostParams, Init, ParamSpec, ParamStore};
pub use recurrent::{Recurrent, RecurrentOutput};
pub use rims::{Rims, RimsOptions, RimsOutput};
pub use runner::{Runner, RunnerState, StepOutput};
