//! The variant-D parameter set of `reference::rims_dido`, by canonical name (declared with
//! `reference::rims`'s `named_params!`).

use crate::reference::rims::params::named_params;

named_params! {
    /// The parameters of one variant-D cell by canonical name (`docs/spec.md` §4).
    DidoParams, crate::layout::dido, 11;
    in_q: "[N, H, h_in·d_k]",
    in_k_w: "[D, h_in·d_k]",
    in_v_w: "[D, h_in·d_vin]",
    in_k_b: "[h_in·d_k]",
    in_v_b: "[h_in·d_vin]",
    rnn_wx: "[N, d_vin, G·H]",
    rnn_wh: "[N, H, G·H]",
    comm_q: "[N, H, h_c·d_kc]",
    comm_k: "[N, H, h_c·d_kc]",
    comm_v: "[N, H, h_c·H]",
    comm_out_w: "[N, h_c·H, H]",
}
