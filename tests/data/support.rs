//! What the data tests share: a temp dir, IDX files built byte by byte, error assertions.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use rims::Error;

/// A fresh, empty directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("rims-data-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub(crate) fn write_gz(&self, name: &str, bytes: &[u8]) -> PathBuf {
        self.write(name, &gzip(bytes))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// An IDX image file: magic 0x00000803, n, rows, cols (big-endian), then the pixels.
pub(crate) fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x00, 0x08, 0x03];
    for d in [n, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

/// An IDX label file: magic 0x00000801, n (big-endian), then the labels.
pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x00, 0x08, 0x01];
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// `n` synthetic 28x28 images; image `i` has every pixel equal to `i` (so it can be recognised
/// after a split).
pub(crate) fn synthetic_mnist(n: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..n).flat_map(|i| vec![i as u8; 28 * 28]).collect();
    idx_images(n as u32, 28, 28, &pixels)
}

/// Asserts `r` is `Err(Error::File)` for `path` and its message contains every word in `words`.
pub(crate) fn assert_file_err<T: std::fmt::Debug>(r: rims::Result<T>, path: &Path, words: &[&str]) {
    match r {
        Err(Error::File { path: p, reason }) => {
            assert_eq!(p, path, "error names the wrong path ({reason})");
            let msg = Error::File {
                path: p,
                reason: reason.clone(),
            }
            .to_string();
            for w in words {
                assert!(reason.contains(w), "message {msg:?} does not contain {w:?}");
            }
        }
        other => panic!("expected Error::File for {}, got {other:?}", path.display()),
    }
}

pub(crate) fn assert_config_err<T: std::fmt::Debug>(r: rims::Result<T>, field: &str) {
    match r {
        Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected Error::Config for {field}, got {other:?}"),
    }
}

// The 2 x 2 x 3 image file and its 2 labels used by most IDX tests.
pub(crate) const PIXELS: [u8; 12] = [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255];
pub(crate) const LABELS: [u8; 2] = [7, 0];
