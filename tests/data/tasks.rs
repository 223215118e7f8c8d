//! The copying task and the adding problem.

use rims::data::{Copying, adding, copying};
use rims::rng::Rng;

use crate::support::*;

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
