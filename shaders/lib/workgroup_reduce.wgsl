// Workgroup tree reductions shared by reduce.wgsl and cross_entropy.wgsl, pulled in with a
// line `//#include workgroup_reduce`. WG is specialised by the including op.

// Threads per workgroup; a power of two (the tree halves it). Specialised by the op.
const WG: u32 = 256u;

var<workgroup> sh: array<f32, WG>;

// Tree sum of one value per thread; every thread gets the total. Called in uniform control
// flow only (it has barriers).
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
    // Everyone must have read sh[0] before a following reduction overwrites it.
    workgroupBarrier();
    return r;
}

fn workgroup_max(lid: u32, v: f32) -> f32 {
    sh[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sh[lid] = max(sh[lid], sh[lid + s]);
        }
        workgroupBarrier();
    }
    let r = sh[0];
    workgroupBarrier();
    return r;
}
