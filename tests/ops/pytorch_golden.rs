//! The two PyTorch codes reproduced: each golden fixture of `tests/fixtures/pytorch/` (made by
//! running the real `BlocksCore` and `RIMCell`, tools/pytorch/make_fixtures.py) is imported with
//! `rims::interop::import` exactly as `rims import` does and run through the engine's RIMs layer
//! on both devices: per-step h, c and masks, and the gradients of the fixture's loss
//! L = Σ_t ⟨h_t, wh[t]⟩ + ⟨c_T, wc⟩ (the second term through `RimsOutput::final_c`) for every
//! trainable canonical parameter (the fixture's gradients go through the same mapping, so for the
//! authors only the diagonal blocks of their dense matrices are compared, docs/spec.md §1.4 (a))
//! dL/dx, dL/dh0 and (LSTM) dL/dc0. The f64 reference of variant D is checked against dido's fixtures to rounding,
//! including dL/dh0 and dL/dc0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rims::interop::state_dict::{Entry, StateDict};
use rims::interop::{self, Code, ImportOptions, Imported};
use rims::nn::rims::param_specs;
use rims::nn::{CellKind, ParamStore, Rims, RimsOptions, Variant};
use rims::tape::Tape;
use rims::{Context, Tensor};

use crate::common::assert_close;

fn fixture_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(file)
}

/// The fixture's tensors whose names start with `tag.`, without the tag, as a state_dict.
fn section(all: &StateDict, tag: &str) -> StateDict {
    let entries: BTreeMap<String, Entry> = all
        .entries()
        .iter()
        .filter_map(|(k, e)| Some((k.strip_prefix(&format!("{tag}."))?.to_string(), e.clone())))
        .collect();
    StateDict::from_entries(&all.path, entries)
}

/// The parameter gradients of a `grad.*`/`gradh.*` section (without those of x, h0 and c0),
/// laid out like the state_dict, so the importer maps them as it maps the weights.
fn parameter_section(all: &StateDict, tag: &str) -> StateDict {
    let entries: BTreeMap<String, Entry> = section(all, tag)
        .entries()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x" | "h0" | "c0"))
        .map(|(n, e)| (n.clone(), e.clone()))
        .collect();
    StateDict::from_entries(&all.path, entries)
}

/// k, from the fixture's metadata (a state_dict does not hold it).
fn fixture_k(file: &str) -> usize {
    let bytes = std::fs::read(fixture_path(file)).unwrap();
    let (_, h) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    h.metadata().as_ref().unwrap()["k"].parse().unwrap()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Imports a section (weights, or gradients laid out like them) the way `rims import` does.
fn import(sd: &mut StateDict, code: Code, k: usize) -> Imported {
    interop::import(sd, &ImportOptions::new(code, k)).expect("the fixture imports")
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn fixture_gradients_are_reproduced(ctx: &Context, file: &str, code: Code) {
    let all = StateDict::read(&fixture_path(file)).unwrap();
    let entry = |name: &str| all.entries()[name].clone();
    let k = fixture_k(file);
    let imported = import(&mut section(&all, "state"), code, k);
    let cfg = imported.rims.clone();
    let want_variant = match code {
        Code::Authors => Variant::Authors,
        Code::Dido => Variant::Dido,
    };
    assert_eq!(cfg.variant, want_variant);
    let lstm = cfg.cell == CellKind::Lstm;
    // The whole loss Σ_t ⟨h_t, wh[t]⟩ + ⟨c_T, wc⟩ (grad.*): c_T is on the tape as `final_c`.
    let tag = "grad";
    let (gx, gh0, gc0) = (
        entry(&format!("{tag}.x")),
        entry(&format!("{tag}.h0")),
        entry(&format!("{tag}.c0")),
    );
    let want_grads = import(&mut parameter_section(&all, tag), code, k).cell;

    let specs = param_specs(&cfg);
    let store = ParamStore::new(ctx, &specs, 1).unwrap();
    for spec in &specs {
        store
            .set(ctx, &spec.name, &f32s(&imported.cell[&spec.name].values))
            .unwrap();
    }
    store.zero_grads(ctx).unwrap();
    let tensor = |e: &Entry| Tensor::from_slice(ctx, &e.shape, &f32s(&e.values)).unwrap();
    let (t, b, nh) = {
        let s = &entry("input.x").shape;
        (s[0], s[1], cfg.mechanisms * cfg.hidden)
    };
    let rims = Rims::new(cfg.clone()).unwrap();
    let mut tape = Tape::new();
    let x = tape.input(tensor(&entry("input.x")));
    // The initial state on the tape, so that dL/dh_0 and dL/dc_0 come back.
    let h0 = tape.input(tensor(&entry("input.h0")));
    let c0 = lstm.then(|| tape.input(tensor(&entry("input.c0"))));
    let opts = RimsOptions {
        h0_var: Some(h0),
        c0_var: c0,
        ..RimsOptions::default()
    };
    let out = rims.forward(ctx, &mut tape, &store, x, &opts).unwrap();
    let masks = out.masks.to_vec(ctx).unwrap();
    let want_masks = entry("output.mask").values;
    let wrong = masks
        .iter()
        .zip(&want_masks)
        .filter(|(g, w)| f64::from(**g) != **w)
        .count();
    assert_eq!(wrong, 0, "{file}: masks {masks:?} against {want_masks:?}");
    let hv = tape.value(out.h).to_vec(ctx).unwrap();
    assert_close(
        &format!("{file} h"),
        &hv,
        &entry("output.h").values,
        1e-6,
        1e-5,
    );
    if lstm {
        let cells = out.cells.as_ref().expect("LSTM cell states");
        let c = cells.slice_copy(ctx, b * nh, &[t, b, nh]).unwrap();
        let cv = c.to_vec(ctx).unwrap();
        assert_close(
            &format!("{file} c"),
            &cv,
            &entry("output.c").values,
            1e-6,
            1e-5,
        );
    }

    let wh = tape.constant(tensor(&entry("loss.wh")));
    let weighted = tape.mul(ctx, out.h, wh).unwrap();
    let mut loss = tape.sum(ctx, weighted).unwrap();
    if lstm {
        let wc = tape.constant(tensor(&entry("loss.wc")));
        let c_t = out.final_c.expect("an LSTM's c_T");
        let weighted_c = tape.mul(ctx, c_t, wc).unwrap();
        let lc = tape.sum(ctx, weighted_c).unwrap();
        loss = tape.add(ctx, loss, lc).unwrap();
    }
    let grads = tape.backward(ctx, loss).unwrap();
    let mut compared = 0;
    for spec in &specs {
        if !store.is_trainable(&spec.name).unwrap() {
            continue;
        }
        let got = store.grad(&spec.name).unwrap().to_vec(ctx).unwrap();
        let want = &want_grads[&spec.name].values;
        let scale = max_abs(want).max(1e-3);
        assert_close(
            &format!("{file} d{}", spec.name),
            &got,
            want,
            2e-6 * scale,
            1e-5,
        );
        compared += 1;
    }
    assert!(compared >= 9, "{file}: only {compared} gradients compared");
    let dx = grads.get(x).expect("dL/dx").to_vec(ctx).unwrap();
    assert_close(
        &format!("{file} dx"),
        &dx,
        &gx.values,
        2e-6 * max_abs(&gx.values),
        1e-5,
    );
    let dh0 = grads.get(h0).expect("dL/dh0").to_vec(ctx).unwrap();
    assert_close(
        &format!("{file} dh0"),
        &dh0,
        &gh0.values,
        2e-6 * max_abs(&gh0.values),
        1e-5,
    );
    assert!(
        max_abs(&gh0.values) > 0.0,
        "{file}: the fixture's dh0 is zero"
    );
    match c0 {
        Some(c0) => {
            let dc0 = grads.get(c0).expect("dL/dc0").to_vec(ctx).unwrap();
            assert_close(
                &format!("{file} dc0"),
                &dc0,
                &gc0.values,
                2e-6 * max_abs(&gc0.values),
                1e-5,
            );
            assert!(
                max_abs(&gc0.values) > 0.0,
                "{file}: the fixture's dc0 is zero"
            );
        }
        // A GRU never reads c0: PyTorch's gradient of it is zero, as the engine's would be.
        None => assert_eq!(max_abs(&gc0.values), 0.0, "{file}: GRU dc0"),
    }
}

device_test!(authors_lstm_gradients_are_reproduced);
fn authors_lstm_gradients_are_reproduced(ctx: &Context) {
    fixture_gradients_are_reproduced(ctx, "authors_lstm.safetensors", Code::Authors);
}

device_test!(authors_gru_gradients_are_reproduced);
fn authors_gru_gradients_are_reproduced(ctx: &Context) {
    fixture_gradients_are_reproduced(ctx, "authors_gru.safetensors", Code::Authors);
}

device_test!(dido_lstm_gradients_are_reproduced);
fn dido_lstm_gradients_are_reproduced(ctx: &Context) {
    fixture_gradients_are_reproduced(ctx, "dido_lstm.safetensors", Code::Dido);
}

device_test!(dido_gru_gradients_are_reproduced);
fn dido_gru_gradients_are_reproduced(ctx: &Context) {
    fixture_gradients_are_reproduced(ctx, "dido_gru.safetensors", Code::Dido);
}

/// The f64 reference of variant D reproduces dido's PyTorch forward (h, c, masks) and its
/// gradients (the fixture's loss Σ_t <h_t, wh_t> + <c_T, wc>) to rounding.
fn dido_reference_reproduces(file: &str) {
    use rims::reference::rims_dido::{self as rd, DidoParams};
    let all = StateDict::read(&fixture_path(file)).unwrap();
    let get = |name: &str| all.entries()[name].values.clone();
    let k = fixture_k(file);
    let imported = import(&mut section(&all, "state"), Code::Dido, k);
    let cfg = imported.rims.clone();
    let (t, b) = {
        let s = &all.entries()["input.x"].shape;
        (s[0], s[1])
    };
    let mut p = DidoParams::zeros(&cfg);
    for name in DidoParams::NAMES {
        p.get_mut(name)
            .unwrap()
            .copy_from_slice(&imported.cell[name].values);
    }
    let lstm = cfg.cell == CellKind::Lstm;
    let (x, h0, c0) = (get("input.x"), get("input.h0"), get("input.c0"));
    let (x, h0, c0) = (&x, &h0, &c0);
    let fwd = rd::forward(&cfg, &p, x, h0, c0, 0, 0, None, t, b);
    assert_eq!(&fwd.masks, &get("output.mask"), "{file}: masks");
    let close = |what: &str, got: &[f64], want: &[f64]| {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
        assert!(err <= 1e-10 * scale, "{file} {what}: error {err:e}");
    };
    close("h", &fwd.h, &get("output.h"));
    close("score", &fwd.score_x, &get("output.score"));
    if lstm {
        close("c", &fwd.c, &get("output.c"));
    }
    let wc = lstm.then(|| get("loss.wc"));
    let g = rd::backward(
        &cfg,
        &p,
        x,
        h0,
        c0,
        &fwd,
        &get("loss.wh"),
        wc.as_deref(),
        0,
        0,
    );
    // PyTorch's gradients of the whole loss (with the c_T term), mapped like the parameters.
    let want = import(&mut parameter_section(&all, "grad"), Code::Dido, k).cell;
    for name in DidoParams::NAMES {
        close(
            &format!("d{name}"),
            g.params.get(name).unwrap(),
            &want[name].values,
        );
    }
    close("dx", &g.dx, &get("grad.x"));
    close("dh0", &g.dh0, &get("grad.h0"));
    if lstm {
        close("dc0", &g.dc0, &get("grad.c0"));
    }
}

#[test]
fn dido_lstm_fixture_matches_the_reference() {
    dido_reference_reproduces("dido_lstm.safetensors");
}

#[test]
fn dido_gru_fixture_matches_the_reference() {
    dido_reference_reproduces("dido_gru.safetensors");
}
