//! The authors' PyTorch code reproduced: the golden fixtures of `tests/fixtures/pytorch/`,
//! made by running the real `BlocksCore` (anirudh9119/RIMs @aa61773, `tools/pytorch/make_fixtures.py`),
//! mapped to the canonical layout of docs/spec.md §4 and run through the engine's RIMs layer.
//! Forward only so far: per-step h and c, and the masks (issue 12).
//!
//! And dido1998's `RIMCell` (variant D, @26aa871): `dido_{lstm,gru}.safetensors` hold its
//! state_dict, inputs, per-step outputs and PyTorch's gradients; the f64 reference reproduces
//! all of them, and the engine reproduces the forward and the gradients on both devices.

use std::collections::BTreeMap;
use std::path::Path;

use rims::nn::rims::param_specs;
use rims::nn::{CellKind, ParamStore, Rims, RimsConfig, RimsOptions};
use rims::tape::Tape;
use rims::{Context, Tensor};

use crate::common::assert_close;

/// A fixture's tensors (as f64, with their shapes) and its metadata.
struct Fixture {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    meta: BTreeMap<String, String>,
}

impl Fixture {
    fn read(name: &str) -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pytorch")
            .join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                assert_eq!(view.dtype(), safetensors::Dtype::F64, "{name}");
                let values = view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect();
                (name, (view.shape().to_vec(), values))
            })
            .collect();
        Fixture { tensors, meta }
    }

    fn get(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no {name}"))
    }

    fn size(&self, key: &str) -> usize {
        self.meta[key].parse().unwrap()
    }
}

/// The canonical tensors (docs/spec.md §4) of an authors' `BlocksCore` state_dict: the dense
/// block-LSTM/GRU matrices blockified and transposed into per-mechanism [A, G·H] and [H, G·H]
/// blocks (the off-block entries the fixture carries are dropped, as the authors' forward
/// does), slot 1 of the input key/value layers, and the transposed communication output layers.
fn authors_to_canonical(f: &Fixture, cell: CellKind) -> BTreeMap<&'static str, Vec<f64>> {
    let (n, h, a) = (f.size("N"), f.size("H"), f.size("d_vin"));
    let nh = n * h;
    let (pre, gates) = match cell {
        CellKind::Lstm => ("state.block_lstm.lstm.", 4),
        CellKind::Gru => ("state.block_lstm.gru.", 3),
    };
    let (wih, whh) = (
        &f.get(&format!("{pre}weight_ih")).1,
        &f.get(&format!("{pre}weight_hh")).1,
    );
    let (bih, bhh) = (
        &f.get(&format!("{pre}bias_ih")).1,
        &f.get(&format!("{pre}bias_hh")).1,
    );
    let gh = gates * h;
    let (mut wx, mut wh) = (vec![0.0; n * a * gh], vec![0.0; n * h * gh]);
    let (mut bx, mut bh) = (vec![0.0; n * gh], vec![0.0; n * gh]);
    for g in 0..gates {
        for j in 0..n {
            for r in 0..h {
                // Row of the dense matrix: gate g's chunk, mechanism j's block, unit r.
                let row = g * nh + j * h + r;
                let col = g * h + r;
                for i in 0..a {
                    wx[(j * a + i) * gh + col] = wih[row * (n * a) + j * a + i];
                }
                for i in 0..h {
                    wh[(j * h + i) * gh + col] = whh[row * nh + j * h + i];
                }
                bx[j * gh + col] = bih[row];
                bh[j * gh + col] = bhh[row];
            }
        }
    }
    // Slot 1 of a [2, D, W] GroupLinear: slot 0 only ever multiplies the null input.
    let slot1 = |name: &str| {
        let (s, v) = f.get(name);
        v[s[1] * s[2]..].to_vec()
    };
    // nn.Linear's weight is [out, in]; the canonical layout is [in, out].
    let transposed = |name: &str| {
        let (s, v) = f.get(name);
        let (out, inp) = (s[0], s[1]);
        (0..inp * out)
            .map(|k| v[(k % out) * inp + k / out])
            .collect::<Vec<f64>>()
    };
    let plain = |name: &str| f.get(name).1.clone();
    let wq = f.get("state.inp_att.GLN_ks.w").0[2];
    let mut c = BTreeMap::new();
    c.insert("in_q", plain("state.inp_att.GLN_qs.w"));
    c.insert("in_k_w", slot1("state.inp_att.GLN_ks.w"));
    c.insert("in_v_w", slot1("state.inp_att.GLN_vs.w"));
    c.insert("in_k_b", vec![0.0; wq]);
    c.insert("in_v_b", vec![0.0; a]);
    c.insert("rnn_wx", wx);
    c.insert("rnn_wh", wh);
    c.insert("rnn_bx", bx);
    c.insert("rnn_bh", bh);
    c.insert("comm_q", plain("state.mha.GLN_qs.w"));
    c.insert("comm_k", plain("state.mha.GLN_ks.w"));
    c.insert("comm_v", plain("state.mha.GLN_vs.w"));
    c.insert("comm_fc_w", transposed("state.mha.fc.weight"));
    c.insert("comm_fc_b", plain("state.mha.fc.bias"));
    c.insert("comm_gate_w", transposed("state.mha.gate_fc.weight"));
    c.insert("comm_gate_b", plain("state.mha.gate_fc.bias"));
    c
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn authors_fixture_is_reproduced(ctx: &Context, file: &str, cell: CellKind) {
    let f = Fixture::read(file);
    assert_eq!(
        (f.meta["code"].as_str(), f.meta["variant"].as_str()),
        ("authors", "A")
    );
    let (t, b, n, h) = (f.size("T"), f.size("B"), f.size("N"), f.size("H"));
    let cfg = RimsConfig {
        mechanisms: n,
        active: f.size("k"),
        hidden: h,
        input: f.size("D"),
        input_key: f.size("d_k"),
        input_value: f.size("d_vin"),
        input_heads: f.size("h_in"),
        comm_heads: f.size("h_c"),
        comm_key: f.size("d_kc"),
        comm_value: f.size("d_vc"),
        cell,
        dropout: 0.0,
        variant: rims::nn::Variant::Authors,
    };
    let specs = param_specs(&cfg);
    let store = ParamStore::new(ctx, &specs, 1).unwrap();
    let canonical = authors_to_canonical(&f, cell);
    for spec in &specs {
        let v = &canonical[spec.name.as_str()];
        assert_eq!(
            v.len(),
            spec.shape.iter().product::<usize>(),
            "{}",
            spec.name
        );
        store.set(ctx, &spec.name, &f32s(v)).unwrap();
    }
    let tensor = |name: &str| {
        let (s, v) = f.get(name);
        Tensor::from_slice(ctx, s, &f32s(v)).unwrap()
    };
    let rims = Rims::new(cfg).unwrap();
    let mut tape = Tape::untracked();
    let x = tape.constant(tensor("input.x"));
    let opts = RimsOptions {
        h0: Some(tensor("input.h0")),
        c0: (cell == CellKind::Lstm).then(|| tensor("input.c0")),
        ..RimsOptions::default()
    };
    let out = rims.forward(ctx, &mut tape, &store, x, &opts).unwrap();
    let masks = out.masks.to_vec(ctx).unwrap();
    let want_masks = &f.get("output.mask").1;
    let mismatched = masks
        .iter()
        .zip(want_masks)
        .filter(|(g, w)| **g as f64 != **w)
        .count();
    assert_eq!(
        mismatched, 0,
        "{file}: masks {masks:?} against {want_masks:?}"
    );
    let hv = tape.value(out.h).to_vec(ctx).unwrap();
    assert_close(&format!("{file} h"), &hv, &f.get("output.h").1, 1e-6, 1e-5);
    if cell == CellKind::Lstm {
        let cells = out.cells.expect("LSTM cell states");
        let c = cells.slice_copy(ctx, b * n * h, &[t, b, n * h]).unwrap();
        let cv = c.to_vec(ctx).unwrap();
        assert_close(&format!("{file} c"), &cv, &f.get("output.c").1, 1e-6, 1e-5);
    }
}

device_test!(authors_lstm_fixture_is_reproduced);
fn authors_lstm_fixture_is_reproduced(ctx: &Context) {
    authors_fixture_is_reproduced(ctx, "authors_lstm.safetensors", CellKind::Lstm);
}

device_test!(authors_gru_fixture_is_reproduced);
fn authors_gru_fixture_is_reproduced(ctx: &Context) {
    authors_fixture_is_reproduced(ctx, "authors_gru.safetensors", CellKind::Gru);
}

// --- dido1998's RIMCell (variant D) ------------------------------------------------------------

/// The canonical tensors (docs/spec.md §4) of dido's `RIMCell` state_dict. A small helper until
/// the library's importer takes over: nn.Linear weights transposed to [in, out]; the LSTM's
/// gate columns reordered from dido's [i, f, o, g] to the canonical [i, f, g, o]; GRU [r, z, n]
/// as it is; GroupLinear weights as they are.
fn dido_to_canonical(f: &Fixture, cell: CellKind) -> BTreeMap<&'static str, Vec<f64>> {
    let h = f.size("H");
    let transposed = |name: &str| {
        let (s, v) = f.get(name);
        let (out, inp) = (s[0], s[1]);
        (0..inp * out)
            .map(|k| v[(k % out) * inp + k / out])
            .collect::<Vec<f64>>()
    };
    let plain = |name: &str| f.get(name).1.clone();
    // Canonical column block g comes from dido's block ORDER[g].
    let reorder = |name: &str| {
        let (s, v) = f.get(name);
        let order: &[usize] = match cell {
            CellKind::Lstm => &[0, 1, 3, 2],
            CellKind::Gru => &[0, 1, 2],
        };
        let width = s[2];
        assert_eq!(width, order.len() * h, "{name}");
        let mut out = vec![0.0; v.len()];
        for (row, (o, i)) in out.chunks_mut(width).zip(v.chunks(width)).enumerate() {
            let _ = row;
            for (g, &src) in order.iter().enumerate() {
                o[g * h..(g + 1) * h].copy_from_slice(&i[src * h..(src + 1) * h]);
            }
        }
        out
    };
    let x2h = match cell {
        CellKind::Lstm => "state.rnn.i2h.w",
        CellKind::Gru => "state.rnn.x2h.w",
    };
    let mut c = BTreeMap::new();
    c.insert("in_q", plain("state.query.w"));
    c.insert("in_k_w", transposed("state.key.weight"));
    c.insert("in_k_b", plain("state.key.bias"));
    c.insert("in_v_w", transposed("state.value.weight"));
    c.insert("in_v_b", plain("state.value.bias"));
    c.insert("rnn_wx", reorder(x2h));
    c.insert("rnn_wh", reorder("state.rnn.h2h.w"));
    c.insert("comm_q", plain("state.query_.w"));
    c.insert("comm_k", plain("state.key_.w"));
    c.insert("comm_v", plain("state.value_.w"));
    c.insert("comm_out_w", plain("state.comm_attention_output.w"));
    c
}

fn dido_config(f: &Fixture, cell: CellKind) -> RimsConfig {
    assert_eq!(
        (f.meta["code"].as_str(), f.meta["variant"].as_str()),
        ("dido", "D")
    );
    RimsConfig {
        mechanisms: f.size("N"),
        active: f.size("k"),
        hidden: f.size("H"),
        input: f.size("D"),
        input_key: f.size("d_k"),
        input_value: f.size("d_vin"),
        input_heads: f.size("h_in"),
        comm_heads: f.size("h_c"),
        comm_key: f.size("d_kc"),
        comm_value: f.size("d_vc"),
        cell,
        dropout: 0.0,
        variant: rims::nn::Variant::Dido,
    }
}

/// The f64 reference of variant D reproduces dido's PyTorch forward (h, c, masks) and its
/// gradients (the fixture's loss Σ_t <h_t, wh_t> + <c_T, wc>) to rounding.
fn dido_reference_reproduces(file: &str, cell: CellKind) {
    use rims::reference::rims_dido::{self as rd, DidoParams};
    let f = Fixture::read(file);
    let cfg = dido_config(&f, cell);
    let (t, b) = (f.size("T"), f.size("B"));
    let canonical = dido_to_canonical(&f, cell);
    let mut p = DidoParams::zeros(&cfg);
    for name in DidoParams::NAMES {
        p.get_mut(name).unwrap().copy_from_slice(&canonical[name]);
    }
    let lstm = cell == CellKind::Lstm;
    let (x, h0) = (&f.get("input.x").1, &f.get("input.h0").1);
    let c0 = &f.get("input.c0").1;
    let fwd = rd::forward(&cfg, &p, x, h0, c0, 0, 0, None, t, b);
    assert_eq!(&fwd.masks, &f.get("output.mask").1, "{file}: masks");
    let close = |what: &str, got: &[f64], want: &[f64]| {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
        assert!(err <= 1e-10 * scale, "{file} {what}: error {err:e}");
    };
    close("h", &fwd.h, &f.get("output.h").1);
    close("score", &fwd.score_x, &f.get("output.score").1);
    if lstm {
        close("c", &fwd.c, &f.get("output.c").1);
    }
    let wc = lstm.then(|| f.get("loss.wc").1.clone());
    let g = rd::backward(
        &cfg,
        &p,
        x,
        h0,
        c0,
        &fwd,
        &f.get("loss.wh").1,
        wc.as_deref(),
        0,
        0,
    );
    // PyTorch's gradients, mapped like the parameters.
    let mut gf = Fixture {
        tensors: BTreeMap::new(),
        meta: f.meta.clone(),
    };
    for (k, v) in &f.tensors {
        if let Some(rest) = k.strip_prefix("grad.") {
            gf.tensors.insert(format!("state.{rest}"), v.clone());
        }
    }
    let want = dido_to_canonical(&gf, cell);
    for name in DidoParams::NAMES {
        close(
            &format!("d{name}"),
            g.params.get(name).unwrap(),
            &want[name],
        );
    }
    close("dx", &g.dx, &f.get("grad.x").1);
    close("dh0", &g.dh0, &f.get("grad.h0").1);
    if lstm {
        close("dc0", &g.dc0, &f.get("grad.c0").1);
    }
}

#[test]
fn dido_lstm_fixture_matches_the_reference() {
    dido_reference_reproduces("dido_lstm.safetensors", CellKind::Lstm);
}

#[test]
fn dido_gru_fixture_matches_the_reference() {
    dido_reference_reproduces("dido_gru.safetensors", CellKind::Gru);
}

/// The engine's variant D reproduces dido's PyTorch cell: per-step h, c and masks (1e-5
/// relative), and every gradient of the fixture's loss (1e-4 of the tensor's largest
/// magnitude, as `rims verify` compares).
fn dido_fixture_is_reproduced(ctx: &Context, file: &str, cell: CellKind) {
    let f = Fixture::read(file);
    let cfg = dido_config(&f, cell);
    let (t, b, n, h) = (f.size("T"), f.size("B"), f.size("N"), f.size("H"));
    let specs = param_specs(&cfg);
    let store = ParamStore::new(ctx, &specs, 1).unwrap();
    let canonical = dido_to_canonical(&f, cell);
    assert_eq!(canonical.len(), specs.len());
    for spec in &specs {
        let v = &canonical[spec.name.as_str()];
        assert_eq!(
            v.len(),
            spec.shape.iter().product::<usize>(),
            "{}",
            spec.name
        );
        store.set(ctx, &spec.name, &f32s(v)).unwrap();
    }
    let tensor = |name: &str| {
        let (s, v) = f.get(name);
        Tensor::from_slice(ctx, s, &f32s(v)).unwrap()
    };
    let lstm = cell == CellKind::Lstm;
    let rims = Rims::new(cfg).unwrap();
    let mut tape = Tape::new();
    let x = tape.input(tensor("input.x"));
    let opts = RimsOptions {
        h0: Some(tensor("input.h0")),
        c0: lstm.then(|| tensor("input.c0")),
        ..RimsOptions::default()
    };
    store.zero_grads(ctx).unwrap();
    let out = rims.forward(ctx, &mut tape, &store, x, &opts).unwrap();
    let masks = out.masks.to_vec(ctx).unwrap();
    assert_eq!(f32s(&f.get("output.mask").1), masks, "{file}: masks");
    let hv = tape.value(out.h).to_vec(ctx).unwrap();
    assert_close(&format!("{file} h"), &hv, &f.get("output.h").1, 1e-6, 1e-5);
    let cells = out.cells.clone();
    if lstm {
        let c = cells.as_ref().expect("LSTM cell states");
        let cv = c.slice_copy(ctx, b * n * h, &[t, b, n * h]).unwrap();
        let cv = cv.to_vec(ctx).unwrap();
        assert_close(&format!("{file} c"), &cv, &f.get("output.c").1, 1e-6, 1e-5);
    }
    // Gradients of L_h = Σ_t <h_t, wh_t>. The tape tracks h only (h0 and c0 are options, not
    // variables), so the LSTM fixture's term <c_T, wc> cannot be seeded: its gradh.* section
    // holds PyTorch's gradients of L_h; for GRU, grad.* already is L_h's.
    let wh = tape.constant(tensor("loss.wh"));
    let weighted = tape.mul(ctx, out.h, wh).unwrap();
    let loss = tape.sum(ctx, weighted).unwrap();
    let grads = tape.backward(ctx, loss).unwrap();
    let tag = if lstm { "gradh." } else { "grad." };
    let mut gf = Fixture {
        tensors: BTreeMap::new(),
        meta: f.meta.clone(),
    };
    for (k, v) in &f.tensors {
        if let Some(rest) = k.strip_prefix(tag) {
            gf.tensors.insert(format!("state.{rest}"), v.clone());
        }
    }
    let mut want = dido_to_canonical(&gf, cell);
    want.insert("x", f.get(&format!("{tag}x")).1.clone());
    let dx = grads.get(x).expect("dL/dx").to_vec(ctx).unwrap();
    for (name, want) in &want {
        let got = if *name == "x" {
            dx.clone()
        } else {
            store.grad(name).unwrap().to_vec(ctx).unwrap()
        };
        let err = rims::verify::relative_error(&got, want);
        eprintln!("{file}: d{name} {err:.1e}");
        assert!(
            err < 1e-4,
            "{file}: d{name} differs by {err:.2e} of its scale"
        );
    }
}

device_test!(dido_lstm_fixture_is_reproduced);
fn dido_lstm_fixture_is_reproduced(ctx: &Context) {
    dido_fixture_is_reproduced(ctx, "dido_lstm.safetensors", CellKind::Lstm);
}

device_test!(dido_gru_fixture_is_reproduced);
fn dido_gru_fixture_is_reproduced(ctx: &Context) {
    dido_fixture_is_reproduced(ctx, "dido_gru.safetensors", CellKind::Gru);
}
