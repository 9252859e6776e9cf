//! The precision-drop bar plot of the reference README: for each experiment, the
//! drop of precision@1 between the model trained on all classes and the one trained
//! without the held-out classes, on the held-out ("unseen") classes and on all
//! classes. Bars are horizontal so long experiment names stay readable.

use super::figure::{padded_range, plot_error, shorten, Figure};
use crate::chart::{class_colour, FONT};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One experiment's two bars; a missing value draws no bar.
#[derive(Debug, Clone)]
pub struct DropBars {
    /// Experiment name (the axis label).
    pub name: String,
    /// Mean drop over the held-out classes.
    pub unseen: Option<f64>,
    /// Mean drop over every class.
    pub all: Option<f64>,
}

/// The bar plot.
#[derive(Debug, Clone)]
pub struct PrecisionDropPlot {
    /// One entry per experiment, drawn top to bottom.
    pub experiments: Vec<DropBars>,
}

const ROW: u32 = 34;
const NAME_CHARS: usize = 40;

impl Figure for PrecisionDropPlot {
    fn size(&self) -> (u32, u32) {
        (900, 150 + ROW * self.experiments.len().max(1) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.experiments.len().max(1);
        let values = self
            .experiments
            .iter()
            .flat_map(|e| [e.unseen, e.all])
            .flatten();
        let (lo, hi) = padded_range(values.chain([0.0]), (-0.1, 0.1));
        let names: Vec<String> = self
            .experiments
            .iter()
            .map(|e| shorten(&e.name, NAME_CHARS))
            .collect();
        let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(4) as u32;
        let colours = [class_colour(0, 2), class_colour(1, 2)];
        let (head, body) = area.split_vertically(58);
        draw_key(&head, &colours)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(20 + longest * 7)
            .build_cartesian_2d(lo..hi, 0f64..n as f64)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|y| {
                // Row i spans [n-1-i, n-i]; label its centre.
                let row = n as f64 - y - 0.5;
                let i = row.round();
                if (row - i).abs() < 0.01 && i >= 0.0 && (i as usize) < names.len() {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|x| format!("{:.2}", if x.abs() < 1e-12 { 0.0 } else { *x }))
            .x_desc("mean drop of precision@1 (positive: the model trained without the classes is worse)")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(plot_error)?;
        for (i, e) in self.experiments.iter().enumerate() {
            let top = (n - i) as f64;
            for (j, value) in [e.unseen, e.all].into_iter().enumerate() {
                let Some(v) = value.filter(|v| v.is_finite()) else {
                    continue;
                };
                let y0 = top - 0.15 - 0.35 * (j as f64 + 1.0);
                let y1 = y0 + 0.33;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(0.0, y0), (v, y1)],
                        colours[j].filled(),
                    )))
                    .map_err(plot_error)?;
            }
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (0.0, n as f64)],
                BLACK.stroke_width(1),
            )))
            .map_err(plot_error)?;
        Ok(())
    }
}

/// The plot's title and the colour key of its two bars, on the strip above the plot.
fn draw_key<DB: DrawingBackend>(
    head: &DrawingArea<DB, Shift>,
    colours: &[RGBColor; 2],
) -> Result<()> {
    head.draw(&Text::new(
        "Precision drop: all-classes model − model trained without the held-out classes",
        (10, 8),
        (FONT, 16).into_font(),
    ))
    .map_err(plot_error)?;
    for (j, label) in ["unseen (held-out) classes", "all classes"]
        .iter()
        .enumerate()
    {
        let x = 20 + j as i32 * 230;
        head.draw(&Rectangle::new(
            [(x, 36), (x + 14, 48)],
            colours[j].filled(),
        ))
        .map_err(plot_error)?;
        head.draw(&Text::new(*label, (x + 20, 35), (FONT, 13).into_font()))
            .map_err(plot_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::figure::{png, svg};
    use super::*;

    #[test]
    fn draws_negative_missing_and_escaped_bars() {
        let plot = PrecisionDropPlot {
            experiments: vec![
                DropBars {
                    name: "A<&>".into(),
                    unseen: Some(0.2),
                    all: Some(0.1),
                },
                DropBars {
                    name: "B".into(),
                    unseen: Some(-0.05),
                    all: None,
                },
            ],
        };
        let s = svg(&plot).unwrap();
        assert!(s.contains("A&lt;&amp;&gt;"), "axis label not escaped");
        assert!(s.matches("<rect").count() >= 3);
        let p = png(&plot).unwrap();
        assert_eq!(image::load_from_memory(&p).unwrap().height(), plot.size().1);
        svg(&PrecisionDropPlot {
            experiments: vec![],
        })
        .unwrap();
    }
}
