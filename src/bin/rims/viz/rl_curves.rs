//! `rims viz --metrics` on reinforcement-learning runs: each update's mean return and success
//! rate (over the episodes that ended during its rollout) against the frames collected, one
//! colour per run (seeds of one configuration, `NAME-s1`, `NAME-s2`, share a colour and a legend
//! entry, as in `curves::compare`). Updates in which no episode ended are left out; the bold
//! lines are running means over a few updates, weighted by their episodes, drawn over the raw
//! values in a pale shade.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use rims::rl::train::{UpdateRecord, read_updates};
use rims::train::checkpoint::{self, METRICS_FILE};
use rims::{Error, Result};

use super::VizArgs;
use super::curves::{Series, draw_lines, run_name, series_colour};
use super::draw::{Area, Drawn, WIDTH, beside_run, draw_error, render, text, write_png};

/// Whether `dir` is a reinforcement-learning run: its checkpoint holds `rl.json`, or (a metrics
/// file on its own) its first record is an update record.
pub(super) fn is_rl_run(dir: &Path) -> bool {
    if super::episode::is_rl_checkpoint(dir) {
        return true;
    }
    std::fs::read_to_string(dir.join(METRICS_FILE))
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| !l.trim().is_empty())?.to_string();
            serde_json::from_str::<serde_json::Value>(&line).ok()
        })
        .is_some_and(|v| v.get("update").is_some() && v.get("mean_return").is_some())
}

/// Whether any of `dirs` is a reinforcement-learning run.
pub(super) fn any_rl(dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| is_rl_run(d))
}

/// A curve's (frames, value) points.
type Points = Vec<(f64, f64)>;

/// The running mean of `value` over the last `window` updates that had episodes, weighted by
/// their episodes, at each such update's frame count; and the raw values.
pub(super) fn smoothed(
    records: &[UpdateRecord],
    value: fn(&UpdateRecord) -> f64,
    window: usize,
) -> (Points, Points) {
    let kept: Vec<&UpdateRecord> = records.iter().filter(|r| r.episodes > 0).collect();
    let raw = kept.iter().map(|r| (r.frames as f64, value(r))).collect();
    let mean = (0..kept.len())
        .map(|i| {
            let span = &kept[(i + 1).saturating_sub(window.max(1))..=i];
            let weight: f64 = span.iter().map(|r| r.episodes as f64).sum();
            let total: f64 = span.iter().map(|r| r.episodes as f64 * value(r)).sum();
            (kept[i].frames as f64, total / weight)
        })
        .collect();
    (mean, raw)
}

/// The running mean's window for runs of `updates` updates at most.
fn window_for(updates: usize) -> usize {
    (updates / 20).clamp(1, 25)
}

/// A frame count in few characters: 512, 50k, 1.2M.
fn frames_label(v: &f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if *v >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if *v >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else {
        format!("{}", v.round() as i64)
    }
}

/// One run's curves as drawn: the smoothed series and the raw ones behind them.
pub(super) struct RlCurves {
    pub(super) returns: Vec<Series>,
    pub(super) success: Vec<Series>,
    pub(super) raw_returns: Vec<Series>,
    pub(super) raw_success: Vec<Series>,
    /// Updates in the running mean.
    pub(super) window: usize,
}

/// The curves of `runs` (name, colour index, whether it names its group in the legend, records).
pub(super) fn rl_curves(runs: &[(String, usize, Vec<UpdateRecord>)]) -> RlCurves {
    let longest = runs.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let window = window_for(longest);
    let mut c = RlCurves {
        returns: Vec::new(),
        success: Vec::new(),
        raw_returns: Vec::new(),
        raw_success: Vec::new(),
        window,
    };
    // Dots on short curves, where each update is worth seeing.
    let series = |name: &str, points: Points, colour: RGBColor| Series {
        name: name.to_string(),
        markers: points.len() <= 30,
        points,
        colour,
        dashed: false,
    };
    for (name, colour, records) in runs {
        let colour = series_colour(*colour);
        let (mean, raw) = smoothed(records, |r| r.mean_return, window);
        c.returns.push(series(name, mean, colour));
        c.raw_returns.push(series("", raw, colour));
        let (mean, raw) = smoothed(records, |r| 100.0 * r.success_rate, window);
        c.success.push(series(name, mean, colour));
        c.raw_success.push(series("", raw, colour));
    }
    c
}

/// `rims viz --metrics DIR...` where the runs are reinforcement-learning runs.
pub(super) fn curves(args: &VizArgs, dirs: &[PathBuf]) -> Result<()> {
    let kinds: Vec<bool> = dirs.iter().map(|d| is_rl_run(d)).collect();
    if let (Some(rl), Some(other)) = (
        kinds.iter().position(|&k| k),
        kinds.iter().position(|&k| !k),
    ) {
        return Err(Error::config(
            "--metrics",
            format!(
                "{} is a reinforcement-learning run and {} is not: compare runs of one kind",
                dirs[rl].display(),
                dirs[other].display()
            ),
        ));
    }
    let out = match (dirs, &args.out) {
        (_, Some(out)) => out.clone(),
        ([dir], None) => beside_run(dir, "curves.png"),
        _ => {
            return Err(Error::config(
                "--out",
                "a comparison of several runs needs --out FILE.png",
            ));
        }
    };
    let inputs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    checkpoint::check_output(&out, &inputs)?;
    let mut groups: Vec<String> = Vec::new();
    let mut runs = Vec::new();
    let (mut updates, mut frames) = (0, 0);
    for dir in dirs {
        let records = read_updates(dir)?;
        if records.is_empty() {
            return Err(Error::file(
                dir.join(METRICS_FILE),
                "holds no records yet (the run's first update writes one)",
            ));
        }
        updates = updates.max(records.len());
        frames = frames.max(records.last().map_or(0, |r| r.frames));
        let group = crate::summary::group_name(dir);
        let first = !groups.contains(&group);
        if first {
            groups.push(group.clone());
        }
        let seeds = dirs
            .iter()
            .filter(|d| crate::summary::group_name(d) == group)
            .count();
        let name = match (first, seeds) {
            (false, _) => String::new(),
            (true, 1) => run_name(dir),
            (true, n) => format!("{group} ({n} seeds)"),
        };
        let colour = groups.iter().position(|g| *g == group).unwrap_or(0);
        runs.push((name, colour, records));
    }
    let c = rl_curves(&runs);
    let title = match dirs {
        [dir] => format!(
            "reinforcement learning: {} ({updates} updates, {frames} frames)",
            dir.display()
        ),
        _ => format!(
            "{} runs of {} configurations compared (up to {frames} frames)",
            dirs.len(),
            groups.len()
        ),
    };
    let (w, h) = (WIDTH, 520);
    let rgb =
        render(w, h, |root| draw_rl_curves(root, &title, &c)).map_err(|e| draw_error(&out, &*e))?;
    write_png(&out, &rgb, w, h)?;
    println!(
        "wrote {} ({w}x{h}): {} runs, {updates} updates, {frames} frames; mean return and \
         success rate (running mean of {} updates)",
        out.display(),
        dirs.len(),
        c.window
    );
    Ok(())
}

pub(super) fn draw_rl_curves(root: &Area<'_>, title: &str, c: &RlCurves) -> Drawn {
    let body = root.titled(title, text(20))?;
    let panels = body.split_evenly((1, 2));
    let mean = if c.window > 1 {
        format!(" (running mean of {} updates)", c.window)
    } else {
        String::new()
    };
    draw_panel(
        &panels[0],
        &format!("mean return{mean}"),
        "mean return",
        1.02,
        &c.returns,
        &c.raw_returns,
    )?;
    draw_panel(
        &panels[1],
        &format!("success rate{mean}"),
        "success (%)",
        102.0,
        &c.success,
        &c.raw_success,
    )
}

fn draw_panel(
    area: &Area<'_>,
    caption: &str,
    y_desc: &str,
    top: f64,
    series: &[Series],
    raw: &[Series],
) -> Drawn {
    let hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max);
    let x = 0.0..if hi > 0.0 { hi * 1.04 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption(caption, text(16))
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, 0f64..top)?;
    let digits = if top > 2.0 { 0 } else { 1 };
    chart
        .configure_mesh()
        .x_desc("frames")
        .y_desc(y_desc)
        .x_labels(8)
        .x_label_formatter(&frames_label)
        .y_label_formatter(&|v| format!("{v:.digits$}"))
        .light_line_style(TRANSPARENT)
        .label_style(text(13))
        .axis_desc_style(text(14))
        .draw()?;
    let window_drawn = raw.iter().zip(series).any(|(r, s)| r.points != s.points);
    if window_drawn {
        for r in raw {
            chart.draw_series(LineSeries::new(
                r.points.clone(),
                r.colour.mix(0.3).stroke_width(1),
            ))?;
        }
    }
    draw_lines(&mut chart, series)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(update: u64, episodes: usize, ret: f64) -> UpdateRecord {
        UpdateRecord {
            update,
            frames: update * 100,
            episodes,
            mean_return: ret,
            success_rate: if ret > 0.0 { 1.0 } else { 0.0 },
            ..UpdateRecord::default()
        }
    }

    #[test]
    fn running_means_skip_updates_without_episodes_and_weigh_by_episodes() {
        let r = [
            record(1, 1, 0.0),
            record(2, 0, 0.0),
            record(3, 3, 0.8),
            record(4, 1, 0.4),
        ];
        let (mean, raw) = smoothed(&r, |r| r.mean_return, 2);
        assert_eq!(raw, vec![(100.0, 0.0), (300.0, 0.8), (400.0, 0.4)]);
        assert_eq!(mean[0], (100.0, 0.0));
        assert!((mean[1].1 - 0.6).abs() < 1e-12, "{mean:?}");
        assert!((mean[2].1 - 0.7).abs() < 1e-12, "{mean:?}");
        assert_eq!(frames_label(&512.0), "512");
        assert_eq!(frames_label(&50_000.0), "50k");
        assert_eq!(frames_label(&1_250_000.0), "1.25M");
    }
}
