//! Line charts of training histories: loss, test accuracy and learning rate of one
//! run, and the test-accuracy curves of many runs on one chart (the reference
//! README's plot, without its limit of 10 runs). Non-finite values break a line
//! instead of spoiling the axis; the legend sits beside the plot so it never hides
//! a curve.

use super::figure::{padded_range, plot_error, shorten, Figure};
use crate::chart::{class_colour, FONT};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y) points in x order; a non-finite y breaks the line.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (e.g. the held-out classes' accuracy).
    pub dashed: bool,
}

/// A line chart with a legend on the right.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Caption above the plot.
    pub title: String,
    /// X-axis description.
    pub x_label: String,
    /// Y-axis description.
    pub y_label: String,
    /// The lines, coloured in order.
    pub series: Vec<Series>,
    /// Fixed y range; by default the data's range, padded.
    pub y_range: Option<(f64, f64)>,
    /// Width in pixels.
    pub width: u32,
}

/// Legend width in pixels, per character of the longest label (bounded).
fn legend_width(series: &[Series]) -> u32 {
    let longest = series
        .iter()
        .map(|s| s.label.chars().count().min(LEGEND_CHARS))
        .max()
        .unwrap_or(0) as u32;
    if longest == 0 {
        0
    } else {
        40 + longest * 7
    }
}

/// Longest legend label before it is shortened.
const LEGEND_CHARS: usize = 44;

impl LineChart {
    /// A chart of `width` pixels with no series yet.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            y_range: None,
            width: 820,
        }
    }

    /// True when no series has a finite point.
    pub fn is_empty(&self) -> bool {
        !self
            .series
            .iter()
            .any(|s| s.points.iter().any(|(x, y)| x.is_finite() && y.is_finite()))
    }

    /// Narrow charts carry their legend below the plot, wide ones beside it.
    fn legend_below(&self) -> bool {
        self.width < 700
    }

    fn plot_height(&self) -> u32 {
        let legend_rows = self.series.len() as u32;
        if self.legend_below() {
            330 + 12 + legend_rows * 18
        } else {
            (360u32).max(60 + legend_rows * 18)
        }
    }

    /// Draws the legend on `side` (beside or below the plot): one row per series,
    /// its line style and label.
    fn draw_legend<DB: DrawingBackend>(&self, side: &DrawingArea<DB, Shift>) -> Result<()> {
        // Legend rows start lower beside the plot (below its caption).
        let legend_top = if self.legend_below() { 8 } else { 40 };
        let n = self.series.len();
        for (i, s) in self.series.iter().enumerate() {
            let colour = class_colour(i, n.max(1));
            let y = legend_top + i as i32 * 18;
            let x = if self.legend_below() { 72 } else { 4 };
            let line = if s.dashed {
                vec![(x, y), (x + 6, y)]
            } else {
                vec![(x, y), (x + 22, y)]
            };
            side.draw(&PathElement::new(
                line,
                ShapeStyle::from(&colour).stroke_width(3),
            ))
            .map_err(plot_error)?;
            if s.dashed {
                side.draw(&PathElement::new(
                    vec![(x + 12, y), (x + 22, y)],
                    ShapeStyle::from(&colour).stroke_width(3),
                ))
                .map_err(plot_error)?;
            }
            side.draw(&Text::new(
                shorten(&s.label, LEGEND_CHARS),
                (x + 28, y - 7),
                (FONT, 13).into_font().color(&BLACK),
            ))
            .map_err(plot_error)?;
        }
        Ok(())
    }
}

impl Figure for LineChart {
    fn size(&self) -> (u32, u32) {
        (self.width, self.plot_height())
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let legend = legend_width(&self.series);
        let (plot, side) = if self.legend_below() {
            area.split_vertically(330)
        } else {
            area.split_horizontally(self.width.saturating_sub(legend))
        };
        let finite = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
        };
        let (x0, x1) = finite()
            .map(|p| p.0)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
        let (x0, x1) = if x0.is_finite() {
            if x1 > x0 {
                (x0, x1)
            } else {
                (x0 - 1.0, x1 + 1.0)
            }
        } else {
            (0.0, 1.0)
        };
        let (y0, y1) = self
            .y_range
            .unwrap_or_else(|| padded_range(finite().map(|p| p.1), (0.0, 1.0)));
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(62)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(RGBColor(238, 238, 238))
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-9 {
                    format!("{}", x.round() as i64)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format_tick(*y, y1 - y0))
            .draw()
            .map_err(plot_error)?;
        let n = self.series.len();
        for (i, s) in self.series.iter().enumerate() {
            let colour = class_colour(i, n.max(1));
            let style = ShapeStyle::from(&colour).stroke_width(2);
            for stretch in finite_stretches(&s.points) {
                if s.dashed {
                    chart
                        .draw_series(DashedLineSeries::new(stretch.iter().copied(), 6, 4, style))
                        .map_err(plot_error)?;
                } else {
                    chart
                        .draw_series(LineSeries::new(stretch.iter().copied(), style))
                        .map_err(plot_error)?;
                }
                if stretch.len() == 1 || s.points.len() <= 30 {
                    chart
                        .draw_series(stretch.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                        .map_err(plot_error)?;
                }
            }
        }
        if legend > 0 {
            self.draw_legend(&side)?;
        }
        Ok(())
    }
}

/// The finite stretches of a line: a non-finite value breaks it.
fn finite_stretches(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points
        .split(|(x, y)| !x.is_finite() || !y.is_finite())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A y tick label with as many decimals as the axis span needs (one more than
/// the span's first significant digit); scientific notation below 1e-6.
fn format_tick(y: f64, span: f64) -> String {
    if span.is_nan() || span <= 0.0 {
        return format!("{y:.2}");
    }
    let decimals = (1.0 - span.log10().floor()).max(0.0) as usize;
    if decimals > 6 {
        format!("{y:.1e}")
    } else {
        format!("{y:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::figure::{png, svg};
    use super::*;

    fn chart(points: Vec<(f64, f64)>) -> LineChart {
        let mut c = LineChart::new("test <accuracy>", "epoch", "precision@1");
        c.series.push(Series {
            label: "run <a> & b".into(),
            points,
            dashed: false,
        });
        c.series.push(Series {
            label: "held out".into(),
            points: vec![(1.0, 0.2), (2.0, 0.3)],
            dashed: true,
        });
        c
    }

    #[test]
    fn renders_svg_and_png_with_escaped_text() {
        let c = chart(vec![(0.0, 0.3), (1.0, f64::NAN), (2.0, 0.5), (3.0, 0.6)]);
        let s = svg(&c).unwrap();
        assert!(
            s.contains("run &lt;a&gt; &amp; b"),
            "legend text not escaped"
        );
        assert!(!s.contains("<a>"));
        let p = png(&c).unwrap();
        let image = image::load_from_memory(&p).unwrap();
        assert_eq!((image.width(), image.height()), c.size());
    }

    #[test]
    fn empty_and_single_point_charts_render() {
        let mut c = LineChart::new("empty", "epoch", "loss");
        assert!(c.is_empty());
        svg(&c).unwrap();
        c.series.push(Series {
            label: "one".into(),
            points: vec![(1.0, f64::NAN), (2.0, 1.0)],
            dashed: false,
        });
        assert!(!c.is_empty());
        png(&c).unwrap();
    }

    #[test]
    fn many_runs_get_a_taller_chart_for_the_legend() {
        let mut c = LineChart::new("many", "epoch", "p@1");
        for i in 0..40 {
            c.series.push(Series {
                label: format!("run {i}"),
                points: vec![(1.0, i as f64)],
                dashed: false,
            });
        }
        assert!(c.size().1 >= 40 * 18);
        svg(&c).unwrap();
    }

    #[test]
    fn tick_labels_follow_the_span() {
        assert_eq!(format_tick(0.123456, 0.5), "0.12");
        assert_eq!(format_tick(12.0, 30.0), "12");
        assert_eq!(format_tick(0.0001, 0.001), "0.0001");
        assert_eq!(format_tick(0.03, 0.006), "0.0300");
        assert_eq!(format_tick(2e-8, 1e-8), "2.0e-8");
    }
}
