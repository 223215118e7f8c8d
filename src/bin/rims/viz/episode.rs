//! `rims viz --checkpoint DIR` on a reinforcement-learning run: one evaluation episode played
//! by the run's agent (`rims::rl::eval::trace`), gathered into what `episode_picture.rs` draws:
//! the world before each action and after the last, the actions, and which mechanisms were
//! active at every step.

use std::path::Path;

use rims::rl::batch::MAX_ENVS;
use rims::rl::eval::{Policy, Trace, trace};
use rims::rl::train::{load_agent, read_rl_state};
use rims::rl::{Action, Env, World};
use rims::train::checkpoint;
use rims::{Error, Result};

use super::VizArgs;
use super::draw::{beside_run, draw_error, render, write_png};
use super::episode_picture::draw_episode;

/// Frames drawn at most (the episode's first ones); the mechanism map covers every step.
pub(super) const MAX_FRAMES: usize = 40;

/// What the episode picture shows.
pub(super) struct EpisodeFigure {
    /// The picture's first line: world, episode, return, success.
    pub(super) title: String,
    /// Its second line: the agent and its run.
    pub(super) subtitle: String,
    /// The world before each drawn frame's action (and after the last action, when the whole
    /// episode is drawn): the episode's first [`MAX_FRAMES`] at most.
    pub(super) envs: Vec<Env>,
    /// Under each drawn frame: its step and action, or how the episode ended.
    pub(super) labels: Vec<String>,
    /// States in the whole episode (its steps + 1).
    pub(super) total_frames: usize,
    /// `[steps][N]`: whether mechanism `m` was active at step `t`.
    pub(super) masks: Vec<Vec<bool>>,
    /// N (1 for a dense core).
    pub(super) mechanisms: usize,
    /// Whether the core is dense (its one row always active).
    pub(super) dense: bool,
}

/// Whether `dir`'s current checkpoint is a reinforcement-learning one (holds `rl.json`).
pub(super) fn is_rl_checkpoint(dir: &Path) -> bool {
    checkpoint::current(dir).is_ok_and(|set| set.join(checkpoint::RL_STATE_FILE).is_file())
}

/// The action's name as MiniGrid's `Actions` spells it.
pub(super) fn action_name(a: Action) -> &'static str {
    match a {
        Action::Left => "left",
        Action::Right => "right",
        Action::Forward => "forward",
        Action::Pickup => "pickup",
        Action::Drop => "drop",
        Action::Toggle => "toggle",
        Action::Done => "done",
    }
}

pub(super) fn picture(args: &VizArgs, dir: &Path) -> Result<()> {
    for (given, flag) in [
        (args.task.is_some(), "--task"),
        (args.batch.is_some(), "--batch"),
        (args.resolution.is_some(), "--resolution"),
        (args.length.is_some(), "--length"),
        (args.set.is_some(), "--set"),
    ] {
        if given {
            return Err(Error::config(
                flag,
                "is not for reinforcement-learning runs: their picture takes --env, --example \
                 and --greedy",
            ));
        }
    }
    let state = read_rl_state(dir)?;
    let env_name = args.env.clone().unwrap_or_else(|| state.config.env.clone());
    let world = World::parse(&env_name).map_err(|e| match e {
        Error::Config { reason, .. } => Error::config("--env", reason),
        e => e,
    })?;
    if args.example >= MAX_ENVS {
        return Err(Error::config(
            "--example",
            format!(
                "{} is out of range: evaluation episodes are numbered 0 to {}",
                args.example,
                MAX_ENVS - 1
            ),
        ));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| beside_run(dir, &format!("episode_{world}.png")));
    checkpoint::check_output(&out, &[dir])?;
    let ctx = args.device.open()?;
    let (agent, state) = load_agent(&ctx, dir)?;
    let policy = if args.greedy {
        Policy::Greedy
    } else {
        Policy::Sample
    };
    let t = trace(&ctx, &agent, world, args.example as u64, policy)?;
    let cfg = &state.config;
    let core = match cfg.model.as_str() {
        "rims" => format!(
            "RIMs N={} k={} H={} ({} cells)",
            cfg.mechanisms, cfg.active, cfg.hidden, cfg.cell
        ),
        m => format!("dense {m} of {} units", cfg.hidden),
    };
    let subtitle = format!(
        "{core}; trained on {} for {} frames (update {}); {}",
        cfg.env,
        state.progress.frames,
        state.progress.update,
        dir.display()
    );
    let fig = figure(
        &t,
        world,
        args.example,
        policy,
        cfg.model != "rims",
        subtitle,
    );
    let (w, h) = fig.size();
    let rgb = render(w, h, |root| draw_episode(root, &fig)).map_err(|e| draw_error(&out, &*e))?;
    write_png(&out, &rgb, w, h)?;
    let ret: f32 = t.rewards.iter().sum();
    println!(
        "wrote {} ({w}x{h}): episode {} of {world}, {} steps, return {ret:.3} ({}), {} frames \
         drawn; {} mechanisms x {} steps",
        out.display(),
        args.example,
        t.actions.len(),
        if ret > 0.0 { "success" } else { "failure" },
        fig.envs.len(),
        fig.mechanisms,
        fig.masks.len()
    );
    Ok(())
}

/// The picture of trace `t` (episode `episode` of `world`, played with `policy`).
pub(super) fn figure(
    t: &Trace,
    world: World,
    episode: usize,
    policy: Policy,
    dense: bool,
    subtitle: String,
) -> EpisodeFigure {
    let steps = t.actions.len();
    let ret: f32 = t.rewards.iter().sum();
    let success = ret > 0.0;
    let last = t.envs.last();
    let timed_out = last.is_some_and(|e| e.step_count() >= e.rules().max_steps);
    let ending = if success {
        format!("success in {steps} steps")
    } else if timed_out {
        format!("failure: out of time after {steps} steps")
    } else {
        format!("failure after {steps} steps")
    };
    let policy = match policy {
        Policy::Sample => "sampled actions",
        Policy::Greedy => "greedy actions",
    };
    let shown = t.envs.len().min(MAX_FRAMES);
    let labels = (0..shown)
        .map(|i| match t.actions.get(i) {
            Some(&a) => format!("{i} {}", action_name(a)),
            None if success => format!("end +{ret:.2}"),
            None if timed_out => "out of time".to_string(),
            None => "end, 0".to_string(),
        })
        .collect();
    let mechanisms = t.masks.first().map_or(1, Vec::len).max(1);
    EpisodeFigure {
        title: format!("{world}, episode {episode} ({policy}): return {ret:.3}, {ending}"),
        subtitle,
        envs: t.envs[..shown].to_vec(),
        labels,
        total_frames: t.envs.len(),
        masks: t
            .masks
            .iter()
            .map(|m| {
                (0..mechanisms)
                    .map(|i| m.get(i).is_some_and(|&v| v > 0.5))
                    .collect()
            })
            .collect(),
        mechanisms,
        dense,
    }
}
