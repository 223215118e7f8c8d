//! The canonical parameter layout of one RIMs cell (`docs/spec.md` §4): every tensor's name
//! and shape, in both variants, from the cell's sizes alone.
//!
//! The product (`nn::rims::param_specs`, which adds each tensor's initialisation and whether it
//! trains, and orders the store) and the checker (`reference::rims::RimsParams`,
//! `reference::rims_dido::DidoParams`) both take their shapes from here, so the two cannot
//! drift apart. It is a utility, under both, because the reference may not import the product;
//! it takes plain sizes ([`CellSizes`], filled by `nn::RimsConfig::cell_sizes`) for the same
//! reason.

/// The sizes that fix a cell's parameter shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellSizes {
    /// N: mechanisms.
    pub mechanisms: usize,
    /// H: hidden units per mechanism.
    pub hidden: usize,
    /// D: input features.
    pub input: usize,
    /// G: gates per hidden unit (4 for LSTM, 3 for GRU).
    pub gates: usize,
    /// h_in: input-attention heads.
    pub input_heads: usize,
    /// d_k: input-attention key size per head.
    pub input_key: usize,
    /// d_vin: input-attention value size per head.
    pub input_value: usize,
    /// h_c: communication heads.
    pub comm_heads: usize,
    /// d_kc: communication key size per head.
    pub comm_key: usize,
    /// d_vc: communication value size per head.
    pub comm_value: usize,
}

/// (canonical name, shape) of every tensor of a variant-A cell (`BlocksCore`), `in_k_b` and
/// `in_v_b` (zero in variant A) last.
pub fn authors(s: &CellSizes) -> Vec<(&'static str, Vec<usize>)> {
    let (n, h, d) = (s.mechanisms, s.hidden, s.input);
    let wq = s.input_heads * s.input_key;
    // Variant A's cell reads every head's value: A = h_in·d_vin.
    let a = s.input_heads * s.input_value;
    let gh = s.gates * h;
    let (wk, wv) = (s.comm_heads * s.comm_key, s.comm_heads * s.comm_value);
    vec![
        ("in_q", vec![n, h, wq]),
        ("in_k_w", vec![d, wq]),
        ("in_v_w", vec![d, a]),
        ("rnn_wx", vec![n, a, gh]),
        ("rnn_wh", vec![n, h, gh]),
        ("rnn_bx", vec![n, gh]),
        ("rnn_bh", vec![n, gh]),
        ("comm_q", vec![n, h, wk]),
        ("comm_k", vec![n, h, wk]),
        ("comm_v", vec![n, h, wv]),
        ("comm_fc_w", vec![wv, h]),
        ("comm_fc_b", vec![h]),
        ("comm_gate_w", vec![wv, h]),
        ("comm_gate_b", vec![h]),
        ("in_k_b", vec![wq]),
        ("in_v_b", vec![a]),
    ]
}

/// (canonical name, shape) of every tensor of a variant-D cell (dido1998's `RIMCell`).
pub fn dido(s: &CellSizes) -> Vec<(&'static str, Vec<usize>)> {
    let (n, h, d) = (s.mechanisms, s.hidden, s.input);
    let wq = s.input_heads * s.input_key;
    let wvin = s.input_heads * s.input_value;
    // Variant D's cell reads the heads' mean value: A = d_vin.
    let (a, gh) = (s.input_value, s.gates * h);
    let (wk, wv) = (s.comm_heads * s.comm_key, s.comm_heads * s.comm_value);
    vec![
        ("in_q", vec![n, h, wq]),
        ("in_k_w", vec![d, wq]),
        ("in_v_w", vec![d, wvin]),
        ("in_k_b", vec![wq]),
        ("in_v_b", vec![wvin]),
        ("rnn_wx", vec![n, a, gh]),
        ("rnn_wh", vec![n, h, gh]),
        ("comm_q", vec![n, h, wk]),
        ("comm_k", vec![n, h, wk]),
        ("comm_v", vec![n, h, wv]),
        ("comm_out_w", vec![n, wv, h]),
    ]
}

/// The shape of tensor `name` in a layout from [`authors`] or [`dido`].
///
/// # Panics
/// If the layout has no such tensor (a misspelt name in the caller's own list).
pub fn shape<'a>(layout: &'a [(&'static str, Vec<usize>)], name: &str) -> &'a [usize] {
    layout
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| &s[..])
        .unwrap_or_else(|| panic!("the canonical layout has no tensor `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes() -> CellSizes {
        CellSizes {
            mechanisms: 5,
            hidden: 3,
            input: 7,
            gates: 4,
            input_heads: 2,
            input_key: 4,
            input_value: 6,
            comm_heads: 2,
            comm_key: 3,
            comm_value: 5,
        }
    }

    #[test]
    fn shapes_follow_the_spec() {
        let a = authors(&sizes());
        assert_eq!(shape(&a, "in_v_w"), [7, 12]);
        assert_eq!(shape(&a, "rnn_wx"), [5, 12, 12]);
        assert_eq!(shape(&a, "comm_fc_w"), [10, 3]);
        assert_eq!(a.len(), 16);
        let d = dido(&sizes());
        assert_eq!(shape(&d, "rnn_wx"), [5, 6, 12]);
        assert_eq!(shape(&d, "comm_out_w"), [5, 10, 3]);
        assert_eq!(d.len(), 11);
    }
}
