//! dido1998's `RIMCell` (Recurrent-Independent-Mechanisms, RIM.py) ↔ the canonical layout of
//! `docs/spec.md` §4, variant D.
//!
//! Every size comes from the shapes except k. The LSTM's gate columns are dido's [i, f, o, g]
//! and the canonical [i, f, g, o]; the GRU's [r, z, n] is the same in both.

use std::collections::BTreeMap;

use super::state_dict::{Entry, StateDict};
use super::{Canonical, canonical, transpose};
use crate::error::{Error, Result};
use crate::nn::{CellKind, RimsConfig, Variant};

/// The prefixes under which a `RIMCell` lives in `sd` (keys ending in `comm_attention_output.w`
/// with a `key.weight` and a `query.w` beside them).
pub fn cell_prefixes(sd: &StateDict) -> Vec<String> {
    sd.keys()
        .filter_map(|k| k.strip_suffix("comm_attention_output.w"))
        .filter(|p| sd.contains(&format!("{p}key.weight")) && sd.contains(&format!("{p}query.w")))
        .map(str::to_string)
        .collect()
}

/// Canonical gate block `g` (of H columns) is dido's block `DIDO_LSTM_BLOCK[g]`.
const DIDO_LSTM_BLOCK: [usize; 4] = [0, 1, 3, 2];

/// Reorders the gate columns of [N, W, G·H] weights: `to_canonical` maps dido → canonical,
/// otherwise canonical → dido. The permutation swaps two blocks, so it is its own inverse.
fn reorder_gates(v: &[f64], h: usize, cell: CellKind) -> Vec<f64> {
    if cell == CellKind::Gru {
        return v.to_vec();
    }
    let gh = 4 * h;
    let mut out = vec![0.0; v.len()];
    for (row_out, row_in) in out.chunks_exact_mut(gh).zip(v.chunks_exact(gh)) {
        for (g, &src) in DIDO_LSTM_BLOCK.iter().enumerate() {
            row_out[g * h..(g + 1) * h].copy_from_slice(&row_in[src * h..(src + 1) * h]);
        }
    }
    out
}

/// Reads the `RIMCell` under `prefix`: its sizes (k comes from the caller) and its canonical
/// tensors.
pub fn import_cell(
    sd: &mut StateDict,
    prefix: &str,
    active: usize,
) -> Result<(RimsConfig, Canonical, Vec<String>)> {
    let key = |k: &str| format!("{prefix}{k}");
    let (cell, wx_key) = if sd.contains(&key("rnn.i2h.w")) {
        (CellKind::Lstm, key("rnn.i2h.w"))
    } else if sd.contains(&key("rnn.x2h.w")) {
        (CellKind::Gru, key("rnn.x2h.w"))
    } else {
        return Err(sd.bad(format!(
            "no recurrent cell: expected '{}' (GroupLSTMCell) or '{}' (GroupGRUCell)",
            key("rnn.i2h.w"),
            key("rnn.x2h.w")
        )));
    };
    let axes = |sd: &StateDict, k: &str, want: usize| -> Result<Vec<usize>> {
        let s = sd.shape(k)?.to_vec();
        if s.len() != want {
            Err(sd.bad(format!("'{k}' has shape {s:?}, expected {want} axes")))
        } else if s.contains(&0) {
            // Every size the import infers is a quotient of these: none may be zero.
            Err(sd.bad(format!("'{k}' has shape {s:?}, with an axis of size 0")))
        } else {
            Ok(s)
        }
    };
    let q = axes(sd, &key("query.w"), 3)?;
    let kw = axes(sd, &key("key.weight"), 2)?;
    let vw = axes(sd, &key("value.weight"), 2)?;
    let wx = axes(sd, &wx_key, 3)?;
    let cq = axes(sd, &key("query_.w"), 3)?;
    let cv = axes(sd, &key("value_.w"), 3)?;
    let (n, h, wq) = (q[0], q[1], q[2]);
    let (wk, d) = (kw[0], kw[1]);
    let (wvin, dvin) = (vw[0], wx[1]);
    if wq != wk {
        return Err(sd.bad(format!(
            "'{}' is {wq} wide and '{}' {wk}: RIMCell needs input_query_size = input_key_size",
            key("query.w"),
            key("key.weight")
        )));
    }
    if dvin == 0 || wvin % dvin != 0 {
        return Err(sd.bad(format!(
            "'{}' has {wvin} rows, not a multiple of the cell input {dvin} of '{wx_key}'",
            key("value.weight")
        )));
    }
    let heads = wvin / dvin;
    if wk % heads != 0 {
        return Err(sd.bad(format!(
            "{heads} input heads (from '{}') do not divide the key width {wk}",
            key("value.weight")
        )));
    }
    let (wkc, wvc) = (cq[2], cv[2]);
    if h == 0 || wvc % h != 0 {
        return Err(sd.bad(format!(
            "'{}' is {wvc} wide, not a multiple of H = {h} (dido's d_vc is H)",
            key("value_.w")
        )));
    }
    let hc = wvc / h;
    if wkc % hc != 0 {
        return Err(sd.bad(format!(
            "{hc} communication heads (from '{}') do not divide the query width {wkc}",
            key("value_.w")
        )));
    }
    let cfg = RimsConfig {
        mechanisms: n,
        active,
        hidden: h,
        input: d,
        input_key: wk / heads,
        input_value: dvin,
        input_heads: heads,
        comm_heads: hc,
        comm_key: wkc / hc,
        comm_value: h,
        cell,
        dropout: 0.0,
        variant: Variant::Dido,
    };
    cfg.validate()?;
    let g = cell.gates();
    let mut c = Canonical::new();
    c.insert("in_q".into(), sd.take(&key("query.w"), Some(&[n, h, wq]))?);
    for (name, w, b, rows) in [
        ("key", "in_k_w", "in_k_b", wk),
        ("value", "in_v_w", "in_v_b", wvin),
    ] {
        let weight = sd.take(&key(&format!("{name}.weight")), Some(&[rows, d]))?;
        c.insert(
            w.into(),
            Entry::new(&[d, rows], transpose(&weight.values, rows, d)),
        );
        c.insert(
            b.into(),
            sd.take(&key(&format!("{name}.bias")), Some(&[rows]))?,
        );
    }
    let x = sd.take(&wx_key, Some(&[n, dvin, g * h]))?;
    c.insert(
        "rnn_wx".into(),
        Entry::new(&x.shape, reorder_gates(&x.values, h, cell)),
    );
    let hh = sd.take(&key("rnn.h2h.w"), Some(&[n, h, g * h]))?;
    c.insert(
        "rnn_wh".into(),
        Entry::new(&hh.shape, reorder_gates(&hh.values, h, cell)),
    );
    c.insert(
        "comm_q".into(),
        sd.take(&key("query_.w"), Some(&[n, h, wkc]))?,
    );
    c.insert(
        "comm_k".into(),
        sd.take(&key("key_.w"), Some(&[n, h, wkc]))?,
    );
    c.insert(
        "comm_v".into(),
        sd.take(&key("value_.w"), Some(&[n, h, wvc]))?,
    );
    c.insert(
        "comm_out_w".into(),
        sd.take(&key("comm_attention_output.w"), Some(&[n, wvc, h]))?,
    );
    Ok((cfg, c, Vec::new()))
}

/// Why a configuration cannot become a `RIMCell`, or None when it can.
pub fn unsupported(cfg: &RimsConfig) -> Option<String> {
    (cfg.variant != Variant::Dido).then(|| {
        "the checkpoint is variant A (the authors' semantics); dido's RIMCell computes variant D, \
         and rows 3, 4, 6, 10 and 11 of docs/spec.md §3 are differences of meaning, not of \
         layout (selection rule, dropout placement, input of inactive mechanisms, communication \
         output, masked probabilities): train or import with --variant dido"
            .to_string()
    })
}

/// The `RIMCell` state_dict (keys under `prefix`) of a variant-D cell.
pub fn export_cell(
    cfg: &RimsConfig,
    c: &Canonical,
    prefix: &str,
) -> Result<BTreeMap<String, Entry>> {
    if let Some(why) = unsupported(cfg) {
        return Err(Error::config(
            "to",
            format!("cannot export to dido's RIMCell: {why}"),
        ));
    }
    let get = |name: &str| canonical(c, name);
    let (h, d) = (cfg.hidden, cfg.input);
    let mut out = BTreeMap::new();
    let mut put = |k: &str, e: Entry| {
        out.insert(format!("{prefix}{k}"), e);
    };
    put("query.w", get("in_q")?.clone());
    for (name, w, b) in [("key", "in_k_w", "in_k_b"), ("value", "in_v_w", "in_v_b")] {
        let weight = get(w)?;
        let rows = weight.shape[1];
        put(
            &format!("{name}.weight"),
            Entry::new(&[rows, d], transpose(&weight.values, d, rows)),
        );
        put(&format!("{name}.bias"), get(b)?.clone());
    }
    let wx_name = match cfg.cell {
        CellKind::Lstm => "rnn.i2h.w",
        CellKind::Gru => "rnn.x2h.w",
    };
    for (k, name) in [(wx_name, "rnn_wx"), ("rnn.h2h.w", "rnn_wh")] {
        let e = get(name)?;
        put(
            k,
            Entry::new(&e.shape, reorder_gates(&e.values, h, cfg.cell)),
        );
    }
    for (k, name) in [
        ("query_.w", "comm_q"),
        ("key_.w", "comm_k"),
        ("value_.w", "comm_v"),
        ("comm_attention_output.w", "comm_out_w"),
    ] {
        put(k, get(name)?.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lstm_gate_blocks_swap_g_and_o_and_back() {
        let h = 2;
        // One row of dido columns: i i f f o o g g.
        let dido = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5];
        let canonical = reorder_gates(&dido, h, CellKind::Lstm);
        assert_eq!(canonical, vec![1.0, 1.5, 2.0, 2.5, 4.0, 4.5, 3.0, 3.5]);
        assert_eq!(reorder_gates(&canonical, h, CellKind::Lstm), dido.to_vec());
        assert_eq!(
            reorder_gates(&dido[..6], h, CellKind::Gru),
            dido[..6].to_vec()
        );
    }
}
