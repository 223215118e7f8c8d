//! The authors' `BlocksCore` (anirudh9119/RIMs, event_based/) ↔ the canonical layout of
//! `docs/spec.md` §4, variant A.
//!
//! The block LSTM/GRU is one dense `nn.LSTMCell(N·A, N·H)` / `nn.GRUCell` whose forward only
//! sees its diagonal blocks (`blockify_params` zeroes the rest before every sequence), so import
//! keeps the blocks and reports how much it dropped; export writes zeros off the blocks. The
//! input attention's slot-0 key/value weights, its `gate_fc` and `ln`, and the communication's
//! `ln` never reach the output: import checks and drops them, export fills them so a strict
//! `load_state_dict` succeeds.

use std::collections::BTreeMap;

use super::state_dict::{Entry, StateDict};
use super::{Canonical, canonical, transpose};
use crate::error::{Error, Result};
use crate::nn::{CellKind, RimsConfig, Variant};

/// The communication heads `BlocksCore` builds (`MultiHeadAttention(n_head=4, d_k=16, d_v=16)`).
pub const COMM_HEADS: usize = 4;
/// The input attention's key size `BlocksCore` builds (`d_k=64`).
pub const INPUT_KEY: usize = 64;
/// The communication key and value size per head `BlocksCore` builds.
pub const COMM_HEAD_SIZE: usize = 16;

/// The module path of the block cell inside `BlocksCore`, by cell kind.
fn cell_path(cell: CellKind) -> &'static str {
    match cell {
        CellKind::Lstm => "block_lstm.lstm.",
        CellKind::Gru => "block_lstm.gru.",
    }
}

/// The prefixes under which a `BlocksCore` lives in `sd` (each key ending in
/// `inp_att.GLN_qs.w`).
pub fn cell_prefixes(sd: &StateDict) -> Vec<String> {
    sd.keys()
        .filter_map(|k| k.strip_suffix("inp_att.GLN_qs.w"))
        .map(str::to_string)
        .collect()
}

/// Reads the `BlocksCore` under `prefix`: its sizes (k and, where the shapes allow several,
/// the number of communication heads come from the caller) and its canonical tensors.
/// Returns the config, the tensors and notes for the user (what was dropped).
pub fn import_cell(
    sd: &mut StateDict,
    prefix: &str,
    active: usize,
    comm_heads: Option<usize>,
) -> Result<(RimsConfig, Canonical, Vec<String>)> {
    let key = |k: &str| format!("{prefix}{k}");
    let cell = if sd.contains(&key("block_lstm.lstm.weight_ih")) {
        CellKind::Lstm
    } else if sd.contains(&key("block_lstm.gru.weight_ih")) {
        CellKind::Gru
    } else {
        return Err(sd.bad(format!(
            "no block cell: expected '{}' (LSTM) or '{}' (GRU)",
            key("block_lstm.lstm.weight_ih"),
            key("block_lstm.gru.weight_ih")
        )));
    };
    let qs = sd.shape(&key("inp_att.GLN_qs.w"))?.to_vec();
    let ks = sd.shape(&key("inp_att.GLN_ks.w"))?.to_vec();
    let vs = sd.shape(&key("inp_att.GLN_vs.w"))?.to_vec();
    let cq = sd.shape(&key("mha.GLN_qs.w"))?.to_vec();
    let cv = sd.shape(&key("mha.GLN_vs.w"))?.to_vec();
    let three = |name: &str, s: &[usize]| -> Result<()> {
        if s.len() != 3 {
            Err(sd.bad(format!(
                "'{}{name}' has shape {s:?}, expected 3 axes",
                prefix
            )))
        } else if s.contains(&0) {
            // Every size the import infers is a quotient of these: none may be zero.
            Err(sd.bad(format!(
                "'{}{name}' has shape {s:?}, with an axis of size 0",
                prefix
            )))
        } else {
            Ok(())
        }
    };
    three("inp_att.GLN_qs.w", &qs)?;
    three("inp_att.GLN_ks.w", &ks)?;
    three("inp_att.GLN_vs.w", &vs)?;
    three("mha.GLN_qs.w", &cq)?;
    three("mha.GLN_vs.w", &cv)?;
    let (n, h, wq) = (qs[0], qs[1], qs[2]);
    let (d, a) = (ks[1], vs[2]);
    if ks[0] != 2 || vs[0] != 2 {
        return Err(sd.bad(format!(
            "the input attention has {} key slots: only num_modules_read_input = 2 (the null \
             input and x) is supported",
            ks[0]
        )));
    }
    let (wk, wv) = (cq[2], cv[2]);
    let hc = comm_heads.unwrap_or(COMM_HEADS);
    if hc == 0 || wk % hc != 0 || wv % hc != 0 {
        return Err(Error::config(
            "comm_heads",
            format!(
                "{hc} communication heads do not divide the query width {wk} and the value width \
                 {wv} of '{}'",
                key("mha.GLN_qs.w")
            ),
        ));
    }
    let cfg = RimsConfig {
        mechanisms: n,
        active,
        hidden: h,
        input: d,
        input_key: wq,
        input_value: a,
        input_heads: 1,
        comm_heads: hc,
        comm_key: wk / hc,
        comm_value: wv / hc,
        cell,
        dropout: 0.0,
        variant: Variant::Authors,
    };
    cfg.validate()?;

    let mut c = Canonical::new();
    let mut notes = Vec::new();
    c.insert("in_q".into(), sd.take(&key("inp_att.GLN_qs.w"), Some(&qs))?);
    for (name, canonical, width) in [("GLN_ks", "in_k_w", wq), ("GLN_vs", "in_v_w", a)] {
        let e = sd.take(&key(&format!("inp_att.{name}.w")), Some(&[2, d, width]))?;
        // Slot 0 only ever multiplies the null input (zeros): a dead parameter.
        c.insert(
            canonical.into(),
            Entry::new(&[d, width], e.values[d * width..].to_vec()),
        );
    }
    c.insert("in_k_b".into(), Entry::new(&[wq], vec![0.0; wq]));
    c.insert("in_v_b".into(), Entry::new(&[a], vec![0.0; a]));
    let g = cell.gates();
    let nh = n * h;
    let pre = format!("{prefix}{}", cell_path(cell));
    let wih = sd.take(&format!("{pre}weight_ih"), Some(&[g * nh, n * a]))?;
    let whh = sd.take(&format!("{pre}weight_hh"), Some(&[g * nh, nh]))?;
    let bih = sd.take(&format!("{pre}bias_ih"), Some(&[g * nh]))?;
    let bhh = sd.take(&format!("{pre}bias_hh"), Some(&[g * nh]))?;
    let (wx, off_x) = blockify(&wih.values, n, h, a, g);
    let (wh, off_h) = blockify(&whh.values, n, h, h, g);
    for (name, off, m) in [("weight_ih", off_x, &wih), ("weight_hh", off_h, &whh)] {
        let total: f64 = m.values.iter().map(|v| v * v).sum();
        if off > 0.0 {
            notes.push(format!(
                "{pre}{name}: dropped the entries off the {n} diagonal blocks (norm {:.3e}, {:.1}% \
                 of the squared norm), as the authors' blockify_params does before every forward",
                off.sqrt(),
                100.0 * off / total.max(f64::MIN_POSITIVE)
            ));
        }
    }
    c.insert("rnn_wx".into(), Entry::new(&[n, a, g * h], wx));
    c.insert("rnn_wh".into(), Entry::new(&[n, h, g * h], wh));
    c.insert(
        "rnn_bx".into(),
        Entry::new(&[n, g * h], block_bias(&bih.values, n, h, g)),
    );
    c.insert(
        "rnn_bh".into(),
        Entry::new(&[n, g * h], block_bias(&bhh.values, n, h, g)),
    );
    c.insert(
        "comm_q".into(),
        sd.take(&key("mha.GLN_qs.w"), Some(&[n, h, wk]))?,
    );
    c.insert(
        "comm_k".into(),
        sd.take(&key("mha.GLN_ks.w"), Some(&[n, h, wk]))?,
    );
    c.insert(
        "comm_v".into(),
        sd.take(&key("mha.GLN_vs.w"), Some(&[n, h, wv]))?,
    );
    for (name, w, b) in [
        ("fc", "comm_fc_w", "comm_fc_b"),
        ("gate_fc", "comm_gate_w", "comm_gate_b"),
    ] {
        let weight = sd.take(&key(&format!("mha.{name}.weight")), Some(&[h, wv]))?;
        c.insert(
            w.into(),
            Entry::new(&[wv, h], transpose(&weight.values, h, wv)),
        );
        c.insert(
            b.into(),
            sd.take(&key(&format!("mha.{name}.bias")), Some(&[h]))?,
        );
    }
    // Never used by the forward (residual=False; mha.ln unused): checked and dropped.
    for (name, shape) in dead_tensors(a, h) {
        if sd.contains(&key(name)) {
            sd.take(&key(name), Some(&shape))?;
        }
    }
    Ok((cfg, c, notes))
}

/// The `BlocksCore` tensors that never reach the output, with their shapes and fill values.
fn dead_tensors(a: usize, h: usize) -> [(&'static str, Vec<usize>); 6] {
    [
        ("inp_att.gate_fc.weight", vec![a, a]),
        ("inp_att.gate_fc.bias", vec![a]),
        ("inp_att.ln.weight", vec![a]),
        ("inp_att.ln.bias", vec![a]),
        ("mha.ln.weight", vec![h]),
        ("mha.ln.bias", vec![h]),
    ]
}

/// The diagonal blocks of a dense [G·N·H, N·W] gate matrix as canonical [N, W, G·H] blocks, and
/// the squared norm of what lies off them (docs/spec.md §4, "The authors' dense LSTM").
fn blockify(dense: &[f64], n: usize, h: usize, w: usize, g: usize) -> (Vec<f64>, f64) {
    let (nh, gh, cols) = (n * h, g * h, n * w);
    let mut out = vec![0.0; n * w * gh];
    let mut on = 0.0;
    for gate in 0..g {
        for j in 0..n {
            for r in 0..h {
                let row = gate * nh + j * h + r;
                for i in 0..w {
                    let v = dense[row * cols + j * w + i];
                    out[(j * w + i) * gh + gate * h + r] = v;
                    on += v * v;
                }
            }
        }
    }
    let total: f64 = dense.iter().map(|v| v * v).sum();
    (out, (total - on).max(0.0))
}

/// The inverse of [`blockify`]: zeros off the blocks.
fn densify(blocks: &[f64], n: usize, h: usize, w: usize, g: usize) -> Vec<f64> {
    let (nh, gh, cols) = (n * h, g * h, n * w);
    let mut dense = vec![0.0; g * nh * cols];
    for gate in 0..g {
        for j in 0..n {
            for r in 0..h {
                let row = gate * nh + j * h + r;
                for i in 0..w {
                    dense[row * cols + j * w + i] = blocks[(j * w + i) * gh + gate * h + r];
                }
            }
        }
    }
    dense
}

/// A dense [G·N·H] bias as canonical [N, G·H].
fn block_bias(dense: &[f64], n: usize, h: usize, g: usize) -> Vec<f64> {
    let gh = g * h;
    let mut out = vec![0.0; n * gh];
    for gate in 0..g {
        for j in 0..n {
            for r in 0..h {
                out[j * gh + gate * h + r] = dense[gate * n * h + j * h + r];
            }
        }
    }
    out
}

fn dense_bias(blocks: &[f64], n: usize, h: usize, g: usize) -> Vec<f64> {
    let gh = g * h;
    let mut out = vec![0.0; g * n * h];
    for gate in 0..g {
        for j in 0..n {
            for r in 0..h {
                out[gate * n * h + j * h + r] = blocks[j * gh + gate * h + r];
            }
        }
    }
    out
}

/// Why a configuration cannot become a `BlocksCore` built by its own constructor (which fixes
/// h_in = 1, d_k = 64, A = 4·H, 4 communication heads of 16), or None when it can.
pub fn unsupported(cfg: &RimsConfig) -> Option<String> {
    let mut why = Vec::new();
    if cfg.variant != Variant::Authors {
        why.push(format!(
            "the checkpoint is variant {} (dido's semantics, docs/spec.md §3); the authors' code \
             computes variant A",
            cfg.variant.letter()
        ));
    }
    let fixed = [
        ("input heads h_in", cfg.input_heads, 1),
        ("input key size d_k", cfg.input_key, INPUT_KEY),
        ("cell input A = d_vin", cfg.input_value, 4 * cfg.hidden),
        ("communication heads h_c", cfg.comm_heads, COMM_HEADS),
        ("communication key size d_kc", cfg.comm_key, COMM_HEAD_SIZE),
        (
            "communication value size d_vc",
            cfg.comm_value,
            COMM_HEAD_SIZE,
        ),
    ];
    for (what, got, want) in fixed {
        if got != want {
            why.push(format!("{what} is {got}, BlocksCore builds {want}"));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The `BlocksCore` state_dict (keys under `prefix`) of a variant-A cell: blocks densified with
/// zeros around them, slot 0 and the dead tensors filled (zeros; ones for LayerNorm weights).
pub fn export_cell(
    cfg: &RimsConfig,
    c: &Canonical,
    prefix: &str,
) -> Result<BTreeMap<String, Entry>> {
    if let Some(why) = unsupported(cfg) {
        return Err(Error::config(
            "to",
            format!("cannot export to the authors' BlocksCore: {why}"),
        ));
    }
    let get = |name: &str| canonical(c, name);
    let (n, h, d) = (cfg.mechanisms, cfg.hidden, cfg.input);
    let (wq, a) = (cfg.input_key, cfg.input_value);
    let g = cfg.cell.gates();
    let wv = cfg.comm_heads * cfg.comm_value;
    let mut out = BTreeMap::new();
    let mut put = |k: &str, shape: &[usize], v: Vec<f64>| {
        out.insert(format!("{prefix}{k}"), Entry::new(shape, v));
    };
    put("inp_att.GLN_qs.w", &[n, h, wq], get("in_q")?.values.clone());
    for (name, canonical, width) in [("GLN_ks", "in_k_w", wq), ("GLN_vs", "in_v_w", a)] {
        let mut v = vec![0.0; d * width];
        v.extend_from_slice(&get(canonical)?.values);
        put(&format!("inp_att.{name}.w"), &[2, d, width], v);
    }
    let pre = cell_path(cfg.cell);
    put(
        &format!("{pre}weight_ih"),
        &[g * n * h, n * a],
        densify(&get("rnn_wx")?.values, n, h, a, g),
    );
    put(
        &format!("{pre}weight_hh"),
        &[g * n * h, n * h],
        densify(&get("rnn_wh")?.values, n, h, h, g),
    );
    put(
        &format!("{pre}bias_ih"),
        &[g * n * h],
        dense_bias(&get("rnn_bx")?.values, n, h, g),
    );
    put(
        &format!("{pre}bias_hh"),
        &[g * n * h],
        dense_bias(&get("rnn_bh")?.values, n, h, g),
    );
    for (k, name) in [
        ("GLN_qs", "comm_q"),
        ("GLN_ks", "comm_k"),
        ("GLN_vs", "comm_v"),
    ] {
        let e = get(name)?;
        put(&format!("mha.{k}.w"), &e.shape, e.values.clone());
    }
    for (name, w, b) in [
        ("fc", "comm_fc_w", "comm_fc_b"),
        ("gate_fc", "comm_gate_w", "comm_gate_b"),
    ] {
        put(
            &format!("mha.{name}.weight"),
            &[h, wv],
            transpose(&get(w)?.values, wv, h),
        );
        put(&format!("mha.{name}.bias"), &[h], get(b)?.values.clone());
    }
    for (name, shape) in dead_tensors(a, h) {
        let fill = if name.ends_with("ln.weight") {
            1.0
        } else {
            0.0
        };
        put(name, &shape, vec![fill; shape.iter().product()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blockify_keeps_the_blocks_and_densify_inverts_it() {
        let (n, h, w, g) = (3, 2, 4, 4);
        let dense: Vec<f64> = (0..g * n * h * n * w)
            .map(|i| i as f64 * 0.5 - 7.0)
            .collect();
        let (blocks, off) = blockify(&dense, n, h, w, g);
        let back = densify(&blocks, n, h, w, g);
        let mut off_expected = 0.0;
        for (i, (&d, &b)) in dense.iter().zip(&back).enumerate() {
            let (row, col) = (i / (n * w), i % (n * w));
            let on_block = (row % (n * h)) / h == col / w;
            if on_block {
                assert_eq!(d, b, "entry {i}");
            } else {
                assert_eq!(b, 0.0, "entry {i}");
                off_expected += d * d;
            }
        }
        assert!((off - off_expected).abs() < 1e-9 * off_expected.max(1.0));
        let bias: Vec<f64> = (0..g * n * h).map(|i| i as f64).collect();
        assert_eq!(dense_bias(&block_bias(&bias, n, h, g), n, h, g), bias);
    }
}
