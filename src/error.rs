//! `rims::Error`: every failure a caller can cause comes back as one of these, never as a panic.

use std::path::PathBuf;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the shape, limit, file or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the request (or none exists at all).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),

    /// The adapter exists but would not give us a device with the limits we need.
    #[error("could not open a device on adapter '{adapter}': {reason}")]
    DeviceRequest { adapter: String, reason: String },

    /// Tensor shapes that do not fit the op.
    #[error("shape error in {op}: {detail}")]
    Shape { op: &'static str, detail: String },

    /// A tensor with no elements where the op needs some.
    #[error("empty tensor in {op}: {what} has no elements")]
    Empty { op: &'static str, what: String },

    /// A request larger than the device allows.
    #[error("{what} needs {requested} but the device limit is {limit}")]
    DeviceLimit {
        what: String,
        requested: u64,
        limit: u64,
    },

    /// A WGSL file failed to parse or validate (a bug in the project, or a bad specialisation).
    #[error("shader '{shader}' (entry '{entry}'): {message}")]
    Shader {
        shader: String,
        entry: String,
        message: String,
    },

    /// wgpu reported a validation or out-of-memory error while we recorded or submitted work.
    #[error("GPU error during {during}: {message}")]
    Gpu { during: String, message: String },

    /// An argument outside what the op accepts (not a shape problem).
    #[error("invalid argument to {op}: {detail}")]
    InvalidArgument { op: &'static str, detail: String },

    /// A configuration value that cannot work; names the field.
    #[error("invalid config: {field}: {reason}")]
    Config { field: &'static str, reason: String },

    /// A file that is missing, unreadable, truncated or not in the expected format.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },

    /// Plain I/O failures not tied to a file we name.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Shorthand for a shape error.
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }

    /// Shorthand for an invalid-argument error.
    pub fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            detail: detail.into(),
        }
    }
}
