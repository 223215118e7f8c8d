//! Rendering the balls to an `S×S` frame of f32 intensities in `[0, 1]`.
//!
//! Pixel (row `i`, column `j`) covers `[j/S, (j+1)/S) × [i/S, (i+1)/S)` of the box, so its centre
//! is `((j + ½)/S, (i + ½)/S)` in the balls' `[x, y]`. A ball of radius `R = r·S` pixels whose
//! centre is `d` pixels from a pixel's centre gives that pixel `clamp(R − d + ½, 0, 1)`: the
//! fraction of a one-pixel-wide ramp across the disc's edge, a cheap coverage estimate (anti-
//! aliased, and smooth in the ball's position, which hard edges are not). Its total over the
//! plane is `π(R² + 1/12)`, within 1% of the disc's area `πR²` for `R ≥ 3` pixels. Where discs
//! overlap the pixel takes the larger value, so an overlap is not brighter than a ball. The
//! curtain, if any, is drawn last at intensity 1 over everything.

use super::physics::Ball;

/// An opaque vertical band of the frame, `[left, right)` in box units: every pixel column
/// whose centre lies inside it is drawn at 1.0 over the balls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Curtain {
    /// Left edge, box units.
    pub left: f64,
    /// Right edge, box units (`left < right`).
    pub right: f64,
}

impl Curtain {
    /// The default curtain: the middle quarter of the frame, `[3/8, 5/8)` (S/4 columns when 8
    /// divides S), wide enough to hide a default ball (diameter 0.2) completely.
    pub const MIDDLE: Curtain = Curtain {
        left: 0.375,
        right: 0.625,
    };

    /// Whether the pixel column `j` of an `size`-wide frame is behind the curtain.
    pub fn covers_column(&self, j: usize, size: usize) -> bool {
        let x = (j as f64 + 0.5) / size as f64;
        self.left <= x && x < self.right
    }
}

/// Draws `balls` (and the curtain) into `frame`, `size × size` row-major, which it overwrites.
/// A frame of another length is left as it is (callers size it; nothing here may panic).
pub fn render(balls: &[Ball], size: usize, curtain: Option<&Curtain>, frame: &mut [f32]) {
    if frame.len() != size * size {
        return;
    }
    frame.fill(0.0);
    for b in balls {
        draw_disc(b, size, frame);
    }
    if let Some(c) = curtain {
        draw_curtain(c, size, frame);
    }
}

/// The pixels within `R + ½` of the centre get the ramp's value, max-ed with what is there.
fn draw_disc(b: &Ball, size: usize, frame: &mut [f32]) {
    let s = size as f64;
    let (cx, cy, r) = (b.pos[0] * s, b.pos[1] * s, b.radius * s);
    let reach = r + 0.5;
    // Only the disc's bounding box can be touched; pixel k's centre is k + ½.
    let span = |c: f64| {
        let lo = (c - reach - 0.5).floor().max(0.0) as usize;
        let hi = ((c + reach - 0.5).ceil().max(-1.0) + 1.0).min(s) as usize;
        lo..hi
    };
    for i in span(cy) {
        let dy = i as f64 + 0.5 - cy;
        for j in span(cx) {
            let dx = j as f64 + 0.5 - cx;
            let value = (r - dx.hypot(dy) + 0.5).clamp(0.0, 1.0) as f32;
            let px = &mut frame[i * size + j];
            *px = px.max(value);
        }
    }
}

fn draw_curtain(c: &Curtain, size: usize, frame: &mut [f32]) {
    for j in (0..size).filter(|&j| c.covers_column(j, size)) {
        for i in 0..size {
            frame[i * size + j] = 1.0;
        }
    }
}
