//! CPU twins of `shaders/embedding.wgsl`: the table lookup and its gradient. Wrapper:
//! `ops::embedding`; oracle: `reference::embedding`.

use crate::kernels::{CpuKernel, KernelArgs, Rows, par_for};

/// The uniform struct of both entry points of `embedding.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Tokens (rows of the output and of its gradient).
    pub rows: u32,
    /// Width D of the table `[V, D]`.
    pub dim: u32,
    /// Rows V of the table; a token `>= vocab` reads a zero row and gets no gradient.
    pub vocab: u32,
    /// Padding to 16 bytes.
    pub _pad: u32,
}

/// Threads per workgroup in `embedding.wgsl`.
const WG: usize = 256;
/// Elements per parallel block of the forward.
const BLOCK: usize = 1 << 14;
/// Columns of the table's gradient summed at once (the stack buffer of one backward tile).
const TILE: usize = 256;

/// The twin of each entry point.
pub fn twin(entry: &str) -> Option<CpuKernel> {
    Some(match entry {
        "forward" => forward,
        "backward" => backward,
        _ => return None,
    })
}

/// Elements the grid reaches: `i = (wid.x + wid.y · nwg.x) · WG + lid`.
fn reached(args: &KernelArgs<'_>) -> usize {
    let [gx, gy, _] = args.groups();
    gx as usize * gy as usize * WG
}

/// Bindings: tokens (u32), table, out. `out[r, :] = table[tokens[r], :]`, zero for a token
/// outside the table.
fn forward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let tokens = args.read_u32(0);
    let table = args.read(1);
    let out = args.write(2);
    let (dim, vocab) = (p.dim as usize, p.vocab);
    let n = (p.rows as usize * dim).min(reached(args));
    if n == 0 {
        return;
    }
    let per = (BLOCK / dim).max(1);
    let out = Rows::new(&mut out[..n], per * dim);
    par_for(args, args.parallel(n), n.div_ceil(per * dim), |b| {
        // SAFETY: par_for visits each block once.
        let o = unsafe { out.row(b) };
        for (j, o) in o.chunks_mut(dim).enumerate() {
            let v = tokens[b * per + j];
            if v < vocab {
                let start = v as usize * dim;
                o.copy_from_slice(&table[start..start + o.len()]);
            } else {
                o.fill(0.0);
            }
        }
    });
}

/// Bindings: tokens (u32), grad, dtable. `dtable[v, c] += Σ_{r: tokens[r] = v} grad[r, c]`, the
/// sum over r in increasing order from 0, as each GPU thread adds it.
fn backward(args: &KernelArgs<'_>) {
    let p: Params = args.params();
    let tokens = &args.read_u32(0)[..p.rows as usize];
    let grad = args.read(1);
    let dtable = args.write(2);
    let dim = p.dim as usize;
    let n = (p.vocab as usize * dim).min(reached(args));
    if n == 0 {
        return;
    }
    let dtable = Rows::new(&mut dtable[..n], dim);
    let work = n.div_ceil(dim) * tokens.len() + tokens.len() * dim;
    par_for(args, args.parallel(work), n.div_ceil(dim), |v| {
        // SAFETY: par_for visits each table row once.
        let d = unsafe { dtable.row(v) };
        let mut s = [0.0f32; TILE];
        for (t, d) in d.chunks_mut(TILE).enumerate() {
            let c0 = t * TILE;
            let s = &mut s[..d.len()];
            s.fill(0.0);
            for (r, _) in tokens
                .iter()
                .enumerate()
                .filter(|&(_, &tok)| tok as usize == v)
            {
                let g = &grad[r * dim + c0..r * dim + c0 + d.len()];
                s.iter_mut().zip(g).for_each(|(s, &g)| *s += g);
            }
            d.iter_mut().zip(&*s).for_each(|(d, &s)| *d += s);
        }
    });
}
