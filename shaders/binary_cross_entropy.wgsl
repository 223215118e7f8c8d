// Binary cross-entropy family: the per-pixel loss of the bouncing-balls video model, on logits
// z against targets t in [0, 1] (soft targets allowed), loss and gradient in one kernel:
//   loss[i]   = max(z, 0) - z * t + log(1 + exp(-|z|))   (= -t log σ(z) - (1 - t) log(1 - σ(z)))
//   dlogit[i] = (σ(z) - t) * grad_scale
// written so that no exp can overflow. One thread per element; the grid may be 2-D when there are
// more than 65535 workgroups.

struct Params {
    n: u32,          // elements of logits, targets, loss and dlogits
    grad_scale: f32, // factor of the gradient (1 / n for a mean loss)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn with_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n) {
        return;
    }
    let z = logits[i];
    let t = targets[i];
    // e = exp(-|z|) <= 1 serves both the loss and σ(z).
    let e = exp(-abs(z));
    loss[i] = max(z, 0.0) - z * t + log(1.0 + e);
    let s = select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
    dlogits[i] = (s - t) * p.grad_scale;
}
