// Layer-normalisation family (Ba et al. 2016; PyTorch's `layer_norm`): each row of x [rows, cols]
// is normalised over its cols elements (the trailing dimensions a layer normalises, e.g. an
// image's C·H·W), then scaled and shifted per element:
//   forward:         y = (x - mean) * rstd * gain + bias, rstd = 1 / sqrt(var + eps) (biased var);
//                    the row's mean and rstd are kept for the backward
//   backward_input:  dx = rstd * (g - mean(g) - x̂ * mean(g * x̂)), g = dy * gain, x̂ = (x - mean) * rstd
//   backward_params: dgain[j] = Σ_rows dy * x̂, dbias[j] = Σ_rows dy, rows in order
// The row entry points run one workgroup per row (threads stride over the columns, tree sums);
// backward_params one thread per column. Grids may be 2-D past 65535 workgroups.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
// The backward's: the forward's mean and rstd come back read-only.
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read> saved_mean: array<f32>;
@group(0) @binding(9) var<storage, read> saved_rstd: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> dgain: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbias: array<f32>;

//#include workgroup_reduce

fn row_of(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Bindings: x, gain, bias, y, mean, rstd.
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wid, nwg);
    // Uniform across the workgroup, so returning before the barriers is allowed.
    if (row >= p.rows) {
        return;
    }
    let start = row * p.cols;
    let end = start + p.cols;
    var acc = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        acc = acc + x[i];
    }
    let m = workgroup_sum(lid, acc) / f32(p.cols);
    // Two passes: the variance of the centred values, which cannot go negative.
    var sq = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        let d = x[i] - m;
        sq = sq + d * d;
    }
    let r = 1.0 / sqrt(workgroup_sum(lid, sq) / f32(p.cols) + p.eps);
    for (var i = start + lid; i < end; i = i + WG) {
        y[i] = (x[i] - m) * r * gain[i - start] + bias[i - start];
    }
    if (lid == 0u) {
        mean[row] = m;
        rstd[row] = r;
    }
}

// Bindings: x, gain, dy, saved_mean, saved_rstd, dx.
@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = row_of(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let start = row * p.cols;
    let end = start + p.cols;
    let m = saved_mean[row];
    let r = saved_rstd[row];
    var a = 0.0;
    var b = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        let g = dy[i] * gain[i - start];
        a = a + g;
        b = b + g * ((x[i] - m) * r);
    }
    let mean_g = workgroup_sum(lid, a) / f32(p.cols);
    let mean_gx = workgroup_sum(lid, b) / f32(p.cols);
    for (var i = start + lid; i < end; i = i + WG) {
        let g = dy[i] * gain[i - start];
        dx[i] = r * (g - mean_g - (x[i] - m) * r * mean_gx);
    }
}

// Bindings: x, dy, saved_mean, saved_rstd, dgain, dbias. One thread per column.
@compute @workgroup_size(WG)
fn backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let j = row_of(wid, nwg) * WG + lid;
    if (j >= p.cols) {
        return;
    }
    var dg = 0.0;
    var db = 0.0;
    for (var r = 0u; r < p.rows; r = r + 1u) {
        let i = r * p.cols + j;
        dg = dg + dy[i] * ((x[i] - saved_mean[r]) * saved_rstd[r]);
        db = db + dy[i];
    }
    dgain[j] = dg;
    dbias[j] = db;
}
