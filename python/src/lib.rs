//! `rims._rims`: the compiled half of the `rims` Python package, thin over the engine crate.
//! The Python half (`python/rims/`) holds the PyTorch module, argument conversion and docs;
//! this crate turns numpy arrays into engine tensors and back, releases the GIL while the
//! engine works, and turns engine errors into Python exceptions.
//!
//! Files: `engine.rs` (the shared contexts, threads, fork), `errors.rs`, `arrays.rs` (numpy
//! in and out), `layer.rs` (the torch layer's forward and backward), `runner.rs` (stepping a
//! trained model), `training.rs` (`train`, `evaluate`, `Trainer`), `rl.rs` (`rl_train`,
//! `rl_evaluate`: reinforcement learning), `weights.rs` (the PyTorch codes' state_dicts in and
//! out).

use pyo3::prelude::*;

mod arrays;
mod engine;
mod errors;
mod layer;
mod rl;
mod runner;
mod training;
mod weights;

#[pymodule]
fn _rims(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RimsError", m.py().get_type::<errors::RimsError>())?;
    m.add_function(wrap_pyfunction!(engine::set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(engine::get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(engine::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(engine::device_info, m)?)?;
    m.add_class::<layer::Layer>()?;
    m.add_class::<layer::Pending>()?;
    m.add_class::<runner::Runner>()?;
    m.add_class::<training::Trainer>()?;
    m.add_function(wrap_pyfunction!(training::train, m)?)?;
    m.add_function(wrap_pyfunction!(training::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(rl::rl_train, m)?)?;
    m.add_function(wrap_pyfunction!(rl::rl_evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(weights::import_weights, m)?)?;
    m.add_function(wrap_pyfunction!(weights::export_weights, m)?)?;
    Ok(())
}
