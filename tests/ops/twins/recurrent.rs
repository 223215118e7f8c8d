//! The twins against the WGSL (through the op wrapper on both devices), and the twins'
//! independence of the thread count.
use super::support::*;
use rims::kernels::gates::CellKind;
use rims::ops::recurrent::{self as op, Backward, Dims, Forward};
use rims::rng::Rng;
use rims::{Context, DeviceRequest, Tensor};

/// Every tensor the four kernels write, after the forward of every step, then the backward
/// of every step in reverse.
fn run(ctx: &Context, d: Dims) -> Vec<Vec<f32>> {
    let (t_len, b, h) = (d.steps, d.batch, d.hidden);
    let gw = d.gate_width();
    let mut rng = Rng::new(13);
    let mut t = |shape: &[usize], lo: f64, hi: f64| {
        let len = shape.iter().product();
        Tensor::from_slice(ctx, shape, &rng.vec_f32(len, lo, hi)).unwrap()
    };
    let gates = t(&[t_len, b, gw], -3.0, 3.0);
    let gh = t(&[t_len, b, gw], -3.0, 3.0);
    let hs = t(&[t_len + 1, b, h], -1.0, 1.0);
    let cs = t(&[t_len + 1, b, h], -2.0, 2.0);
    let dy = t(&[t_len, b, h], -1.0, 1.0);
    let dh = t(&[b, h], -1.0, 1.0);
    let dc = t(&[b, h], -1.0, 1.0);
    // Outputs start as garbage: every element the kernels write is overwritten.
    let dz = t(&[t_len, b, gw], -5.0, 5.0);
    let dzh = t(&[t_len, b, gw], -5.0, 5.0);
    let lstm = d.kind == CellKind::Lstm;
    for step in 0..t_len {
        let f = Forward {
            gates: &gates,
            gh: (!lstm).then_some(&gh),
            hs: &hs,
            cs: lstm.then_some(&cs),
        };
        op::forward(ctx, d, step, &f).unwrap();
    }
    let mut out = vec![];
    for step in (0..t_len).rev() {
        let bw = Backward {
            act: &gates,
            gh: (!lstm).then_some(&gh),
            hs: &hs,
            cs: lstm.then_some(&cs),
            dy: &dy,
            dh: &dh,
            dc: lstm.then_some(&dc),
            dz: &dz,
            dzh: (!lstm).then_some(&dzh),
        };
        op::backward(ctx, d, step, &bw).unwrap();
        // The step's product would rewrite dh (LSTM) or add to it (GRU): keep each step's.
        out.push(dh.to_vec(ctx).unwrap());
    }
    out.extend(
        [&gates, &hs, &cs, &dc, &dz, &dzh]
            .iter()
            .map(|t| t.to_vec(ctx).unwrap()),
    );
    out
}

fn cases() -> Vec<Dims> {
    let mut out = vec![];
    for kind in [CellKind::Lstm, CellKind::Gru] {
        for (steps, batch, hidden) in [(3, 3, 37), (2, 1, 600), (2, 64, 600)] {
            out.push(Dims {
                kind,
                steps,
                batch,
                hidden,
            });
        }
    }
    out
}

#[test]
fn twins_match_the_wgsl() {
    let cpu = Context::new(DeviceRequest::cpu(None)).unwrap();
    let Some(gpu) = gpu_or_skip() else { return };
    for d in cases() {
        let (x, y) = (run(&cpu, d), run(&gpu, d));
        assert_outputs_close(&format!("{d:?}"), &x, &y);
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (one, two) = one_and_two_threads();
    for d in cases().into_iter().filter(|d| d.batch == 64) {
        assert_eq!(run(&one, d), run(&two, d));
    }
}
