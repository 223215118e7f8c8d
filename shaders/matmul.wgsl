// Matmul family: C[b] = A[b]·B[b] (+ bias[b]) (+ C[b] when accumulating), for a batch of
// strided matrices. Transposes, batches and grouped (per-mechanism) weights are all strides:
// element (i, k) of A[b] is a[a_off + b*a_bs + i*a_rs + k*a_cs], and so on.
//
// Three kernels, chosen per adapter by ops/matmul.rs:
// - gemm_scalar: any strides, scalar loads, a TM x TN block per invocation. The fallback.
// - gemm_vec4:   vec4 loads along a contiguous axis, a 16 x 16 block per invocation. Best on
//                llvmpipe, where each invocation is one SIMD lane and shared memory only adds
//                copies (measured: tiling was slower there).
// - gemm_tiled:  workgroup-shared tiles, 4 x 4 per thread; what a real GPU wants.
// Out-of-range rows and columns are clamped on load (always a valid address) and skipped on store.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_bs: u32, a_rs: u32, a_cs: u32,
    b_off: u32, b_bs: u32, b_rs: u32, b_cs: u32,
    c_off: u32, c_bs: u32, c_rs: u32, flags: u32,   // flags: 1 = add bias, 2 = accumulate into C
    bias_off: u32, bias_bs: u32, tiles_m: u32, tiles_n: u32,
    wg_cols: u32, inner: u32, a_bs2: u32, b_bs2: u32,
    c_bs2: u32, bias_bs2: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
// The vec4 kernel reads the same buffers as vec4 (offsets and strides divisible by 4).
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

const FLAG_BIAS: u32 = 1u;
const FLAG_ACCUMULATE: u32 = 2u;

// Invocations per workgroup of the per-invocation-block kernels.
const WG: u32 = 64u;
// Block of outputs per invocation in gemm_scalar.
const SM: u32 = 4u;
const SN: u32 = 4u;
// gemm_vec4: block of outputs per invocation (TM rows; TN columns, a multiple of 4) and
// which axis of A and B is contiguous (1) or strided by a multiple of 4 (0).
const TM: u32 = 16u;
const TN: u32 = 16u;
const A_K_CONTIG: u32 = 1u;  // 1: A[i, k..k+4] is one vec4; 0: A[i..i+4, k] is one vec4
const B_N_CONTIG: u32 = 1u;  // 1: B[k, j..j+4] is one vec4; 0: B[k..k+4, j] is one vec4
// gemm_tiled: 16 x 16 threads, 4 x 4 outputs each, K tiles of BK.
const TS: u32 = 64u;
const BK: u32 = 16u;

// Offset of batch entry `bt` = (outer, inner) for a view with these two strides.
fn boff(bt: u32, outer_stride: u32, inner_stride: u32) -> u32 {
    return (bt / p.inner) * outer_stride + (bt % p.inner) * inner_stride;
}

// Writes one output, applying bias and accumulation.
fn store(batch: u32, i: u32, j: u32, v: f32) {
    var r = v;
    if ((p.flags & FLAG_BIAS) != 0u) {
        r += bias[p.bias_off + boff(batch, p.bias_bs, p.bias_bs2) + j];
    }
    let idx = p.c_off + boff(batch, p.c_bs, p.c_bs2) + i * p.c_rs + j;
    if ((p.flags & FLAG_ACCUMULATE) != 0u) {
        r += c[idx];
    }
    c[idx] = r;
}

// Which (batch, tile row, tile col) workgroup `flat` owns; false when past the end.
fn block_of(flat: u32, out: ptr<function, vec3<u32>>) -> bool {
    let per_batch = p.tiles_m * p.tiles_n;
    if (flat >= per_batch * p.batch) {
        return false;
    }
    let bt = flat / per_batch;
    let rem = flat % per_batch;
    *out = vec3<u32>(bt, rem / p.tiles_n, rem % p.tiles_n);
    return true;
}

// For the per-invocation-block kernels: a workgroup covers (WG / wg_cols) x wg_cols blocks, a
// squarish patch of C, so the rows of A and columns of B it streams stay in cache. Returns
// (batch, block row, block col) of this invocation.
fn invocation_block(flat_wg: u32, lid: u32, out: ptr<function, vec3<u32>>) -> bool {
    var t: vec3<u32>;
    if (!block_of(flat_wg, &t)) {
        return false;
    }
    let wg_rows = WG / p.wg_cols;
    *out = vec3<u32>(t.x, t.y * wg_rows + lid / p.wg_cols, t.z * p.wg_cols + lid % p.wg_cols);
    return true;
}

@compute @workgroup_size(WG)
fn gemm_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    var blk: vec3<u32>;
    if (!invocation_block(wid.x + wid.y * nwg.x, lid, &blk)) {
        return;
    }
    let bt = blk.x;
    let i0 = blk.y * SM;
    let j0 = blk.z * SN;
    if (i0 >= p.m || j0 >= p.n) {
        return;
    }
    var rows: array<u32, SM>;
    var cols: array<u32, SN>;
    for (var r = 0u; r < SM; r++) {
        rows[r] = p.a_off + boff(bt, p.a_bs, p.a_bs2) + min(i0 + r, p.m - 1u) * p.a_rs;
    }
    for (var s = 0u; s < SN; s++) {
        cols[s] = p.b_off + boff(bt, p.b_bs, p.b_bs2) + min(j0 + s, p.n - 1u) * p.b_cs;
    }
    var acc: array<f32, SM * SN>;
    for (var kk = 0u; kk < p.k; kk++) {
        var av: array<f32, SM>;
        for (var r = 0u; r < SM; r++) {
            av[r] = a[rows[r] + kk * p.a_cs];
        }
        for (var s = 0u; s < SN; s++) {
            let bv = b[cols[s] + kk * p.b_rs];
            for (var r = 0u; r < SM; r++) {
                acc[r * SN + s] += av[r] * bv;
            }
        }
    }
    for (var r = 0u; r < SM; r++) {
        for (var s = 0u; s < SN; s++) {
            if (i0 + r < p.m && j0 + s < p.n) {
                store(bt, i0 + r, j0 + s, acc[r * SN + s]);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn gemm_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    var blk: vec3<u32>;
    if (!invocation_block(wid.x + wid.y * nwg.x, lid, &blk)) {
        return;
    }
    let bt = blk.x;
    let i0 = blk.y * TM;
    let j0 = blk.z * TN;
    if (i0 >= p.m || j0 >= p.n) {
        return;  // a workgroup patch overhanging the matrix: nothing to do
    }
    // Base vec4 index of each row of A's block (A_K_CONTIG) or of each group of 4 rows.
    var abase: array<u32, TM>;
    for (var r = 0u; r < TM; r++) {
        if (A_K_CONTIG == 1u) {
            abase[r] = (p.a_off + boff(bt, p.a_bs, p.a_bs2) + min(i0 + r, p.m - 1u) * p.a_rs) / 4u;
        } else {
            abase[r] = (p.a_off + boff(bt, p.a_bs, p.a_bs2) + min(i0 + 4u * r, p.m - 4u)) / 4u;
        }
    }
    var bbase: array<u32, TN>;
    for (var s = 0u; s < TN; s++) {
        if (B_N_CONTIG == 1u) {
            bbase[s] = (p.b_off + boff(bt, p.b_bs, p.b_bs2) + min(j0 + 4u * s, p.n - 4u)) / 4u;
        } else {
            bbase[s] = (p.b_off + boff(bt, p.b_bs, p.b_bs2) + min(j0 + s, p.n - 1u) * p.b_cs) / 4u;
        }
    }
    var acc: array<vec4<f32>, TM * TN / 4u>;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        // A block as TM rows x 4 k values.
        var at: array<vec4<f32>, TM>;
        if (A_K_CONTIG == 1u) {
            for (var r = 0u; r < TM; r++) {
                at[r] = a4[abase[r] + k0 / 4u];
            }
        } else {
            for (var r4 = 0u; r4 < TM / 4u; r4++) {
                let s = p.a_cs / 4u;
                let c0 = a4[abase[r4] + (k0 + 0u) * s];
                let c1 = a4[abase[r4] + (k0 + 1u) * s];
                let c2 = a4[abase[r4] + (k0 + 2u) * s];
                let c3 = a4[abase[r4] + (k0 + 3u) * s];
                at[4u * r4 + 0u] = vec4<f32>(c0.x, c1.x, c2.x, c3.x);
                at[4u * r4 + 1u] = vec4<f32>(c0.y, c1.y, c2.y, c3.y);
                at[4u * r4 + 2u] = vec4<f32>(c0.z, c1.z, c2.z, c3.z);
                at[4u * r4 + 3u] = vec4<f32>(c0.w, c1.w, c2.w, c3.w);
            }
        }
        // B block as 4 k rows x TN columns, in vec4s along the columns.
        var bt0: array<vec4<f32>, TN / 4u>;
        var bt1: array<vec4<f32>, TN / 4u>;
        var bt2: array<vec4<f32>, TN / 4u>;
        var bt3: array<vec4<f32>, TN / 4u>;
        if (B_N_CONTIG == 1u) {
            let s = p.b_rs / 4u;
            for (var c4 = 0u; c4 < TN / 4u; c4++) {
                bt0[c4] = b4[bbase[c4] + (k0 + 0u) * s];
                bt1[c4] = b4[bbase[c4] + (k0 + 1u) * s];
                bt2[c4] = b4[bbase[c4] + (k0 + 2u) * s];
                bt3[c4] = b4[bbase[c4] + (k0 + 3u) * s];
            }
        } else {
            for (var c4 = 0u; c4 < TN / 4u; c4++) {
                let q0 = b4[bbase[4u * c4 + 0u] + k0 / 4u];
                let q1 = b4[bbase[4u * c4 + 1u] + k0 / 4u];
                let q2 = b4[bbase[4u * c4 + 2u] + k0 / 4u];
                let q3 = b4[bbase[4u * c4 + 3u] + k0 / 4u];
                bt0[c4] = vec4<f32>(q0.x, q1.x, q2.x, q3.x);
                bt1[c4] = vec4<f32>(q0.y, q1.y, q2.y, q3.y);
                bt2[c4] = vec4<f32>(q0.z, q1.z, q2.z, q3.z);
                bt3[c4] = vec4<f32>(q0.w, q1.w, q2.w, q3.w);
            }
        }
        for (var r = 0u; r < TM; r++) {
            let av = at[r];
            for (var c4 = 0u; c4 < TN / 4u; c4++) {
                let idx = r * (TN / 4u) + c4;
                acc[idx] = acc[idx] + av.x * bt0[c4] + av.y * bt1[c4] + av.z * bt2[c4] + av.w * bt3[c4];
            }
        }
    }
    for (var r = 0u; r < TM; r++) {
        if (i0 + r >= p.m) {
            break;
        }
        for (var c4 = 0u; c4 < TN / 4u; c4++) {
            let v = acc[r * (TN / 4u) + c4];
            let j = j0 + 4u * c4;
            if (j + 0u < p.n) { store(bt, i0 + r, j + 0u, v.x); }
            if (j + 1u < p.n) { store(bt, i0 + r, j + 1u, v.y); }
            if (j + 2u < p.n) { store(bt, i0 + r, j + 2u, v.z); }
            if (j + 3u < p.n) { store(bt, i0 + r, j + 3u, v.w); }
        }
    }
}

var<workgroup> tile_a: array<f32, BK * TS>;  // k-major
var<workgroup> tile_b: array<f32, BK * TS>;  // k-major

@compute @workgroup_size(16, 16)
fn gemm_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var blk: vec3<u32>;
    // Every thread of the workgroup takes the same branch here (the block is per workgroup),
    // so the barriers below stay in uniform control flow.
    let valid = block_of(wid.x + wid.y * nwg.x, &blk);
    if (!valid) {
        return;
    }
    let bt = blk.x;
    let i0 = blk.y * TS;
    let j0 = blk.z * TS;
    let a_base = p.a_off + boff(bt, p.a_bs, p.a_bs2);
    let b_base = p.b_off + boff(bt, p.b_bs, p.b_bs2);
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // 256 threads load BK * TS values of each tile; zero outside the matrix.
        for (var q = 0u; q < BK * TS / 256u; q++) {
            let e = lid + 256u * q;
            let kk = e / TS;
            let x = e % TS;
            var va = 0.0;
            if (i0 + x < p.m && k0 + kk < p.k) {
                va = a[a_base + (i0 + x) * p.a_rs + (k0 + kk) * p.a_cs];
            }
            tile_a[e] = va;
            var vb = 0.0;
            if (j0 + x < p.n && k0 + kk < p.k) {
                vb = b[b_base + (k0 + kk) * p.b_rs + (j0 + x) * p.b_cs];
            }
            tile_b[e] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var r = 0u; r < 4u; r++) {
                av[r] = tile_a[kk * TS + lid3.y + 16u * r];
                bv[r] = tile_b[kk * TS + lid3.x + 16u * r];
            }
            for (var r = 0u; r < 4u; r++) {
                for (var s = 0u; s < 4u; s++) {
                    acc[r * 4u + s] += av[r] * bv[s];
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        for (var s = 0u; s < 4u; s++) {
            let i = i0 + lid3.y + 16u * r;
            let j = j0 + lid3.x + 16u * s;
            if (i < p.m && j < p.n) {
                store(bt, i, j, acc[r * 4u + s]);
            }
        }
    }
}
