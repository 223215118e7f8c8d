//! Engine benchmarks: matmul GFLOP/s per kernel, the convolutions of the bouncing-balls
//! encoder (forward and backward, GFLOP/s), the cost of a dispatch, and how fast one
//! host thread reads a buffer of a given size (the bound of the CPU device's batch-1 step, which
//! reads each active mechanism's weights once).
//!
//! Every measurement synchronises with the device before the clock is read (`iter_custom`).
//! Throughput is in elements = floating-point operations, so criterion's "Gelem/s" reads as
//! GFLOP/s. Run with `cargo bench --bench engine`; set RIMS_ADAPTER to pick an adapter.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rims::ops::conv2d::{self, Conv2dShape, Conv2dSpec};
use rims::ops::elementwise;
use rims::ops::matmul::{self, Gemm, Kernel, MatView};
use rims::rng::Rng;
use rims::{Context, Tensor};

fn context() -> Context {
    let ctx = Context::from_env().expect("a GPU adapter (llvmpipe on machines without a GPU)");
    eprintln!("device: {}", ctx.describe());
    ctx
}

fn random(ctx: &Context, rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_slice(ctx, shape, &rng.vec_f32(n, -1.0, 1.0)).unwrap()
}

/// Times `iters` recorded runs of `f`, submitted together and waited for.
fn timed(ctx: &Context, iters: u64, mut f: impl FnMut()) -> Duration {
    ctx.synchronize().unwrap();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    ctx.synchronize().unwrap();
    start.elapsed()
}

fn kernels_for(ctx: &Context) -> Vec<Kernel> {
    if ctx.is_software_gpu() || ctx.is_cpu() {
        vec![
            Kernel::VEC4,
            Kernel::Vec4 { rows: 8, cols: 16 },
            Kernel::Vec4 { rows: 8, cols: 8 },
            Kernel::Vec4 { rows: 16, cols: 8 },
            Kernel::Scalar,
            Kernel::Tiled,
        ]
    } else {
        vec![Kernel::Tiled, Kernel::VEC4, Kernel::Scalar]
    }
}

fn bench_matmul(c: &mut Criterion) {
    let ctx = context();
    let mut rng = Rng::new(0);
    let big = !ctx.is_software_gpu();
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in [256usize, 1024] {
        let a = random(&ctx, &mut rng, &[n, n]);
        let b = random(&ctx, &mut rng, &[n, n]);
        let out = Tensor::uninit(&ctx, &[n, n]).unwrap();
        let g = Gemm {
            batch: 1,
            inner: 1,
            m: n,
            n,
            k: n,
            a: MatView::row_major(n, n),
            b: MatView::row_major(n, n),
            c: MatView::row_major(n, n),
            bias: None,
            accumulate: false,
        };
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        for kernel in kernels_for(&ctx) {
            // The scalar and tiled kernels are far off the pace on llvmpipe at 1024³; one
            // figure for them is enough there.
            if !big && n == 1024 && !matches!(kernel, Kernel::Vec4 { .. }) {
                continue;
            }
            group.bench_with_input(
                BenchmarkId::new(format!("{kernel:?}"), format!("{n}^3")),
                &n,
                |bch, _| {
                    bch.iter_custom(|iters| {
                        timed(&ctx, iters, || {
                            matmul::gemm_with(&ctx, kernel, &g, &a, &b, None, &out).unwrap()
                        })
                    })
                },
            );
        }
    }
    // Grouped: 6 mechanisms, each (64 x 400)·(400 x 400), in one dispatch.
    let (bsz, groups, k, n) = (64usize, 6usize, 400usize, 400usize);
    let x = random(&ctx, &mut rng, &[bsz, groups, k]);
    let w = random(&ctx, &mut rng, &[groups, k, n]);
    group.throughput(Throughput::Elements((2 * bsz * groups * k * n) as u64));
    group.bench_function("grouped 6x(64x400·400x400)", |bch| {
        bch.iter_custom(|iters| {
            timed(&ctx, iters, || {
                matmul::grouped_matmul(&ctx, &x, &w, None).unwrap();
            })
        })
    });
    group.finish();
}

/// The encoder's three convolutions (4×4, stride 2, padding 1): 1→16 channels at 32×32,
/// 16→32 at 16×16, 32→64 at 8×8, over 512 frames (16 on a software GPU, where 512 would take
/// minutes). Forward, and backward as all three gradients (dx, dweight, dbias).
fn bench_conv2d(c: &mut Criterion) {
    let ctx = context();
    let mut rng = Rng::new(0);
    let frames = if ctx.is_software_gpu() { 16 } else { 512 };
    let spec = Conv2dSpec::new(2, 1);
    let mut group = c.benchmark_group("conv2d");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (c_in, c_out, side) in [(1usize, 16usize, 32usize), (16, 32, 16), (32, 64, 8)] {
        let x = random(&ctx, &mut rng, &[frames, c_in, side, side]);
        let w = random(&ctx, &mut rng, &[c_out, c_in, 4, 4]);
        let b = random(&ctx, &mut rng, &[c_out]);
        let shape = Conv2dShape::new(x.shape(), w.shape(), spec).unwrap();
        let dy = random(&ctx, &mut rng, &shape.output());
        let macs = shape.multiply_adds() as u64;
        let name = format!("{frames}x{c_in}->{c_out} @{side}x{side}");
        group.throughput(Throughput::Elements(2 * macs));
        group.bench_function(BenchmarkId::new("forward", &name), |bch| {
            bch.iter_custom(|iters| {
                timed(&ctx, iters, || {
                    conv2d::forward(&ctx, &x, &w, Some(&b), spec).unwrap();
                })
            })
        });
        // dx and dweight are a product as large as the forward each: timed alone, then all
        // three gradients together.
        let (xs, ws) = (x.shape(), w.shape());
        group.bench_function(BenchmarkId::new("dx", &name), |bch| {
            bch.iter_custom(|iters| {
                timed(&ctx, iters, || {
                    conv2d::backward_input(&ctx, &dy, &w, xs, spec).unwrap();
                })
            })
        });
        group.bench_function(BenchmarkId::new("dweight", &name), |bch| {
            bch.iter_custom(|iters| {
                timed(&ctx, iters, || {
                    conv2d::backward_weight(&ctx, &x, &dy, ws, spec).unwrap();
                })
            })
        });
        group.throughput(Throughput::Elements(4 * macs));
        group.bench_function(BenchmarkId::new("backward", &name), |bch| {
            bch.iter_custom(|iters| {
                timed(&ctx, iters, || {
                    conv2d::backward(&ctx, &x, &w, &dy, true, spec).unwrap();
                })
            })
        });
    }
    group.finish();
}

fn bench_dispatch(c: &mut Criterion) {
    let ctx = context();
    let t = Tensor::zeros(&ctx, &[64]).unwrap();
    let mut group = c.benchmark_group("dispatch");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    const N: u64 = 200;
    group.throughput(Throughput::Elements(N));
    group.bench_function("200 fills in one pass, one submit", |bch| {
        bch.iter_custom(|iters| {
            timed(&ctx, iters, || {
                for _ in 0..N {
                    elementwise::fill(&ctx, &t, 1.0).unwrap();
                }
                ctx.submit().unwrap();
            })
        })
    });
    group.bench_function("200 fills, a submit each", |bch| {
        bch.iter_custom(|iters| {
            timed(&ctx, iters, || {
                for _ in 0..N {
                    elementwise::fill(&ctx, &t, 1.0).unwrap();
                    ctx.submit().unwrap();
                }
            })
        })
    });
    group.finish();
}

/// Sums `data` with 32 independent accumulators, so the loop is bound by the loads, not by
/// the latency of one chain of additions.
fn read_all(data: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for chunk in data.chunks_exact(32) {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum()
}

/// Host read bandwidth at sizes around the paper batch-1 step's ≈ 4.4 MB of weights: what one
/// core can stream from its caches, the bound docs/perf.md compares that step with.
fn bench_read_bandwidth(c: &mut Criterion) {
    let mut group = c.benchmark_group("host read, one thread");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for megabytes in [0.5f64, 2.0, 4.4, 32.0] {
        let len = (megabytes * 1e6 / 4.0) as usize / 32 * 32;
        let data: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
        group.throughput(Throughput::Bytes((len * 4) as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{megabytes} MB")),
            |bch| bch.iter(|| read_all(std::hint::black_box(&data))),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotting needs system fonts the build machines may lack.
    config = Criterion::default().without_plots();
    targets = bench_matmul, bench_conv2d, bench_dispatch, bench_read_bandwidth
}
criterion_main!(benches);
