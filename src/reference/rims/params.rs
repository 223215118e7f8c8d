//! [`RimsParams`]: variant A's trained tensors of one cell, by canonical name; and
//! `named_params!`, which declares it and variant D's `DidoParams` from one list each.

/// Declares a parameter struct from one list of (field, shape comment), so the names are spelt
/// once: the struct, `NAMES`, the field arrays and every accessor come from it. `$layout` is
/// the `layout` function that gives the shapes (shared with the product).
macro_rules! named_params {
    ($(#[$meta:meta])* $ty:ident, $layout:path, $count:literal;
     $($name:ident: $shape:literal),* $(,)?) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $ty {
            $(#[doc = $shape] pub $name: Vec<f64>,)*
        }

        impl $ty {
            /// The canonical names, in the order of `names_and_values`.
            pub const NAMES: [&'static str; $count] = [$(stringify!($name)),*];

            fn fields(&self) -> [&Vec<f64>; $count] {
                [$(&self.$name),*]
            }

            fn fields_mut(&mut self) -> [&mut Vec<f64>; $count] {
                [$(&mut self.$name),*]
            }

            /// All zeros, shaped for `cfg`.
            pub fn zeros(cfg: &$crate::spec::cell::RimsConfig) -> Self {
                let shapes = Self::shapes(cfg);
                let mut len = shapes.iter().map(|(_, s)| s.iter().product::<usize>());
                $ty {
                    $($name: vec![0.0; len.next().unwrap_or(0)],)*
                }
            }

            /// Every tensor's canonical name and shape, in `NAMES` order (the shapes are the
            /// `layout` module's, shared with the product).
            pub fn shapes(
                cfg: &$crate::spec::cell::RimsConfig,
            ) -> Vec<(&'static str, Vec<usize>)> {
                let layout = $layout(&cfg.cell_sizes());
                Self::NAMES
                    .iter()
                    .map(|&name| (name, $crate::layout::shape(&layout, name).to_vec()))
                    .collect()
            }

            /// Every element uniform in [−scale, scale), drawn tensor by tensor in `NAMES`
            /// order.
            pub fn random(
                cfg: &$crate::spec::cell::RimsConfig,
                rng: &mut $crate::rng::Rng,
                scale: f64,
            ) -> Self {
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

            /// (canonical name, values) for every tensor, in `NAMES` order.
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
    };
}

pub(in crate::reference) use named_params;

named_params! {
    /// The trained parameters of one cell in variant A, by canonical name
    /// (`docs/spec.md` §4): row-major, weights [in, out], mechanism axis first. `in_k_b` and
    /// `in_v_b` are zero in variant A and are left out.
    RimsParams, crate::layout::authors, 14;
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
