//! What the reference-cell tests (`tests/reference_rims.rs`, variant A, and
//! `tests/reference_rims_dido.rs`, variant D) share: one test problem over either variant's
//! reference ([`Cell`]), the loss L = Σ_t Σ h_t⊙R_t (+ Σ c_T⊙Rc for LSTM), its finite
//! differences and the comparison with the analytic pseudo-gradient.

use rims::nn::config::{CellKind, RimsConfig};
use rims::reference::finite_differences;
use rims::reference::rims::{self as rr, RimsParams};
use rims::reference::rims_dido::{self as rd, DidoParams};
use rims::rng::Rng;

pub const T: usize = 4;
pub const B: usize = 2;
pub const FD_STEP: f64 = 1e-6;
pub const RTOL: f64 = 1e-6;
/// Absolute slack for round-off in the differences: about ε·|L|/h with |L| of order 1-10.
pub const ATOL: f64 = 1e-8;

pub fn uniform(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(-scale, scale)).collect()
}

/// One variant's reference cell, as the shared tests drive it.
pub trait Cell {
    type Params: Clone;
    type Forward;
    type Gradients;
    const NAMES: &'static [&'static str];
    /// Added to the case's seed for the dropout seed, and the first step.
    const SEED_BASE: u32;
    const STEP0: u32;
    fn random(cfg: &RimsConfig, rng: &mut Rng) -> Self::Params;
    fn get<'a>(p: &'a Self::Params, name: &str) -> &'a [f64];
    fn get_mut<'a>(p: &'a mut Self::Params, name: &str) -> &'a mut [f64];
    #[allow(clippy::too_many_arguments)]
    fn forward(
        c: &Case<Self>,
        p: &Self::Params,
        io: (&[f64], &[f64], &[f64]),
        masks: Option<&[f64]>,
        frozen: Option<&Self::Forward>,
    ) -> Self::Forward
    where
        Self: Sized;
    fn backward(c: &Case<Self>, f: &Self::Forward) -> Self::Gradients
    where
        Self: Sized;
    /// h [T, B, N·H] and (LSTM) c.
    fn states(f: &Self::Forward) -> (&[f64], &[f64]);
    /// The gradient of a parameter by name, or of "x", "h0", "c0".
    fn analytic<'a>(g: &'a Self::Gradients, name: &str) -> &'a [f64];
}

/// Variant A.
pub struct Authors;
/// Variant D.
pub struct Dido;

/// Implements [`Cell`] for a variant from its reference module and parameter type (the two
/// references have the same calls and fields).
macro_rules! cell {
    ($ty:ident, $module:ident, $params:ident, $seed_base:literal, $step0:literal) => {
        impl Cell for $ty {
            type Params = $params;
            type Forward = $module::Forward;
            type Gradients = $module::Gradients;
            const NAMES: &'static [&'static str] = &$params::NAMES;
            const SEED_BASE: u32 = $seed_base;
            const STEP0: u32 = $step0;
            fn random(cfg: &RimsConfig, rng: &mut Rng) -> $params {
                $params::random(cfg, rng, 0.8)
            }
            fn get<'a>(p: &'a $params, name: &str) -> &'a [f64] {
                p.get(name).unwrap()
            }
            fn get_mut<'a>(p: &'a mut $params, name: &str) -> &'a mut [f64] {
                p.get_mut(name).unwrap()
            }
            fn forward(
                c: &Case<Self>,
                p: &$params,
                (x, h0, c0): (&[f64], &[f64], &[f64]),
                masks: Option<&[f64]>,
                frozen: Option<&$module::Forward>,
            ) -> $module::Forward {
                let (cfg, seed, step0) = (&c.cfg, c.seed, c.step0);
                match frozen {
                    Some(f) => {
                        let (m, hp) = (&f.masks, &f.h_prime);
                        $module::forward_frozen(cfg, p, x, h0, c0, seed, step0, m, hp, T, B)
                    }
                    None => $module::forward(cfg, p, x, h0, c0, seed, step0, masks, T, B),
                }
            }
            fn backward(c: &Case<Self>, f: &$module::Forward) -> $module::Gradients {
                let rc = c.lstm().then_some(&c.rc[..]);
                let (x, h0, c0) = (&c.x, &c.h0, &c.c0);
                $module::backward(&c.cfg, &c.params, x, h0, c0, f, &c.r, rc, c.seed, c.step0)
            }
            fn states(f: &$module::Forward) -> (&[f64], &[f64]) {
                (&f.h, &f.c)
            }
            fn analytic<'a>(g: &'a $module::Gradients, name: &str) -> &'a [f64] {
                match name {
                    "x" => &g.dx,
                    "h0" => &g.dh0,
                    "c0" => &g.dc0,
                    _ => g.params.get(name).unwrap(),
                }
            }
        }
    };
}

cell!(Authors, rr, RimsParams, 0x5eed, 7);
cell!(Dido, rd, DidoParams, 0xd1d0, 3);

/// One test problem: parameters, inputs, and the weights R, Rc of the loss.
pub struct Case<C: Cell> {
    pub cfg: RimsConfig,
    pub params: C::Params,
    pub x: Vec<f64>,
    pub h0: Vec<f64>,
    pub c0: Vec<f64>,
    pub r: Vec<f64>,
    pub rc: Vec<f64>,
    pub seed: u32,
    pub step0: u32,
}

impl<C: Cell> Case<C> {
    pub fn new(cfg: RimsConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let st = B * cfg.mechanisms * cfg.hidden;
        let params = C::random(&cfg, &mut rng);
        let x = uniform(&mut rng, T * B * cfg.input, 1.0);
        let h0 = uniform(&mut rng, st, 0.8);
        let c0 = uniform(&mut rng, st, 0.8);
        let r = uniform(&mut rng, T * st, 1.0);
        let rc = uniform(&mut rng, st, 1.0);
        Case {
            cfg,
            params,
            x,
            h0,
            c0,
            r,
            rc,
            seed: C::SEED_BASE + seed as u32,
            step0: C::STEP0,
        }
    }

    pub fn lstm(&self) -> bool {
        self.cfg.cell == CellKind::Lstm
    }

    pub fn forward(&self, p: &C::Params, x: &[f64], h0: &[f64], c0: &[f64]) -> C::Forward {
        C::forward(self, p, (x, h0, c0), None, None)
    }

    /// The naive forward of the case's own parameters and inputs: masks fixed (the selection
    /// is piecewise constant), h' not frozen.
    pub fn forward_masked(&self, p: &C::Params, masks: &[f64]) -> C::Forward {
        C::forward(self, p, (&self.x, &self.h0, &self.c0), Some(masks), None)
    }

    /// The forward whose derivative is the pseudo-gradient, frozen at `base`'s masks and h'.
    pub fn forward_frozen(
        &self,
        p: &C::Params,
        x: &[f64],
        h0: &[f64],
        c0: &[f64],
        base: &C::Forward,
    ) -> C::Forward {
        C::forward(self, p, (x, h0, c0), None, Some(base))
    }

    pub fn loss(&self, f: &C::Forward) -> f64 {
        let (h, c) = C::states(f);
        let mut l: f64 = h.iter().zip(&self.r).map(|(h, r)| h * r).sum();
        if self.lstm() {
            let st = self.rc.len();
            let c_last = &c[(T - 1) * st..];
            l += c_last.iter().zip(&self.rc).map(|(c, r)| c * r).sum::<f64>();
        }
        l
    }

    pub fn backward(&self, f: &C::Forward) -> C::Gradients {
        C::backward(self, f)
    }

    /// Finite differences of the loss under `run` w.r.t. every tensor: the parameters by
    /// name, then "x", "h0" and (LSTM) "c0".
    pub fn finite_differences(
        &self,
        run: impl Fn(&C::Params, &[f64], &[f64], &[f64]) -> C::Forward,
    ) -> Vec<(&'static str, Vec<f64>)> {
        let mut out = Vec::new();
        for &name in C::NAMES {
            let fd = finite_differences(C::get(&self.params, name), FD_STEP, |v| {
                let mut p = self.params.clone();
                C::get_mut(&mut p, name).copy_from_slice(v);
                self.loss(&run(&p, &self.x, &self.h0, &self.c0))
            });
            out.push((name, fd));
        }
        let p = &self.params;
        let (x, h0, c0) = (&self.x, &self.h0, &self.c0);
        out.push((
            "x",
            finite_differences(x, FD_STEP, |v| self.loss(&run(p, v, h0, c0))),
        ));
        out.push((
            "h0",
            finite_differences(h0, FD_STEP, |v| self.loss(&run(p, x, v, c0))),
        ));
        if self.lstm() {
            out.push((
                "c0",
                finite_differences(c0, FD_STEP, |v| self.loss(&run(p, x, h0, v))),
            ));
        }
        out
    }

    /// The pseudo-gradient of `base` (a run of [`Case::forward`]) against the frozen
    /// forward's differences, every tensor but those `skip` names; `what` labels failures.
    pub fn check_gradients(&self, base: &C::Forward, what: &str, skip: impl Fn(&str) -> bool) {
        let grads = self.backward(base);
        let fds = self.finite_differences(|p, x, h0, c0| self.forward_frozen(p, x, h0, c0, base));
        for (name, fd) in fds.into_iter().filter(|(n, _)| !skip(n)) {
            let a = C::analytic(&grads, name);
            assert!(a.iter().any(|&v| v != 0.0), "{name}: all-zero gradient");
            let (e, i) = worst_relative_error(a, &fd);
            assert!(
                e <= 1.0,
                "{what} {name}[{i}]: analytic {} vs fd {} (rel {e:e})",
                a[i],
                fd[i]
            );
        }
    }

    /// With nothing blocked the pseudo-gradient is the true gradient: the unfrozen,
    /// unmasked forward's differences agree.
    pub fn check_exact_gradients(&self, base: &C::Forward, what: &str) {
        let grads = self.backward(base);
        let fds = self.finite_differences(|p, x, h0, c0| self.forward(p, x, h0, c0));
        for (name, fd) in fds {
            let (e, i) = worst_relative_error(C::analytic(&grads, name), &fd);
            assert!(e <= 1.0, "{what} {name}[{i}]: rel {e:e}");
        }
    }
}

/// The worst ratio |a − f| / (RTOL·|a| + ATOL) over a tensor (at most 1 passes), where it
/// occurs.
pub fn worst_relative_error(a: &[f64], f: &[f64]) -> (f64, usize) {
    assert_eq!(a.len(), f.len());
    let mut worst = (0.0, 0);
    for i in 0..a.len() {
        let e = (a[i] - f[i]).abs() / (RTOL * a[i].abs() + ATOL);
        assert!(e.is_finite(), "element {i}: {} vs {}", a[i], f[i]);
        if e > worst.0 {
            worst = (e, i);
        }
    }
    worst
}
