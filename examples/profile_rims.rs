//! Where the time of a RIMs training step goes, kernel by kernel (each dispatch is run and
//! waited for on its own, so the totals rank kernels rather than add up to a step's time).
//! `cargo run --release --example profile_rims`; the shape comes from `PROFILE_T`, `PROFILE_B`,
//! `PROFILE_N`, `PROFILE_K`, `PROFILE_H` and `PROFILE_D` (defaults 8, 16, 6, 4, 32, 32).

use rims::nn::rims::param_specs;
use rims::nn::{ParamStore, Rims, RimsConfig, RimsOptions};
use rims::rng::Rng;
use rims::tape::Tape;
use rims::{Context, Tensor};

fn main() -> rims::Result<()> {
    let ctx = Context::from_env()?;
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let d = var("PROFILE_D", 32);
    let cfg = RimsConfig {
        mechanisms: var("PROFILE_N", 6),
        active: var("PROFILE_K", 4),
        hidden: var("PROFILE_H", 32),
        input: d,
        input_key: d,
        input_value: d,
        ..RimsConfig::default()
    };
    let (t_len, b) = (var("PROFILE_T", 8), var("PROFILE_B", 16));
    let layer = Rims::new(cfg.clone())?;
    let store = ParamStore::new(&ctx, &param_specs(&cfg), 1)?;
    let mut rng = Rng::new(2);
    let x = Tensor::from_slice(
        &ctx,
        &[t_len, b, cfg.input],
        &rng.vec_f32(t_len * b * cfg.input, -1.0, 1.0),
    )?;
    let opts = RimsOptions {
        training: true,
        ..Default::default()
    };
    for round in 0..2 {
        // The first round compiles pipelines and fills the pool; profile the second.
        ctx.set_profiling(round == 1);
        store.zero_grads(&ctx)?;
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let out = layer.forward(&ctx, &mut tape, &store, xv, &opts)?;
        let loss = tape.mean(&ctx, out.h)?;
        tape.backward(&ctx, loss)?;
        ctx.synchronize()?;
    }
    println!(
        "{:<48} {:>6} {:>12} {:>10}",
        "kernel", "count", "total", "per call"
    );
    for (label, n, total) in ctx.profile() {
        println!(
            "{label:<48} {n:>6} {:>10.2}ms {:>8.1}µs",
            total.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e6 / n as f64
        );
    }
    Ok(())
}
