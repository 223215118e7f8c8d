// Reduce family: sum and max over the last axis of a tensor viewed as [rows, cols], and a
// numerically stable softmax over the same rows.
// One workgroup per row: its WG threads stride over the columns (so any cols works), then a
// shared-memory tree combines their partial results. The grid may be 2-D when there are more
// than 65535 rows; the flat workgroup index is the row.

struct Params {
    rows: u32,  // rows to reduce (= workgroups that do work)
    cols: u32,  // row stride in elements
    n: u32,     // elements of x; the last row may be shorter than cols (sum_all's partial pass)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

//#include workgroup_reduce

fn row_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Max of row elements [start, end); end > start. Threads that see no element start from the
// row's first one rather than from -inf (no portable -inf literal in WGSL), which is harmless
// because max is idempotent.
fn row_max_of(lid: u32, start: u32, end: u32) -> f32 {
    var m = x[start];
    for (var i = start + lid; i < end; i = i + WG) {
        m = max(m, x[i]);
    }
    return workgroup_max(lid, m);
}

@compute @workgroup_size(WG)
fn row_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    // Uniform across the workgroup, so returning before the barriers is allowed.
    if (row >= p.rows) {
        return;
    }
    let start = row * p.cols;
    let end = min(start + p.cols, p.n);
    var acc = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        acc = acc + x[i];
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        out[row] = total;
    }
}

@compute @workgroup_size(WG)
fn row_max(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let start = row * p.cols;
    let end = min(start + p.cols, p.n);
    let m = row_max_of(lid, start, end);
    if (lid == 0u) {
        out[row] = m;
    }
}

// out = exp(x - rowmax) / sum(exp(x - rowmax)): subtracting the max keeps exp <= 1, so large
// logits cannot overflow. Each thread rescales exactly the elements it wrote itself, so the
// exponentials can be kept in `out` between the passes without another barrier.
@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let start = row * p.cols;
    let end = min(start + p.cols, p.n);
    let m = row_max_of(lid, start, end);
    var acc = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        let e = exp(x[i] - m);
        out[i] = e;
        acc = acc + e;
    }
    // The max element contributes exp(0) = 1, so the sum is >= 1 and the division is safe.
    let inv = 1.0 / workgroup_sum(lid, acc);
    for (var i = start + lid; i < end; i = i + WG) {
        out[i] = out[i] * inv;
    }
}
