//! GPU against the f64 reference for the whole RIMs layer: states, masks (exactly) and every
//! gradient, on a set of configurations. Used by the tests and by `rims verify`.

use crate::device::Context;
use crate::error::Result;
use crate::nn::Variant;
use crate::nn::rims::param_specs;
use crate::nn::{CellKind, ParamStore, Rims, RimsConfig, RimsOptions};
use crate::reference::rims as reference;
use crate::reference::rims_dido as dido;
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// One configuration to check.
#[derive(Clone, Debug)]
pub struct Case {
    /// Label shown in reports.
    pub name: String,
    /// The RIMs layer to check.
    pub cfg: RimsConfig,
    /// Sequence length T (steps); inputs are [T, B, input].
    pub t_len: usize,
    /// Batch size B.
    pub batch: usize,
    /// Seed of the parameters, inputs and dropout masks.
    pub seed: u64,
}

/// The outcome of one case: whether the masks agree exactly, and the largest error of each
/// tensor relative to the largest magnitude of the reference tensor.
#[derive(Clone, Debug)]
pub struct Report {
    /// Name of the case checked.
    pub case: String,
    /// Whether the GPU and reference activation masks are identical.
    pub masks_equal: bool,
    /// Per tensor (state or gradient): its name and its error relative to the reference's
    /// largest magnitude.
    pub errors: Vec<(String, f64)>,
}

impl Report {
    /// The largest relative error over all tensors (0 when there are none).
    pub fn worst(&self) -> f64 {
        self.errors.iter().fold(0.0, |m, (_, e)| m.max(*e))
    }

    /// Whether the masks agree and no relative error exceeds `tolerance`.
    pub fn passed(&self, tolerance: f64) -> bool {
        self.masks_equal && self.worst() <= tolerance
    }
}

/// The configurations the issue asks for (LSTM N=4 k=2; GRU N=6 k=4 with 4 heads; N = k;
/// dropout) plus two input heads and unequal key/value widths, over T = 8 steps, then
/// [`dido_cases`].
pub fn standard_cases() -> Vec<Case> {
    let mut cases = authors_cases();
    cases.extend(dido_cases());
    cases
}

/// Variant D (docs/spec.md §3) on odd shapes: N = 5, k = 2, H = 3 with two input heads, both
/// cells, with and without dropout, all mechanisms active, and a key width unlike d_vc = H.
pub fn dido_cases() -> Vec<Case> {
    let base = |cell, n, k| RimsConfig {
        mechanisms: n,
        active: k,
        hidden: 3,
        input: 4,
        input_key: 3,
        input_value: 2,
        input_heads: 2,
        comm_heads: 2,
        comm_key: 3,
        comm_value: 3,
        cell,
        dropout: 0.0,
        variant: crate::nn::Variant::Dido,
    };
    let case = |name: &str, cfg, batch, seed| Case {
        name: name.into(),
        cfg,
        t_len: 6,
        batch,
        seed,
    };
    vec![
        case(
            "D LSTM N=5 k=2 H=3 h_in=2",
            base(CellKind::Lstm, 5, 2),
            3,
            11,
        ),
        case("D GRU N=5 k=2 H=3 h_in=2", base(CellKind::Gru, 5, 2), 2, 12),
        case(
            "D LSTM dropout 0.3",
            RimsConfig {
                dropout: 0.3,
                ..base(CellKind::Lstm, 5, 2)
            },
            3,
            13,
        ),
        case(
            "D GRU dropout 0.25, 1 input head",
            RimsConfig {
                dropout: 0.25,
                input_heads: 1,
                ..base(CellKind::Gru, 4, 3)
            },
            2,
            14,
        ),
        case(
            "D LSTM N=k=3 (all active)",
            base(CellKind::Lstm, 3, 3),
            2,
            15,
        ),
        case(
            "D LSTM comm key 2 != H, 3 comm heads",
            RimsConfig {
                comm_key: 2,
                comm_heads: 3,
                ..base(CellKind::Lstm, 4, 2)
            },
            2,
            16,
        ),
    ]
}

fn authors_cases() -> Vec<Case> {
    let base = |cell, n, k| RimsConfig {
        mechanisms: n,
        active: k,
        hidden: 6,
        input: 5,
        input_key: 4,
        input_value: 3,
        input_heads: 1,
        comm_heads: 2,
        comm_key: 3,
        comm_value: 3,
        cell,
        dropout: 0.0,
        variant: crate::nn::Variant::Authors,
    };
    let case = |name: &str, cfg, batch, seed| Case {
        name: name.into(),
        cfg,
        t_len: 8,
        batch,
        seed,
    };
    vec![
        case("LSTM N=4 k=2", base(CellKind::Lstm, 4, 2), 3, 1),
        case(
            "GRU N=6 k=4, 4 comm heads",
            RimsConfig {
                comm_heads: 4,
                comm_key: 2,
                comm_value: 2,
                ..base(CellKind::Gru, 6, 4)
            },
            2,
            2,
        ),
        case("LSTM N=k=3 (all active)", base(CellKind::Lstm, 3, 3), 2, 3),
        case(
            "LSTM dropout 0.3",
            RimsConfig {
                dropout: 0.3,
                variant: crate::nn::Variant::Authors,
                ..base(CellKind::Lstm, 4, 2)
            },
            3,
            4,
        ),
        case(
            "GRU dropout 0.2, 2 input heads",
            RimsConfig {
                dropout: 0.2,
                variant: crate::nn::Variant::Authors,
                input_heads: 2,
                ..base(CellKind::Gru, 5, 2)
            },
            2,
            5,
        ),
        case(
            "LSTM key and value widths differ",
            RimsConfig {
                comm_key: 4,
                comm_value: 2,
                ..base(CellKind::Lstm, 4, 3)
            },
            2,
            6,
        ),
    ]
}

/// Random configurations (for `rims verify --random N`), seeded.
pub fn random_cases(count: usize, seed: u64) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let n = 1 + rng.below(7) as usize;
            let cfg = RimsConfig {
                mechanisms: n,
                active: 1 + rng.below(n as u64) as usize,
                hidden: 1 + rng.below(9) as usize,
                input: 1 + rng.below(9) as usize,
                input_key: 1 + rng.below(6) as usize,
                input_value: 1 + rng.below(6) as usize,
                input_heads: 1 + rng.below(2) as usize,
                comm_heads: 1 + rng.below(3) as usize,
                comm_key: 1 + rng.below(5) as usize,
                comm_value: 1 + rng.below(5) as usize,
                cell: if rng.below(2) == 0 {
                    CellKind::Lstm
                } else {
                    CellKind::Gru
                },
                dropout: if rng.below(2) == 0 { 0.0 } else { 0.25 },
                variant: crate::nn::Variant::Authors,
            };
            Case {
                name: format!(
                    "random #{i}: {:?} N={} k={} H={}",
                    cfg.cell, cfg.mechanisms, cfg.active, cfg.hidden
                ),
                cfg,
                t_len: 1 + rng.below(8) as usize,
                batch: 1 + rng.below(4) as usize,
                seed: seed.wrapping_add(i as u64),
            }
        })
        .collect()
}

/// Random variant-D configurations (d_vc = H, as D requires), seeded.
pub fn random_dido_cases(count: usize, seed: u64) -> Vec<Case> {
    random_cases(count, seed)
        .into_iter()
        .map(|mut c| {
            c.cfg.variant = crate::nn::Variant::Dido;
            c.cfg.comm_value = c.cfg.hidden;
            c.name = format!("D {}", c.name);
            c
        })
        .collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Largest |got − want| over the largest |want| (at least 1e-3, so near-zero tensors compare
/// absolutely); infinite when the sizes differ.
pub fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    // A tensor missing (or of the wrong size) must not pass as a perfect match.
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
    got.iter()
        .zip(want)
        .fold(0.0, |m, (g, w)| m.max((*g as f64 - w).abs() / scale))
}

/// What the reference says about a case: states, masks and every gradient by name.
struct Expected {
    params: Vec<(&'static str, Vec<f64>)>,
    h: Vec<f64>,
    c: Vec<f64>,
    masks: Vec<f64>,
    grads: Vec<(&'static str, Vec<f64>)>,
    dx: Vec<f64>,
    dh0: Vec<f64>,
    dc0: Vec<f64>,
}

type Inputs<'a> = (&'a [f64], &'a [f64], &'a [f64], &'a [f64], u32, u32);

/// The reference parameters of either variant.
enum Params {
    Authors(reference::RimsParams),
    Dido(dido::DidoParams),
}

impl Params {
    fn random(cfg: &RimsConfig, rng: &mut Rng) -> Self {
        match cfg.variant {
            Variant::Authors => Params::Authors(reference::RimsParams::random(cfg, rng, 0.5)),
            Variant::Dido => Params::Dido(dido::DidoParams::random(cfg, rng, 0.5)),
        }
    }
}

/// The reference of the case's variant on the given parameters and inputs.
fn expected(case: &Case, params: &Params, (x, h0, c0, r, seed, step0): Inputs<'_>) -> Expected {
    let cfg = &case.cfg;
    let (t, b) = (case.t_len, case.batch);
    let own = |v: Vec<(&'static str, &[f64])>| {
        v.into_iter()
            .map(|(n, x)| (n, x.to_vec()))
            .collect::<Vec<_>>()
    };
    match params {
        Params::Authors(p) => {
            let f = reference::forward(cfg, p, x, h0, c0, seed, step0, None, t, b);
            let g = reference::backward(cfg, p, x, h0, c0, &f, r, None, seed, step0);
            Expected {
                params: own(p.names_and_values()),
                grads: own(g.params.names_and_values()),
                h: f.h,
                c: f.c,
                masks: f.masks,
                dx: g.dx,
                dh0: g.dh0,
                dc0: g.dc0,
            }
        }
        Params::Dido(p) => {
            let f = dido::forward(cfg, p, x, h0, c0, seed, step0, None, t, b);
            let g = dido::backward(cfg, p, x, h0, c0, &f, r, None, seed, step0);
            Expected {
                params: own(p.names_and_values()),
                grads: own(g.params.names_and_values()),
                h: f.h,
                c: f.c,
                masks: f.masks,
                dx: g.dx,
                dh0: g.dh0,
                dc0: g.dc0,
            }
        }
    }
}

/// Runs one case on the device and in the reference of its variant, with the loss
/// L = Σ_t h_t ⊙ R_t.
pub fn run_case(ctx: &Context, case: &Case) -> Result<Report> {
    let cfg = &case.cfg;
    let (t_len, b) = (case.t_len, case.batch);
    let nh = cfg.mechanisms * cfg.hidden;
    let mut rng = Rng::new(case.seed);
    let params = Params::random(cfg, &mut rng);
    let mut draw = |n: usize, s: f64| -> Vec<f64> { (0..n).map(|_| rng.uniform(-s, s)).collect() };
    let x = draw(t_len * b * cfg.input, 1.0);
    let h0 = draw(b * nh, 0.5);
    let c0 = draw(b * nh, 0.5);
    let r = draw(t_len * b * nh, 1.0);
    let (seed, step0) = (case.seed as u32 ^ 0x5eed, 5u32);
    let training = cfg.dropout > 0.0;
    let want = expected(case, &params, (&x, &h0, &c0, &r, seed, step0));

    let store = ParamStore::new(ctx, &param_specs(cfg), 0)?;
    for (name, values) in &want.params {
        store.set(ctx, name, &f32s(values))?;
    }
    let layer = Rims::new(cfg.clone())?;
    let mut tape = Tape::new();
    let xv = tape.input(Tensor::from_slice(ctx, &[t_len, b, cfg.input], &f32s(&x))?);
    // The initial state as tape inputs, so that dL/dh_0 and dL/dc_0 come back to be checked.
    let lstm = cfg.cell == CellKind::Lstm;
    let h0v = tape.input(Tensor::from_slice(ctx, &[b, nh], &f32s(&h0))?);
    let c0v = if lstm {
        Some(tape.input(Tensor::from_slice(ctx, &[b, nh], &f32s(&c0))?))
    } else {
        None
    };
    let opts = RimsOptions {
        seed,
        step0,
        training,
        h0_var: Some(h0v),
        c0_var: c0v,
        ..RimsOptions::default()
    };
    store.zero_grads(ctx)?;
    let out = layer.forward(ctx, &mut tape, &store, xv, &opts)?;
    let rv = tape.constant(Tensor::from_slice(ctx, &[t_len, b, nh], &f32s(&r))?);
    let weighted = tape.mul(ctx, out.h, rv)?;
    let loss = tape.sum(ctx, weighted)?;
    let h = tape.value(out.h).to_vec(ctx)?;
    let masks = out.masks.to_vec(ctx)?;
    let g = tape.backward(ctx, loss)?;

    let mut errors = vec![("h".to_string(), relative_error(&h, &want.h))];
    if let Some(c) = &out.cells {
        errors.push((
            "c".into(),
            relative_error(&c.to_vec(ctx)?[b * nh..], &want.c),
        ));
    }
    for (name, values) in &want.grads {
        // Frozen parameters (variant A's input-attention biases) have no gradient in the
        // engine; the optimizer never changes them, so there is nothing to compare.
        if !store.is_trainable(name)? {
            continue;
        }
        errors.push((
            format!("d{name}"),
            relative_error(&store.grad(name)?.to_vec(ctx)?, values),
        ));
    }
    let dx = g
        .get(xv)
        .map(|t| t.to_vec(ctx))
        .transpose()?
        .unwrap_or_default();
    errors.push(("dx".into(), relative_error(&dx, &want.dx)));
    let initial = |v: Option<Var>| -> Result<Vec<f32>> {
        let got = v.and_then(|v| g.get(v)).map(|t| t.to_vec(ctx));
        Ok(got.transpose()?.unwrap_or_default())
    };
    errors.push((
        "dh0".into(),
        relative_error(&initial(Some(h0v))?, &want.dh0),
    ));
    if lstm {
        errors.push(("dc0".into(), relative_error(&initial(c0v)?, &want.dc0)));
    }
    Ok(Report {
        case: case.name.clone(),
        masks_equal: masks == f32s(&want.masks),
        errors,
    })
}
