//! The pictures drawn from synthetic data and a hand-written metrics file, without a device.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use rims::train;

use super::curves::{curves_of, draw_curves};
use super::draw::{WIDTH, render, write_png};
use super::mask_picture::draw_masks;
use super::masks::{Marks, MaskFigure, Tokens};

fn decode(path: &Path) -> (u32, u32) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let reader = png::Decoder::new(file).read_info().unwrap();
    (reader.info().width, reader.info().height)
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rims-viz-unit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn figure(marks: Marks, t_len: usize, n: usize) -> MaskFigure {
    MaskFigure {
        title: "synthetic".into(),
        mechanisms: n,
        t_len,
        example: (0..t_len * n)
            .map(|i| (i / n + i % n).is_multiple_of(3))
            .collect(),
        fraction: (0..t_len * n).map(|i| (i % 7) as f64 / 6.0).collect(),
        batch: 8,
        example_index: 0,
        marks,
    }
}

#[test]
fn mask_pictures_draw_without_a_gpu() {
    let dir = temp("masks");
    let copying = figure(
        Marks::Phases {
            phases: vec![
                ("symbols", 0..10, RED),
                ("gap", 10..10, WHITE),
                ("marker", 10..11, BLUE),
                ("recall", 11..21, GREEN),
            ],
            tokens: Tokens {
                input: (0..21).map(|t| t % 10).collect(),
                target: (0..21).map(|t| if t > 10 { t % 8 } else { 0 }).collect(),
                output: (0..21).map(|t| t % 3).collect(),
            },
        },
        21,
        4,
    );
    let smnist = figure(
        Marks::Rows {
            s: 7,
            pixels: (0..49).map(|t| t % 2).collect(),
        },
        49,
        6,
    );
    for (name, fig) in [("c.png", copying), ("s.png", smnist)] {
        let (w, h) = fig.size();
        let rgb = render(w, h, |root| draw_masks(root, &fig)).unwrap();
        let out = dir.join(name);
        write_png(&out, &rgb, w, h).unwrap();
        assert_eq!(decode(&out), (w, h));
    }
}

#[test]
fn metrics_are_read_and_bad_lines_named() {
    let dir = temp("metrics");
    let path = dir.join("metrics.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"epoch":1,"step":10,"seconds":1.0,"train_loss":2.5,"eval":[{"split":"copy","size":5,"loss":2.0,"accuracy":0.1},{"split":"copy","size":10,"loss":2.2,"accuracy":0.05}]}"#,
            "\n",
            r#"{"epoch":2,"step":20,"seconds":2.0,"train_loss":1.5,"eval":[{"split":"copy","size":5,"loss":1.0,"accuracy":0.4},{"split":"copy","size":10,"loss":1.9,"accuracy":0.1}]}"#,
            "\n"
        ),
    )
    .unwrap();
    let records = train::read_records(&path).unwrap();
    let (losses, accuracy) = curves_of(&records);
    assert_eq!(losses.len(), 3);
    assert_eq!(accuracy.len(), 2);
    assert_eq!(accuracy[0].name, "eval T=5");
    assert_eq!(accuracy[0].points, vec![(10.0, 10.0), (20.0, 40.0)]);
    let rgb = render(WIDTH, 520, |root| {
        draw_curves(root, "t", &losses, &accuracy)
    })
    .unwrap();
    assert_eq!(rgb.len(), WIDTH as usize * 520 * 3);

    std::fs::write(&path, "{\"step\": 1}\n").unwrap();
    let e = train::read_records(&path).unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
    std::fs::write(&path, "\n").unwrap();
    let e = train::read_records(&path).unwrap_err().to_string();
    assert!(e.contains("no records"), "{e}");
}
