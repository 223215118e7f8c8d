//! The data layer (src/data), CPU only: IDX files built byte by byte, MNIST layouts and splits,
//! the sequential-MNIST transform and batcher, the copying task and the adding problem, all
//! against hand-computed values.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use rims::Error;
use rims::data::{
    Copying, MnistSource, SmnistBatches, adding, binarise, bundled_mnist_dir, copying, idx,
    load_mnist, load_mnist_with_seed, pixel_sequence, read_images, read_labels, read_pair,
    resize_indices, smnist,
};
use rims::rng::Rng;

// ---------------------------------------------------------------------------------------------
// helpers

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("rims-data-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn write_gz(&self, name: &str, bytes: &[u8]) -> PathBuf {
        self.write(name, &gzip(bytes))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// An IDX image file: magic 0x00000803, n, rows, cols (big-endian), then the pixels.
fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x00, 0x08, 0x03];
    for d in [n, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

/// An IDX label file: magic 0x00000801, n (big-endian), then the labels.
fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x00, 0x08, 0x01];
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// `n` synthetic 28x28 images; image `i` has every pixel equal to `i` (so it can be recognised
/// after a split).
fn synthetic_mnist(n: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..n).flat_map(|i| vec![i as u8; 28 * 28]).collect();
    idx_images(n as u32, 28, 28, &pixels)
}

/// Asserts `r` is `Err(Error::File)` for `path` and its message contains every word in `words`.
fn assert_file_err<T: std::fmt::Debug>(r: rims::Result<T>, path: &Path, words: &[&str]) {
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

fn assert_config_err<T: std::fmt::Debug>(r: rims::Result<T>, field: &str) {
    match r {
        Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected Error::Config for {field}, got {other:?}"),
    }
}

// The 2 x 2 x 3 image file and its 2 labels used by most IDX tests.
const PIXELS: [u8; 12] = [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255];
const LABELS: [u8; 2] = [7, 0];

// ---------------------------------------------------------------------------------------------
// IDX reader

#[test]
fn reads_plain_and_gzip_images() {
    let dir = TempDir::new("images");
    let bytes = idx_images(2, 2, 3, &PIXELS);
    assert_eq!(bytes.len(), 16 + 12);
    assert_eq!(&bytes[..8], &[0, 0, 8, 3, 0, 0, 0, 2]);
    for path in [
        dir.write("img", &bytes),
        dir.write_gz("img.gz", &bytes),
        // The name does not decide: a gzip file without .gz and a plain file with it.
        dir.write_gz("img-gz-no-suffix", &bytes),
        dir.write("img-plain.gz", &bytes),
    ] {
        let images = read_images(&path).unwrap();
        assert_eq!((images.n, images.rows, images.cols), (2, 2, 3));
        assert_eq!(images.pixels, PIXELS);
        assert_eq!(images.image(1), &[250, 251, 252, 253, 254, 255]);
        assert_eq!(images.image_len(), 6);
    }
}

#[test]
fn reads_plain_and_gzip_labels() {
    let dir = TempDir::new("labels");
    let bytes = idx_labels(&[3, 1, 4, 1, 5, 9, 2, 6, 0]);
    assert_eq!(&bytes[..8], &[0, 0, 8, 1, 0, 0, 0, 9]);
    for path in [dir.write("lab", &bytes), dir.write_gz("lab.gz", &bytes)] {
        assert_eq!(read_labels(&path).unwrap(), vec![3, 1, 4, 1, 5, 9, 2, 6, 0]);
    }
    // Zero labels is a valid (empty) file.
    let empty = dir.write("empty-labels", &idx_labels(&[]));
    assert_eq!(read_labels(&empty).unwrap(), Vec::<u8>::new());
}

#[test]
fn images_select_gathers_in_order() {
    let dir = TempDir::new("select");
    let images = read_images(dir.write("img", &idx_images(2, 2, 3, &PIXELS))).unwrap();
    let sel = images.select(&[1, 0, 1]);
    assert_eq!(sel.n, 3);
    assert_eq!(&sel.pixels[..6], &PIXELS[6..]);
    assert_eq!(&sel.pixels[6..12], &PIXELS[..6]);
    assert_eq!(&sel.pixels[12..], &PIXELS[6..]);
}

#[test]
fn missing_file_is_a_file_error() {
    let dir = TempDir::new("missing");
    let p = dir.path("no-such-file");
    assert_file_err(read_images(&p), &p, &["cannot open"]);
    assert_file_err(read_labels(&p), &p, &["cannot open"]);
}

#[test]
fn wrong_magic_is_a_file_error() {
    let dir = TempDir::new("magic");
    let labels = dir.write("labels", &idx_labels(&LABELS));
    let images = dir.write("images", &idx_images(2, 2, 3, &PIXELS));
    // The other kind of IDX file: the message says what the file is.
    assert_file_err(
        read_images(&labels),
        &labels,
        &["wrong magic", "label file", "0x00000803"],
    );
    assert_file_err(
        read_labels(&images),
        &images,
        &["wrong magic", "image file", "0x00000801"],
    );
    // Not IDX at all (also through gzip).
    let mut junk = idx_images(2, 2, 3, &PIXELS);
    junk[..4].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    let p = dir.write("junk", &junk);
    assert_file_err(read_images(&p), &p, &["wrong magic", "0x12345678"]);
    let p = dir.write_gz("junk.gz", &junk);
    assert_file_err(read_images(&p), &p, &["wrong magic", "0x12345678"]);
    // IDX of another element type (0x0D = f32) is not accepted either.
    let mut floats = idx_images(2, 2, 3, &PIXELS);
    floats[2] = 0x0d;
    let p = dir.write("floats", &floats);
    assert_file_err(read_images(&p), &p, &["wrong magic", "0x00000d03"]);
}

#[test]
fn truncated_files_are_file_errors() {
    let dir = TempDir::new("truncated");
    let full = idx_images(2, 2, 3, &PIXELS);

    // One pixel short: the header promises 12 bytes.
    let short = &full[..full.len() - 1];
    let p = dir.write("short", short);
    assert_file_err(read_images(&p), &p, &["truncated", "12", "11"]);
    let p = dir.write_gz("short.gz", short);
    assert_file_err(read_images(&p), &p, &["truncated", "12", "11"]);

    // Header cut inside the dimension sizes, and inside the magic; an empty file.
    let p = dir.write("short-header", &full[..10]);
    assert_file_err(read_images(&p), &p, &["truncated header"]);
    let p = dir.write("short-magic", &full[..3]);
    assert_file_err(read_images(&p), &p, &["too short"]);
    let p = dir.write("empty", &[]);
    assert_file_err(read_images(&p), &p, &["too short"]);

    // Labels: 2 promised, 1 present.
    let labels = idx_labels(&LABELS);
    let p = dir.write("short-labels", &labels[..labels.len() - 1]);
    assert_file_err(read_labels(&p), &p, &["truncated", "2", "1"]);

    // A gzip stream cut in the middle (the compressed bytes themselves are short).
    let big: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let gz = gzip(&idx_images(1, 40, 100, &big));
    let p = dir.write("cut.gz", &gz[..gz.len() / 2]);
    assert_file_err(read_images(&p), &p, &["gzip"]);
    // gzip magic followed by garbage.
    let p = dir.write(
        "bad.gz",
        &[0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    );
    assert!(matches!(read_images(&p), Err(Error::File { .. })));
}

#[test]
fn trailing_data_is_a_file_error() {
    let dir = TempDir::new("trailing");
    let mut bytes = idx_images(2, 2, 3, &PIXELS);
    bytes.push(0);
    let p = dir.write("img", &bytes);
    assert_file_err(read_images(&p), &p, &["trailing"]);
    let p = dir.write_gz("img.gz", &bytes);
    assert_file_err(read_images(&p), &p, &["trailing"]);
    let mut labels = idx_labels(&LABELS);
    labels.extend_from_slice(&[1, 2]);
    let p = dir.write("lab", &labels);
    assert_file_err(read_labels(&p), &p, &["trailing"]);
}

#[test]
fn overflowing_sizes_are_file_errors() {
    let dir = TempDir::new("overflow");
    // 2^32 - 1 cubed does not fit in 64 bits.
    let p = dir.write("huge", &idx_images(u32::MAX, u32::MAX, u32::MAX, &[]));
    assert_file_err(read_images(&p), &p, &["overflow"]);
    // Fits but the data is not there: truncated, and no giant allocation happens.
    let p = dir.write("big", &idx_images(60_000, 1 << 16, 1 << 12, &PIXELS));
    assert_file_err(read_images(&p), &p, &["truncated"]);
}

#[test]
fn labels_above_nine_are_file_errors() {
    let dir = TempDir::new("label-range");
    let p = dir.write("lab", &idx_labels(&[9, 10, 3]));
    assert_file_err(read_labels(&p), &p, &["label 10", "index 1", "0..=9"]);
    let p = dir.write_gz("lab.gz", &idx_labels(&[0, 1, 255]));
    assert_file_err(read_labels(&p), &p, &["label 255", "index 2"]);
}

#[test]
fn image_label_count_mismatch_is_a_file_error() {
    let dir = TempDir::new("mismatch");
    let images = dir.write("img", &idx_images(2, 2, 3, &PIXELS));
    let three = dir.write("lab3", &idx_labels(&[1, 2, 3]));
    assert_file_err(
        read_pair(&images, &three),
        &three,
        &["count mismatch", "3", "2"],
    );
    let two = dir.write("lab2", &idx_labels(&LABELS));
    let (imgs, labels) = read_pair(&images, &two).unwrap();
    assert_eq!(imgs.n, 2);
    assert_eq!(labels, LABELS);
}

// ---------------------------------------------------------------------------------------------
// MNIST layouts and splits

/// Writes the four full-distribution files: `n_train` training images (gzip), `n_test` test
/// images (plain); image i of each file has all pixels = i, label = i % 10.
fn write_full_layout(dir: &TempDir, n_train: usize, n_test: usize) {
    let lab = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<u8>>();
    dir.write_gz("train-images-idx3-ubyte.gz", &synthetic_mnist(n_train));
    dir.write_gz("train-labels-idx1-ubyte.gz", &idx_labels(&lab(n_train)));
    dir.write("t10k-images-idx3-ubyte", &synthetic_mnist(n_test));
    dir.write("t10k-labels-idx1-ubyte", &idx_labels(&lab(n_test)));
}

#[test]
fn full_layout_uses_the_spec_split() {
    let dir = TempDir::new("full");
    write_full_layout(&dir, 10, 3);
    let m = load_mnist(&dir.0).unwrap();
    assert!(matches!(m.source, MnistSource::Full(_)));
    assert_eq!(m.split_seed, idx::SPLIT_SEED);
    // 10 training images: val = 10 / 5 = 2, train = 8; test = the whole test file.
    assert_eq!((m.train.len(), m.val.len(), m.test.len()), (8, 2, 3));
    assert_eq!(m.test.source_indices, vec![0, 1, 2]);
    let mut all: Vec<usize> = m
        .train
        .source_indices
        .iter()
        .chain(&m.val.source_indices)
        .copied()
        .collect();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    // Each example carries its own image and label.
    for split in [&m.train, &m.val, &m.test] {
        assert_eq!(split.images.n, split.len());
        assert_eq!((split.images.rows, split.images.cols), (28, 28));
        for (k, &i) in split.source_indices.iter().enumerate() {
            assert!(split.images.image(k).iter().all(|&p| p == i as u8));
            assert_eq!(split.labels[k], (i % 10) as u8);
        }
    }
    // The split is the seeded permutation: first fifth val, rest train.
    let (train, val) = idx::train_val_split(&(0..10).collect::<Vec<_>>(), idx::SPLIT_SEED);
    assert_eq!(m.train.source_indices, train);
    assert_eq!(m.val.source_indices, val);
    // Same seed, same split.
    let again = load_mnist_with_seed(&dir.0, idx::SPLIT_SEED).unwrap();
    assert_eq!(again.val.source_indices, m.val.source_indices);
}

#[test]
fn plain_file_wins_over_gz_and_bundled_is_ignored_when_full_exists() {
    let dir = TempDir::new("prefer");
    write_full_layout(&dir, 5, 2);
    dir.write_gz("mnist-10k-images-idx3-ubyte.gz", &synthetic_mnist(10));
    dir.write_gz("mnist-10k-labels-idx1-ubyte.gz", &idx_labels(&[0; 10]));
    let m = load_mnist(&dir.0).unwrap();
    assert!(matches!(m.source, MnistSource::Full(_)));
    assert_eq!((m.train.len(), m.val.len(), m.test.len()), (4, 1, 2));
    // A plain train-images file next to the .gz one: the plain one (with 10 images) is read, so
    // the label count (5) no longer matches.
    dir.write("train-images-idx3-ubyte", &synthetic_mnist(10));
    let labels = dir.path("train-labels-idx1-ubyte.gz");
    assert_file_err(load_mnist(&dir.0), &labels, &["count mismatch", "5", "10"]);
}

#[test]
fn incomplete_or_absent_layouts_are_file_errors() {
    let dir = TempDir::new("incomplete");
    assert_file_err(load_mnist(&dir.0), &dir.0, &["no MNIST files", "mnist-10k"]);
    dir.write("t10k-labels-idx1-ubyte.gz", &gzip(&idx_labels(&LABELS)));
    assert_file_err(
        load_mnist(&dir.0),
        &dir.0,
        &[
            "incomplete",
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
        ],
    );
    let other = TempDir::new("incomplete-bundled");
    other.write_gz("mnist-10k-images-idx3-ubyte.gz", &synthetic_mnist(5));
    assert_file_err(
        load_mnist(&other.0),
        &other.0,
        &["incomplete", "mnist-10k-labels-idx1-ubyte.gz"],
    );
    let nowhere = dir.path("no-such-dir");
    assert_file_err(load_mnist(&nowhere), &nowhere, &["not a directory"]);
}

#[test]
fn mnist_layouts_need_28x28_images() {
    let dir = TempDir::new("not28");
    write_full_layout(&dir, 5, 2);
    let p = dir.write("t10k-images-idx3-ubyte", &idx_images(2, 2, 3, &PIXELS));
    assert_file_err(load_mnist(&dir.0), &p, &["2 x 3", "28 x 28"]);
}

#[test]
fn bundled_layout_split_on_synthetic_files() {
    let dir = TempDir::new("bundled-synth");
    dir.write_gz("mnist-10k-images-idx3-ubyte.gz", &synthetic_mnist(10));
    let labels: Vec<u8> = (0..10).map(|i| 9 - i).collect();
    dir.write_gz("mnist-10k-labels-idx1-ubyte.gz", &idx_labels(&labels));
    let m = load_mnist(&dir.0).unwrap();
    assert!(matches!(m.source, MnistSource::Bundled10k(_)));
    // n = 10: test = last 10 / 5 = 2; the first 8 split into val 8 / 5 = 1 and train 7.
    assert_eq!((m.train.len(), m.val.len(), m.test.len()), (7, 1, 2));
    assert_eq!(m.test.source_indices, vec![8, 9]);
    assert_eq!(m.test.labels, vec![1, 0]);
    let mut pool: Vec<usize> = [&m.train.source_indices[..], &m.val.source_indices[..]].concat();
    pool.sort();
    assert_eq!(pool, (0..8).collect::<Vec<_>>());
}

#[test]
fn bundled_data_loads() {
    let dir = bundled_mnist_dir();
    assert!(dir.ends_with("data/mnist"));
    let images = read_images(dir.join("mnist-10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((images.n, images.rows, images.cols), (10_000, 28, 28));
    assert_eq!(images.pixels.len(), 10_000 * 784);
    let labels = read_labels(dir.join("mnist-10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(labels.len(), 10_000);
    // Class counts from data/mnist/README.md.
    let mut counts = [0usize; 10];
    for &l in &labels {
        counts[l as usize] += 1;
    }
    assert_eq!(
        counts,
        [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    // Real digits: both dark and bright pixels, mostly background.
    let bright = images.pixels.iter().filter(|&&p| p >= 128).count();
    assert!(bright > 0 && bright < images.pixels.len() / 2);

    let m = load_mnist(&dir).unwrap();
    assert!(matches!(m.source, MnistSource::Bundled10k(_)));
    assert_eq!(
        (m.train.len(), m.val.len(), m.test.len()),
        (6400, 1600, 2000)
    );
    assert_eq!(m.test.source_indices, (8000..10_000).collect::<Vec<_>>());
    let mut pool: Vec<usize> = [&m.train.source_indices[..], &m.val.source_indices[..]].concat();
    pool.sort();
    assert_eq!(pool, (0..8000).collect::<Vec<_>>());
    for split in [&m.train, &m.val, &m.test] {
        assert!(split.labels.iter().all(|&l| l <= 9));
        let (k, i) = (split.len() / 3, split.source_indices[split.len() / 3]);
        assert_eq!(split.images.image(k), images.image(i));
        assert_eq!(split.labels[k], labels[i]);
    }
    // A different seed gives a different val set; the test block stays.
    let other = load_mnist_with_seed(&dir, 1).unwrap();
    assert_ne!(other.val.source_indices, m.val.source_indices);
    assert_eq!(other.test.source_indices, m.test.source_indices);
}

// ---------------------------------------------------------------------------------------------
// sequential MNIST

#[test]
fn binarise_threshold_is_128() {
    assert_eq!(binarise(0), 0);
    assert_eq!(binarise(1), 0);
    assert_eq!(binarise(127), 0);
    assert_eq!(binarise(128), 1);
    assert_eq!(binarise(200), 1);
    assert_eq!(binarise(255), 1);
    // round(p / 255) for every byte.
    for p in 0..=255u8 {
        assert_eq!(binarise(p), (p as f64 / 255.0).round() as u8, "p = {p}");
    }
}

#[test]
fn resize_index_maps() {
    // floor(j * 28 / S), computed by hand.
    assert_eq!(
        resize_indices(28, 14),
        [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26]
    );
    assert_eq!(
        resize_indices(28, 16),
        [0, 1, 3, 5, 7, 8, 10, 12, 14, 15, 17, 19, 21, 22, 24, 26]
    );
    assert_eq!(
        resize_indices(28, 19),
        [
            0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22, 23, 25, 26
        ]
    );
    assert_eq!(
        resize_indices(28, 24),
        [
            0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26
        ]
    );
    assert_eq!(resize_indices(28, 28), (0..28).collect::<Vec<_>>());
    // Upsampling repeats: 2 -> 5 reads 0,0,0,1,1.
    assert_eq!(resize_indices(2, 5), [0, 0, 0, 1, 1]);
}

#[test]
fn resize_tiny_image() {
    // 4 x 4 image, value = 10 * row + col.
    let img: Vec<u8> = (0..4)
        .flat_map(|r| (0..4).map(move |c| 10 * r + c))
        .collect();
    // S = 2 reads rows/cols 0, 2.
    assert_eq!(smnist::resize_nearest(&img, 4, 4, 2), [0, 2, 20, 22]);
    // S = 3 reads floor(4j/3) = 0, 1, 2.
    assert_eq!(
        smnist::resize_nearest(&img, 4, 4, 3),
        [0, 1, 2, 10, 11, 12, 20, 21, 22]
    );
    // Non-square source: 2 x 4 to 2 x 2 reads rows 0,1 and cols 0,2.
    assert_eq!(smnist::resize_offsets(2, 4, 2), [0, 2, 4, 6]);
}

#[test]
fn pixel_sequence_on_28x28() {
    // Two lit pixels: (5, 9) = 200 and (14, 14) = 128; a dim one (7, 8) = 127 never lights.
    let mut img = vec![0u8; 784];
    img[5 * 28 + 9] = 200;
    img[14 * 28 + 14] = 128;
    img[7 * 28 + 8] = 127;
    let lit = |s: usize| -> Vec<usize> {
        let seq = pixel_sequence(&img, 28, 28, s);
        assert_eq!(seq.len(), s * s);
        assert!(seq.iter().all(|&t| t <= 1));
        seq.iter()
            .enumerate()
            .filter(|&(_, &t)| t == 1)
            .map(|(i, _)| i)
            .collect()
    };
    // (14, 14) is read by output index 7 (S=14), 8 (S=16), 10 (S=19), 12 (S=24) on both axes.
    // (5, 9): row 5 is read at S=19 (j=4) and S=24 (j=5), column 9 only at S=24 (j=8).
    assert_eq!(lit(14), [7 * 14 + 7]);
    assert_eq!(lit(16), [8 * 16 + 8]);
    assert_eq!(lit(19), [10 * 19 + 10]);
    assert_eq!(lit(24), [5 * 24 + 8, 12 * 24 + 12]);
    assert_eq!(lit(28), [5 * 28 + 9, 14 * 28 + 14]);
}

/// A split of `n` 28x28 images: image i lights pixel (0, 0) iff i is odd and pixel (27, 27) iff
/// i % 3 == 0; label i % 10.
fn tiny_split(dir: &TempDir, n: usize) -> rims::data::MnistSplit {
    let mut pixels = vec![0u8; n * 784];
    for i in 0..n {
        if i % 2 == 1 {
            pixels[i * 784] = 255;
        }
        if i % 3 == 0 {
            pixels[i * 784 + 783] = 255;
        }
    }
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    dir.write_gz(
        "mnist-10k-images-idx3-ubyte.gz",
        &idx_images(n as u32, 28, 28, &pixels),
    );
    dir.write_gz("mnist-10k-labels-idx1-ubyte.gz", &idx_labels(&labels));
    let (images, labels) = read_pair(
        dir.path("mnist-10k-images-idx3-ubyte.gz"),
        dir.path("mnist-10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    rims::data::MnistSplit {
        images,
        labels,
        source_indices: (0..n).collect(),
    }
}

#[test]
fn smnist_batches_in_order() {
    let dir = TempDir::new("smnist-order");
    let split = tiny_split(&dir, 5);
    let batches = SmnistBatches::new(&split, 14, 2, None).unwrap();
    assert_eq!(batches.t_len(), 196);
    assert_eq!(batches.batches_per_epoch(), 2); // 5 / 2, drop_last
    let all: Vec<_> = batches.epoch(0).collect();
    assert_eq!(all.len(), 2);
    for (k, batch) in all.iter().enumerate() {
        assert_eq!((batch.t_len, batch.batch), (196, 2));
        assert_eq!(batch.tokens.len(), 196 * 2);
        for b in 0..2 {
            let i = 2 * k + b;
            assert_eq!(batch.labels[b], (i % 10) as u32);
            // Step 0 reads (0, 0); the last step (13, 13) reads (26, 26), never (27, 27).
            assert_eq!(batch.tokens[b], (i % 2) as u32, "example {i}");
            assert_eq!(batch.tokens[195 * 2 + b], 0);
            let ones: u32 = (0..196).map(|t| batch.tokens[t * 2 + b]).sum();
            assert_eq!(ones, (i % 2) as u32);
        }
    }
    // At S = 28 the last step reads (27, 27).
    let b28 = SmnistBatches::new(&split, 28, 5, None).unwrap();
    let batch = b28.epoch(0).next().unwrap();
    assert_eq!(batch.t_len, 784);
    assert_eq!(&batch.tokens[783 * 5..], &[1, 0, 0, 1, 0]);
    assert_eq!(&batch.tokens[..5], &[0, 1, 0, 1, 0]);
    assert_eq!(batch.labels, [0, 1, 2, 3, 4]);
}

#[test]
fn smnist_shuffling_is_seeded_per_epoch() {
    let dir = TempDir::new("smnist-shuffle");
    let split = tiny_split(&dir, 30);
    let a = SmnistBatches::new(&split, 16, 4, Some(42)).unwrap();
    let b = SmnistBatches::new(&split, 16, 4, Some(42)).unwrap();
    assert_eq!(a.batches_per_epoch(), 7);
    for e in 0..3 {
        let order = a.epoch_order(e);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..30).collect::<Vec<_>>());
        assert_eq!(order, b.epoch_order(e));
        // Batches follow the order; labels identify the examples.
        for (k, batch) in a.epoch(e).enumerate() {
            let want: Vec<u32> = order[4 * k..4 * k + 4]
                .iter()
                .map(|&i| (i % 10) as u32)
                .collect();
            assert_eq!(batch.labels, want);
            assert_eq!(batch, a.batch_of(&order[4 * k..4 * k + 4]));
        }
    }
    assert_ne!(a.epoch_order(0), a.epoch_order(1));
    assert_ne!(a.epoch_order(0), (0..30).collect::<Vec<_>>());
    let c = SmnistBatches::new(&split, 16, 4, Some(43)).unwrap();
    assert_ne!(a.epoch_order(0), c.epoch_order(0));
    assert_eq!(a.epoch(0).len(), 7);
}

#[test]
fn smnist_bad_settings_are_config_errors() {
    let dir = TempDir::new("smnist-bad");
    let split = tiny_split(&dir, 5);
    assert_config_err(SmnistBatches::new(&split, 0, 2, None), "resolution");
    assert_config_err(SmnistBatches::new(&split, 14, 0, None), "batch_size");
    assert_config_err(SmnistBatches::new(&split, 14, 6, None), "batch_size");
    assert!(SmnistBatches::new(&split, 14, 5, None).is_ok());
}

#[test]
fn smnist_on_bundled_test_split() {
    let m = load_mnist(bundled_mnist_dir()).unwrap();
    for (s, t_len) in [(14, 196), (16, 256), (19, 361), (24, 576)] {
        let batches = SmnistBatches::new(&m.test, s, 64, None).unwrap();
        assert_eq!(batches.t_len(), t_len);
        assert_eq!(batches.batches_per_epoch(), 31); // 2000 / 64, drop_last: 1984 used
        let first = batches.epoch(0).next().unwrap();
        assert_eq!(first.tokens.len(), t_len * 64);
        assert!(first.tokens.iter().all(|&t| t <= 1));
        let ones = first.tokens.iter().filter(|&&t| t == 1).count();
        assert!(ones > 0 && ones < first.tokens.len() / 2);
        assert!(first.labels.iter().all(|&l| l <= 9));
        // Example 0 of the batch is test image 0, binarised and resized by hand.
        let img = m.test.images.image(0);
        let map = resize_indices(28, s);
        for y in 0..s {
            for x in 0..s {
                let want = u32::from(img[map[y] * 28 + map[x]] >= 128);
                assert_eq!(first.tokens[(y * s + x) * 64], want);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// copying

/// The paper's task (10 symbols) with gap `t`.
fn paper_batch(rng: &mut Rng, t: usize, batch: usize) -> rims::Result<copying::Batch> {
    Copying::paper(t)?.batch(rng, batch)
}

#[test]
fn copying_layout() {
    let (t, batch) = (5, 3);
    let mut rng = Rng::new(7);
    let c = paper_batch(&mut rng, t, batch).unwrap();
    assert_eq!(
        (c.task.gap, c.task.symbols, c.t_len, c.batch),
        (5, 10, 25, 3)
    );
    assert_eq!(c.inputs.len(), 25 * 3);
    assert_eq!(c.targets.len(), 25 * 3);
    assert_eq!(c.task.marker_position(), 14);
    assert_eq!(c.task.copied_positions(), 15..25);
    let mut expect = Rng::new(7);
    for b in 0..batch {
        let input: Vec<u32> = (0..25).map(|s| c.inputs[s * batch + b]).collect();
        let target: Vec<u32> = (0..25).map(|s| c.targets[s * batch + b]).collect();
        let symbols = &input[..10];
        assert!(symbols.iter().all(|&x| (1..=8).contains(&x)));
        // Drawn in batch order, 1 + below(8) each.
        let want: Vec<u32> = (0..10).map(|_| 1 + expect.below(8) as u32).collect();
        assert_eq!(symbols, &want[..]);
        assert_eq!(&input[10..14], &[0; 4]); // T - 1 zeros
        assert_eq!(input[14], 9); // marker
        assert_eq!(&input[15..], &[0; 10]);
        assert_eq!(&target[..15], &[0; 15]); // T + 10 zeros
        assert_eq!(&target[15..], symbols);
    }
}

#[test]
fn copying_with_fewer_symbols() {
    // S = 3, T = 2: symbols at 0..3, one zero, the marker at 4, recall at 5..8.
    let task = Copying::new(3, 2).unwrap();
    assert_eq!(task.sequence_len(), 8);
    assert_eq!(task.marker_position(), 4);
    assert_eq!(task.copied_positions(), 5..8);
    let c = task.batch(&mut Rng::new(11), 2).unwrap();
    let mut expect = Rng::new(11);
    for b in 0..2 {
        let input: Vec<u32> = (0..8).map(|s| c.inputs[s * 2 + b]).collect();
        let target: Vec<u32> = (0..8).map(|s| c.targets[s * 2 + b]).collect();
        let s: Vec<u32> = (0..3).map(|_| 1 + expect.below(8) as u32).collect();
        assert_eq!(input, [s[0], s[1], s[2], 0, 9, 0, 0, 0]);
        assert_eq!(target, [0, 0, 0, 0, 0, s[0], s[1], s[2]]);
    }
}

#[test]
fn copying_gap_one_and_symbol_range() {
    let mut rng = Rng::new(1);
    let c = paper_batch(&mut rng, 1, 2).unwrap();
    assert_eq!(c.t_len, 21);
    // No gap zeros: the marker directly follows the symbols.
    assert_eq!(&c.inputs[20..22], &[9, 9]);
    assert_eq!(c.task.copied_positions(), 11..21);
    let c = paper_batch(&mut rng, 50, 256).unwrap();
    assert_eq!(c.t_len, 70);
    let mut seen = [0usize; 10];
    for s in 0..10 {
        for b in 0..256 {
            seen[c.inputs[s * 256 + b] as usize] += 1;
        }
    }
    assert_eq!(seen[0], 0);
    assert_eq!(seen[9], 0);
    // 2560 draws over 8 symbols: each near 320.
    assert!(
        seen[1..9].iter().all(|&k| (240..400).contains(&k)),
        "{seen:?}"
    );
    // Marker once per example, at T + 9; nothing else nonzero after the symbols.
    for s in 10..70 {
        for b in 0..256 {
            let want = if s == 59 { 9 } else { 0 };
            assert_eq!(c.inputs[s * 256 + b], want);
        }
    }
    // Same seed, same batch.
    let a = paper_batch(&mut Rng::new(3), 20, 4).unwrap();
    let b = paper_batch(&mut Rng::new(3), 20, 4).unwrap();
    assert_eq!(a, b);
}

#[test]
fn copying_bad_settings_are_config_errors() {
    assert_config_err(paper_batch(&mut Rng::new(0), 0, 4), "t");
    assert_config_err(paper_batch(&mut Rng::new(0), 5, 0), "batch_size");
    assert_config_err(Copying::new(0, 5), "symbols");
}

// ---------------------------------------------------------------------------------------------
// adding

#[test]
fn adding_markers_and_targets() {
    let (t, batch) = (10, 4);
    let a = adding::adding_batch(&mut Rng::new(5), t, batch).unwrap();
    assert_eq!((a.t_len, a.batch), (10, 4));
    assert_eq!(a.inputs.len(), 10 * 4 * 2);
    assert_eq!(a.targets.len(), 4);
    let mut expect = Rng::new(5);
    for b in 0..batch {
        let value = |s: usize| a.inputs[(s * batch + b) * 2];
        let marker = |s: usize| a.inputs[(s * batch + b) * 2 + 1];
        let marked: Vec<usize> = (0..t).filter(|&s| marker(s) != 0.0).collect();
        assert_eq!(marked.len(), 2);
        assert!(marked[0] < 5 && marked[1] >= 5, "{marked:?}");
        assert!((0..t).all(|s| marker(s) == 0.0 || marker(s) == 1.0));
        assert_eq!(a.markers[b], [marked[0], marked[1]]);
        assert!((0..t).all(|s| (0.0..1.0).contains(&value(s))));
        assert_eq!(a.targets[b], value(marked[0]) + value(marked[1]));
        // Draw order: T values, then i1 = below(5), then i2 = 5 + below(5).
        let vals: Vec<f32> = (0..t).map(|_| expect.next_f64() as f32).collect();
        assert_eq!((0..t).map(value).collect::<Vec<_>>(), vals);
        assert_eq!(expect.below(5) as usize, marked[0]);
        assert_eq!(5 + expect.below(5) as usize, marked[1]);
    }
}

#[test]
fn adding_halves_for_odd_and_minimal_lengths() {
    // T = 2: the markers are always steps 0 and 1.
    let a = adding::adding_batch(&mut Rng::new(0), 2, 16).unwrap();
    assert!(a.markers.iter().all(|&m| m == [0, 1]));
    // T = 7: first half 0..3, second half 3..7 (the last step can be marked).
    let a = adding::adding_batch(&mut Rng::new(9), 7, 2000).unwrap();
    let mut first = [0usize; 7];
    let mut second = [0usize; 7];
    for m in &a.markers {
        first[m[0]] += 1;
        second[m[1]] += 1;
    }
    assert!(first[..3].iter().all(|&k| k > 0) && first[3..].iter().all(|&k| k == 0));
    assert!(second[..3].iter().all(|&k| k == 0) && second[3..].iter().all(|&k| k > 0));
    // The target averages 1 (two uniform [0, 1) values).
    let mean = a.targets.iter().map(|&x| x as f64).sum::<f64>() / 2000.0;
    assert!((mean - 1.0).abs() < 0.05, "mean target {mean}");
    assert!(a.targets.iter().all(|&x| (0.0..2.0).contains(&x)));
}

#[test]
fn adding_bad_settings_are_config_errors() {
    assert_config_err(adding::adding_batch(&mut Rng::new(0), 1, 4), "t");
    assert_config_err(adding::adding_batch(&mut Rng::new(0), 0, 4), "t");
    assert_config_err(adding::adding_batch(&mut Rng::new(0), 8, 0), "batch_size");
}
