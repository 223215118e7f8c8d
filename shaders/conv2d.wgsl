// Conv2d family: 2-D convolution as torch.nn.functional.conv2d computes it (cross-correlation,
// no kernel flip), f32, NCHW, with the same stride and zero padding on both spatial axes.
//   x [N, C_in, H, W], weight [C_out, C_in, KH, KW], bias [C_out], y [N, C_out, H_out, W_out]
//   y[n, co, oh, ow] = bias[co] + Σ_{ci, ky, kx} x[n, ci, oh·s + ky − pad, ow·s + kx − pad]
//                                                 · weight[co, ci, ky, kx]
// (x outside [0, H) × [0, W) reads as zero). The zeros after the input only enter through
// h_out and w_out, which the wrapper computes. The three gradients are one entry point each.
// One thread per output element, each summed in a fixed order (direct loops: on llvmpipe
// and for the small images this family is for, that is enough); the grid may be 2-D.

struct Params {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,   // zero rows above and zero columns left of the input
    h_out: u32,
    w_out: u32,
    flags: u32, // FLAG_BIAS: forward adds bias
}

const FLAG_BIAS: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;

const WG: u32 = 256u;

fn thread_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// y: one thread per output element, summed over ci, then ky, then kx; the bias added last.
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p.n * p.c_out * p.h_out * p.w_out) {
        return;
    }
    let ow = i % p.w_out;
    let oh = (i / p.w_out) % p.h_out;
    let co = (i / (p.w_out * p.h_out)) % p.c_out;
    let n = i / (p.w_out * p.h_out * p.c_out);
    let top = i32(oh * p.stride) - i32(p.pad);
    let left = i32(ow * p.stride) - i32(p.pad);
    var acc = 0.0;
    for (var ci = 0u; ci < p.c_in; ci++) {
        let x_plane = (n * p.c_in + ci) * p.h * p.w;
        let w_plane = (co * p.c_in + ci) * p.kh * p.kw;
        for (var ky = 0u; ky < p.kh; ky++) {
            let ih = top + i32(ky);
            if (ih < 0 || ih >= i32(p.h)) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let iw = left + i32(kx);
                if (iw < 0 || iw >= i32(p.w)) {
                    continue;
                }
                acc += x[x_plane + u32(ih) * p.w + u32(iw)] * weight[w_plane + ky * p.kw + kx];
            }
        }
    }
    if ((p.flags & FLAG_BIAS) != 0u) {
        acc += bias[co];
    }
    y[i] = acc;
}

// dx: one thread per input element, summed over co, then ky, then kx, over the outputs whose
// window covers it: ih + pad − ky a multiple of the stride (so ky steps by the stride from
// (ih + pad) mod stride), the output row inside [0, h_out); columns likewise.
@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p.n * p.c_in * p.h * p.w) {
        return;
    }
    let iw = i % p.w;
    let ih = (i / p.w) % p.h;
    let ci = (i / (p.w * p.h)) % p.c_in;
    let n = i / (p.w * p.h * p.c_in);
    let ty = ih + p.pad;
    let tx = iw + p.pad;
    var acc = 0.0;
    for (var co = 0u; co < p.c_out; co++) {
        let dy_plane = (n * p.c_out + co) * p.h_out * p.w_out;
        let w_plane = (co * p.c_in + ci) * p.kh * p.kw;
        for (var ky = ty % p.stride; ky < p.kh && ky <= ty; ky += p.stride) {
            let oh = (ty - ky) / p.stride;
            if (oh >= p.h_out) {
                continue;
            }
            for (var kx = tx % p.stride; kx < p.kw && kx <= tx; kx += p.stride) {
                let ow = (tx - kx) / p.stride;
                if (ow >= p.w_out) {
                    continue;
                }
                acc += dy[dy_plane + oh * p.w_out + ow] * weight[w_plane + ky * p.kw + kx];
            }
        }
    }
    dx[i] = acc;
}

// dw: one thread per weight element, summed over n, then oh, then ow.
@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p.c_out * p.c_in * p.kh * p.kw) {
        return;
    }
    let kx = i % p.kw;
    let ky = (i / p.kw) % p.kh;
    let ci = (i / (p.kw * p.kh)) % p.c_in;
    let co = i / (p.kw * p.kh * p.c_in);
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let x_plane = (n * p.c_in + ci) * p.h * p.w;
        let dy_plane = (n * p.c_out + co) * p.h_out * p.w_out;
        for (var oh = 0u; oh < p.h_out; oh++) {
            let ih = i32(oh * p.stride + ky) - i32(p.pad);
            if (ih < 0 || ih >= i32(p.h)) {
                continue;
            }
            for (var ow = 0u; ow < p.w_out; ow++) {
                let iw = i32(ow * p.stride + kx) - i32(p.pad);
                if (iw < 0 || iw >= i32(p.w)) {
                    continue;
                }
                acc += x[x_plane + u32(ih) * p.w + u32(iw)] * dy[dy_plane + oh * p.w_out + ow];
            }
        }
    }
    dw[i] = acc;
}

// db: one thread per output channel, summed over n, then over the channel's plane in order.
@compute @workgroup_size(WG)
fn backward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let co = thread_index(wid, nwg, lid);
    if (co >= p.c_out) {
        return;
    }
    let plane = p.h_out * p.w_out;
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let start = (n * p.c_out + co) * plane;
        for (var q = 0u; q < plane; q++) {
            acc += dy[start + q];
        }
    }
    db[co] = acc;
}
