//! The CPU reference of the RIMs cell in variant D (`reference::rims_dido`, docs/spec.md §3)
//! against central finite differences of its frozen forward, plus the rules that set D apart
//! from A: selection on the raw score, zero input to inactive mechanisms, biased null slot,
//! dropout on the probabilities. CPU only.

#[allow(dead_code)]
#[path = "support/reference.rs"]
mod support;

use rims::nn::config::{CellKind, RimsConfig, Variant};
use rims::reference::finite_differences;
use rims::reference::input_attention::top_k_mask;
use rims::reference::rims_dido::{self as rd, DidoParams};
use rims::rng::Rng;
use support::{B, Dido, T};

type Case = support::Case<Dido>;

/// N = 5, k = 2, H = 3, two input heads by default (the brief's odd shape).
fn tiny(cell: CellKind, input_heads: usize, dropout: f32, active: usize) -> RimsConfig {
    RimsConfig {
        mechanisms: 5,
        active,
        hidden: 3,
        input: 4,
        input_key: 3,
        input_value: 2,
        input_heads,
        comm_heads: 2,
        comm_key: 2,
        comm_value: 3,
        cell,
        dropout,
        variant: Variant::Dido,
    }
}

fn check_dido(cell: CellKind, input_heads: usize, dropout: f32, seed: u64) {
    let case = Case::new(tiny(cell, input_heads, dropout, 2), seed);
    let base = case.forward(&case.params, &case.x, &case.h0, &case.c0);
    for row in base.masks.chunks(5) {
        assert_eq!(row.iter().sum::<f64>(), 2.0, "masks {:?}", base.masks);
    }
    let grads = case.backward(&base);
    // The softmax sees s̄_x − s̄_∅, from which the key bias cancels; the selection that does
    // see it is detached. Zero up to rounding.
    let fd = finite_differences(&case.params.in_k_b, support::FD_STEP, |v| {
        let mut p = case.params.clone();
        p.in_k_b.copy_from_slice(v);
        case.loss(&case.forward_frozen(&p, &case.x, &case.h0, &case.c0, &base))
    });
    let a = &grads.params.in_k_b;
    assert!(
        a.iter().chain(&fd).all(|v| v.abs() < 1e-9),
        "in_k_b: {a:?} {fd:?}"
    );
    let what = format!("{cell:?} h_in={input_heads} p={dropout}");
    case.check_gradients(&base, &what, |name| name == "in_k_b");
}

#[test]
fn dido_lstm_gradients_one_head() {
    check_dido(CellKind::Lstm, 1, 0.0, 1);
}

#[test]
fn dido_lstm_gradients_two_heads_dropout() {
    check_dido(CellKind::Lstm, 2, 0.3, 2);
}

#[test]
fn dido_gru_gradients_two_heads() {
    check_dido(CellKind::Gru, 2, 0.0, 3);
}

#[test]
fn dido_gru_gradients_one_head_dropout() {
    check_dido(CellKind::Gru, 1, 0.3, 4);
}

/// With k = N nothing is blocked and the pseudo-gradient is the true gradient.
#[test]
fn dido_all_active_gradient_is_exact() {
    for (cell, seed) in [(CellKind::Lstm, 11), (CellKind::Gru, 12)] {
        let case = Case::new(tiny(cell, 2, 0.3, 5), seed);
        let base = case.forward(&case.params, &case.x, &case.h0, &case.c0);
        assert!(base.masks.iter().all(|&m| m == 1.0));
        case.check_exact_gradients(&base, &format!("{cell:?}"));
    }
}

/// The selection ranks the raw head-averaged s̄_x (not s̄_x − s̄_∅), inactive mechanisms get
/// zero input and keep h and c, and the null slot carries the biases.
#[test]
fn dido_selection_input_and_merge_rules() {
    let case = Case::new(tiny(CellKind::Lstm, 2, 0.0, 2), 41);
    let f = case.forward(&case.params, &case.x, &case.h0, &case.c0);
    let (n, h, a) = (5, 3, 2);
    let st = B * n * h;
    let mut rank_differs = false;
    for tb in 0..T * B {
        let sx = &f.score_x[tb * n..(tb + 1) * n];
        let diff: Vec<f64> = (0..n).map(|i| sx[i] - f.score_null[tb * n + i]).collect();
        assert_eq!(&f.masks[tb * n..(tb + 1) * n], &top_k_mask(sx, 2)[..]);
        rank_differs |= top_k_mask(&diff, 2) != top_k_mask(sx, 2);
        for (i, &s) in sx.iter().enumerate() {
            let ax = f.alpha[tb * n + i];
            let want = 1.0 / (1.0 + (f.score_null[tb * n + i] - s).exp());
            assert!((ax - want).abs() < 1e-14);
            let u = &f.u[(tb * n + i) * a..(tb * n + i + 1) * a];
            if f.masks[tb * n + i] == 0.0 {
                assert!(u.iter().all(|&v| v == 0.0), "inactive u {u:?}");
            } else {
                assert!(u.iter().any(|&v| v != 0.0));
            }
        }
        let (t, b) = (tb / B, tb % B);
        for i in 0..n {
            for e in 0..h {
                let idx = b * n * h + i * h + e;
                let (hp, cp) = if t == 0 {
                    (case.h0[idx], case.c0[idx])
                } else {
                    (f.h[(t - 1) * st + idx], f.c[(t - 1) * st + idx])
                };
                if f.masks[tb * n + i] == 0.0 {
                    assert_eq!((f.h[t * st + idx], f.c[t * st + idx]), (hp, cp));
                } else {
                    assert_eq!(f.h[t * st + idx], f.h_hat[t * st + idx]);
                }
            }
        }
    }
    assert!(
        rank_differs,
        "the problem should tell D's rule from A's somewhere"
    );
    // The override is obeyed, and the run's own masks change nothing.
    assert_eq!(case.forward_masked(&case.params, &f.masks).h, f.h);
    let flipped: Vec<f64> = f.masks.iter().map(|m| 1.0 - m).collect();
    let other = case.forward_masked(&case.params, &flipped);
    assert_eq!(other.masks, flipped);
    assert_ne!(other.h, f.h);
    // Inactive queries read nothing: their rows of P̃ are zero.
    for tb in 0..T * B {
        for m in 0..2 {
            for i in 0..n {
                let row = &f.probs_used[((tb * 2 + m) * n + i) * n..][..n];
                let sum: f64 = row.iter().sum();
                let want = f.masks[tb * n + i];
                assert!((sum - want).abs() < 1e-12, "row sum {sum} mask {want}");
            }
        }
    }
}

/// Inactive mechanisms' inputs and h' get exactly zero gradient; dropout hits the
/// probabilities and depends on seed and step.
#[test]
fn dido_inactive_zero_gradient_and_dropout_on_probabilities() {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let case = Case::new(tiny(cell, 2, 0.3, 2), 51);
        let f = case.forward(&case.params, &case.x, &case.h0, &case.c0);
        let g = case.backward(&f);
        let (n, a, h) = (5, 2, 3);
        for tb in 0..T * B {
            for i in 0..n {
                let du = &g.du[(tb * n + i) * a..(tb * n + i + 1) * a];
                let dhp = &g.dh_prime[(tb * n + i) * h..(tb * n + i + 1) * h];
                if f.masks[tb * n + i] == 0.0 {
                    assert!(du.iter().chain(dhp).all(|&v| v == 0.0), "{cell:?}");
                }
            }
        }
        // Some probability was dropped (a row of P̃ of an active query sums to ≠ 1).
        let dropped = f
            .probs_used
            .iter()
            .zip(&f.probs)
            .any(|(u, p)| *u == 0.0 && *p > 0.0);
        assert!(dropped, "nothing dropped");
        let other = rd::forward(
            &case.cfg,
            &case.params,
            &case.x,
            &case.h0,
            &case.c0,
            case.seed + 1,
            case.step0,
            None,
            T,
            B,
        );
        assert_ne!(other.probs_used, f.probs_used);
    }
}

#[test]
fn dido_params_by_name() {
    let cfg = tiny(CellKind::Gru, 2, 0.0, 2);
    let mut p = DidoParams::random(&cfg, &mut Rng::new(3), 1.0);
    let shapes = DidoParams::shapes(&cfg);
    let specs = rims::nn::rims::param_specs(&cfg);
    assert_eq!(shapes.len(), specs.len());
    for (name, shape) in &shapes {
        let spec = specs.iter().find(|s| s.name == *name).expect(name);
        assert_eq!(&spec.shape, shape, "{name}");
        assert_eq!(p.get(name).unwrap().len(), shape.iter().product::<usize>());
    }
    p.get_mut("comm_out_w").unwrap()[1] = 42.0;
    assert_eq!(p.comm_out_w[1], 42.0);
    assert!(p.get("rnn_bx").is_none());
}
