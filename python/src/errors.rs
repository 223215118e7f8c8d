//! How engine errors reach Python: `rims.RimsError` (a `ValueError`, since almost every engine
//! error is about what it was given) carrying the engine's one-line message; files that are
//! missing raise `FileNotFoundError`.

use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    rims,
    RimsError,
    PyValueError,
    "An error of the rims engine: a bad shape, size, config or file, or a device failure. The \
     message is the engine's."
);

/// The Python exception for an engine error.
pub fn engine_error(e: rims::Error) -> PyErr {
    if let rims::Error::Io(io) = &e
        && io.kind() == std::io::ErrorKind::NotFound
    {
        return PyFileNotFoundError::new_err(e.to_string());
    }
    RimsError::new_err(rims::error::printable(&e.to_string()))
}

/// A `rims.RimsError` with this message (bad arguments found before the engine runs).
pub fn value_error(message: impl Into<String>) -> PyErr {
    RimsError::new_err(message.into())
}
