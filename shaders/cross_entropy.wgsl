// Cross-entropy family: softmax cross-entropy of logits [rows, classes] against class indices
// [rows], with its gradient in the same kernel (the softmax is needed by both).
//   loss[r]    = logsumexp(x[r, :]) - x[r, t_r]
//   dlogits[r] = (softmax(x[r, :]) - onehot(t_r)) * grad_scale
// A target >= classes gives loss 0 and a zero gradient row, and is never used as an index.
// One workgroup per row (threads stride over the classes, shared-memory tree reductions); the
// grid may be 2-D when there are more than 65535 rows.

struct Params {
    rows: u32,
    classes: u32,
    grad_scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

//#include workgroup_reduce

@compute @workgroup_size(WG)
fn softmax_cross_entropy(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so returning before the barriers is allowed.
    if (row >= p.rows) {
        return;
    }
    let start = row * p.classes;
    let end = start + p.classes;

    // Threads that see no element start from the row's first one (no portable -inf literal);
    // max is idempotent so that changes nothing.
    var m = logits[start];
    for (var i = start + lid; i < end; i = i + WG) {
        m = max(m, logits[i]);
    }
    m = workgroup_max(lid, m);

    // exp(x - m) <= 1 cannot overflow; keep it in dlogits until the sum is known. Each thread
    // later rescales exactly the elements it wrote, so no barrier is needed between the passes.
    var acc = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        let e = exp(logits[i] - m);
        dlogits[i] = e;
        acc = acc + e;
    }
    // The max element contributes exp(0) = 1, so sum >= 1: the division and log are safe.
    let sum = workgroup_sum(lid, acc);

    // The target is only read after the barriers: control flow that depends on a storage value
    // must not contain them.
    let t = targets[row];
    let valid = t < p.classes;
    // An invalid target zeroes the whole row's gradient (scale 0) and its loss.
    let scale = select(0.0, p.grad_scale, valid);
    let inv = 1.0 / sum;
    for (var i = start + lid; i < end; i = i + WG) {
        let onehot = select(0.0, 1.0, valid && i - start == t);
        dlogits[i] = (dlogits[i] * inv - onehot) * scale;
    }
    if (lid == 0u) {
        var l = 0.0;
        if (valid) {
            // log(sum) + m - x_t, written so the large terms cancel before rounding.
            l = log(sum) - (logits[start + t] - m);
        }
        loss[row] = l;
    }
}
