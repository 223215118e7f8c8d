// Elementwise family: fill, unary maps (sigmoid, tanh, scale, relu, elu) and binary maps (add, sub, mul,
// and the activation derivatives written in terms of the activation's output).
// One thread per element; the grid may be 2-D when there are more than 65535 workgroups.

struct Params {
    n: u32,      // elements of the output
    op: u32,     // which map (see the constants below and ops/elementwise.rs)
    alpha: f32,  // fill value or scale factor
    b_len: u32,  // elements of b; b is repeated when shorter (trailing broadcast)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

// Unary ops.
const SIGMOID: u32 = 0u;
const TANH: u32 = 1u;
const SCALE: u32 = 2u;
const RELU: u32 = 3u;
const ELU: u32 = 4u;               // alpha * (exp(x) - 1) below 0
// Binary ops.
const ADD: u32 = 0u;
const SUB: u32 = 1u;
const MUL: u32 = 2u;
const SIGMOID_BACKWARD: u32 = 3u; // a = sigmoid output y, b = dy: dy * y * (1 - y)
const TANH_BACKWARD: u32 = 4u;    // a = tanh output y, b = dy: dy * (1 - y^2)
const ADD_SCALED: u32 = 5u;       // a + alpha * b
const RELU_BACKWARD: u32 = 6u;    // a = relu output y, b = dy: dy where y > 0
const ELU_BACKWARD: u32 = 7u;     // a = elu output y, b = dy: dy where y > 0, else dy * (y + alpha)

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

//#include common

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = p.alpha;
    }
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let x = a[i];
    var y: f32;
    switch p.op {
        case SIGMOID: { y = sigmoid(x); }
        case TANH: { y = safe_tanh(x); }
        case RELU: { y = max(x, 0.0); }
        // exp(min(x, 0)) so the branch not taken cannot overflow.
        case ELU: { y = select(p.alpha * (exp(min(x, 0.0)) - 1.0), x, x > 0.0); }
        default: { y = p.alpha * x; }
    }
    out[i] = y;
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let x = a[i];
    let y = b[i % p.b_len];
    var r: f32;
    switch p.op {
        case ADD: { r = x + y; }
        case SUB: { r = x - y; }
        case MUL: { r = x * y; }
        case SIGMOID_BACKWARD: { r = y * x * (1.0 - x); }
        case TANH_BACKWARD: { r = y * (1.0 - x * x); }
        case RELU_BACKWARD: { r = select(0.0, y, x > 0.0); }
        case ELU_BACKWARD: { r = select(y * (x + p.alpha), y, x > 0.0); }
        default: { r = x + p.alpha * y; }
    }
    out[i] = r;
}

// out += alpha * a, in place: gradient accumulation.
@compute @workgroup_size(WG)
fn add_assign(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i < p.n) {
        out[i] = out[i] + p.alpha * a[i];
    }
}
