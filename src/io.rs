//! File helpers shared by checkpoints and outputs.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` without ever leaving a partial file there: the data goes to a
/// temporary file in the same directory, is flushed to disk, and is renamed over the target.
/// An existing file is replaced only by a complete new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let bad = |what: &str, e: std::io::Error| Error::File {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::File {
        path: path.to_path_buf(),
        reason: "not a file path".into(),
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| bad("cannot create temporary file", e))?;
        f.write_all(bytes).map_err(|e| bad("cannot write", e))?;
        f.sync_all().map_err(|e| bad("cannot flush", e))?;
        std::fs::rename(&tmp, path).map_err(|e| bad("cannot rename into place", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
