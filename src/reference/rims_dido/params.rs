//! The variant-D parameter set of `reference::rims_dido`, by canonical name.

use super::RimsConfig;
use crate::layout;
use crate::rng::Rng;

/// The parameters of one variant-D cell by canonical name (`docs/spec.md` §4).
#[derive(Clone, Debug, PartialEq)]
pub struct DidoParams {
    /// [N, H, h_in·d_k]
    pub in_q: Vec<f64>,
    /// [D, h_in·d_k]
    pub in_k_w: Vec<f64>,
    /// [D, h_in·d_vin]
    pub in_v_w: Vec<f64>,
    /// [h_in·d_k]
    pub in_k_b: Vec<f64>,
    /// [h_in·d_vin]
    pub in_v_b: Vec<f64>,
    /// [N, d_vin, G·H]
    pub rnn_wx: Vec<f64>,
    /// [N, H, G·H]
    pub rnn_wh: Vec<f64>,
    /// [N, H, h_c·d_kc]
    pub comm_q: Vec<f64>,
    /// [N, H, h_c·d_kc]
    pub comm_k: Vec<f64>,
    /// [N, H, h_c·H]
    pub comm_v: Vec<f64>,
    /// [N, h_c·H, H]
    pub comm_out_w: Vec<f64>,
}

impl DidoParams {
    /// The canonical names, in field order.
    pub const NAMES: [&'static str; 11] = [
        "in_q",
        "in_k_w",
        "in_v_w",
        "in_k_b",
        "in_v_b",
        "rnn_wx",
        "rnn_wh",
        "comm_q",
        "comm_k",
        "comm_v",
        "comm_out_w",
    ];

    /// Every tensor's canonical name and shape, in [`DidoParams::NAMES`] order (the shapes are
    /// `layout::dido`'s, shared with the product).
    pub fn shapes(cfg: &RimsConfig) -> Vec<(&'static str, Vec<usize>)> {
        let layout = layout::dido(&cfg.cell_sizes());
        Self::NAMES
            .iter()
            .map(|&name| (name, layout::shape(&layout, name).to_vec()))
            .collect()
    }

    /// All zeros, shaped for `cfg`.
    pub fn zeros(cfg: &RimsConfig) -> Self {
        let z: Vec<Vec<f64>> = Self::shapes(cfg)
            .into_iter()
            .map(|(_, s)| vec![0.0; s.iter().product()])
            .collect();
        let [
            in_q,
            in_k_w,
            in_v_w,
            in_k_b,
            in_v_b,
            rnn_wx,
            rnn_wh,
            comm_q,
            comm_k,
            comm_v,
            comm_out_w,
        ]: [Vec<f64>; 11] = z.try_into().expect("11 shapes");
        DidoParams {
            in_q,
            in_k_w,
            in_v_w,
            in_k_b,
            in_v_b,
            rnn_wx,
            rnn_wh,
            comm_q,
            comm_k,
            comm_v,
            comm_out_w,
        }
    }

    /// Every element uniform in [−scale, scale), drawn tensor by tensor in name order.
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

    fn fields_mut(&mut self) -> [&mut Vec<f64>; 11] {
        [
            &mut self.in_q,
            &mut self.in_k_w,
            &mut self.in_v_w,
            &mut self.in_k_b,
            &mut self.in_v_b,
            &mut self.rnn_wx,
            &mut self.rnn_wh,
            &mut self.comm_q,
            &mut self.comm_k,
            &mut self.comm_v,
            &mut self.comm_out_w,
        ]
    }

    fn fields(&self) -> [&Vec<f64>; 11] {
        [
            &self.in_q,
            &self.in_k_w,
            &self.in_v_w,
            &self.in_k_b,
            &self.in_v_b,
            &self.rnn_wx,
            &self.rnn_wh,
            &self.comm_q,
            &self.comm_k,
            &self.comm_v,
            &self.comm_out_w,
        ]
    }

    /// (canonical name, values) for every tensor, in name order.
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
