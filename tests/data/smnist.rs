//! Sequential MNIST: the transform and the batcher.

use rims::data::{
    SmnistBatches, binarise, bundled_mnist_dir, load_mnist, pixel_sequence, read_pair,
    resize_indices, smnist,
};

use crate::support::*;

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
