//! `rims import` and `rims export` from the command line: a PyTorch state_dict of the golden
//! fixtures (tests/fixtures/pytorch/, made by the real modules) imported and run with
//! `rims infer` reproduces the PyTorch outputs; `rims export` writes back the state_dict the
//! module loads (the same tensors on the blocks, zeros off them, the dead tensors filled); and
//! bad state_dicts and impossible exports are refused with the key or the reason, writing
//! nothing.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rims::interop::state_dict::{Entry, StateDict};
use support::*;

fn fixture(file: &str) -> StateDict {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(file);
    StateDict::read(&p).unwrap()
}

/// The tensors of a fixture whose names start with `tag.`, tag removed.
fn section(f: &StateDict, tag: &str) -> BTreeMap<String, Entry> {
    f.entries()
        .iter()
        .filter_map(|(k, e)| Some((k.strip_prefix(&format!("{tag}."))?.to_string(), e.clone())))
        .collect()
}

/// Writes tensors as an f32 safetensors file (what `safetensors.torch.save_file` writes for a
/// float32 model).
fn write(path: &Path, tensors: BTreeMap<String, Entry>) {
    let sd = StateDict::from_entries(path, tensors);
    std::fs::write(path, sd.encode_f32(&BTreeMap::new()).unwrap()).unwrap();
}

/// `args` then `extra`, with `--active 3` and `--device cpu` unless `extra` sets them.
fn with_defaults<'a>(
    mut args: Vec<&'a str>,
    extra: &[&'a str],
    defaults: &[[&'a str; 2]],
) -> Vec<&'a str> {
    for [flag, value] in defaults {
        if !extra.contains(flag) {
            args.extend([*flag, *value]);
        }
    }
    args.extend(extra);
    args
}

/// `rims import --from FROM STATE --out OUT --active 3 --device cpu`, `extra` added or
/// overriding.
fn import(from: &str, state: &Path, out: &Path, extra: &[&str]) -> Outcome {
    let args = vec!["import", "--from", from, s(state), "--out", s(out)];
    rims(&with_defaults(
        args,
        extra,
        &[["--active", "3"], ["--device", "cpu"]],
    ))
}

/// `rims export --to TO --checkpoint RUN --out OUT --device cpu`, `extra` added or overriding.
fn export(to: &str, run: &Path, out: &Path, extra: &[&str]) -> Outcome {
    let args = vec![
        "export",
        "--to",
        to,
        "--checkpoint",
        s(run),
        "--out",
        s(out),
    ];
    rims(&with_defaults(args, extra, &[["--device", "cpu"]]))
}

fn read_f32(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (n, (v.shape().to_vec(), vals))
        })
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= rtol * w.abs() + 1e-6 * scale,
            "{what}[{i}]: {g} against {w}"
        );
    }
}

/// A state_dict file of the fixture's weights, and an infer input of its x, h0 and c0.
fn fixture_files(dir: &Path, file: &str) -> (PathBuf, PathBuf, StateDict) {
    let f = fixture(file);
    let state = dir.join(format!("{file}.state.safetensors"));
    write(&state, section(&f, "state"));
    let input = dir.join(format!("{file}.in.safetensors"));
    let mut inputs = section(&f, "input");
    if f.entries()["input.c0"].values.iter().all(|&v| v == 0.0) && !file.contains("lstm") {
        inputs.remove("c0");
    }
    write(&input, inputs);
    (state, input, f)
}

fn import_and_infer_reproduces(file: &str, from: &str, device: &str) {
    let dir = scratch(&format!("interop-{file}-{device}"));
    let (state, input, f) = fixture_files(&dir, file);
    let run = dir.join("run");
    let o = import(from, &state, &run, &["--device", device]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("N=4 k=3 H=3 D=5"), "{}", o.stdout);
    let out = dir.join("out.safetensors");
    let o = rims(&[
        "infer",
        "--checkpoint",
        s(&run),
        "--input",
        s(&input),
        "--out",
        s(&out),
        "--device",
        device,
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let got = read_f32(&out);
    let (t, b) = (6, 2);
    let h = &got["h"];
    assert_eq!(h.0, vec![t, b, 12]);
    assert_close(
        &format!("{file} h"),
        &h.1,
        &f.entries()["output.h"].values,
        1e-5,
    );
    assert_eq!(
        got["mask"]
            .1
            .iter()
            .map(|&m| f64::from(m))
            .collect::<Vec<_>>(),
        f.entries()["output.mask"].values,
        "{file} masks"
    );
    if file.contains("lstm") {
        assert_close(
            &format!("{file} c"),
            &got["c"].1,
            &f.entries()["output.c"].values,
            1e-5,
        );
    }
}

#[test]
fn authors_state_dicts_import_and_infer_as_pytorch_ran_them() {
    for device in ["cpu", "gpu"] {
        import_and_infer_reproduces("authors_lstm.safetensors", "authors", device);
        import_and_infer_reproduces("authors_gru.safetensors", "authors", device);
    }
}

#[test]
fn dido_state_dicts_import_and_infer_as_pytorch_ran_them() {
    for device in ["cpu", "gpu"] {
        import_and_infer_reproduces("dido_lstm.safetensors", "dido", device);
        import_and_infer_reproduces("dido_gru.safetensors", "dido", device);
    }
}

#[test]
fn dido_export_gives_back_the_state_dict() {
    let dir = scratch("interop-export-dido");
    for file in ["dido_lstm.safetensors", "dido_gru.safetensors"] {
        let (state, _, f) = fixture_files(&dir, file);
        let run = dir.join(format!("run-{file}"));
        let o = import("dido", &state, &run, &[]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stdout.contains("variant D"), "{}", o.stdout);
        let out = dir.join(format!("exported-{file}"));
        let o = export("dido", &run, &out, &[]);
        assert_eq!(o.code, 0, "{o:?}");
        let got = read_f32(&out);
        let original = section(&f, "state");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            original.keys().collect::<Vec<_>>()
        );
        for (name, e) in &original {
            let want: Vec<f32> = e.values.iter().map(|&v| v as f32).collect();
            assert_eq!(got[name], (e.shape.clone(), want), "{file}: {name}");
        }
        // Variant D is not the authors' code.
        let o = export("authors", &run, &dir.join("no.safetensors"), &[]);
        assert_ne!(o.code, 0);
        assert!(o.stderr.contains("variant D"), "{}", o.stderr);
    }
}

#[test]
fn authors_export_gives_back_the_state_dict_blockified() {
    let dir = scratch("interop-export");
    let (state, _, f) = fixture_files(&dir, "authors_lstm.safetensors");
    let run = dir.join("run");
    let o = import("authors", &state, &run, &[]);
    assert_eq!(o.code, 0, "{o:?}");
    let out = dir.join("exported.safetensors");
    let o = export("authors", &run, &out, &["--cell-only"]);
    assert_eq!(o.code, 0, "{o:?}");
    let got = read_f32(&out);
    let original = section(&f, "state");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        original.keys().collect::<Vec<_>>(),
        "a strict load_state_dict needs exactly the module's keys"
    );
    let (n, h, a) = (4, 3, 12);
    for (name, e) in &original {
        let (shape, vals) = &got[name];
        assert_eq!(shape, &e.shape, "{name}");
        for (i, (&g, &w)) in vals.iter().zip(&e.values).enumerate() {
            let expect = if name.contains("block_lstm.lstm.weight") {
                // Rows: gate chunk of N·H; columns: N blocks of A (ih) or H (hh).
                let width = if name.ends_with("ih") { a } else { h };
                let (row, col) = (i / (n * width), i % (n * width));
                if (row % (n * h)) / h == col / width {
                    w
                } else {
                    0.0
                }
            } else if (name.starts_with("inp_att.GLN_ks") || name.starts_with("inp_att.GLN_vs"))
                && i < e.values.len() / 2
                || name.starts_with("inp_att.gate_fc")
                || name.ends_with("ln.bias")
            {
                // Slot 0 multiplies only the null input; gate_fc and ln are never used.
                0.0
            } else if name.ends_with("ln.weight") {
                1.0
            } else {
                w
            };
            assert_eq!(g, expect as f32, "{name}[{i}]");
        }
    }
    // Whole RNNModel by default: encoder, bc_lst.0.*, decoder.
    let whole = dir.join("whole.safetensors");
    let o = export("authors", &run, &whole, &[]);
    assert_eq!(o.code, 0, "{o:?}");
    let w = read_f32(&whole);
    assert_eq!(w["encoder.weight"].0, vec![20, 5]);
    assert_eq!(w["decoder.weight"].0, vec![20, 12]);
    assert!(w.contains_key("bc_lst.0.mha.fc.weight"));
    // And the whole model imports again, embedding and decoder included.
    let again = dir.join("again");
    let o = import("authors", &whole, &again, &[]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains("the readout is 'decoder'"),
        "{}",
        o.stdout
    );
    let first = read_f32(
        &run.join(std::fs::read_to_string(run.join("latest")).unwrap().trim())
            .join("model.safetensors"),
    );
    let second = read_f32(
        &again
            .join(
                std::fs::read_to_string(again.join("latest"))
                    .unwrap()
                    .trim(),
            )
            .join("model.safetensors"),
    );
    assert_eq!(first, second, "import ∘ export ∘ import is import");
}

#[test]
fn imported_runs_evaluate_and_visualise() {
    let dir = scratch("interop-use");
    let (state, _, _) = fixture_files(&dir, "authors_gru.safetensors");
    let run = dir.join("run");
    let o = import("authors", &state, &run, &[]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = rims(&["eval", "--checkpoint", s(&run), "--device", "cpu"]);
    assert_eq!(o.code, 0, "{o:?}");
    let png = dir.join("masks.png");
    let o = rims(&[
        "viz",
        "--checkpoint",
        s(&run),
        "--out",
        s(&png),
        "--device",
        "cpu",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}

/// Runs an import that must fail: the exit code is non-zero, stderr holds `fragment`, and the
/// output directory was not created.
fn refused(dir: &Path, state: &Path, extra: &[&str], fragment: &str) {
    let out = dir.join("never");
    let o = import("authors", state, &out, extra);
    let args = extra;
    assert_ne!(o.code, 0, "{args:?} succeeded: {o:?}");
    assert!(
        o.stderr.contains(fragment),
        "{args:?}: {} lacks {fragment:?}",
        o.stderr
    );
    assert_eq!(o.stderr.lines().count(), 1, "one line: {}", o.stderr);
    assert!(!out.exists(), "{args:?} wrote {out:?}");
}

#[test]
fn bad_state_dicts_are_refused_naming_the_key() {
    let dir = scratch("interop-bad");
    let good = section(&fixture("authors_lstm.safetensors"), "state");
    let variant = |tag: &str, edit: &dyn Fn(&mut BTreeMap<String, Entry>)| {
        let mut t = good.clone();
        edit(&mut t);
        let p = dir.join(format!("{tag}.safetensors"));
        write(&p, t);
        p
    };
    let unknown = variant("unknown", &|t| {
        t.insert("extra.weight".into(), Entry::new(&[2], vec![1.0, 2.0]));
    });
    refused(&dir, &unknown, &[], "does not understand: extra.weight");
    let missing = variant("missing", &|t| {
        t.remove("mha.fc.bias");
    });
    refused(&dir, &missing, &[], "missing tensor 'mha.fc.bias'");
    let misshaped = variant("misshaped", &|t| {
        t.insert(
            "mha.GLN_ks.w".into(),
            Entry::new(&[4, 3, 60], vec![0.0; 720]),
        );
    });
    refused(
        &dir,
        &misshaped,
        &[],
        "'mha.GLN_ks.w' has shape [4, 3, 60], expected [4, 3, 64]",
    );
    let nan = variant("nan", &|t| {
        t.get_mut("inp_att.GLN_qs.w").unwrap().values[5] = f64::NAN;
    });
    refused(
        &dir,
        &nan,
        &[],
        "tensor 'inp_att.GLN_qs.w' holds a non-finite value",
    );
    let two = variant("two", &|t| {
        let cells: Vec<(String, Entry)> = t.iter().map(|(k, e)| (k.clone(), e.clone())).collect();
        t.clear();
        for (k, e) in cells {
            t.insert(format!("bc_lst.0.{k}"), e.clone());
            t.insert(format!("bc_lst.1.{k}"), e);
        }
    });
    refused(&dir, &two, &[], "pick one with --prefix");
    refused(
        &dir,
        &two,
        &["--prefix", "bc_lst.2."],
        "no BlocksCore under the prefix 'bc_lst.2.'",
    );
    let good_file = variant("good", &|_| {});
    refused(&dir, &good_file, &["--active", "5"], "active");
    refused(&dir, &good_file, &["--comm-heads", "5"], "comm_heads");
    let o = import("dido", &good_file, &dir.join("never"), &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("no RIMCell of the dido code"),
        "{}",
        o.stderr
    );
    // Truncated and non-float files.
    let bytes = std::fs::read(&good_file).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    refused(&dir, &cut, &[], "not a valid safetensors file");
    let ints = dir.join("ints.safetensors");
    write_tensors(
        &ints,
        &[i32_tensor("inp_att.GLN_qs.w", &[2], &[1, 2])],
        None,
    );
    refused(&dir, &ints, &[], "is I32");
    // An --out that holds a run is left as it was.
    let run = dir.join("run");
    let o = import("authors", &good_file, &run, &[]);
    assert_eq!(o.code, 0, "{o:?}");
    let before = snapshot(&run);
    let o = import("authors", &good_file, &run, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("already holds a checkpoint"),
        "{}",
        o.stderr
    );
    assert_unchanged(&before, &run, "a second import into the same --out");
}

#[test]
fn exports_the_target_code_cannot_run_are_refused_with_the_reason() {
    let dir = scratch("interop-refuse");
    let run = dir.join("tiny");
    train_tiny(&run, 1, &[]);
    let out = dir.join("x.safetensors");
    let o = export("dido", &run, &out, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("differences of meaning, not of layout"),
        "{}",
        o.stderr
    );
    let o = export("authors", &run, &out, &[]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("input key size d_k is 16, BlocksCore builds 64"),
        "{}",
        o.stderr
    );
    assert!(!out.exists());
    let dense = dir.join("dense");
    train_tiny(&dense, 1, &["--model", "lstm"]);
    let o = export("authors", &dense, &out, &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("not a RIMs model"), "{}", o.stderr);
    std::fs::write(&out, b"keep me").unwrap();
    let o = export("authors", &run, &out, &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("exists"), "{}", o.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}

fn current_model(run: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let set = std::fs::read_to_string(run.join("latest")).unwrap();
    read_f32(&run.join(set.trim()).join("model.safetensors"))
}

#[test]
fn train_init_fine_tunes_imported_weights_with_a_fresh_optimizer() {
    let dir = scratch("interop-init");
    let (state, _, _) = fixture_files(&dir, "authors_lstm.safetensors");
    let imported = dir.join("imported");
    let o = import("authors", &state, &imported, &[]);
    assert_eq!(o.code, 0, "{o:?}");
    let tuned = dir.join("tuned");
    let small = [
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--iterations",
        "1",
        "--batch",
        "4",
        "--symbols",
        "5",
        "--train-len",
        "2",
        "--test-len",
        "5",
        "--lr",
        "0.002",
    ];
    let mut args = vec!["train", "--init", s(&imported), "--out", s(&tuned)];
    args.extend(small);
    let o = rims(&args);
    assert_eq!(o.code, 0, "{o:?}");
    // One Adam step moves each parameter by at most lr: the run started from the import.
    let (before, after) = (current_model(&imported), current_model(&tuned));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (name, (shape, a)) in &before {
        let (shape_b, b) = &after[name];
        assert_eq!(shape, shape_b, "{name}");
        let moved = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        if name == "in_k_b" || name == "in_v_b" {
            assert_eq!(moved, 0.0, "{name} is frozen in variant A");
        } else {
            assert!(
                moved > 0.0 && moved <= 0.002 * 1.001,
                "{name} moved {moved}"
            );
        }
    }
    let set = std::fs::read_to_string(tuned.join("latest")).unwrap();
    let json = std::fs::read_to_string(tuned.join(set.trim()).join("train.json")).unwrap();
    assert!(
        json.contains(&format!("\"init\": \"{}\"", s(&imported))),
        "{json}"
    );
    assert!(
        json.contains("\"hidden\": 3"),
        "the model settings come from --init: {json}"
    );

    // A flag that names another model is refused with both values; --resume excludes --init.
    let no = dir.join("no");
    let mut args = vec![
        "train",
        "--init",
        s(&imported),
        "--out",
        s(&no),
        "--hidden",
        "5",
    ];
    args.extend(small);
    let o = rims(&args);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("hidden: the --init checkpoint has 3, this run asks for 5"),
        "{}",
        o.stderr
    );
    assert!(!no.join("latest").exists());
    let o = rims(&["train", "--init", s(&imported), "--resume", s(&tuned)]);
    assert_eq!(o.code, 2, "{o:?}");
    let o = rims(&[
        "train",
        "--init",
        s(&dir.join("nothing")),
        "--out",
        s(&dir.join("no2")),
        "--device",
        "cpu",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nothing"), "{}", o.stderr);
}
