//! Times the gradient exchange of a data-parallel training step: the allreduce of the flat
//! gradient of the benchmark models (`rims bench`'s small and paper configurations, RIMs with
//! LSTM cells, plus the loss and stop flag a step adds), the call alone, many times.
//!
//! ```sh
//! cargo build --release --features mpi --example allreduce
//! mpiexec -n 2 target/release/examples/allreduce [repeats]
//! ```
//!
//! Rank 0 prints, per configuration, the values and bytes each rank sends, and the median,
//! 10th and 90th percentile of one allreduce over the repeats (after a barrier, so that every
//! call starts with all ranks ready, as a training step's does not: there the slowest rank's
//! compute comes first).

use std::time::Instant;

use rims::device::DeviceRequest;
use rims::nn::CellKind;
use rims::nn::model::{Backbone, Model};
use rims::train::bench::BenchSetup;
use rims::train::dist::{Dist, median};
use rims::{Context, Result};

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

fn main() -> Result<()> {
    let dist = Dist::mpi()?;
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200)
        .max(1);
    let ctx = Context::new(DeviceRequest::cpu(Some(1)))?;
    if dist.is_root() {
        println!(
            "allreduce of the flat gradient on {} ranks ({} of them on this machine), {repeats} \
             repeats",
            dist.size(),
            dist.local_ranks()
        );
    }
    for setup in [BenchSetup::small(), BenchSetup::paper()] {
        let model = Model::new(&ctx, setup.model(CellKind::Lstm, Backbone::Rims), 1)?;
        let n = model.store.trainable_len() + 2;
        let mut buf = vec![1.0f32; n];
        let mut times = Vec::with_capacity(repeats);
        for i in 0..repeats + 10 {
            buf.fill(1.0);
            dist.barrier()?;
            let t = Instant::now();
            dist.allreduce_sum(&mut buf)?;
            if i >= 10 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        assert!(buf.iter().all(|&x| x == dist.size() as f32), "a wrong sum");
        if dist.is_root() {
            let ms = |x: f64| x * 1e3;
            let bytes = n * 4;
            println!(
                "{:<6} {n:>9} values {:>7.2} MB: median {:.3} ms (p10 {:.3}, p90 {:.3}), {:.2} GB/s \
                 of gradient per rank",
                setup.name,
                bytes as f64 / 1e6,
                ms(median(&times)),
                ms(percentile(&times, 0.1)),
                ms(percentile(&times, 0.9)),
                bytes as f64 / median(&times) / 1e9
            );
        }
    }
    Ok(())
}
