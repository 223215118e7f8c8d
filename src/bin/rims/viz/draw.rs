//! What the viz pictures share: the drawing area, sizes and colours, the bundled font, text
//! styles, rendering into memory and writing the PNG.

use std::error::Error as StdError;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rims::{Error, Result};

pub(super) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
pub(super) type Drawn = std::result::Result<(), Box<dyn StdError>>;

pub(super) const FONT: &str = "sans-serif";
/// Picture width, and the width of the column on the right for legends.
pub(super) const WIDTH: u32 = 1200;
pub(super) const SIDE: u32 = 170;
pub(super) const TITLE_H: u32 = 44;
/// Left label area of every strip and panel (the same everywhere, so the time axes line up).
pub(super) const Y_LABELS: u32 = 70;
pub(super) const ACTIVE: RGBColor = RGBColor(33, 102, 172);
pub(super) const INACTIVE: RGBColor = RGBColor(236, 240, 245);
/// Copying phase boundaries (visible on blue, white, grey and black).
pub(super) const PHASE_LINE: RGBColor = RGBColor(230, 85, 13);
/// sMNIST row boundaries.
pub(super) const ROW_LINE: RGBColor = RGBColor(215, 48, 39);
/// Copying output tokens that match the target, and those that do not.
pub(super) const RIGHT: RGBColor = RGBColor(161, 217, 155);
pub(super) const WRONG: RGBColor = RGBColor(252, 146, 114);
pub(super) const TOKEN: RGBColor = RGBColor(220, 220, 220);

pub(super) fn register_fonts() -> std::result::Result<(), String> {
    for family in [FONT, "serif", "monospace"] {
        plotters::style::register_font(family, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the bundled font could not be loaded".to_string())?;
    }
    Ok(())
}

/// Renders a `w`×`h` picture into memory (RGB, 8 bits a channel).
pub(super) fn render(
    w: u32,
    h: u32,
    draw: impl FnOnce(&Area<'_>) -> Drawn,
) -> Result<Vec<u8>, Box<dyn StdError>> {
    register_fonts()?;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(buf)
}

/// Where a picture of the run in `dir` goes by default: beside the run, never inside it (a run
/// directory holds only what its run writes), e.g. `runs/copy-s1-curves.png` for
/// `runs/copy-s1`.
pub(super) fn beside_run(dir: &Path, what: &str) -> std::path::PathBuf {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => parent.join(format!("{}-{what}", name.to_string_lossy())),
        _ => std::path::PathBuf::from(what),
    }
}

pub(super) fn draw_error(out: &Path, e: &dyn StdError) -> Error {
    Error::file(out, format!("cannot draw the picture: {e}"))
}

/// Encodes RGB pixels as PNG and writes them atomically.
pub(super) fn write_png(out: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        enc.write_header()
            .and_then(|mut w| {
                w.write_image_data(rgb)?;
                w.finish()
            })
            .map_err(|e| Error::file(out, format!("cannot encode the PNG: {e}")))?;
    }
    rims::io::write_atomic(out, &bytes)
}

pub(super) fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

pub(super) fn centred(size: u32) -> TextStyle<'static> {
    text(size).pos(Pos::new(HPos::Center, VPos::Center))
}

/// A label formatter for rows centred on integers `0..names.len()`: integer positions get their
/// name, anything else nothing.
pub(super) fn row_names(names: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |v: &f64| {
        let r = v.round();
        if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < names.len() {
            names[r as usize].clone()
        } else {
            String::new()
        }
    }
}
