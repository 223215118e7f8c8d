//! `rims viz --metrics`: training curves from `metrics.jsonl`, of one run or of several runs
//! compared on one picture.

use std::error::Error as StdError;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use rims::train::{self, EvalRecord, EvalResult, checkpoint};
use rims::{Error, Result};

use super::VizArgs;
use super::draw::{Area, Drawn, WIDTH, beside_run, draw_error, render, text, write_png};

/// A named curve of (step, value) points.
pub(super) struct Series {
    pub(super) name: String,
    pub(super) points: Vec<(f64, f64)>,
    /// One colour per size (the train loss is black); a second split is dashed.
    pub(super) colour: RGBColor,
    pub(super) dashed: bool,
    /// A dot at every point (off for long, dense curves).
    pub(super) markers: bool,
}

fn series_name(split: &str, size: usize, rollout: bool) -> String {
    if split == "copy" {
        format!("eval T={size}")
    } else if rollout {
        format!("{split} frame {size}")
    } else {
        format!("{split} {size}x{size}")
    }
}

/// Train loss, eval loss per (split, size), and eval accuracy (in %) per (split, size). A
/// balls run's records (rollouts, on sets named `test-…`) give one series per set: its last
/// rollout frame, where the sets differ most.
pub(super) fn curves_of(records: &[EvalRecord]) -> (Vec<Series>, Vec<Series>) {
    let rollout = records
        .iter()
        .flat_map(|r| &r.eval)
        .any(|e| e.split.starts_with("test-"));
    let last_frame = records
        .iter()
        .flat_map(|r| &r.eval)
        .map(|e| e.size)
        .max()
        .unwrap_or(0);
    let mut losses = vec![Series {
        name: "train (epoch mean)".into(),
        points: records
            .iter()
            .map(|r| (r.step as f64, r.train_loss))
            .collect(),
        colour: BLACK,
        dashed: false,
        markers: true,
    }];
    let mut accuracy: Vec<Series> = Vec::new();
    let (mut keys, mut splits, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for e in records.iter().flat_map(|r| &r.eval) {
        if rollout && e.size != last_frame {
            continue;
        }
        let key = (e.split.clone(), e.size);
        if !keys.contains(&key) {
            keys.push(key);
        }
        if !splits.contains(&e.split) {
            splits.push(e.split.clone());
        }
        if !sizes.contains(&e.size) {
            sizes.push(e.size);
        }
    }
    for (split, size) in keys {
        let of = |f: fn(&EvalResult) -> f64| -> Vec<(f64, f64)> {
            records
                .iter()
                .flat_map(|r| {
                    r.eval
                        .iter()
                        .filter(|e| e.split == split && e.size == size)
                        .map(move |e| (r.step as f64, f(e)))
                })
                .collect()
        };
        let series = |points| Series {
            name: series_name(&split, size, rollout),
            points,
            // Rollouts: one size, so the sets take the colours.
            colour: series_colour(if rollout {
                splits.iter().position(|s| *s == split).unwrap_or(0)
            } else {
                sizes.iter().position(|&s| s == size).unwrap_or(0)
            }),
            dashed: !rollout && splits.iter().position(|s| *s == split).unwrap_or(0) > 0,
            markers: true,
        };
        losses.push(series(of(|e| e.loss)));
        accuracy.push(series(of(|e| 100.0 * e.accuracy)));
    }
    (losses, accuracy)
}

pub(super) fn curves(args: &VizArgs, dir: &Path) -> Result<()> {
    let path = dir.join("metrics.jsonl");
    let records = train::read_records(&path)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| beside_run(dir, "curves.png"));
    checkpoint::check_output(&out, &[dir])?;
    let (losses, accuracy) = curves_of(&records);
    let title = format!(
        "training curves: {} ({} evaluations, {} steps)",
        dir.display(),
        records.len(),
        records.last().map_or(0, |r| r.step)
    );
    let (w, h) = (WIDTH, 520);
    let rgb = render(w, h, |root| draw_curves(root, &title, &losses, &accuracy))
        .map_err(|e| draw_error(&out, &*e))?;
    write_png(&out, &rgb, w, h)?;
    println!(
        "wrote {} ({w}x{h}): {} evaluations, {} accuracy series",
        out.display(),
        records.len(),
        accuracy.len()
    );
    Ok(())
}

/// A run's name on a comparison picture: its directory's last component.
pub(super) fn run_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `rims viz --metrics DIR1 DIR2 ...`: the eval curves of several runs on one picture.
pub(super) fn compare(args: &VizArgs, dirs: &[PathBuf]) -> Result<()> {
    let out = args
        .out
        .clone()
        .ok_or_else(|| Error::config("out", "a comparison of several runs needs --out FILE.png"))?;
    let inputs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    checkpoint::check_output(&out, &inputs)?;
    let (mut losses, mut accuracy) = (Vec::new(), Vec::new());
    let mut sizes: Vec<(String, usize)> = Vec::new();
    let mut steps = 0;
    // Seeds of one configuration (NAME-s1, NAME-s2, ...) share a colour and a legend entry.
    let mut groups: Vec<String> = Vec::new();
    for dir in dirs {
        let records = train::read_records(&dir.join("metrics.jsonl"))?;
        steps = steps.max(records.last().map_or(0, |r| r.step));
        let (l, a) = curves_of(&records);
        let group = crate::summary::group_name(dir);
        let first = !groups.contains(&group);
        if first {
            groups.push(group.clone());
        }
        let run = groups.iter().position(|g| *g == group).unwrap_or(0);
        let seeds = dirs
            .iter()
            .filter(|d| crate::summary::group_name(d) == group)
            .count();
        let name = if seeds > 1 {
            format!("{group} ({seeds} seeds)")
        } else {
            run_name(dir)
        };
        // Skip the train loss (index 0): one per run would crowd the panel.
        for (series, into) in [
            (l.into_iter().skip(1).collect::<Vec<_>>(), &mut losses),
            (a, &mut accuracy),
        ] {
            for mut s in series {
                let key = (s.name.clone(), 0);
                if !sizes.contains(&key) {
                    sizes.push(key.clone());
                }
                s.dashed = sizes.iter().position(|k| *k == key).unwrap_or(0) > 0;
                s.colour = series_colour(run);
                s.name = if first {
                    format!("{name}: {}", s.name)
                } else {
                    String::new()
                };
                into.push(s);
            }
        }
    }
    let title = format!(
        "{} runs of {} configurations compared ({steps} steps)",
        dirs.len(),
        groups.len()
    );
    let (w, h) = (WIDTH, 520);
    let rgb = render(w, h, |root| draw_curves(root, &title, &losses, &accuracy))
        .map_err(|e| draw_error(&out, &*e))?;
    write_png(&out, &rgb, w, h)?;
    println!(
        "wrote {} ({w}x{h}): {} runs of {} configurations, {} accuracy series",
        out.display(),
        dirs.len(),
        groups.len(),
        accuracy.len()
    );
    Ok(())
}

pub(super) fn series_colour(i: usize) -> RGBColor {
    // A qualitative palette (ColorBrewer Dark2); the train loss is black.
    const COLOURS: [RGBColor; 8] = [
        RGBColor(27, 158, 119),
        RGBColor(217, 95, 2),
        RGBColor(117, 112, 179),
        RGBColor(231, 41, 138),
        RGBColor(102, 166, 30),
        RGBColor(230, 171, 2),
        RGBColor(166, 118, 29),
        RGBColor(102, 102, 102),
    ];
    COLOURS[i % COLOURS.len()]
}

/// The step range of all series, widened when there is a single step.
fn step_range(series: &[Series]) -> Range<f64> {
    let steps = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let hi = steps.fold(0.0f64, f64::max);
    0.0..if hi > 0.0 { hi * 1.04 } else { 1.0 }
}

/// How many step labels to ask for: no more than there are whole steps.
fn step_labels(x: &Range<f64>) -> usize {
    (x.end.floor() as usize + 1).clamp(2, 10)
}

/// Step labels: whole steps only (a short run's axis would otherwise read 0.5, 1.5, ...).
fn integers(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

/// A loss value in few characters: 2.5, 0.31, 0.004.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = if v.abs() >= 10.0 {
        0
    } else {
        (2 - v.abs().log10().floor() as i32).clamp(1, 6) as usize
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub(super) fn draw_curves(
    root: &Area<'_>,
    title: &str,
    losses: &[Series],
    accuracy: &[Series],
) -> Drawn {
    let body = root.titled(title, text(20))?;
    let panels = body.split_evenly((1, 2));
    draw_loss_panel(&panels[0], losses)?;
    draw_accuracy_panel(&panels[1], accuracy)?;
    Ok(())
}

pub(super) fn draw_lines<'a, 'b: 'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>,
    series: &[Series],
) -> Drawn
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for s in series {
        let style = s.colour.stroke_width(2);
        if s.markers {
            chart.draw_series(
                s.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, s.colour.filled())),
            )?;
        }
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.clone(), 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(s.points.clone(), style))?
        };
        if s.name.is_empty() {
            // A further seed of a group already in the legend.
            continue;
        }
        let dashed = s.dashed;
        drawn.label(s.name.clone()).legend(move |(x, y)| {
            // Two pieces, with a gap between them when the series is dashed.
            let (a, b) = if dashed {
                (x + 9, x + 15)
            } else {
                (x + 12, x + 12)
            };
            EmptyElement::at((0, 0))
                + PathElement::new(vec![(x, y), (a, y)], style)
                + PathElement::new(vec![(b, y), (x + 24, y)], style)
        });
    }
    let position = legend_position(chart, series)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(text(13))
        .position(position)
        .draw()?;
    Ok(())
}

/// The corner of the plot where the legend hides the fewest points of the curves (sampled
/// along every segment), preferring the upper right.
fn legend_position<X, Y>(
    chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    series: &[Series],
) -> std::result::Result<SeriesLabelPosition, Box<dyn StdError>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    // The legend's size, as plotters lays it out: text, a 30-pixel sample, 10-pixel margins.
    let area = chart.plotting_area();
    let mut text_w = 0;
    for s in series {
        text_w = text_w.max(area.estimate_text_size(&s.name, &text(13))?.0 as i32);
    }
    let line_h = area.estimate_text_size("Ag", &text(13))?.1 as i32 + 4;
    let (w, h) = (text_w + 50, line_h * series.len() as i32 + 20);
    let (xs, ys) = area.get_pixel_range();
    let mut pixels = Vec::new();
    for s in series {
        let p: Vec<(i32, i32)> = s.points.iter().map(|p| chart.backend_coord(p)).collect();
        pixels.extend(p.iter().copied());
        for pair in p.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            pixels.extend((1..16).map(|i| (x0 + (x1 - x0) * i / 16, y0 + (y1 - y0) * i / 16)));
        }
    }
    let corners = [
        (
            SeriesLabelPosition::UpperRight,
            xs.end - 5 - w,
            ys.start + 5,
        ),
        (
            SeriesLabelPosition::LowerRight,
            xs.end - 5 - w,
            ys.end - 5 - h,
        ),
        (SeriesLabelPosition::UpperLeft, xs.start + 5, ys.start + 5),
        (SeriesLabelPosition::LowerLeft, xs.start + 5, ys.end - 5 - h),
    ];
    let hidden = |x0: i32, y0: i32| {
        pixels
            .iter()
            .filter(|(x, y)| (x0 - 6..=x0 + w + 6).contains(x) && (y0 - 6..=y0 + h + 6).contains(y))
            .count()
    };
    let best = corners
        .into_iter()
        .min_by_key(|(_, x0, y0)| hidden(*x0, *y0))
        .map_or(SeriesLabelPosition::UpperRight, |(p, ..)| p);
    Ok(best)
}

fn draw_loss_panel(area: &Area<'_>, losses: &[Series]) -> Drawn {
    let values = losses.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let x = step_range(losses);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .caption("cross-entropy loss", text(16))
        .x_label_area_size(44)
        .y_label_area_size(64);
    if lo > 0.0 && hi / lo > 20.0 {
        // Log scale: the loss falls over orders of magnitude.
        let mut chart = builder.build_cartesian_2d(x.clone(), (lo / 1.3..hi * 1.3).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss (log scale)")
            .x_labels(step_labels(&x))
            .x_label_formatter(&integers)
            .y_label_formatter(&|v| short(*v))
            .light_line_style(TRANSPARENT)
            .label_style(text(13))
            .axis_desc_style(text(14))
            .draw()?;
        draw_lines(&mut chart, losses)
    } else {
        let pad = ((hi - lo) * 0.1).max(1e-4 * hi.abs()).max(1e-6);
        let (y0, y1) = ((lo - pad).max(0.0), hi + pad);
        // Enough decimals to tell ten ticks apart.
        let digits = (-((y1 - y0) / 10.0).log10().floor()).clamp(0.0, 8.0) as usize;
        let mut chart = builder.build_cartesian_2d(x.clone(), y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .x_labels(step_labels(&x))
            .x_label_formatter(&integers)
            .y_label_formatter(&|v| format!("{v:.digits$}"))
            .light_line_style(TRANSPARENT)
            .label_style(text(13))
            .axis_desc_style(text(14))
            .draw()?;
        draw_lines(&mut chart, losses)
    }
}

fn draw_accuracy_panel(area: &Area<'_>, accuracy: &[Series]) -> Drawn {
    let x = step_range(accuracy);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption("eval accuracy", text(16))
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x.clone(), 0f64..102f64)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("accuracy (%)")
        .x_labels(step_labels(&x))
        .x_label_formatter(&integers)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(TRANSPARENT)
        .label_style(text(13))
        .axis_desc_style(text(14))
        .draw()?;
    draw_lines(&mut chart, accuracy)
}
