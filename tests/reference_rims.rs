//! The CPU reference of the RIMs cell (`reference::rims`) and of the dense LSTM/GRU baselines
//! (`reference::recurrent`) against central finite differences, plus the selection rules.
//! CPU only.

#[allow(dead_code)]
#[path = "support/reference.rs"]
mod support;

use rims::nn::config::{CellKind, RimsConfig};
use rims::reference::finite_differences;
use rims::reference::recurrent::{self, RecurrentConfig, RecurrentParams};
use rims::reference::rims::{self as rr, RimsParams};
use rims::rng::Rng;
use support::{Authors, B, FD_STEP, T, uniform, worst_relative_error};

type Case = support::Case<Authors>;

fn tiny(cell: CellKind, input_heads: usize, dropout: f32, active: usize) -> RimsConfig {
    RimsConfig {
        mechanisms: 4,
        active,
        hidden: 3,
        input: 5,
        input_key: 4,
        input_value: 3,
        input_heads,
        comm_heads: 2,
        comm_key: 3,
        comm_value: 2,
        cell,
        dropout,
        variant: rims::nn::Variant::Authors,
    }
}

/// Checks the pseudo-gradient of every tensor against the frozen forward's differences.
fn check_rims(cell: CellKind, input_heads: usize, dropout: f32, seed: u64) {
    let case = Case::new(tiny(cell, input_heads, dropout, 2), seed);
    let base = case.forward(&case.params, &case.x, &case.h0, &case.c0);
    // The problem exercises both kinds of mechanism at every step, and dropout if any.
    for row in base.masks.chunks(4) {
        assert_eq!(row.iter().sum::<f64>(), 2.0, "masks {:?}", base.masks);
    }
    if dropout > 0.0 {
        assert!(base.u.contains(&0.0), "nothing dropped");
    }
    case.check_gradients(
        &base,
        &format!("{cell:?} h_in={input_heads} p={dropout}"),
        |_| false,
    );
}

#[test]
fn rims_lstm_gradients_one_head() {
    check_rims(CellKind::Lstm, 1, 0.0, 1);
}

#[test]
fn rims_lstm_gradients_two_heads_dropout() {
    check_rims(CellKind::Lstm, 2, 0.3, 2);
}

#[test]
fn rims_lstm_gradients_one_head_dropout() {
    check_rims(CellKind::Lstm, 1, 0.3, 3);
}

#[test]
fn rims_lstm_gradients_two_heads() {
    check_rims(CellKind::Lstm, 2, 0.0, 4);
}

#[test]
fn rims_gru_gradients_one_head() {
    check_rims(CellKind::Gru, 1, 0.0, 5);
}

#[test]
fn rims_gru_gradients_two_heads_dropout() {
    check_rims(CellKind::Gru, 2, 0.3, 6);
}

#[test]
fn rims_gru_gradients_one_head_dropout() {
    check_rims(CellKind::Gru, 1, 0.3, 7);
}

#[test]
fn rims_gru_gradients_two_heads() {
    check_rims(CellKind::Gru, 2, 0.0, 8);
}

/// With k = N every mechanism is active, nothing is blocked, and the pseudo-gradient is the
/// true gradient: the unfrozen, unmasked forward's differences agree.
#[test]
fn all_active_when_k_is_n_and_gradient_is_exact() {
    for (cell, seed) in [(CellKind::Lstm, 11), (CellKind::Gru, 12)] {
        let case = Case::new(tiny(cell, 2, 0.3, 4), seed);
        let base = case.forward(&case.params, &case.x, &case.h0, &case.c0);
        assert!(base.masks.iter().all(|&m| m == 1.0));
        case.check_exact_gradients(&base, &format!("{cell:?}"));
    }
}

/// Without freezing the inactive h', differences see the gradient that `blocked_grad` cuts,
/// so they disagree with the pseudo-gradient somewhere when k < N.
#[test]
fn naive_differences_disagree_when_some_are_inactive() {
    for (cell, seed) in [(CellKind::Lstm, 21), (CellKind::Gru, 22)] {
        let case = Case::new(tiny(cell, 1, 0.0, 2), seed);
        let base = case.forward(&case.params, &case.x, &case.h0, &case.c0);
        let grads = case.backward(&base);
        let fds = case.finite_differences(|p, x, h0, c0| {
            rr::forward(
                &case.cfg,
                p,
                x,
                h0,
                c0,
                case.seed,
                case.step0,
                Some(&base.masks),
                T,
                B,
            )
        });
        let worst = fds
            .iter()
            .map(|(name, fd)| {
                worst_relative_error(<Authors as support::Cell>::analytic(&grads, name), fd).0
            })
            .fold(0.0, f64::max);
        assert!(
            worst > 100.0,
            "{cell:?}: naive differences agree (worst {worst:e})"
        );
        // In particular the inactive mechanisms' cells matter to the naive loss.
        let fd_wx = &fds.iter().find(|(n, _)| *n == "rnn_wx").unwrap().1;
        let diff = fd_wx
            .iter()
            .zip(&grads.params.rnn_wx)
            .map(|(f, a)| (f - a).abs())
            .fold(0.0, f64::max);
        assert!(diff > 1e-4, "{cell:?}: rnn_wx differs by only {diff:e}");
    }
}

/// At t = 0 with h0 = 0 every score is 0, all mechanisms tie, and 0..k-1 are active.
#[test]
fn ties_go_to_the_lower_index() {
    for active in 1..=4 {
        for cell in [CellKind::Lstm, CellKind::Gru] {
            let mut case = Case::new(tiny(cell, 2, 0.0, active), 31);
            case.h0.iter_mut().for_each(|v| *v = 0.0);
            let f = case.forward(&case.params, &case.x, &case.h0, &case.c0);
            assert!(f.scores[..B * 4 * 2].iter().all(|&s| s == 0.0));
            for b in 0..B {
                let expect: Vec<f64> = (0..4).map(|i| if i < active { 1.0 } else { 0.0 }).collect();
                assert_eq!(
                    &f.masks[b * 4..(b + 1) * 4],
                    &expect[..],
                    "k={active} b={b}"
                );
            }
        }
    }
    assert_eq!(
        rr::top_k_mask(&[1.0, 2.0, 2.0, 0.0], 2),
        [0.0, 1.0, 1.0, 0.0]
    );
    assert_eq!(
        rr::top_k_mask(&[3.0, 2.0, 2.0, 2.0], 2),
        [1.0, 1.0, 0.0, 0.0]
    );
    assert_eq!(rr::top_k_mask(&[-1.0, 5.0, -1.0], 1), [0.0, 1.0, 0.0]);
    assert_eq!(rr::top_k_mask(&[0.5, 0.1, 0.9], 3), [1.0, 1.0, 1.0]);
}

/// The selection takes the k largest mean scores; inactive mechanisms keep h and c.
#[test]
fn masks_follow_the_ranking_and_inactive_keep_their_state() {
    let case = Case::new(tiny(CellKind::Lstm, 2, 0.3, 2), 41);
    let f = case.forward(&case.params, &case.x, &case.h0, &case.c0);
    let (n, h) = (4, 3);
    let st = B * n * h;
    for tb in 0..T * B {
        let rank = &f.ranking[tb * n..(tb + 1) * n];
        let mean: Vec<f64> = (0..n)
            .map(|i| (f.scores[(tb * n + i) * 2] + f.scores[(tb * n + i) * 2 + 1]) / 2.0)
            .collect();
        assert_eq!(rank, &mean[..]);
        assert_eq!(&f.masks[tb * n..(tb + 1) * n], &rr::top_k_mask(rank, 2)[..]);
        let (t, b) = (tb / B, tb % B);
        for i in 0..n {
            for e in 0..h {
                let idx = b * n * h + i * h + e;
                let (hp, cp) = if t == 0 {
                    (case.h0[idx], case.c0[idx])
                } else {
                    (f.h[(t - 1) * st + idx], f.c[(t - 1) * st + idx])
                };
                let (hn, cn) = (f.h[t * st + idx], f.c[t * st + idx]);
                if f.masks[tb * n + i] == 0.0 {
                    assert_eq!((hn, cn), (hp, cp));
                } else {
                    assert_eq!(hn, f.h_hat[t * st + idx]);
                    assert_eq!(cn, f.c_prime[t * st + idx]);
                }
            }
        }
    }
    // Overriding with the computed masks, or freezing at the run's own h', changes nothing.
    let same = case.forward_masked(&case.params, &f.masks);
    assert_eq!(same.h, f.h);
    let frozen = case.forward_frozen(&case.params, &case.x, &case.h0, &case.c0, &f);
    assert_eq!(frozen.h, f.h);
    assert_eq!(frozen.c, f.c);
    // A different override is obeyed.
    let flipped: Vec<f64> = f.masks.iter().map(|m| 1.0 - m).collect();
    let other = case.forward_masked(&case.params, &flipped);
    assert_eq!(other.masks, flipped);
    assert_ne!(other.h, f.h);
}

/// An inactive mechanism's input u gets exactly zero gradient (and so do its cell's weights
/// at that step); active ones get some.
#[test]
fn inactive_mechanisms_get_exactly_zero_du() {
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let case = Case::new(tiny(cell, 2, 0.3, 2), 51);
        let f = case.forward(&case.params, &case.x, &case.h0, &case.c0);
        let g = case.backward(&f);
        let (n, a, h) = (4, 6, 3);
        let mut inactive = 0;
        for tb in 0..T * B {
            for i in 0..n {
                let du = &g.du[(tb * n + i) * a..(tb * n + i + 1) * a];
                let dhp = &g.dh_prime[(tb * n + i) * h..(tb * n + i + 1) * h];
                if f.masks[tb * n + i] == 0.0 {
                    inactive += 1;
                    assert!(du.iter().all(|&v| v == 0.0), "{cell:?} du {du:?}");
                    assert!(dhp.iter().all(|&v| v == 0.0), "{cell:?} dh' {dhp:?}");
                } else {
                    assert!(du.iter().any(|&v| v != 0.0));
                }
            }
        }
        assert_eq!(inactive, T * B * 2);
        // A mechanism inactive at every step gets no cell gradient at all.
        let mut always_off = Vec::new();
        for i in 0..n {
            if (0..T * B).all(|tb| f.masks[tb * n + i] == 0.0) {
                always_off.push(i);
            }
        }
        let gh = cell.gates() * h;
        for i in always_off {
            assert!(
                g.params.rnn_bx[i * gh..(i + 1) * gh]
                    .iter()
                    .all(|&v| v == 0.0)
            );
        }
    }
}

/// Dropout draws from (seed, step0 + t): another seed or step0 gives another output.
#[test]
fn dropout_depends_on_seed_and_step() {
    let case = Case::new(tiny(CellKind::Gru, 1, 0.3, 2), 61);
    let run = |seed, step0| {
        rr::forward(
            &case.cfg,
            &case.params,
            &case.x,
            &case.h0,
            &case.c0,
            seed,
            step0,
            None,
            T,
            B,
        )
    };
    let base = run(1, 0);
    assert_eq!(base.h, run(1, 0).h);
    assert_ne!(base.u, run(2, 0).u);
    assert_ne!(base.u, run(1, 1).u);
    // Step t of a call at step0 = 1 draws what step t + 1 of a call at step0 = 0 drew.
    let shifted = run(1, 1);
    let a = 4 * 3;
    let row = B * a;
    let zeros = |u: &[f64]| u.iter().map(|&v| v == 0.0).collect::<Vec<_>>();
    assert_eq!(zeros(&shifted.u[..row]), zeros(&base.u[row..2 * row]));
    // With p = 0 nothing is dropped.
    let mut cfg = case.cfg.clone();
    cfg.dropout = 0.0;
    let f = rr::forward(
        &cfg,
        &case.params,
        &case.x,
        &case.h0,
        &case.c0,
        1,
        0,
        None,
        T,
        B,
    );
    assert!(f.u.iter().all(|&u| u != 0.0));
}

#[test]
fn params_by_name() {
    let cfg = tiny(CellKind::Lstm, 2, 0.0, 2);
    let mut p = RimsParams::random(&cfg, &mut Rng::new(3), 1.0);
    let shapes = RimsParams::shapes(&cfg);
    let named = p.names_and_values();
    assert_eq!(named.len(), 14);
    for ((name, v), (sname, shape)) in named.iter().zip(&shapes) {
        assert_eq!(name, sname);
        assert_eq!(v.len(), shape.iter().product::<usize>(), "{name}");
        assert_eq!(p.get(name).unwrap(), *v);
    }
    assert_eq!(shapes[3].1, vec![4, 6, 12]);
    assert!(p.get("in_k_b").is_none());
    p.get_mut("comm_gate_b").unwrap()[1] = 42.0;
    assert_eq!(p.comm_gate_b[1], 42.0);
    let z = p.zeros_like();
    assert!(
        z.names_and_values()
            .iter()
            .all(|(_, v)| v.iter().all(|&e| e == 0.0))
    );
    assert_eq!(z, RimsParams::zeros(&cfg));
}

fn check_recurrent(cell: CellKind, seed: u64) {
    let cfg = RecurrentConfig {
        cell,
        input: 5,
        hidden: 4,
    };
    let mut rng = Rng::new(seed);
    let params = RecurrentParams::random(&cfg, &mut rng, 0.6);
    let x = uniform(&mut rng, T * B * cfg.input, 1.0);
    let h0 = uniform(&mut rng, B * cfg.hidden, 0.8);
    let c0 = uniform(&mut rng, B * cfg.hidden, 0.8);
    let r = uniform(&mut rng, T * B * cfg.hidden, 1.0);
    let rc = uniform(&mut rng, B * cfg.hidden, 1.0);
    let lstm = cell == CellKind::Lstm;
    let loss = |p: &RecurrentParams, x: &[f64], h0: &[f64], c0: &[f64]| {
        let f = recurrent::forward(&cfg, p, x, h0, c0, T, B);
        let mut l: f64 = f.h.iter().zip(&r).map(|(h, r)| h * r).sum();
        if lstm {
            let c_last = &f.c[(T - 1) * B * cfg.hidden..];
            l += c_last.iter().zip(&rc).map(|(c, r)| c * r).sum::<f64>();
        }
        l
    };
    let f = recurrent::forward(&cfg, &params, &x, &h0, &c0, T, B);
    let g = recurrent::backward(&cfg, &params, &x, &h0, &c0, &f, &r, lstm.then_some(&rc[..]));
    let mut checks: Vec<(&str, &[f64], Vec<f64>)> = Vec::new();
    for name in RecurrentParams::NAMES {
        let fd = finite_differences(params.get(name).unwrap(), FD_STEP, |v| {
            let mut p = params.clone();
            p.get_mut(name).unwrap().copy_from_slice(v);
            loss(&p, &x, &h0, &c0)
        });
        checks.push((name, g.params.get(name).unwrap(), fd));
    }
    checks.push((
        "x",
        &g.dx,
        finite_differences(&x, FD_STEP, |v| loss(&params, v, &h0, &c0)),
    ));
    checks.push((
        "h0",
        &g.dh0,
        finite_differences(&h0, FD_STEP, |v| loss(&params, &x, v, &c0)),
    ));
    if lstm {
        checks.push((
            "c0",
            &g.dc0,
            finite_differences(&c0, FD_STEP, |v| loss(&params, &x, &h0, v)),
        ));
    } else {
        assert!(g.dc0.is_empty() && f.c.is_empty());
    }
    for (name, a, fd) in checks {
        let (e, i) = worst_relative_error(a, &fd);
        assert!(
            e <= 1.0,
            "{cell:?} {name}[{i}]: {} vs {} (rel {e:e})",
            a[i],
            fd[i]
        );
    }
}

#[test]
fn lstm_layer_gradients() {
    check_recurrent(CellKind::Lstm, 71);
}

#[test]
fn gru_layer_gradients() {
    check_recurrent(CellKind::Gru, 72);
}

/// The layer's step is the documented formula (spot check of one row against hand-written
/// gates).
#[test]
fn layer_step_matches_the_formulas() {
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let cfg = RecurrentConfig {
            cell,
            input: 2,
            hidden: 1,
        };
        let p = RecurrentParams::random(&cfg, &mut Rng::new(81), 1.0);
        let (x, h, c) = ([0.3, -0.7], [0.4], [-0.2]);
        let f = recurrent::forward(&cfg, &p, &x, &h, &c, 1, 1);
        let gx = |k: usize| x[0] * p.wx[k] + x[1] * p.wx[cfg.gate_width() + k] + p.bx[k];
        let gh = |k: usize| h[0] * p.wh[k] + p.bh[k];
        match cell {
            CellKind::Lstm => {
                let (i, fg) = (sig(gx(0) + gh(0)), sig(gx(1) + gh(1)));
                let (g, o) = ((gx(2) + gh(2)).tanh(), sig(gx(3) + gh(3)));
                let c1 = fg * c[0] + i * g;
                assert!((f.c[0] - c1).abs() < 1e-15);
                assert!((f.h[0] - o * c1.tanh()).abs() < 1e-15);
            }
            CellKind::Gru => {
                let (r, z) = (sig(gx(0) + gh(0)), sig(gx(1) + gh(1)));
                let n = (gx(2) + r * gh(2)).tanh();
                assert!((f.h[0] - ((1.0 - z) * n + z * h[0])).abs() < 1e-15);
            }
        }
    }
}
