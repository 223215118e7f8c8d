// Upsample family: nearest-neighbour upsampling of the last two (spatial) dimensions by an
// integer factor f, as the bouncing-balls decoder uses between its convolutions (PyTorch's
// `interpolate(mode="nearest", scale_factor=f)`):
//   nearest:          y[p, i, j] = x[p, i / f, j / f]       y is [planes, H·f, W·f]
//   nearest_backward: dx[p, i, j] = Σ_{a, b < f} dy[p, i·f + a, j·f + b], a then b in order
// One thread per output element; the grid may be 2-D when there are more than 65535 workgroups.

struct Params {
    planes: u32, // leading dimensions flattened (batch × channels)
    height: u32, // rows of x
    width: u32,  // columns of x
    factor: u32, // f
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

const WG: u32 = 256u;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// src = x, dst = y.
@compute @workgroup_size(WG)
fn nearest(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    let out_w = p.width * p.factor;
    let out_plane = p.height * p.factor * out_w;
    if (i >= p.planes * out_plane) {
        return;
    }
    let plane = i / out_plane;
    let row = (i % out_plane) / out_w;
    let col = i % out_w;
    dst[i] = src[(plane * p.height + row / p.factor) * p.width + col / p.factor];
}

// src = dy, dst = dx.
@compute @workgroup_size(WG)
fn nearest_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    let in_plane = p.height * p.width;
    if (i >= p.planes * in_plane) {
        return;
    }
    let plane = i / in_plane;
    let row = (i % in_plane) / p.width;
    let col = i % p.width;
    let out_w = p.width * p.factor;
    let first = (plane * p.height * p.factor + row * p.factor) * out_w + col * p.factor;
    var acc = 0.0;
    for (var a = 0u; a < p.factor; a = a + 1u) {
        for (var b = 0u; b < p.factor; b = b + 1u) {
            acc = acc + src[first + a * out_w + b];
        }
    }
    dst[i] = acc;
}
