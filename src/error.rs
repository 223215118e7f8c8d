//! `rims::Error`: every failure a caller can cause comes back as one of these, never as a panic.

use std::path::{Path, PathBuf};

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
    DeviceRequest {
        /// Name of the adapter asked.
        adapter: String,
        /// wgpu's explanation.
        reason: String,
    },

    /// Tensor shapes that do not fit the op.
    #[error("shape error in {op}: {detail}")]
    Shape {
        /// The op that rejected the shapes.
        op: &'static str,
        /// The shapes at fault and what was expected.
        detail: String,
    },

    /// A tensor with no elements where the op needs some.
    #[error("empty tensor in {op}: {what} has no elements")]
    Empty {
        /// The op that needs elements.
        op: &'static str,
        /// The argument that was empty.
        what: String,
    },

    /// A request larger than the device allows.
    #[error("{what} needs {requested} but the device limit is {limit}")]
    DeviceLimit {
        /// What asked for it (an op and its size, a tensor shape).
        what: String,
        /// Amount requested, in the limit's unit (elements, rows or bytes).
        requested: u64,
        /// The device's maximum, in the same unit.
        limit: u64,
    },

    /// A WGSL file failed to parse or validate (a bug in the project, or a bad specialisation).
    #[error("shader '{shader}' (entry '{entry}'): {message}")]
    Shader {
        /// Shader file name.
        shader: String,
        /// Entry point being compiled.
        entry: String,
        /// The parser's or validator's diagnostic.
        message: String,
    },

    /// wgpu reported a validation or out-of-memory error while we recorded or submitted work.
    #[error("GPU error during {during}: {message}")]
    Gpu {
        /// The operation in progress.
        during: String,
        /// wgpu's error message.
        message: String,
    },

    /// An argument outside what the op accepts (not a shape problem).
    #[error("invalid argument to {op}: {detail}")]
    InvalidArgument {
        /// The op that rejected the argument.
        op: &'static str,
        /// The argument and the accepted range.
        detail: String,
    },

    /// A configuration value that cannot work; names the field.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// Name of the offending field.
        field: &'static str,
        /// Why the value cannot work.
        reason: String,
    },

    /// A file that is missing, unreadable, truncated or not in the expected format.
    #[error("{path}: {reason}")]
    File {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Training produced a loss that is not a finite number, so the run stopped there (nothing
    /// after the last checkpoint was saved).
    #[error("training stopped at step {step}: {what}")]
    Diverged {
        /// Optimiser steps taken when it was noticed.
        step: u64,
        /// Which loss it was, its value, and what the caller can do.
        what: String,
    },

    /// The caller stopped a run between two steps (`Reporter::keep_going`: a signal, an error
    /// in a Python progress callback); nothing after the last checkpoint was saved.
    #[error("{0}")]
    Stopped(String),

    /// Plain I/O failures not tied to a file we name.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `message` on one line and safe for a terminal: runs of whitespace become one space and
/// other control characters (an escape sequence in a tensor's name, say) are shown escaped
/// (`\u{1b}`), so text from a file cannot move the cursor, recolour or rewrite the screen.
pub fn printable(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, word) in message.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in word.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
    }
    out
}

impl Error {
    /// Shorthand for a shape error.
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }

    /// Shorthand for a config error naming `field`.
    pub fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for an error about the file at `path`.
    pub fn file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// For `map_err`: an I/O error on the file at `path` as a file error saying what failed,
    /// `.map_err(Error::io_on(path, "cannot read"))` giving "PATH: cannot read: ...".
    pub fn io_on<'a>(path: &'a Path, what: &'a str) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |e| Error::file(path, format!("{what}: {e}"))
    }

    /// Shorthand for an invalid-argument error.
    pub fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_control_characters_and_joins_lines() {
        assert_eq!(super::printable("a\n  b\tc"), "a b c");
        assert_eq!(
            super::printable("tensor '\u{1b}[2Jx'"),
            "tensor '\\u{1b}[2Jx'"
        );
        assert_eq!(super::printable("ünïcode ok"), "ünïcode ok");
    }
}
