// Dropout with the counter-based mask of lib/common.wgsl (identical to
// src/reference/dropout.rs): out[i] = x[i] · factor(seed, step, tensor, i). The backward is the
// same map applied to the gradient, so one entry point serves both.

//#include common

struct Params {
    n: u32, seed: u32, step: u32, tensor: u32,
    threshold: u32, scale: f32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i < p.n) {
        out[i] = x[i] * dropout_factor(p.seed, p.step, p.tensor, i, p.threshold, p.scale);
    }
}
