//! The twins against the WGSL (through the op wrapper on both devices), and the twins'
//! independence of the thread count.
use super::support::*;
use rims::nn::{CellKind, RimsConfig};
use rims::ops::communication::{self as op, qkv_width};
use rims::rng::Rng;
use rims::{Context, DeviceRequest, Tensor};

fn cfg(n: usize, heads: usize, dk: usize, dv: usize) -> RimsConfig {
    RimsConfig {
        mechanisms: n,
        active: 1,
        hidden: 5,
        input: 7,
        input_key: 4,
        input_value: 6,
        input_heads: 1,
        comm_heads: heads,
        comm_key: dk,
        comm_value: dv,
        cell: CellKind::Gru,
        dropout: 0.0,
        variant: rims::nn::Variant::Authors,
    }
}

/// probs, ctx, ds (of the last step) and dqkv over all steps; `dido` = Some(p): variant D's
/// row mask (random) and dropout with probability p on P.
fn run(
    ctx: &Context,
    cfg: &RimsConfig,
    b: usize,
    t_len: usize,
    dido: Option<f32>,
) -> Vec<Vec<f32>> {
    let (n, hc, dv) = (cfg.mechanisms, cfg.comm_heads, cfg.comm_value);
    let w = qkv_width(&cfg.communication_sizes());
    let mut rng = Rng::new(5);
    let mut t = |shape: &[usize]| {
        let len = shape.iter().product();
        Tensor::from_slice(ctx, shape, &rng.vec_f32(len, -2.0, 2.0)).unwrap()
    };
    let qkv = t(&[3, t_len, b, n, w]);
    let dctx = t(&[b, n, hc * dv]);
    // Filled with garbage: every element the kernels write is overwritten, the rest kept.
    let probs = t(&[t_len, b, hc, n, n]);
    let out = t(&[t_len, b, n, hc * dv]);
    let ds = t(&[b, hc, n, n]);
    let dqkv = t(&[3, t_len, b, n, w]);
    let mask: Vec<f32> = (0..t_len * b * n).map(|_| rng.below(2) as f32).collect();
    let mask = Tensor::from_slice(ctx, &[t_len, b, n], &mask).unwrap();
    for step in 0..t_len {
        let rows = dido.map(|p| op::RowMask {
            mask: &mask,
            dropout: rims::ops::input_attention::Dropout {
                seed: 7,
                step: 3 + step as u32,
                p,
            },
        });
        op::forward(
            ctx,
            &cfg.communication_sizes(),
            b,
            t_len,
            step,
            &qkv,
            &probs,
            &out,
            rows,
        )
        .unwrap();
        op::backward(
            ctx,
            &cfg.communication_sizes(),
            b,
            t_len,
            step,
            &qkv,
            &probs,
            &dctx,
            &ds,
            &dqkv,
            rows,
        )
        .unwrap();
    }
    [&probs, &out, &ds, &dqkv]
        .iter()
        .map(|t| t.to_vec(ctx).unwrap())
        .collect()
}

fn cases() -> Vec<(RimsConfig, usize, usize)> {
    vec![
        (cfg(4, 2, 3, 3), 2, 3),
        (cfg(6, 4, 16, 16), 3, 2),
        (cfg(5, 3, 4, 7), 2, 2),
        (cfg(3, 2, 9, 2), 4, 2),
        (cfg(1, 1, 5, 5), 2, 1),
    ]
}

#[test]
fn twins_match_the_wgsl() {
    let cpu = Context::new(DeviceRequest::cpu(None)).unwrap();
    let Some(gpu) = gpu_or_skip() else { return };
    for (ci, (cfg, b, t_len)) in cases().iter().enumerate() {
        for dido in [None, Some(0.0), Some(0.3)] {
            let (x, y) = (
                run(&cpu, cfg, *b, *t_len, dido),
                run(&gpu, cfg, *b, *t_len, dido),
            );
            assert_outputs_close(&format!("case {ci} {dido:?}"), &x, &y);
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (one, two) = one_and_two_threads();
    let c = cfg(6, 4, 16, 16);
    for dido in [None, Some(0.3)] {
        assert_eq!(run(&one, &c, 64, 2, dido), run(&two, &c, 64, 2, dido));
    }
}
