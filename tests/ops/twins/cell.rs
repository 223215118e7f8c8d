//! The twins against the WGSL (through the op wrapper on both devices), and the twins'
//! independence of the thread count.
use super::support::*;
use rims::kernels::gates::CellKind;
use rims::ops::cell::{self as op, Backward, Dims};
use rims::rng::Rng;
use rims::{Context, DeviceRequest, Tensor};

/// Every tensor the four kernels write, after forward and backward of each step.
fn run(ctx: &Context, kind: CellKind, d: Dims, t_len: usize) -> Vec<Vec<f32>> {
    let g = kind.gates();
    let (b, n, h) = (d.batch, d.units, d.hidden);
    let mut rng = Rng::new(7);
    let mut t = |shape: &[usize], lo: f64, hi: f64| {
        let len = shape.iter().product();
        Tensor::from_slice(ctx, shape, &rng.vec_f32(len, lo, hi)).unwrap()
    };
    let zx = t(&[t_len, b, n, g * h], -3.0, 3.0);
    let zh = t(&[t_len, b, n, g * h], -3.0, 3.0);
    let hs = t(&[t_len + 1, b, n * h], -1.0, 1.0);
    let cs = t(&[t_len + 1, b, n * h], -2.0, 2.0);
    let dres = t(&[3, b, n, h], -1.0, 1.0);
    // Outputs start as garbage: every element the kernels write is overwritten, the rest
    // kept.
    let act = t(&[t_len, b, n, g * h], -5.0, 5.0);
    let hp = t(&[t_len, b, n, h], -5.0, 5.0);
    let cp = t(&[t_len, b, n, h], -5.0, 5.0);
    let dzx = t(&[t_len, b, n, g * h], -5.0, 5.0);
    let dzh = t(&[t_len, b, n, g * h], -5.0, 5.0);
    let carry = t(&[b, n * h], -1.0, 1.0);
    let mask: Vec<f32> = (0..t_len * b * n).map(|_| rng.below(2) as f32).collect();
    let mask = Tensor::from_slice(ctx, &[t_len, b, n], &mask).unwrap();
    for step in 0..t_len {
        op::forward(ctx, kind, d, step, &zx, &zh, &hs, &cs, &act, &hp, &cp).unwrap();
        let bw = Backward {
            zh: &zh,
            hs: &hs,
            cs: &cs,
            act: &act,
            cp: &cp,
            mask: &mask,
            dres: &dres,
            dzx: &dzx,
            dzh: &dzh,
            carry: &carry,
        };
        op::backward(ctx, kind, d, step, &bw).unwrap();
    }
    [&act, &hp, &cp, &dzx, &dzh, &carry]
        .iter()
        .map(|t| t.to_vec(ctx).unwrap())
        .collect()
}

fn dims(batch: usize, units: usize, hidden: usize) -> Dims {
    Dims {
        batch,
        units,
        hidden,
    }
}

#[test]
fn twins_match_the_wgsl() {
    let cpu = Context::new(DeviceRequest::cpu(None)).unwrap();
    let Some(gpu) = gpu_or_skip() else { return };
    for kind in [CellKind::Lstm, CellKind::Gru] {
        for (d, t_len) in [
            (dims(3, 4, 37), 3),
            (dims(1, 6, 100), 2),
            (dims(64, 6, 100), 2),
        ] {
            let (x, y) = (run(&cpu, kind, d, t_len), run(&gpu, kind, d, t_len));
            assert_outputs_close(&format!("{kind:?} {d:?}"), &x, &y);
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (one, two) = one_and_two_threads();
    for kind in [CellKind::Lstm, CellKind::Gru] {
        let d = dims(64, 6, 100);
        assert_eq!(run(&one, kind, d, 2), run(&two, kind, d, 2));
    }
}
