//! IDX files (the format of the original MNIST distribution) and the MNIST train/val/test split.
//!
//! # Format
//!
//! An IDX file is a 4-byte magic, then one big-endian `u32` per dimension, then the data,
//! row-major. The magic is `0x00 0x00 <type> <ndims>`; this module reads the two unsigned-byte
//! variants MNIST uses:
//!
//! | magic | content | shape |
//! |---|---|---|
//! | `0x00000803` | images, one `u8` per pixel | `[n, rows, cols]` |
//! | `0x00000801` | labels, one `u8` each (0..=9) | `[n]` |
//!
//! A file is gzip-compressed or not; that is detected from its first two bytes (`0x1f 0x8b`),
//! not from its name.
//!
//! # Errors
//!
//! Every problem comes back as [`Error::File`] naming the path, never as a panic: a missing or
//! unreadable file, a corrupt gzip stream, a wrong magic (the message says when the file is the
//! *other* kind of IDX file), a header cut short, sizes whose product overflows, fewer data bytes
//! than the header promises ("truncated"), labels above 9, and, when a pair is loaded, image and
//! label counts that differ.
//!
//! **Trailing data is an error.** A file holding more bytes after the header than the header
//! declares is rejected: the official files never do that, and extra bytes most often mean the
//! header (or the file) is not what we think it is. Reading stops one byte past the declared size,
//! so a lying header cannot make the reader inflate an arbitrarily large stream.
//!
//! # MNIST splits
//!
//! [`load_mnist`] looks in a directory for one of two layouts:
//!
//! - **The full MNIST files** (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//!   `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each plain or with `.gz`; the plain
//!   file wins when both exist). This is the spec's split (docs/spec.md §2.1, the authors'
//!   `mnist_data`): the training file is permuted with a seeded generator, the first
//!   `n / 5` of the permutation is validation, the rest is training (60,000 → 48,000 train +
//!   12,000 val); test is the whole t10k file (10,000). The permutation comes from
//!   [`Rng`] (SplitMix64, Fisher–Yates), not numpy's Mersenne Twister, so *which* images land
//!   in val differs from the authors' `np.random.seed(0)` draw; the sizes and the recipe are the
//!   same.
//! - **The bundled 10k subset** (`mnist-10k-images-idx3-ubyte.gz` and
//!   `mnist-10k-labels-idx1-ubyte.gz`, shipped in [`bundled_mnist_dir`]; 10,000 real MNIST
//!   digits in a fixed shuffled order, so every prefix is class-balanced). The subset's README
//!   suggests the first 8,000 for training and the last 2,000 for testing; this module follows
//!   that and then applies the same recipe as for the full files to the training part:
//!   **test = the last `n / 5` images (2,000)**, and the first `n - n / 5` (8,000) play the role
//!   of the training file: a seeded permutation puts its first fifth in **val (1,600)** and the
//!   rest in **train (6,400)**. So train : val = 80 : 20 as in the spec, and the test set is a
//!   fixed, seed-independent block that other tools using the README's suggestion share.
//!
//! When any of the four full-set files is present, all four must be (a half-downloaded set is
//! reported rather than silently replaced by the subset). Both layouts must hold 28 × 28 images,
//! since the sequential-MNIST resize is defined from 28 × 28.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Magic of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Seed of the train/val permutation used by [`load_mnist`] (the authors use numpy seed 0).
pub const SPLIT_SEED: u64 = 0;
/// Side of an MNIST image.
pub const MNIST_SIDE: usize = 28;
/// Number of classes; labels are `0..NUM_CLASSES`.
pub const NUM_CLASSES: usize = 10;

/// Standard names of the full MNIST distribution: train images, train labels, test images, test
/// labels (each may carry a `.gz` suffix).
pub const FULL_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];
/// Names of the bundled 10,000-digit subset: images, labels.
pub const BUNDLED_NAMES: [&str; 2] = [
    "mnist-10k-images-idx3-ubyte.gz",
    "mnist-10k-labels-idx1-ubyte.gz",
];

/// The directory of the bundled 10k subset: `<crate root>/data/mnist` (fixed at compile time).
pub fn bundled_mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("mnist")
}

/// Images `[n, rows, cols]`, one byte per pixel, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub n: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// `n * rows * cols` bytes; image `i` is `pixels[i * rows * cols..(i + 1) * rows * cols]`.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Bytes per image (`rows * cols`).
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Image `i`, row-major. Panics when `i >= n` (an indexing bug, like slice indexing).
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.pixels[i * len..(i + 1) * len]
    }

    /// A new set holding the images at `indices`, in that order. Panics on an index `>= n`.
    pub fn select(&self, indices: &[usize]) -> Images {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Images {
            n: indices.len(),
            rows: self.rows,
            cols: self.cols,
            pixels,
        }
    }
}

/// One split of a labelled image set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MnistSplit {
    /// The split's images, `images.n == labels.len()`.
    pub images: Images,
    /// One label per image, `0..=9`.
    pub labels: Vec<u8>,
    /// Where each example sits in the file it was read from (train file or test file for the full
    /// set, the single file for the bundled subset).
    pub source_indices: Vec<usize>,
}

impl Mnist {
    /// The splits' sizes and a hash (FNV-1a) of their labels and pixels: what tells two copies
    /// of the data apart without sending them (ranks of one job that read the data each for
    /// itself check that they hold the same).
    pub fn fingerprint(&self) -> String {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for split in [&self.train, &self.val, &self.test] {
            eat(&(split.images.rows as u64).to_le_bytes());
            eat(&(split.images.cols as u64).to_le_bytes());
            eat(&split.labels);
            eat(&split.images.pixels);
        }
        format!(
            "{} training, {} validation and {} test digits (hash {hash:016x})",
            self.train.len(),
            self.val.len(),
            self.test.len()
        )
    }
}

impl MnistSplit {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn gather(images: &Images, labels: &[u8], indices: Vec<usize>) -> MnistSplit {
        MnistSplit {
            images: images.select(&indices),
            labels: indices.iter().map(|&i| labels[i]).collect(),
            source_indices: indices,
        }
    }
}

/// Which files [`load_mnist`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MnistSource {
    /// The four files of the full distribution (paths: train images, train labels, test images,
    /// test labels).
    Full([PathBuf; 4]),
    /// The bundled 10k subset (paths: images, labels).
    Bundled10k([PathBuf; 2]),
}

/// MNIST split into train / val / test (see the module docs for how).
#[derive(Clone, Debug)]
pub struct Mnist {
    /// Training split.
    pub train: MnistSplit,
    /// Validation split, held out from the training file.
    pub val: MnistSplit,
    /// Test split.
    pub test: MnistSplit,
    /// Which files the splits were read from.
    pub source: MnistSource,
    /// The seed of the train/val permutation.
    pub split_seed: u64,
}

fn magic_name(magic: u32) -> Option<&'static str> {
    match magic {
        IMAGES_MAGIC => Some("an IDX image file (magic 0x00000803)"),
        LABELS_MAGIC => Some("an IDX label file (magic 0x00000801)"),
        _ => None,
    }
}

/// Reads an unsigned-byte IDX file with the given magic: returns its dimensions and data.
fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    // A regular file only: a FIFO named as a data set would block the read forever.
    let file = crate::io::open_regular(path, crate::io::Link::Follow)?;
    let mut buffered = BufReader::new(file);
    let gz = {
        let head = buffered
            .fill_buf()
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    let mut reader: Box<dyn Read> = if gz {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let read_err = |e: std::io::Error, what: &str| {
        if gz {
            Error::file(
                path,
                format!("gzip stream is corrupt or cut short while reading {what}: {e}"),
            )
        } else {
            Error::file(path, format!("cannot read {what}: {e}"))
        }
    };
    let expected_name = magic_name(magic).unwrap_or("an IDX file");

    // Header: magic, then one big-endian u32 per dimension.
    let mut head = [0u8; 4];
    let got = read_up_to(&mut reader, &mut head).map_err(|e| read_err(e, "the header"))?;
    if got < 4 {
        return Err(Error::file(
            path,
            format!("only {got} bytes: too short for an IDX header; expected {expected_name}"),
        ));
    }
    let found = u32::from_be_bytes(head);
    if found != magic {
        let what = match magic_name(found) {
            Some(name) => format!("this is {name}"),
            None => format!("not an IDX file of unsigned bytes (magic 0x{found:08x})"),
        };
        return Err(Error::file(
            path,
            format!("wrong magic: {what}; expected {expected_name}"),
        ));
    }
    let ndims = (magic & 0xff) as usize;
    let mut dims_raw = vec![0u8; 4 * ndims];
    let got = read_up_to(&mut reader, &mut dims_raw).map_err(|e| read_err(e, "the header"))?;
    if got < dims_raw.len() {
        return Err(Error::file(
            path,
            format!(
                "truncated header: {ndims} dimension sizes need {} bytes after the magic, file has {got}",
                dims_raw.len()
            ),
        ));
    }
    let dims: Vec<u64> = dims_raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .collect();
    let total = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|t| usize::try_from(t).ok())
        .filter(|&t| t < isize::MAX as usize)
        .ok_or_else(|| {
            Error::file(
                path,
                format!("header sizes {dims:?} overflow: their product does not fit in memory"),
            )
        })?;

    // Data: read at most one byte more than declared, so trailing data is seen without inflating
    // an unbounded stream.
    let mut data = Vec::with_capacity(total.min(1 << 20));
    reader
        .take(total as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| read_err(e, "the data"))?;
    let shape = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" x ");
    if data.len() < total {
        return Err(Error::file(
            path,
            format!(
                "truncated: the header declares [{shape}] = {total} data bytes, only {} follow the header",
                data.len()
            ),
        ));
    }
    if data.len() > total {
        return Err(Error::file(
            path,
            format!(
                "trailing data: the file holds more than the {total} data bytes its header declares ([{shape}])"
            ),
        ));
    }
    Ok((dims.into_iter().map(|d| d as usize).collect(), data))
}

/// `read_exact` that reports how many bytes it got instead of failing at end of file.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads an IDX image file (magic `0x00000803`), gzip-compressed or not.
pub fn read_images(path: impl AsRef<Path>) -> Result<Images> {
    let path = path.as_ref();
    let (dims, pixels) = read_idx(path, IMAGES_MAGIC)?;
    Ok(Images {
        n: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads an IDX label file (magic `0x00000801`), gzip-compressed or not; every label must be
/// `0..=9`.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let (_, labels) = read_idx(path, LABELS_MAGIC)?;
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= NUM_CLASSES)
    {
        return Err(Error::file(
            path,
            format!(
                "label {l} at index {i} is out of range: MNIST labels are 0..={}",
                NUM_CLASSES - 1
            ),
        ));
    }
    Ok(labels)
}

/// Reads an image file and its label file and checks that they hold the same number of examples
/// (the error names the label file and gives both counts).
pub fn read_pair(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
) -> Result<(Images, Vec<u8>)> {
    let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    if images.n != labels.len() {
        return Err(Error::file(
            labels_path,
            format!(
                "count mismatch: {} labels here but {} images in {}",
                labels.len(),
                images.n,
                images_path.display()
            ),
        ));
    }
    Ok((images, labels))
}

/// [`read_pair`], and the images must be 28 × 28.
fn read_mnist_pair(images_path: &Path, labels_path: &Path) -> Result<(Images, Vec<u8>)> {
    let (images, labels) = read_pair(images_path, labels_path)?;
    if images.rows != MNIST_SIDE || images.cols != MNIST_SIDE {
        return Err(Error::file(
            images_path,
            format!(
                "images are {} x {}; MNIST images must be {MNIST_SIDE} x {MNIST_SIDE}",
                images.rows, images.cols
            ),
        ));
    }
    Ok((images, labels))
}

/// A uniformly random permutation of `0..n` (Fisher–Yates driven by `rng`).
pub fn permutation(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

/// Splits example indices `pool` into (train, val): a seeded permutation of the pool, its first
/// `len / 5` are val, the rest train (the authors' `mnist_data` recipe). Each part is returned in
/// permutation order.
pub fn train_val_split(pool: &[usize], seed: u64) -> (Vec<usize>, Vec<usize>) {
    let perm = permutation(&mut Rng::new(seed), pool.len());
    let num_val = pool.len() / 5;
    let val = perm[..num_val].iter().map(|&i| pool[i]).collect();
    let train = perm[num_val..].iter().map(|&i| pool[i]).collect();
    (train, val)
}

/// `dir/name` if it is a file, else `dir/name.gz` if that is a file (unless `name` already ends in
/// `.gz`).
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Some(plain);
    }
    if name.ends_with(".gz") {
        return None;
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.is_file().then_some(gz)
}

/// Loads MNIST from `dir` (full files or the bundled subset) and splits it with [`SPLIT_SEED`].
/// See the module docs for the layouts and the split.
pub fn load_mnist(dir: impl AsRef<Path>) -> Result<Mnist> {
    load_mnist_with_seed(dir, SPLIT_SEED)
}

/// [`load_mnist`] with a chosen seed for the train/val permutation.
pub fn load_mnist_with_seed(dir: impl AsRef<Path>, split_seed: u64) -> Result<Mnist> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(Error::file(
            dir,
            "not a directory (looking for MNIST files)",
        ));
    }
    let full: Vec<Option<PathBuf>> = FULL_NAMES.iter().map(|n| find_file(dir, n)).collect();
    if full.iter().any(Option::is_some) {
        let missing: Vec<&str> = FULL_NAMES
            .iter()
            .zip(&full)
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(Error::file(
                dir,
                format!(
                    "incomplete MNIST set: missing {} (plain or .gz)",
                    missing.join(", ")
                ),
            ));
        }
        let paths: [PathBuf; 4] = [0, 1, 2, 3].map(|i| full[i].clone().unwrap_or_default());
        let (train_images, train_labels) = read_mnist_pair(&paths[0], &paths[1])?;
        let (test_images, test_labels) = read_mnist_pair(&paths[2], &paths[3])?;
        let pool: Vec<usize> = (0..train_images.n).collect();
        let (train_idx, val_idx) = train_val_split(&pool, split_seed);
        return Ok(Mnist {
            train: MnistSplit::gather(&train_images, &train_labels, train_idx),
            val: MnistSplit::gather(&train_images, &train_labels, val_idx),
            test: MnistSplit::gather(&test_images, &test_labels, (0..test_images.n).collect()),
            source: MnistSource::Full(paths),
            split_seed,
        });
    }

    let bundled: Vec<Option<PathBuf>> = BUNDLED_NAMES.iter().map(|n| find_file(dir, n)).collect();
    match (&bundled[0], &bundled[1]) {
        (Some(images_path), Some(labels_path)) => {
            let (images, labels) = read_mnist_pair(images_path, labels_path)?;
            let n = images.n;
            let num_test = n / 5;
            let pool: Vec<usize> = (0..n - num_test).collect();
            let (train_idx, val_idx) = train_val_split(&pool, split_seed);
            Ok(Mnist {
                train: MnistSplit::gather(&images, &labels, train_idx),
                val: MnistSplit::gather(&images, &labels, val_idx),
                test: MnistSplit::gather(&images, &labels, (n - num_test..n).collect()),
                source: MnistSource::Bundled10k([images_path.clone(), labels_path.clone()]),
                split_seed,
            })
        }
        (Some(_), None) | (None, Some(_)) => {
            let missing = if bundled[0].is_none() {
                BUNDLED_NAMES[0]
            } else {
                BUNDLED_NAMES[1]
            };
            Err(Error::file(
                dir,
                format!("incomplete bundled MNIST subset: missing {missing}"),
            ))
        }
        (None, None) => Err(Error::file(
            dir,
            format!(
                "no MNIST files found: looked for {} (each plain or .gz), or {} and {}",
                FULL_NAMES.join(", "),
                BUNDLED_NAMES[0],
                BUNDLED_NAMES[1]
            ),
        )),
    }
}
