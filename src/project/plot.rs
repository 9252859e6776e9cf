//! Scatter plots of a layout with plotters (PNG and SVG): one colour per class
//! ([`crate::chart::class_colour`]), training images as dots, test images as
//! triangles, held-out classes ringed in black; a class legend when it fits; and a
//! thumbnail mode that draws each image at its point.

use super::data::{PhaseData, Split};
use super::input::Matrix;
use crate::atomic::{write_atomic, write_png};
use crate::chart::{class_colour, register_fonts, FONT};
use anyhow::{anyhow, Result};
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_hollow_rect_mut;
use imageproc::rect::Rect as PixelRect;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Canvas of the plain scatter plot: plot area plus legend column.
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1000;
const LEGEND: u32 = 300;
/// Row height of the legend.
const LEGEND_ROW: i32 = 17;

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

/// The layout's bounding box with a 4 % margin.
fn bounds(layout: &Matrix) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for i in 0..layout.rows {
        let (x, y) = (layout.row(i)[0] as f64, layout.row(i)[1] as f64);
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let pad = |lo: f64, hi: f64| {
        let m = ((hi - lo) * 0.04).max(1e-6);
        (lo - m)..(hi + m)
    };
    (pad(x0, x1), pad(y0, y1))
}

/// Draws the scatter plot on `root`; returns each point's pixel position.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &PhaseData,
    layout: &Matrix,
    title: &str,
    legend_width: u32,
) -> Result<Vec<(i32, i32)>> {
    root.fill(&WHITE).map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w.saturating_sub(legend_width));
    let (xs, ys) = bounds(layout);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, (FONT, 20))
        .margin(12)
        .build_cartesian_2d(xs, ys)
        .map_err(err)?;
    chart
        .plotting_area()
        .fill(&RGBColor(250, 250, 252))
        .map_err(err)?;
    let n_classes = data.classes.len();
    let r = if data.len() > 5000 {
        2
    } else if data.len() > 1000 {
        3
    } else {
        4
    };
    let at = |i: usize| (layout.row(i)[0] as f64, layout.row(i)[1] as f64);
    // Training dots first, then test triangles on top, then rings of held-out classes.
    chart
        .draw_series(
            (0..data.len())
                .filter(|&i| data.split[i] == Split::Train)
                .map(|i| {
                    Circle::new(
                        at(i),
                        r,
                        class_colour(data.labels[i] as usize, n_classes).filled(),
                    )
                }),
        )
        .map_err(err)?;
    chart
        .draw_series(
            (0..data.len())
                .filter(|&i| data.split[i] == Split::Test)
                .map(|i| {
                    TriangleMarker::new(
                        at(i),
                        r + 2,
                        class_colour(data.labels[i] as usize, n_classes).filled(),
                    )
                }),
        )
        .map_err(err)?;
    chart
        .draw_series(
            (0..data.len())
                .filter(|&i| data.unseen(i))
                .map(|i| Circle::new(at(i), r + 3, BLACK.stroke_width(1))),
        )
        .map_err(err)?;
    let positions = (0..data.len())
        .map(|i| chart.backend_coord(&at(i)))
        .collect();

    if legend_width > 0 {
        draw_legend(&legend, data, h)?;
    }
    root.present().map_err(err)?;
    Ok(positions)
}

/// The legend: the three markers, then one colour swatch per class when they fit.
fn draw_legend<DB: DrawingBackend>(
    legend: &DrawingArea<DB, Shift>,
    data: &PhaseData,
    h: u32,
) -> Result<()> {
    let n_classes = data.classes.len();
    let text = |s: &str, x: i32, y: i32, size: u32| {
        Text::new(
            s.to_string(),
            (x, y),
            (FONT, size).into_font().color(&BLACK),
        )
    };
    let mut y = 40;
    legend.draw(&text("markers", 10, y, 15)).map_err(err)?;
    y += LEGEND_ROW + 4;
    legend
        .draw(&Circle::new((18, y + 6), 4, RGBColor(90, 90, 90).filled()))
        .map_err(err)?;
    legend.draw(&text("train image", 30, y, 13)).map_err(err)?;
    y += LEGEND_ROW;
    legend
        .draw(&TriangleMarker::new(
            (18, y + 6),
            6,
            RGBColor(90, 90, 90).filled(),
        ))
        .map_err(err)?;
    legend.draw(&text("test image", 30, y, 13)).map_err(err)?;
    y += LEGEND_ROW;
    legend
        .draw(&Circle::new((18, y + 6), 7, BLACK.stroke_width(1)))
        .map_err(err)?;
    legend
        .draw(&text("held-out class", 30, y, 13))
        .map_err(err)?;
    y += LEGEND_ROW + 12;
    let mut present: Vec<usize> = data.labels.iter().map(|&l| l as usize).collect();
    present.sort_unstable();
    present.dedup();
    let rows_left = (h as i32 - y - 20) / LEGEND_ROW;
    if (present.len() as i32) <= rows_left {
        legend.draw(&text("classes", 10, y, 15)).map_err(err)?;
        y += LEGEND_ROW + 4;
        for c in present {
            legend
                .draw(&Rectangle::new(
                    [(12, y + 2), (24, y + 12)],
                    class_colour(c, n_classes).filled(),
                ))
                .map_err(err)?;
            let mut name = data.classes[c].clone();
            if name.chars().count() > 34 {
                name = name.chars().take(33).collect::<String>() + "…";
            }
            legend.draw(&text(&name, 30, y, 13)).map_err(err)?;
            y += LEGEND_ROW;
        }
    } else {
        legend
            .draw(&text(
                &format!("{} classes: one colour each", present.len()),
                10,
                y,
                13,
            ))
            .map_err(err)?;
        legend
            .draw(&text("(names in the HTML map)", 10, y + LEGEND_ROW, 13))
            .map_err(err)?;
    }
    Ok(())
}

/// Renders the scatter plot into an RGB image; returns it and the points' pixels.
fn render(
    data: &PhaseData,
    layout: &Matrix,
    title: &str,
    size: (u32, u32),
    legend: u32,
) -> Result<(RgbImage, Vec<(i32, i32)>)> {
    register_fonts();
    let mut buffer = vec![0u8; (size.0 * size.1 * 3) as usize];
    let positions = {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        draw(&root, data, layout, title, legend)?
    };
    let image = RgbImage::from_raw(size.0, size.1, buffer)
        .ok_or_else(|| anyhow!("plot buffer has the wrong size"))?;
    Ok((image, positions))
}

/// Writes the scatter plot as a PNG.
pub fn scatter_png(data: &PhaseData, layout: &Matrix, title: &str, path: &Path) -> Result<()> {
    let (image, _) = render(data, layout, title, (WIDTH, HEIGHT), LEGEND)?;
    write_png(path, &image::DynamicImage::ImageRgb8(image))
}

/// The scatter plot as SVG text (plotters escapes the text it draws).
pub fn scatter_svg_string(data: &PhaseData, layout: &Matrix, title: &str) -> Result<String> {
    register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, data, layout, title, LEGEND)?;
    }
    Ok(svg)
}

/// Writes the scatter plot as SVG.
pub fn scatter_svg(data: &PhaseData, layout: &Matrix, title: &str, path: &Path) -> Result<()> {
    write_atomic(path, scatter_svg_string(data, layout, title)?.as_bytes())
}

/// Writes the thumbnail map: the scatter plot on a larger canvas with every image
/// (`thumbs`, one per point, at most `side` pixels) drawn centred on its point inside
/// a border of its class colour. Test images are drawn last, on top.
pub fn thumbnail_jpeg(
    data: &PhaseData,
    layout: &Matrix,
    title: &str,
    thumbs: &[RgbImage],
    side: u32,
    path: &Path,
) -> Result<()> {
    let size = if data.len() > 2000 {
        (3000, 2600)
    } else {
        (2000, 1700)
    };
    let (mut canvas, positions) = render(data, layout, title, size, LEGEND)?;
    let n_classes = data.classes.len();
    let order = (0..data.len())
        .filter(|&i| data.split[i] == Split::Train)
        .chain((0..data.len()).filter(|&i| data.split[i] == Split::Test));
    for i in order {
        let Some(thumb) = thumbs.get(i) else { continue };
        let small = crate::imaging::shrink(thumb, side);
        let colour = class_colour(data.labels[i] as usize, n_classes);
        let border = if data.unseen(i) { 3 } else { 2 };
        let (w, h) = (small.width() + 2 * border, small.height() + 2 * border);
        let mut framed = RgbImage::from_pixel(w, h, Rgb([colour.0, colour.1, colour.2]));
        if data.unseen(i) {
            // Held-out classes: a black outer line inside the colour.
            let outline = PixelRect::at(0, 0).of_size(w, h);
            draw_hollow_rect_mut(&mut framed, outline, Rgb([0, 0, 0]));
        }
        image::imageops::overlay(&mut framed, &small, border as i64, border as i64);
        let (px, py) = positions[i];
        image::imageops::overlay(
            &mut canvas,
            &framed,
            px as i64 - w as i64 / 2,
            py as i64 - h as i64 / 2,
        );
    }
    crate::imaging::write_jpeg(path, &canvas)
}

/// One held-out class's move between two aligned layouts: its name, colour index and
/// centroid on each.
pub struct ClassMove {
    /// Class name.
    pub class: String,
    /// Index for [`class_colour`].
    pub label: usize,
    /// Centroid on the reference layout (phase-all).
    pub from: (f64, f64),
    /// Centroid on the aligned layout (phase-seen).
    pub to: (f64, f64),
}

/// Writes the overlay of two aligned layouts of the same images: every point of
/// `layout` grey, the held-out classes' points in their colours, and per held-out class
/// an arrow from its centroid on the reference map to its centroid on this one.
pub fn moves_png(
    data: &PhaseData,
    layout: &Matrix,
    moves: &[ClassMove],
    title: &str,
    path: &Path,
) -> Result<()> {
    register_fonts();
    let size = (WIDTH, HEIGHT);
    let mut buffer = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (xs, ys) = bounds(layout);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(12)
            .build_cartesian_2d(xs, ys)
            .map_err(err)?;
        let n_classes = data.classes.len();
        let at = |i: usize| (layout.row(i)[0] as f64, layout.row(i)[1] as f64);
        chart
            .draw_series(
                (0..data.len())
                    .filter(|&i| !data.unseen(i))
                    .map(|i| Circle::new(at(i), 2, RGBColor(200, 202, 208).filled())),
            )
            .map_err(err)?;
        chart
            .draw_series((0..data.len()).filter(|&i| data.unseen(i)).map(|i| {
                Circle::new(
                    at(i),
                    3,
                    class_colour(data.labels[i] as usize, n_classes).filled(),
                )
            }))
            .map_err(err)?;
        for m in moves {
            let colour = class_colour(m.label, n_classes);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![m.from, m.to],
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?;
            chart
                .draw_series([
                    Circle::new(m.from, 5, BLACK.stroke_width(2)),
                    Circle::new(m.to, 6, colour.filled()),
                ])
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    m.class.clone(),
                    m.to,
                    (FONT, 14).into_font().color(&BLACK),
                )))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    let image = RgbImage::from_raw(size.0, size.1, buffer)
        .ok_or_else(|| anyhow!("plot buffer has the wrong size"))?;
    write_png(path, &image::DynamicImage::ImageRgb8(image))
}
