//! MNIST layouts and splits.

use rims::data::{
    MnistSource, bundled_mnist_dir, idx, load_mnist, load_mnist_with_seed, read_images, read_labels,
};

use crate::support::*;

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
