//! One drawing, two outputs: every chart of the report is drawn once through
//! plotters' backend trait and rendered both as SVG text (inlined into pages) and as
//! PNG bytes (linked for download), so the two never disagree.

use anyhow::{anyhow, Result};
use maud::{Markup, PreEscaped};
use plotters::coord::Shift;
use plotters::prelude::*;

/// A chart the report can render to SVG and PNG.
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the chart on `area` (white background already filled).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Converts a plotters error (whose type depends on the backend) into `anyhow`.
pub fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// Renders a figure as an SVG document.
pub fn svg<F: Figure>(figure: &F) -> Result<String> {
    crate::chart::register_fonts();
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, figure.size()).into_drawing_area();
        area.fill(&WHITE).map_err(plot_error)?;
        figure.draw(&area)?;
        area.present().map_err(plot_error)?;
    }
    Ok(out)
}

/// Renders a figure as PNG bytes.
pub fn png<F: Figure>(figure: &F) -> Result<Vec<u8>> {
    crate::chart::register_fonts();
    let (w, h) = figure.size();
    let mut pixels = vec![255u8; (w * h * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        area.fill(&WHITE).map_err(plot_error)?;
        figure.draw(&area)?;
        area.present().map_err(plot_error)?;
    }
    let image = image::RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| anyhow!("chart buffer of the wrong size"))?;
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| anyhow!("encoding a chart as PNG: {e}"))?;
    Ok(bytes)
}

/// A figure as inline SVG markup for a page: the document from [`svg`] without its XML
/// declaration, marked `role="img"` (the stylesheet fits `.chart svg` to the width).
pub fn inline_svg<F: Figure>(figure: &F) -> Result<Markup> {
    let document = svg(figure)?;
    let body = document.trim_start_matches(|c| c != '<');
    let body = body
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .unwrap_or(body)
        .trim_start();
    // Safe: plotters' SVG backend wrote the document and escapes every text it draws
    // (labels, legends: tested in curves.rs and bars.rs); no user string is added here.
    Ok(PreEscaped(body.replacen("<svg ", "<svg role=\"img\" ", 1)))
}

/// Shortens a label for a legend or axis to `max` characters (with an ellipsis).
pub fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// A padded (low, high) range over the finite values, `fallback` when there are none.
pub fn padded_range(values: impl Iterator<Item = f64>, fallback: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return fallback;
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.06
    } else {
        lo.abs().max(1e-3) * 0.1
    };
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_pad_and_ignore_non_finite_values() {
        assert_eq!(padded_range([f64::NAN].into_iter(), (0.0, 1.0)), (0.0, 1.0));
        let (lo, hi) = padded_range([1.0, 2.0, f64::INFINITY].into_iter(), (0.0, 1.0));
        assert!(lo < 1.0 && hi > 2.0 && hi < 2.1);
        let (lo, hi) = padded_range([0.5].into_iter(), (0.0, 1.0));
        assert!(lo < 0.5 && hi > 0.5);
    }

    #[test]
    fn labels_shorten_with_an_ellipsis() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
