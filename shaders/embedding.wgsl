// Embedding lookup and its gradient. Forward: out[r, :] = table[tokens[r], :] for every row r
// (a token outside the table gives a zero row). Backward: dtable[v, c] += Σ_{r: tokens[r] = v}
// g[r, c], one thread per table element looping over the rows — no atomics (WGSL has no f32
// atomics), exact and deterministic; fine for the small vocabularies of these tasks.

struct Params {
    rows: u32, dim: u32, vocab: u32, _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> dtable: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.rows * p.dim) {
        return;
    }
    let v = tokens[i / p.dim];
    var x = 0.0;
    if (v < p.vocab) {
        x = table[v * p.dim + i % p.dim];
    }
    out[i] = x;
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= p.vocab * p.dim) {
        return;
    }
    let v = i / p.dim;
    let c = i % p.dim;
    var s = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        if (tokens[r] == v) {
            s += grad[r * p.dim + c];
        }
    }
    dtable[i] += s;
}
