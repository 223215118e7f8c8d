//! Optimizers on the GPU over one flat parameter buffer and one flat gradient buffer: [`Adam`]
//! and [`Sgd`] with PyTorch's semantics, and global-norm gradient clipping
//! ([`global_grad_norm`]). Kernels: `shaders/optim.wgsl`; oracle: `reference::optim`.
//!
//! The parameter store carves every parameter out of one allocation, so one update over all
//! of them is one dispatch. A step only records work: nothing is submitted or read back.
//!
//! Dispatches per step: 1 (the update); with `clip_norm` set, 3 (the sum of squares per chunk,
//! the reduction of those partial sums into a 1-element norm tensor, and the update, which
//! reads the norm on the GPU and scales each gradient by `min(1, max_norm / (norm + 1e-6))` as
//! it reads it; the gradient buffer is left unchanged).

use crate::device::{Context, grid};
use crate::error::{Error, Result};
use crate::kernels::optim::Params;
use crate::tensor::{DType, Tensor};

/// Threads per workgroup in `optim.wgsl`.
const WG: u64 = 256;
/// Most partial sums of squares: the second pass is one workgroup striding over them.
const MAX_PARTIALS: u64 = 1024;
/// Fewest elements one partial-sum workgroup reduces (one per thread).
const MIN_CHUNK: u64 = WG;
/// Largest parameter count: indices stay well inside u32 (strided loops add WG to them).
const MAX_N: usize = (1 << 31) - 1;
use crate::spec::optim::non_negative;
pub use crate::spec::optim::{AdamConfig, CLIP_EPS, SgdConfig};

/// Checks the parameter count and returns it as u32.
fn count(op: &'static str, n: usize) -> Result<u32> {
    if n == 0 {
        return Err(Error::Empty {
            op,
            what: "the parameter count n = 0".into(),
        });
    }
    if n > MAX_N {
        return Err(Error::DeviceLimit {
            what: format!("{op} over {n} elements"),
            requested: n as u64,
            limit: MAX_N as u64,
        });
    }
    Ok(n as u32)
}

/// Checks that `t` is an f32 tensor of at least `n` elements.
fn check_flat(op: &'static str, what: &str, t: &Tensor, n: usize) -> Result<()> {
    t.expect_dtype(op, DType::F32)?;
    if t.len() < n {
        return Err(Error::shape(
            op,
            format!(
                "{what} {:?} has {} elements, fewer than the {n} to update",
                t.shape(),
                t.len()
            ),
        ));
    }
    Ok(())
}

/// Checks the tensors of one step: dtypes, lengths, and that no tensor written by the update
/// shares a buffer with one it reads (wgpu tracks usage per buffer).
fn check_step(
    op: &'static str,
    n: usize,
    params: &Tensor,
    grads: &Tensor,
    state: &[&Tensor],
) -> Result<()> {
    check_flat(op, "params", params, n)?;
    check_flat(op, "grads", grads, n)?;
    if params.same_buffer(grads) {
        return Err(Error::invalid(op, "params and grads share a buffer"));
    }
    if state
        .iter()
        .any(|s| s.same_buffer(params) || s.same_buffer(grads))
    {
        return Err(Error::invalid(
            op,
            "params or grads share a buffer with the optimizer's state",
        ));
    }
    Ok(())
}

/// The global L2 norm `sqrt(Σ g²)` of the first `n` elements of `grads`, as a `[1]` tensor,
/// computed on the GPU and not read back. Records two dispatches: sums of squares of up to
/// 1024 contiguous chunks, then one workgroup that reduces them.
pub fn global_grad_norm(ctx: &Context, grads: &Tensor, n: usize) -> Result<Tensor> {
    const OP: &str = "global_grad_norm";
    let n32 = count(OP, n)?;
    check_flat(OP, "grads", grads, n)?;
    let groups = (n as u64).div_ceil(MIN_CHUNK).min(MAX_PARTIALS);
    let chunk = (n as u64).div_ceil(groups);
    let p = Params {
        n: n32,
        groups: groups as u32,
        chunk: chunk as u32,
        ..Params::default()
    };
    let partials = Tensor::uninit(ctx, &[groups as usize])?;
    let norm = Tensor::uninit(ctx, &[1])?;
    let k = ctx.kernel("optim", "sq_partials", &[])?;
    ctx.dispatch(k, &p, &[grads, &partials], [groups as u32, 1, 1])?;
    let k = ctx.kernel("optim", "norm_finish", &[])?;
    ctx.dispatch(k, &p, &[&partials, &norm], [1, 1, 1])?;
    Ok(norm)
}

/// Records the update dispatch: `entry` (or `entry_clip` with the norm), over `tensors` in
/// binding order with the norm inserted after the gradients.
fn update(
    ctx: &Context,
    entry: &'static str,
    clip: Option<&Tensor>,
    p: &Params,
    grads: &Tensor,
    rest: &[&Tensor],
) -> Result<()> {
    let mut tensors = vec![grads];
    let k = match clip {
        Some(norm) => {
            tensors.push(norm);
            ctx.kernel("optim", &format!("{entry}_clip"), &[])?
        }
        None => ctx.kernel("optim", entry, &[])?,
    };
    tensors.extend_from_slice(rest);
    let groups = grid(ctx, entry, (p.n as u64).div_ceil(WG))?;
    ctx.dispatch(k, p, &tensors, groups)
}

/// Adam (`torch.optim.Adam`, L2 weight decay, no AMSGrad) over the first `n` elements of a flat
/// parameter tensor, with optional global-norm clipping of the gradients first.
pub struct Adam {
    n: usize,
    cfg: AdamConfig,
    t: u64,
    m: Tensor,
    v: Tensor,
    norm: Option<Tensor>,
}

impl Adam {
    /// Validates `cfg` and allocates the moments m and v (`[n]`, zeroed; recorded).
    pub fn new(ctx: &Context, n: usize, cfg: AdamConfig) -> Result<Adam> {
        count("Adam::new", n)?;
        cfg.validate()?;
        Ok(Adam {
            n,
            cfg,
            t: 0,
            m: Tensor::zeros(ctx, &[n])?,
            v: Tensor::zeros(ctx, &[n])?,
            norm: None,
        })
    }

    /// Records one step over the first `n` elements of `params` with `grads` (each at least `n`
    /// long). Submits nothing and reads nothing back.
    pub fn step(&mut self, ctx: &Context, params: &Tensor, grads: &Tensor) -> Result<()> {
        const OP: &str = "Adam::step";
        let n32 = count(OP, self.n)?;
        check_step(OP, self.n, params, grads, &[&self.m, &self.v])?;
        let t = self.t + 1;
        let c = &self.cfg;
        let (beta1, beta2) = (c.beta1 as f64, c.beta2 as f64);
        let bc1 = 1.0 - beta1.powf(t as f64);
        let bc2 = 1.0 - beta2.powf(t as f64);
        let p = Params {
            n: n32,
            lr: (c.lr as f64 / bc1) as f32,
            weight_decay: c.weight_decay,
            max_norm: c.clip_norm.unwrap_or(0.0),
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: c.beta2,
            one_minus_beta2: (1.0 - beta2) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            eps: c.eps,
            ..Params::default()
        };
        let norm = match c.clip_norm {
            Some(_) => Some(global_grad_norm(ctx, grads, self.n)?),
            None => None,
        };
        update(
            ctx,
            "adam",
            norm.as_ref(),
            &p,
            grads,
            &[params, &self.m, &self.v],
        )?;
        self.norm = norm;
        self.t = t;
        Ok(())
    }

    /// Changes the learning rate from the next step on (for schedules).
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        non_negative("lr", lr)?;
        self.cfg.lr = lr;
        Ok(())
    }

    /// Steps recorded so far (PyTorch's `state['step']`).
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Sets the step counter, for resuming from a checkpoint together with [`Adam::moments`].
    pub fn set_steps(&mut self, t: u64) {
        self.t = t;
    }

    /// The hyper-parameters this optimiser was built with.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// Number of parameters updated.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: an optimizer over no parameters cannot be made.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The moments (m, v), `[n]` each (`exp_avg`, `exp_avg_sq`), for checkpoints. Writing them
    /// (with `Tensor::write`) restores a saved state.
    pub fn moments(&self) -> (&Tensor, &Tensor) {
        (&self.m, &self.v)
    }

    /// The `[1]` tensor of the last step's gradient norm before clipping, when clipping is on
    /// (read it lazily for logging; each step makes a new one). None before the first step or
    /// without clipping.
    pub fn grad_norm(&self) -> Option<&Tensor> {
        self.norm.as_ref()
    }
}

/// SGD (`torch.optim.SGD`: momentum, dampening, Nesterov, L2 weight decay) over the first `n`
/// elements of a flat parameter tensor, with optional global-norm clipping first.
pub struct Sgd {
    n: usize,
    cfg: SgdConfig,
    t: u64,
    /// The momentum buffer, when momentum != 0 (set from the gradient on the first step).
    buf: Option<Tensor>,
    norm: Option<Tensor>,
}

impl Sgd {
    /// Validates `cfg`; allocates the momentum buffer `[n]` when `momentum != 0`.
    pub fn new(ctx: &Context, n: usize, cfg: SgdConfig) -> Result<Sgd> {
        count("Sgd::new", n)?;
        cfg.validate()?;
        let buf = if cfg.momentum != 0.0 {
            Some(Tensor::zeros(ctx, &[n])?)
        } else {
            None
        };
        Ok(Sgd {
            n,
            cfg,
            t: 0,
            buf,
            norm: None,
        })
    }

    /// Records one step over the first `n` elements of `params` with `grads`. Submits nothing
    /// and reads nothing back.
    pub fn step(&mut self, ctx: &Context, params: &Tensor, grads: &Tensor) -> Result<()> {
        const OP: &str = "Sgd::step";
        let n32 = count(OP, self.n)?;
        let state: Vec<&Tensor> = self.buf.iter().collect();
        check_step(OP, self.n, params, grads, &state)?;
        let c = &self.cfg;
        let p = Params {
            n: n32,
            first: (self.t == 0) as u32,
            lr: c.lr,
            weight_decay: c.weight_decay,
            max_norm: c.clip_norm.unwrap_or(0.0),
            momentum: c.momentum,
            damp: (1.0 - c.dampening as f64) as f32,
            nesterov: c.nesterov as u32,
            ..Params::default()
        };
        let norm = match c.clip_norm {
            Some(_) => Some(global_grad_norm(ctx, grads, self.n)?),
            None => None,
        };
        match &self.buf {
            Some(buf) => update(
                ctx,
                "sgd_momentum",
                norm.as_ref(),
                &p,
                grads,
                &[params, buf],
            )?,
            None => update(ctx, "sgd", norm.as_ref(), &p, grads, &[params])?,
        }
        self.norm = norm;
        self.t += 1;
        Ok(())
    }

    /// Changes the learning rate from the next step on.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        non_negative("lr", lr)?;
        self.cfg.lr = lr;
        Ok(())
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Sets the step counter, for resuming (a count above 0 makes the next step use the
    /// momentum buffer as it is).
    pub fn set_steps(&mut self, t: u64) {
        self.t = t;
    }

    /// The hyper-parameters this optimiser was built with.
    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }

    /// Number of parameters updated.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: an optimizer over no parameters cannot be made.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The momentum buffer `[n]`, when momentum != 0.
    pub fn momentum_buffer(&self) -> Option<&Tensor> {
        self.buf.as_ref()
    }

    /// The `[1]` tensor of the last step's gradient norm before clipping, when clipping is on.
    pub fn grad_norm(&self) -> Option<&Tensor> {
        self.norm.as_ref()
    }
}
