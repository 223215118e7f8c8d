//! Embedding a model in an application: step it ONE token at a time and act on each output.
//!
//! Feeds one copying-task sequence (S symbols, a gap, the marker 9, then S blanks during which
//! the model should repeat the symbols) through a [`Runner`] and prints, per step, the token
//! fed, the token predicted and which mechanisms were active. Trains nothing.
//!
//! ```sh
//! cargo run --release --example embed                 # a fresh, untrained model (noise)
//! cargo run --release -- train --out runs/copy        # or train one first (a few minutes)...
//! cargo run --release --example embed -- runs/copy    # ...and step the checkpoint
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use rims::data::copying::{self, Copying};
use rims::nn::Runner;
use rims::nn::model::Model;
use rims::rng::Rng;
use rims::train::TrainConfig;
use rims::train::checkpoint::load_model;
use rims::train::checkpoint::read_state;
use rims::{Context, Result};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let ctx = Context::from_env()?;
    let arg = std::env::args_os().nth(1);
    // The model, and the copying task it was trained on.
    let (model, task) = match &arg {
        Some(dir) => {
            let dir = Path::new(dir);
            let cfg = read_state(dir)?.config;
            println!("checkpoint {}", dir.display());
            (load_model(&ctx, dir)?, cfg.copying(cfg.train_len)?)
        }
        None => {
            let cfg = TrainConfig::default();
            println!("no checkpoint given: a fresh, untrained model (its predictions are noise)");
            let task = cfg.copying(cfg.train_len)?;
            (Model::new(&ctx, cfg.model()?, cfg.seed)?, task)
        }
    };
    let Copying { symbols, gap } = task;
    if model.cfg.vocab <= copying::MARKER as usize {
        return Err(rims::Error::invalid(
            "embed example",
            format!(
                "this example feeds the copying task (tokens 0..=9); the model's vocabulary is {}",
                model.cfg.vocab
            ),
        ));
    }
    println!(
        "{}; {} mechanisms, {} active per step; copying {symbols} symbols, gap T = {gap}",
        ctx.describe(),
        model.cfg.rims.mechanisms,
        model.cfg.rims.active,
    );

    // The application's input: one copying sequence, fed token by token.
    let seq = task.batch(&mut Rng::new(2026), 1)?;
    let copied = task.copied_positions();
    let mut runner = Runner::new(&ctx, &model, 1)?;
    let (mut right, mut busy) = (0, std::time::Duration::ZERO);
    for (t, (&input, &target)) in seq.inputs.iter().zip(&seq.targets).enumerate() {
        let start = Instant::now();
        let out = runner.step(&ctx, &[input])?;
        busy += start.elapsed();
        let predicted = out.predicted(0);
        let active: Vec<String> = out
            .active_mechanisms(0)
            .iter()
            .map(|m| m.to_string())
            .collect();
        let mut line = format!(
            "t={t:<3} in={input} out={predicted} active=[{}]",
            active.join(",")
        );
        if copied.contains(&t) {
            let ok = predicted == target as usize;
            right += usize::from(ok);
            line += &format!(
                "  (should copy {target}: {})",
                if ok { "yes" } else { "no" }
            );
        }
        println!("{line}");
    }
    println!(
        "copied {right}/{} symbols; {} steps, {:.2} ms per step (batch 1, one submit each)",
        copied.len(),
        seq.t_len,
        busy.as_secs_f64() * 1e3 / seq.t_len as f64
    );
    Ok(())
}
