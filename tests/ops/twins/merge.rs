//! The twins against the WGSL (through the op wrapper on both devices), and the twins'
//! independence of the thread count.
use super::support::*;
use rims::kernels::gates::CellKind;
use rims::ops::input_attention::Dropout;
use rims::ops::merge::Residual::{Gated, Plain};
use rims::ops::merge::{self as op, Backward, Forward};
use rims::rng::Rng;
use rims::{Context, DeviceRequest, Tensor};

/// Every tensor the four kernels write, after forward and backward of each step.
fn run(
    ctx: &Context,
    kind: CellKind,
    residual: op::Residual,
    dims: [usize; 3],
    t_len: usize,
    p: f32,
) -> Vec<Vec<f32>> {
    let [b, n, h] = dims;
    let mut rng = Rng::new(11);
    let mut t = |shape: &[usize], lo: f64, hi: f64| {
        let len = shape.iter().product();
        Tensor::from_slice(ctx, shape, &rng.vec_f32(len, lo, hi)).unwrap()
    };
    let og = t(&[t_len, b * n, 2, h], -3.0, 3.0);
    let hp = t(&[t_len, b, n, h], -1.0, 1.0);
    let cp = t(&[t_len, b, n, h], -2.0, 2.0);
    let dh_out = t(&[t_len, b, n * h], -1.0, 1.0);
    // Outputs and carried gradients start as garbage: every element the kernels write is
    // overwritten, the rest kept.
    let hs = t(&[t_len + 1, b, n * h], -1.0, 1.0);
    let cs = t(&[t_len + 1, b, n * h], -2.0, 2.0);
    let tg = t(&[t_len, b * n, 2, h], -5.0, 5.0);
    let dh = t(&[b, n * h], -1.0, 1.0);
    let dc = t(&[b, n * h], -1.0, 1.0);
    let dres = t(&[3, b, n, h], -5.0, 5.0);
    let dog = t(&[t_len, b * n, 2, h], -5.0, 5.0);
    let mask: Vec<f32> = (0..t_len * b * n).map(|_| rng.below(2) as f32).collect();
    let mask = Tensor::from_slice(ctx, &[t_len, b, n], &mask).unwrap();
    let mut out = Vec::new();
    for step in 0..t_len {
        let d = Dropout {
            seed: 3,
            step: 5 + step as u32,
            p,
        };
        let f = Forward {
            residual,
            og: &og,
            hp: &hp,
            cp: &cp,
            mask: &mask,
            hs: &hs,
            cs: &cs,
            tg: &tg,
        };
        op::forward(ctx, kind, b, n, h, step, d, &f).unwrap();
    }
    for step in (0..t_len).rev() {
        let d = Dropout {
            seed: 3,
            step: 5 + step as u32,
            p,
        };
        let bw = Backward {
            residual,
            mask: &mask,
            dh_out: &dh_out,
            tg: &tg,
            dh: &dh,
            dc: &dc,
            dres: &dres,
            dog: &dog,
        };
        op::backward(ctx, kind, b, n, h, step, d, &bw).unwrap();
        // dres is overwritten at every step: keep each one.
        out.push(dres.to_vec(ctx).unwrap());
    }
    out.extend(
        [&hs, &cs, &tg, &dh, &dc, &dog]
            .iter()
            .map(|t| t.to_vec(ctx).unwrap()),
    );
    out
}

const CASES: [([usize; 3], usize); 3] = [([3, 4, 37], 3), ([1, 6, 100], 2), ([64, 6, 100], 2)];

#[test]
fn twins_match_the_wgsl() {
    let cpu = Context::new(DeviceRequest::cpu(None)).unwrap();
    let Some(gpu) = gpu_or_skip() else { return };
    for kind in [CellKind::Lstm, CellKind::Gru] {
        for (dims, t_len) in CASES {
            for (r, p) in [(Gated, 0.0), (Gated, 0.3), (Plain, 0.3)] {
                let x = run(&cpu, kind, r, dims, t_len, p);
                let y = run(&gpu, kind, r, dims, t_len, p);
                assert_outputs_close(&format!("{kind:?} {r:?} {dims:?} p {p}"), &x, &y);
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (one, two) = one_and_two_threads();
    for kind in [CellKind::Lstm, CellKind::Gru] {
        let (dims, t_len) = CASES[2];
        for r in [Gated, Plain] {
            assert_eq!(
                run(&one, kind, r, dims, t_len, 0.3),
                run(&two, kind, r, dims, t_len, 0.3)
            );
        }
    }
}
