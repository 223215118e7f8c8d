//! The IDX reader.

use rims::Error;
use rims::data::{read_images, read_labels, read_pair};

use crate::support::*;

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
    assert_file_err(read_images(&p), &p, &["cannot read"]);
    assert_file_err(read_labels(&p), &p, &["cannot read"]);
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
