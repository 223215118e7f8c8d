// Optimizers over one flat parameter buffer and one flat gradient buffer: Adam (PyTorch's, with
// L2 weight decay), SGD (momentum, dampening, Nesterov) and global-norm gradient clipping.
//
// Clipping never reads the norm back to the host:
//   sq_partials  one workgroup per contiguous chunk of the gradients writes Σ g² of its chunk;
//   norm_finish  one workgroup sums the partials and writes sqrt(Σ g²) to a 1-element tensor;
//   *_clip       the update reads that tensor and scales each gradient by
//                min(1, max_norm / (norm + 1e-6)) as it reads it (gradients are not rewritten).
// The update entry points come in pairs (plain, _clip) because reflection binds exactly the
// globals an entry point uses: the plain one does not bind the norm.
// Update kernels run one thread per element; their grid may be 2-D past 65535 workgroups.

struct Params {
    n: u32,               // elements to update (or to reduce)
    groups: u32,          // partial sums (sq_partials workgroups; norm_finish inputs)
    chunk: u32,           // elements per sq_partials workgroup
    first: u32,           // SGD: 1 on the first step (the momentum buffer starts as g)
    lr: f32,              // Adam: step size lr / (1 - beta1^t); SGD: lr
    weight_decay: f32,    // g += weight_decay * p (L2, as PyTorch's Adam and SGD)
    max_norm: f32,        // clipping threshold
    one_minus_beta1: f32, // Adam: lerp weight of m
    beta2: f32,           // Adam
    one_minus_beta2: f32, // Adam
    bc2_sqrt: f32,        // Adam: sqrt(1 - beta2^t)
    eps: f32,             // Adam
    momentum: f32,        // SGD
    damp: f32,            // SGD: 1 - dampening
    nesterov: u32,        // SGD: 1 for Nesterov momentum
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read> norm: array<f32>;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
// Adam: first moment m; SGD: momentum buffer.
@group(0) @binding(4) var<storage, read_write> state1: array<f32>;
// Adam: second moment v.
@group(0) @binding(5) var<storage, read_write> state2: array<f32>;
@group(0) @binding(6) var<storage, read_write> partials_out: array<f32>;
@group(0) @binding(7) var<storage, read> partials_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> norm_out: array<f32>;

// Threads per workgroup; a power of two (the reduction tree halves it).
const WG: u32 = 256u;

var<workgroup> sh: array<f32, WG>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Tree sum of one value per thread; every thread gets the total. Uniform control flow only.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    sh[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sh[lid] = sh[lid] + sh[lid + s];
        }
        workgroupBarrier();
    }
    let r = sh[0];
    workgroupBarrier();
    return r;
}

// Σ g² of chunk `wid.x`: elements [wid.x * chunk, min((wid.x + 1) * chunk, n)).
@compute @workgroup_size(WG)
fn sq_partials(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = wid.x;
    // Uniform across the workgroup, so returning before the barriers is allowed.
    if (g >= p.groups) {
        return;
    }
    let start = g * p.chunk;
    let end = start + min(p.chunk, p.n - start);
    var acc = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        let x = grads[i];
        acc = acc + x * x;
    }
    let s = workgroup_sum(lid, acc);
    if (lid == 0u) {
        partials_out[g] = s;
    }
}

// norm_out[0] = sqrt(Σ partials); one workgroup.
@compute @workgroup_size(WG)
fn norm_finish(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.groups; i = i + WG) {
        acc = acc + partials_in[i];
    }
    let s = workgroup_sum(lid, acc);
    if (lid == 0u) {
        norm_out[0] = sqrt(s);
    }
}

// The factor clip_grad_norm_ multiplies gradients by: min(1, max_norm / (norm + 1e-6)).
fn clip_scale() -> f32 {
    return min(1.0, p.max_norm / (norm[0] + 1e-6));
}

// Adam, PyTorch's single-tensor path:
//   g += wd * p; m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g²;
//   p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps).
fn adam_update(i: u32, scale: f32) {
    let x = params[i];
    let g = grads[i] * scale + p.weight_decay * x;
    let m0 = state1[i];
    let m = m0 + p.one_minus_beta1 * (g - m0);
    let v = p.beta2 * state2[i] + p.one_minus_beta2 * g * g;
    state1[i] = m;
    state2[i] = v;
    let denom = sqrt(v) / p.bc2_sqrt + p.eps;
    params[i] = x - p.lr * (m / denom);
}

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        adam_update(i, 1.0);
    }
}

@compute @workgroup_size(WG)
fn adam_clip(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        adam_update(i, clip_scale());
    }
}

// Plain SGD: p -= lr * (g + wd * p).
fn sgd_update(i: u32, scale: f32) {
    let x = params[i];
    let g = grads[i] * scale + p.weight_decay * x;
    params[i] = x - p.lr * g;
}

// SGD with momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g;
// the step uses g + momentum * buf (Nesterov) or buf.
fn sgd_momentum_update(i: u32, scale: f32) {
    let x = params[i];
    let g = grads[i] * scale + p.weight_decay * x;
    var buf = g;
    if (p.first == 0u) {
        buf = p.momentum * state1[i] + p.damp * g;
    }
    state1[i] = buf;
    var d = buf;
    if (p.nesterov != 0u) {
        d = g + p.momentum * buf;
    }
    params[i] = x - p.lr * d;
}

@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        sgd_update(i, 1.0);
    }
}

@compute @workgroup_size(WG)
fn sgd_clip(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        sgd_update(i, clip_scale());
    }
}

@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        sgd_momentum_update(i, 1.0);
    }
}

@compute @workgroup_size(WG)
fn sgd_momentum_clip(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        sgd_momentum_update(i, clip_scale());
    }
}
