// Squared-error family: the regression loss of the adding task, loss and gradient in one
// kernel (the difference is needed by both).
//   loss[i] = (pred[i] - expected[i])^2
//   dpred[i] = 2 * (pred[i] - expected[i]) * grad_scale
// One thread per element; the grid may be 2-D when there are more than 65535 workgroups.

struct Params {
    n: u32,          // elements of pred, target, loss and dpred
    grad_scale: f32, // factor of the gradient (1 / n for a mean loss)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> expected: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dpred: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn squared_error(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.n) {
        return;
    }
    let d = pred[i] - expected[i];
    loss[i] = d * d;
    dpred[i] = 2.0 * d * p.grad_scale;
}
