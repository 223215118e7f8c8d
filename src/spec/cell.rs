//! What a RIMs cell is (`docs/spec.md` §0-1 and §3): its kind, its variant, its sizes, and the
//! one place their rules are checked ([`RimsConfig::validate`], the kernels' limits included).
//! Plain data: `nn` builds cells from it and `reference` checks them against it.

use crate::error::{Error, Result};

/// Mechanisms the kernels keep per row (registers on the GPU; the communication kernels'
/// arrays): N must not exceed it.
pub const MAX_N: usize = 64;

/// Scores of one row (N · h_in) the input-attention kernels keep (workgroup memory on the GPU).
pub const MAX_SCORES: usize = 256;

/// The recurrent update each mechanism runs: which gates (and which twin entry points) a cell
/// uses. `kernels::gates` and `nn` re-export it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Gate order [i, f, g, o] (PyTorch's LSTMCell), G = 4.
    Lstm,
    /// Gate order [r, z, n] (PyTorch's GRUCell), G = 3.
    Gru,
}

impl CellKind {
    /// Gates per hidden unit: 4 for LSTM, 3 for GRU.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// The name used in checkpoints' metadata.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
        }
    }
}

/// Which PyTorch code's semantics the cell follows (`docs/spec.md` §1 and §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The authors' `BlocksCore` (anirudh9119/RIMs): §1. The default.
    #[default]
    Authors,
    /// dido1998's `RIMCell`: the differences of §3 (biased shared key/value, selection on the
    /// raw head-averaged score, head-averaged values, zero input to inactive mechanisms, no
    /// LSTM/GRU biases, d_vc = H, a per-mechanism communication output without gate).
    Dido,
}

impl Variant {
    /// The letter of the checkpoint metadata (`variant` = "A" or "D", spec §4).
    pub fn letter(self) -> &'static str {
        match self {
            Variant::Authors => "A",
            Variant::Dido => "D",
        }
    }

    /// The name used on the command line and in train.json: "authors" or "dido".
    pub fn name(self) -> &'static str {
        match self {
            Variant::Authors => "authors",
            Variant::Dido => "dido",
        }
    }

    /// Parses a command-line name or a metadata letter.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "authors" | "A" => Ok(Variant::Authors),
            "dido" | "D" => Ok(Variant::Dido),
            other => Err(Error::config(
                "variant",
                format!("unknown variant '{other}' (authors or dido)"),
            )),
        }
    }
}

/// Sizes of one RIMs cell. Defaults are the paper's sequential-MNIST setting (N = 6, k = 4,
/// H = 100, D = 600, A = 400, one input head with d_k = 64, four communication heads of 16).
#[derive(Clone, Debug, PartialEq)]
pub struct RimsConfig {
    /// N: number of mechanisms.
    pub mechanisms: usize,
    /// k: mechanisms active at each step.
    pub active: usize,
    /// H: hidden size per mechanism.
    pub hidden: usize,
    /// D: input size.
    pub input: usize,
    /// d_k: input-attention key/query size per head.
    pub input_key: usize,
    /// d_vin: input-attention value size per head; the cell input of a mechanism is
    /// A = input_heads · input_value.
    pub input_value: usize,
    /// h_in: input-attention heads (1 in the authors' code).
    pub input_heads: usize,
    /// h_c: communication heads.
    pub comm_heads: usize,
    /// d_kc: communication key/query size per head.
    pub comm_key: usize,
    /// d_vc: communication value size per head.
    pub comm_value: usize,
    /// Recurrent cell of every mechanism (LSTM or GRU).
    pub cell: CellKind,
    /// Dropout on the input-attention output u and on the communication output (0.1 in the
    /// authors' code; 0 to compare with PyTorch in eval mode).
    pub dropout: f32,
    /// Whose semantics the cell follows (the authors' by default).
    pub variant: Variant,
}

impl Default for RimsConfig {
    fn default() -> Self {
        RimsConfig {
            mechanisms: 6,
            active: 4,
            hidden: 100,
            input: 600,
            input_key: 64,
            input_value: 400,
            input_heads: 1,
            comm_heads: 4,
            comm_key: 16,
            comm_value: 16,
            cell: CellKind::Lstm,
            dropout: 0.1,
            variant: Variant::Authors,
        }
    }
}

impl RimsConfig {
    /// A: the input size of each mechanism's recurrent cell. Variant A concatenates the input
    /// heads' values (h_in·d_vin); variant D averages them (d_vin).
    pub fn cell_input(&self) -> usize {
        match self.variant {
            Variant::Authors => self.input_heads * self.input_value,
            Variant::Dido => self.input_value,
        }
    }

    /// The sizes that fix the cell's parameter shapes (`layout::authors`, `layout::dido`).
    pub fn cell_sizes(&self) -> crate::layout::CellSizes {
        crate::layout::CellSizes {
            mechanisms: self.mechanisms,
            hidden: self.hidden,
            input: self.input,
            gates: self.cell.gates(),
            input_heads: self.input_heads,
            input_key: self.input_key,
            input_value: self.input_value,
            comm_heads: self.comm_heads,
            comm_key: self.comm_key,
            comm_value: self.comm_value,
        }
    }

    /// G·H: gate pre-activations per mechanism.
    pub fn gate_width(&self) -> usize {
        self.cell.gates() * self.hidden
    }

    /// Checks every field, the one place for the cell's size rules (the kernels' limits
    /// included): [`crate::nn::Rims::new`] and everything that builds a cell call this. The
    /// error names the field at fault.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("mechanisms", self.mechanisms),
            ("active", self.active),
            ("hidden", self.hidden),
            ("input", self.input),
            ("input_key", self.input_key),
            ("input_value", self.input_value),
            ("input_heads", self.input_heads),
            ("comm_heads", self.comm_heads),
            ("comm_key", self.comm_key),
            ("comm_value", self.comm_value),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if self.active > self.mechanisms {
            return Err(Error::config(
                "active",
                format!(
                    "k = {} exceeds the number of mechanisms N = {}",
                    self.active, self.mechanisms
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) || !self.dropout.is_finite() {
            return Err(Error::config(
                "dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        if self.variant == Variant::Dido && self.comm_value != self.hidden {
            return Err(Error::config(
                "comm_value",
                format!(
                    "variant dido needs the communication value size d_vc = H = {}, got {}",
                    self.hidden, self.comm_value
                ),
            ));
        }
        // The fused kernels keep a row's mechanisms in one workgroup (communication) and a
        // row's N · h_in scores in workgroup memory (input attention). The ops check the same
        // limits for their own callers; for the cell this is the one place.
        if self.mechanisms > MAX_N {
            return Err(Error::config(
                "mechanisms",
                format!("{} exceeds the supported {MAX_N}", self.mechanisms),
            ));
        }
        if self.mechanisms * self.input_heads > MAX_SCORES {
            return Err(Error::config(
                "input_heads",
                format!(
                    "mechanisms × input heads = {} × {} exceeds the supported {MAX_SCORES}",
                    self.mechanisms, self.input_heads
                ),
            ));
        }
        let sizes = [
            ("hidden", self.hidden),
            ("input", self.input),
            ("input_value", self.input_value),
        ];
        for (field, v) in sizes {
            if v > 1 << 20 {
                return Err(Error::config(
                    field,
                    format!("{v} is unreasonably large (limit 2^20)"),
                ));
            }
        }
        Ok(())
    }
}
