//! [`RimsParams`]: variant A's trained tensors of one cell, by canonical name.

use super::RimsConfig;
use crate::layout;
use crate::rng::Rng;

/// Declares [`RimsParams`] from one list of (field, shape comment), so the 14 names are spelt
/// once: the struct, [`RimsParams::NAMES`] and the field arrays all come from it.
macro_rules! rims_params {
    ($($name:ident: $shape:literal),* $(,)?) => {
        /// The trained parameters of one cell in variant A, by canonical name
        /// (`docs/spec.md` §4): row-major, weights [in, out], mechanism axis first. `in_k_b` and
        /// `in_v_b` are zero in variant A and are left out.
        #[derive(Clone, Debug, PartialEq)]
        pub struct RimsParams {
            $(#[doc = $shape] pub $name: Vec<f64>,)*
        }

        impl RimsParams {
            /// The canonical names, in the order of [`RimsParams::names_and_values`].
            pub const NAMES: [&'static str; 14] = [$(stringify!($name)),*];

            fn fields(&self) -> [&Vec<f64>; 14] {
                [$(&self.$name),*]
            }

            fn fields_mut(&mut self) -> [&mut Vec<f64>; 14] {
                [$(&mut self.$name),*]
            }

            /// All zeros, shaped for `cfg`.
            pub fn zeros(cfg: &RimsConfig) -> Self {
                let shapes = Self::shapes(cfg);
                let mut len = shapes.iter().map(|(_, s)| s.iter().product::<usize>());
                RimsParams {
                    $($name: vec![0.0; len.next().unwrap_or(0)],)*
                }
            }
        }
    };
}

rims_params! {
    in_q: "[N, H, h_in·d_k]",
    in_k_w: "[D, h_in·d_k]",
    in_v_w: "[D, h_in·d_vin]",
    rnn_wx: "[N, A, G·H]",
    rnn_wh: "[N, H, G·H]",
    rnn_bx: "[N, G·H]",
    rnn_bh: "[N, G·H]",
    comm_q: "[N, H, h_c·d_kc]",
    comm_k: "[N, H, h_c·d_kc]",
    comm_v: "[N, H, h_c·d_vc]",
    comm_fc_w: "[h_c·d_vc, H]",
    comm_fc_b: "[H]",
    comm_gate_w: "[h_c·d_vc, H]",
    comm_gate_b: "[H]",
}

impl RimsParams {
    /// Every tensor's canonical name and shape, in [`RimsParams::NAMES`] order (the shapes are
    /// `layout::authors`', shared with the product).
    pub fn shapes(cfg: &RimsConfig) -> Vec<(&'static str, Vec<usize>)> {
        let layout = layout::authors(&cfg.cell_sizes());
        Self::NAMES
            .iter()
            .map(|&name| (name, layout::shape(&layout, name).to_vec()))
            .collect()
    }

    /// Every element uniform in [−scale, scale), drawn tensor by tensor in
    /// [`RimsParams::NAMES`] order.
    pub fn random(cfg: &RimsConfig, rng: &mut Rng, scale: f64) -> Self {
        let mut p = Self::zeros(cfg);
        for v in p.fields_mut() {
            v.iter_mut().for_each(|e| *e = rng.uniform(-scale, scale));
        }
        p
    }

    /// Zeros with the same shapes (a gradient accumulator).
    pub fn zeros_like(&self) -> Self {
        let mut p = self.clone();
        for v in p.fields_mut() {
            v.iter_mut().for_each(|e| *e = 0.0);
        }
        p
    }

    /// (canonical name, values) for every tensor, in [`RimsParams::NAMES`] order.
    pub fn names_and_values(&self) -> Vec<(&'static str, &[f64])> {
        Self::NAMES
            .iter()
            .zip(self.fields())
            .map(|(&n, v)| (n, &v[..]))
            .collect()
    }

    /// The tensor with canonical name `name`.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        let i = Self::NAMES.iter().position(|&n| n == name)?;
        Some(&self.fields()[i][..])
    }

    /// The tensor with canonical name `name`, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f64]> {
        let i = Self::NAMES.iter().position(|&n| n == name)?;
        self.fields_mut().into_iter().nth(i).map(|v| &mut v[..])
    }
}
