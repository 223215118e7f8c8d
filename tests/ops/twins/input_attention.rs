//! The twins against the WGSL (through the op wrapper on both devices), and the twins'
//! independence of the thread count.
use super::support::*;
use rims::nn::{CellKind, RimsConfig};
use rims::ops::input_attention::{self as op, Dropout};
use rims::rng::Rng;
use rims::{Context, DeviceRequest, Tensor};

fn cfg(n: usize, k: usize, heads: usize) -> RimsConfig {
    RimsConfig {
        mechanisms: n,
        active: k,
        hidden: 5,
        input: 7,
        input_key: 4,
        input_value: 6,
        input_heads: heads,
        comm_heads: 2,
        comm_key: 3,
        comm_value: 3,
        cell: CellKind::Lstm,
        dropout: 0.0,
        variant: rims::nn::Variant::Authors,
    }
}

struct Case {
    cfg: RimsConfig,
    batch: usize,
    steps: usize,
    p: f32,
    /// hs all zero: every score ties.
    zero_state: bool,
    /// A random mask override.
    overridden: bool,
    /// Variant D's entry points (and layouts).
    dido: bool,
}

/// Every output of forward and backward over all steps, in a fixed order.
fn run(ctx: &Context, c: &Case) -> Vec<(String, Vec<f32>)> {
    let cfg = &c.cfg;
    let (n, h, b, t_len) = (cfg.mechanisms, cfg.hidden, c.batch, c.steps);
    let (wq, heads) = (cfg.input_heads * cfg.input_key, cfg.input_heads);
    // Variant D: values h_in·d_vin wide (plus the null row), u d_vin wide, one α per
    // mechanism, dkv (dk | dv_x | dv_null).
    let wv = heads * cfg.input_value;
    let (a, kv_rows, alpha_w, dkv_w) = if c.dido {
        (cfg.input_value, t_len * b + 1, 1, wq + 2 * wv)
    } else {
        (cfg.cell_input(), t_len * b, heads, wq + a_of(cfg))
    };
    let mut rng = Rng::new(11);
    let mut t = |shape: &[usize], scale: f64| {
        let len = shape.iter().product();
        Tensor::from_slice(ctx, shape, &rng.vec_f32(len, -scale, scale)).unwrap()
    };
    let hs = if c.zero_state {
        Tensor::zeros(ctx, &[t_len + 1, b, n * h]).unwrap()
    } else {
        t(&[t_len + 1, b, n * h], 1.0)
    };
    let in_q = t(&[n, h, wq], 1.0);
    let kv = t(&[kv_rows, wq + wv], 1.0);
    let override_mask = t(&[t_len, b, n], 1.0);
    let du = t(&[b, n, a], 1.0);
    let z = |shape: &[usize]| Tensor::zeros(ctx, shape).unwrap();
    let (q, alpha, mask, u) = (
        z(&[t_len, b, n, wq]),
        z(&[t_len, b, n, alpha_w]),
        z(&[t_len, b, n]),
        z(&[t_len, b, n, a]),
    );
    let (dq, dkv) = (z(&[t_len, b, n, wq]), z(&[t_len, b, dkv_w]));
    let f = op::Forward {
        hs: &hs,
        in_q: &in_q,
        kv: &kv,
        mask_override: c.overridden.then_some(&override_mask),
        q: &q,
        alpha: &alpha,
        mask: &mask,
        u: &u,
    };
    for step in 0..t_len {
        let d = Dropout {
            seed: 99,
            step: 5 + step as u32,
            p: c.p,
        };
        let sizes = cfg.input_attention_sizes();
        if c.dido {
            op::forward_dido(ctx, &sizes, b, step, d, &f).unwrap();
        } else {
            op::forward(ctx, &sizes, b, step, d, &f).unwrap();
        }
        let bw = op::Backward {
            kv: &kv,
            du: &du,
            q: &q,
            alpha: &alpha,
            mask: &mask,
            dq: &dq,
            dkv: &dkv,
        };
        if c.dido {
            op::backward_dido(ctx, &sizes, b, step, d, &bw).unwrap();
        } else {
            op::backward(ctx, &sizes, b, step, d, &bw).unwrap();
        }
    }
    [
        ("q", &q),
        ("alpha", &alpha),
        ("mask", &mask),
        ("u", &u),
        ("dq", &dq),
        ("dkv", &dkv),
    ]
    .into_iter()
    .map(|(name, t)| (name.to_string(), t.to_vec(ctx).unwrap()))
    .collect()
}

fn a_of(cfg: &RimsConfig) -> usize {
    cfg.input_heads * cfg.input_value
}

fn cases() -> Vec<Case> {
    let mut all = authors_cases();
    // Variant D: the same shapes through forward_dido / backward_dido.
    let dido: Vec<Case> = authors_cases()
        .into_iter()
        .map(|c| Case {
            dido: true,
            cfg: RimsConfig {
                variant: rims::nn::Variant::Dido,
                comm_value: c.cfg.hidden,
                ..c.cfg
            },
            ..c
        })
        .collect();
    all.extend(dido);
    all
}

fn authors_cases() -> Vec<Case> {
    let case = |cfg, batch, p, zero_state, overridden| Case {
        cfg,
        batch,
        steps: 2,
        p,
        zero_state,
        overridden,
        dido: false,
    };
    vec![
        case(cfg(4, 2, 1), 3, 0.0, false, false),
        case(cfg(4, 2, 1), 2, 0.0, true, false),
        case(cfg(6, 4, 2), 3, 0.3, false, false),
        case(cfg(6, 3, 3), 2, 0.5, false, true),
        case(
            RimsConfig {
                hidden: 40,
                input_key: 70,
                input_value: 90,
                ..cfg(5, 3, 2)
            },
            4,
            0.1,
            false,
            false,
        ),
    ]
}

#[test]
fn twins_match_the_wgsl() {
    let cpu = Context::new(DeviceRequest::cpu(None)).unwrap();
    let Some(gpu) = gpu_or_skip() else { return };
    for (ci, c) in cases().iter().enumerate() {
        let (a, b) = (run(&cpu, c), run(&gpu, c));
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            if name == "mask" {
                assert_eq!(x, y, "case {ci}: masks differ");
                continue;
            }
            assert_close(&format!("case {ci}: {name}"), x, y);
        }
        if c.zero_state {
            let mask = &a[2].1;
            let k = c.cfg.active;
            for row in mask.chunks(c.cfg.mechanisms) {
                let want: Vec<f32> = (0..row.len())
                    .map(|i| if i < k { 1.0 } else { 0.0 })
                    .collect();
                assert_eq!(row, &want[..], "ties go to the lower index");
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (one, two) = one_and_two_threads();
    let c = Case {
        cfg: RimsConfig {
            hidden: 50,
            input_key: 64,
            input_value: 100,
            ..cfg(6, 4, 1)
        },
        batch: 32,
        steps: 2,
        p: 0.2,
        zero_state: false,
        overridden: false,
        dido: false,
    };
    assert_eq!(run(&one, &c), run(&two, &c));
    let d = Case { dido: true, ..c };
    assert_eq!(run(&one, &d), run(&two, &d));
}
