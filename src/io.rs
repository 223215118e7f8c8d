//! File helpers shared by checkpoints and outputs.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Whether a reader follows a symbolic link at the path it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Follow it: a file the user named (an input, a data set).
    Follow,
    /// Refuse it: a file inside a run directory, which only rims writes; a link planted there
    /// could make rims read, print or append to a file outside the run.
    Refuse,
}

/// Opens `path` for reading when it is a regular file, and says what it is otherwise: a FIFO,
/// a device or a directory is refused without blocking on it (it is opened non-blocking and
/// checked before anything is read), and with [`Link::Refuse`] so is a symbolic link.
pub fn open_regular(path: &Path, link: Link) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = if link == Link::Refuse {
            libc::O_NOFOLLOW
        } else {
            0
        };
        options.custom_flags(libc::O_NONBLOCK | nofollow);
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if link == Link::Refuse && e.raw_os_error() == Some(libc::ELOOP) {
            return Error::file(
                path,
                "is a symbolic link; rims does not follow links inside a run directory",
            );
        }
        Error::file(path, format!("cannot read: {e}"))
    })?;
    let meta = file
        .metadata()
        .map_err(Error::io_on(path, "cannot inspect"))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(Error::file(
            path,
            format!("is {what}; a regular file is expected"),
        ));
    }
    Ok(file)
}

/// Whether nothing is at `path` (not even a dangling link), or a file stands where its path
/// needs a directory: what a reader of an optional file treats as "absent".
pub fn is_absent(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    ))
}

/// The bytes of the regular file at `path` ([`open_regular`]).
pub fn read_regular(path: &Path, link: Link) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_regular(path, link)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(Error::io_on(path, "cannot read"))?;
    Ok(bytes)
}

/// The UTF-8 text of the regular file at `path` ([`open_regular`]).
pub fn read_regular_string(path: &Path, link: Link) -> Result<String> {
    String::from_utf8(read_regular(path, link)?).map_err(|_| Error::file(path, "is not UTF-8 text"))
}

/// The directory `path` lies in ("." for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates `path`, which must not exist yet (a file or link already there is an error, never
/// followed or truncated), writes `bytes` and flushes them to disk before returning.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    create_new_synced(path, path, bytes)
}

/// A temporary name beside a file called `name`: `.NAME.tmp-PID-RANDOM`, with NAME cut to at
/// most 64 bytes, so the whole stays far below the 255-byte limit of a file name.
pub fn temporary_name(name: &str) -> String {
    let mut cut = name.len().min(64);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        ".{}.tmp-{}-{:016x}",
        &name[..cut],
        std::process::id(),
        unpredictable()
    )
}

/// 64 bits no other process can guess: the standard library's per-process random hash keys
/// over the time and a counter.
pub fn unpredictable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Creates `path`, which must not exist (nothing planted there is followed or reused), writes
/// `bytes` and flushes them; errors name `shown`.
fn create_new_synced(path: &Path, shown: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(Error::io_on(
            shown,
            "cannot create a temporary file beside it",
        ))?;
    f.write_all(bytes)
        .map_err(Error::io_on(shown, "cannot write"))?;
    f.sync_all().map_err(Error::io_on(shown, "cannot flush"))
}

/// Flushes a directory's entries (the names a rename created or replaced) to disk. Where the
/// platform cannot open a directory (Windows) there is nothing to do: its renames are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => d
            .sync_all()
            .or_else(|e| {
                // Some file systems refuse fsync on a directory; the rename still happened.
                if e.kind() == std::io::ErrorKind::InvalidInput
                    || e.kind() == std::io::ErrorKind::PermissionDenied
                {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(Error::io_on(dir, "cannot flush the directory")),
        Err(_) if cfg!(not(unix)) => Ok(()),
        Err(e) => Err(Error::file(dir, format!("cannot open the directory: {e}"))),
    }
}

/// Writes `bytes` to `path` without ever leaving a partial file there: the data goes to a
/// temporary file in the same directory, is flushed to disk, and is renamed over the target.
/// An existing file is replaced only by a complete new one, and only a regular file: an
/// existing `path` that is a directory, a device, a FIFO or a symbolic link is refused (a
/// rename would replace the node itself, `/dev/null` included, or write through the link).
/// The temporary is created exclusively (never through something planted at its name) under
/// a name no other process can predict, short enough beside any legal target name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file path"))?;
    check_replaceable(path)?;
    let tmp = dir.join(temporary_name(&name.to_string_lossy()));
    let result = create_new_synced(&tmp, path, bytes).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(Error::io_on(path, "cannot rename into place"))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// Refuses a `path` that [`write_atomic`] would not replace: one that exists and is not a
/// regular file (a symbolic link, a directory, a device, a FIFO, a socket). A command checks
/// its output with it before the work, so it fails at once rather than after.
pub fn check_replaceable(path: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let what = if meta.file_type().is_symlink() {
            Some("a symbolic link; give the path of the file itself")
        } else if meta.is_dir() {
            Some("a directory")
        } else if !meta.is_file() {
            Some("not a regular file (a device, FIFO or socket)")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(Error::file(
                path,
                format!("exists and is {what}; rims replaces only regular files"),
            ));
        }
    }
    Ok(())
}

/// The safetensors bytes of f32 tensors given as (name, shape, values), with `metadata`.
///
/// Written here rather than by the format library, whose header takes the metadata as a
/// `HashMap` and so orders its keys differently in every process: the same tensors and
/// metadata give the same bytes (the header's keys sorted, the tensors' data in the order
/// given, the header padded with spaces to a multiple of 8 bytes as the library pads it).
/// Names must be distinct and not `__metadata__`; each shape must hold its values.
pub fn encode_f32_safetensors(
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &std::collections::BTreeMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    use serde_json::{Map, Value, json};
    let mut header = Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        if shape.iter().product::<usize>() != values.len() {
            return Err(format!(
                "tensor '{name}' has shape {shape:?} but {} values",
                values.len()
            ));
        }
        let end = offset + 4 * values.len();
        let entry = json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]});
        if *name == "__metadata__" || header.insert(name.to_string(), entry).is_some() {
            return Err(format!("tensor name '{name}' is reserved or given twice"));
        }
        offset = end;
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for (_, _, values) in tensors {
        for v in *values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::encode_f32_safetensors;

    /// The same tensors and metadata give the same bytes every time (the format library's
    /// own writer orders the metadata by a per-map random hash), and the library reads them
    /// back: values, shapes and metadata.
    #[test]
    fn safetensors_bytes_are_deterministic_and_readable() {
        let meta: std::collections::BTreeMap<String, String> = (0..12)
            .map(|i| (format!("key{i}"), format!("value {i}")))
            .collect();
        let (a, b) = (
            [1.0f32, -2.5, 3.25, 0.0, 7.0, 8.0],
            [f32::MAX, f32::MIN_POSITIVE],
        );
        let tensors = [("w", &[2usize, 3][..], &a[..]), ("b", &[2][..], &b[..])];
        let bytes = encode_f32_safetensors(&tensors, &meta).unwrap();
        for _ in 0..8 {
            assert_eq!(encode_f32_safetensors(&tensors, &meta).unwrap(), bytes);
        }
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let w = st.tensor("w").unwrap();
        assert_eq!(w.shape(), [2, 3]);
        assert_eq!(bytemuck::pod_collect_to_vec::<u8, f32>(w.data()), a);
        let bt = st.tensor("b").unwrap();
        assert_eq!(bytemuck::pod_collect_to_vec::<u8, f32>(bt.data()), b);
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let read: std::collections::BTreeMap<_, _> =
            header.metadata().clone().unwrap().into_iter().collect();
        assert_eq!(read, meta);
        assert!(encode_f32_safetensors(&[("w", &[4][..], &a[..])], &meta).is_err());
        assert!(
            encode_f32_safetensors(&[("w", &[1][..], &a[..1]), ("w", &[1][..], &a[..1])], &meta)
                .is_err()
        );
    }
}
