//! Drawing the mask picture: the strip of phases (copying) or pixels (sMNIST) along the time
//! axis, the drawn example's active mechanisms, and the batch's activity fractions.

use std::error::Error as StdError;
use std::ops::Range;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{
    ACTIVE, Area, Drawn, INACTIVE, PHASE_LINE, RIGHT, ROW_LINE, SIDE, TITLE_H, TOKEN, WIDTH, WRONG,
    Y_LABELS, centred, row_names, text,
};
use super::masks::{Marks, MaskFigure, Tokens};

impl MaskFigure {
    /// Height of each heatmap's plotting area.
    fn rows_h(&self) -> u32 {
        (22 * self.mechanisms as u32).clamp(88, 440)
    }

    /// Height of a heatmap panel with its caption and time axis.
    fn panel_h(&self) -> u32 {
        self.rows_h() + 30 + 46
    }

    fn strip_h(&self) -> u32 {
        match self.marks {
            Marks::Phases { .. } => 3 * 24 + 10,
            Marks::Rows { .. } => 34,
        }
    }

    pub(super) fn size(&self) -> (u32, u32) {
        (WIDTH, TITLE_H + self.strip_h() + 2 * self.panel_h() + 12)
    }

    fn mechanism_names(&self) -> Vec<String> {
        (0..self.mechanisms).map(|m| m.to_string()).collect()
    }

    /// Where vertical lines go on every panel: phase boundaries or image rows.
    fn boundaries(&self) -> Vec<usize> {
        match &self.marks {
            Marks::Phases { phases, .. } => phases
                .iter()
                .skip(1)
                .filter(|(_, r, _)| !r.is_empty())
                .map(|(_, r, _)| r.start)
                .collect(),
            Marks::Rows { s, .. } => (1..self.t_len.div_ceil(*s)).map(|r| r * s).collect(),
        }
    }

    fn boundary_style(&self) -> ShapeStyle {
        match self.marks {
            Marks::Phases { .. } => PHASE_LINE.stroke_width(2),
            Marks::Rows { .. } => ROW_LINE.mix(0.55).stroke_width(1),
        }
    }
}

pub(super) fn draw_masks(root: &Area<'_>, fig: &MaskFigure) -> Drawn {
    let body = root.titled(&fig.title, text(20))?;
    let (strip, rest) = body.split_vertically(fig.strip_h());
    let (top, bottom) = rest.split_vertically(fig.panel_h());
    let main_w = WIDTH - SIDE;
    let (strip, strip_side) = strip.split_horizontally(main_w);
    let (top, top_side) = top.split_horizontally(main_w);
    let (bottom, bottom_side) = bottom.split_horizontally(main_w);
    match &fig.marks {
        Marks::Phases { phases, tokens } => {
            draw_phase_strip(&strip, fig, phases, tokens)?;
            draw_swatches(
                &strip_side,
                8,
                &[(RIGHT, "output right"), (WRONG, "output wrong")],
            )?;
        }
        Marks::Rows { s, pixels } => {
            draw_pixel_strip(&strip, fig, pixels)?;
            draw_digit(&top_side, *s, pixels)?;
        }
    }
    draw_example(&top, fig)?;
    if let Marks::Phases { .. } = fig.marks {
        draw_swatches(&top_side, 50, &[(ACTIVE, "active"), (INACTIVE, "inactive")])?;
    }
    draw_fraction(&bottom, fig)?;
    draw_colour_bar(&bottom_side)?;
    Ok(())
}

/// The time-axis chart shared by the strips and panels: x = steps `0..T`, y = rows centred on
/// `0..rows`.
fn time_chart<'a, 'b>(
    area: &'a Area<'b>,
    t_len: usize,
    rows: usize,
    caption: Option<&str>,
    x_axis: bool,
) -> std::result::Result<TimeChart<'a, 'b>, Box<dyn StdError>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_right(12)
        .margin_top(4)
        .y_label_area_size(Y_LABELS)
        .x_label_area_size(if x_axis { 44 } else { 0 });
    if let Some(c) = caption {
        builder.caption(c, text(15));
    }
    Ok(builder.build_cartesian_2d(0f64..t_len as f64, -0.5f64..rows as f64 - 0.5)?)
}

fn draw_phase_strip(
    area: &Area<'_>,
    fig: &MaskFigure,
    phases: &[(&'static str, Range<usize>, RGBColor)],
    tokens: &Tokens,
) -> Drawn {
    let names = [
        "output".to_string(),
        "input".to_string(),
        "phase".to_string(),
    ];
    let mut chart = time_chart(area, fig.t_len, 3, None, false)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(3)
        .y_label_formatter(&row_names(&names))
        .y_label_style(text(13))
        .draw()?;
    let cell_px = {
        let (x0, _) = chart.backend_coord(&(0.0, 0.0));
        let (x1, _) = chart.backend_coord(&(1.0, 0.0));
        (x1 - x0) as u32
    };
    for (name, range, colour) in phases.iter().filter(|(_, r, _)| !r.is_empty()) {
        let (x0, x1) = (range.start as f64, range.end as f64);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x0, 1.55), (x1, 2.45)],
            colour.filled(),
        )))?;
        // The phase's name, or its initial where the name does not fit, or nothing.
        let room = cell_px * range.len() as u32;
        let area = chart.plotting_area();
        let initial = name[..1].to_uppercase();
        let label = if area.estimate_text_size(name, &text(13))?.0 + 4 <= room {
            name.to_string()
        } else if area.estimate_text_size(&initial, &text(13))?.0 + 2 <= room {
            initial
        } else {
            continue;
        };
        chart.draw_series(std::iter::once(Text::new(
            label,
            ((x0 + x1) / 2.0, 2.0),
            centred(13),
        )))?;
    }
    // Input tokens where non-zero; output tokens where they matter (the recall, or anything but
    // the expected 0), green when right and red when wrong. Digits when a cell can hold one.
    let mut cells = Vec::new();
    for t in 0..fig.t_len {
        if tokens.input[t] != 0 {
            cells.push((t, 1.0, tokens.input[t], TOKEN));
        }
        let (out, want) = (tokens.output[t], tokens.target[t]);
        if out != 0 || want != 0 {
            cells.push((t, 0.0, out, if out == want { RIGHT } else { WRONG }));
        }
    }
    for (t, row, token, colour) in cells {
        let x = t as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x, row - 0.42), (x + 1.0, row + 0.42)],
            colour.filled(),
        )))?;
        if cell_px >= 11 {
            chart.draw_series(std::iter::once(Text::new(
                token.to_string(),
                (x + 0.5, row),
                centred(13),
            )))?;
        }
    }
    draw_boundaries(&mut chart, fig, -0.5, 2.5)?;
    Ok(())
}

fn draw_pixel_strip(area: &Area<'_>, fig: &MaskFigure, pixels: &[u32]) -> Drawn {
    let names = ["pixel".to_string()];
    let mut chart = time_chart(area, fig.t_len, 1, None, false)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(1)
        .y_label_formatter(&row_names(&names))
        .y_label_style(text(13))
        .draw()?;
    chart.draw_series(
        pixels
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != 0)
            .map(|(t, _)| {
                Rectangle::new([(t as f64, -0.45), (t as f64 + 1.0, 0.45)], BLACK.filled())
            }),
    )?;
    draw_boundaries(&mut chart, fig, -0.5, 0.5)?;
    Ok(())
}

type TimeChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_boundaries(chart: &mut TimeChart<'_, '_>, fig: &MaskFigure, y0: f64, y1: f64) -> Drawn {
    let style = fig.boundary_style();
    chart.draw_series(
        fig.boundaries()
            .into_iter()
            .map(|x| PathElement::new(vec![(x as f64, y0), (x as f64, y1)], style)),
    )?;
    Ok(())
}

/// A heatmap panel's axes: time steps along x, mechanisms along y.
fn heatmap_axes(chart: &mut TimeChart<'_, '_>, fig: &MaskFigure) -> Drawn {
    let names = fig.mechanism_names();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time step")
        .y_desc("mechanism")
        .x_labels(12)
        .y_labels(fig.mechanisms)
        .x_label_formatter(&|v| format!("{}", v.round() as i64))
        .y_label_formatter(&row_names(&names))
        .label_style(text(13))
        .axis_desc_style(text(14))
        .draw()?;
    Ok(())
}

fn draw_example(area: &Area<'_>, fig: &MaskFigure) -> Drawn {
    let caption = format!(
        "example {}: mechanisms active at each step (top-k selection)",
        fig.example_index
    );
    let mut chart = time_chart(area, fig.t_len, fig.mechanisms, Some(&caption), true)?;
    heatmap_axes(&mut chart, fig)?;
    let n = fig.mechanisms;
    // The background row, then each run of active steps as one bar.
    for m in 0..n {
        let y = m as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y - 0.42), (fig.t_len as f64, y + 0.42)],
            INACTIVE.filled(),
        )))?;
        let mut t = 0;
        while t < fig.t_len {
            if !fig.example[t * n + m] {
                t += 1;
                continue;
            }
            let start = t;
            while t < fig.t_len && fig.example[t * n + m] {
                t += 1;
            }
            chart.draw_series(std::iter::once(Rectangle::new(
                [(start as f64, y - 0.42), (t as f64, y + 0.42)],
                ACTIVE.filled(),
            )))?;
        }
    }
    draw_boundaries(&mut chart, fig, -0.5, n as f64 - 0.5)?;
    Ok(())
}

fn grey(fraction: f64) -> RGBColor {
    let v = (255.0 * (1.0 - fraction.clamp(0.0, 1.0))).round() as u8;
    RGBColor(v, v, v)
}

fn draw_fraction(area: &Area<'_>, fig: &MaskFigure) -> Drawn {
    let caption = format!(
        "fraction of the {} sequences in which each mechanism is active",
        fig.batch
    );
    let mut chart = time_chart(area, fig.t_len, fig.mechanisms, Some(&caption), true)?;
    heatmap_axes(&mut chart, fig)?;
    let n = fig.mechanisms;
    chart.draw_series((0..fig.t_len).flat_map(|t| {
        (0..n).map(move |m| {
            let (x, y) = (t as f64, m as f64);
            Rectangle::new(
                [(x, y - 0.5), (x + 1.0, y + 0.5)],
                grey(fig.fraction[t * n + m]).filled(),
            )
        })
    }))?;
    // A frame, so that rows never active still show where the panel is.
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, -0.5), (fig.t_len as f64, n as f64 - 0.5)],
        BLACK.stroke_width(1),
    )))?;
    draw_boundaries(&mut chart, fig, -0.5, n as f64 - 0.5)?;
    Ok(())
}

/// A legend of colour swatches, one a line, starting `top` pixels down the area.
fn draw_swatches(area: &Area<'_>, top: i32, items: &[(RGBColor, &str)]) -> Drawn {
    for (i, (colour, label)) in items.iter().enumerate() {
        let y = top + 28 * i as i32;
        area.draw(&Rectangle::new([(16, y), (36, y + 18)], colour.filled()))?;
        area.draw(&Rectangle::new(
            [(16, y), (36, y + 18)],
            BLACK.stroke_width(1),
        ))?;
        area.draw(&Text::new(
            *label,
            (44, y + 9),
            text(14).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

fn draw_colour_bar(area: &Area<'_>) -> Drawn {
    area.draw(&Text::new(
        "fraction active",
        (16, 16),
        text(14).pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(52)
        .margin_left(16)
        .margin_right(90)
        .set_label_area_size(LabelAreaPosition::Right, 40)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(3)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(text(13))
        .draw()?;
    let steps = 50;
    chart.draw_series((0..steps).map(|i| {
        let (y0, y1) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
        Rectangle::new([(0.0, y0), (1.0, y1)], grey((y0 + y1) / 2.0).filled())
    }))?;
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, 0.0), (1.0, 1.0)],
        BLACK.stroke_width(1),
    )))?;
    Ok(())
}

/// The example's binarised S×S image, in the side column.
fn draw_digit(area: &Area<'_>, s: usize, pixels: &[u32]) -> Drawn {
    let (w, _) = area.dim_in_pixel();
    let size = (w as i32 - 40).min(130);
    let cell = size as f64 / s as f64;
    let (x0, y0) = (20, 40);
    area.draw(&Text::new(
        format!("input {s}x{s}"),
        (x0, 16),
        text(14).pos(Pos::new(HPos::Left, VPos::Center)),
    ))?;
    for (i, &p) in pixels.iter().enumerate() {
        let (r, c) = (i / s, i % s);
        let colour = if p != 0 {
            BLACK
        } else {
            RGBColor(245, 245, 245)
        };
        let a = (x0 + (c as f64 * cell) as i32, y0 + (r as f64 * cell) as i32);
        let b = (
            x0 + ((c + 1) as f64 * cell) as i32,
            y0 + ((r + 1) as f64 * cell) as i32,
        );
        area.draw(&Rectangle::new([a, b], colour.filled()))?;
    }
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + size, y0 + size)],
        BLACK.stroke_width(1),
    ))?;
    Ok(())
}
