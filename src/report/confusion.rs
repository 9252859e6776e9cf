//! The confusion matrix, readable at 200 classes: a heat map whose classes are
//! ordered so that classes confused with each other sit side by side (rows are true
//! classes, columns predicted, each row normalised by its queries), and the list of
//! the most confused pairs.

use super::figure::{plot_error, shorten, Figure};
use crate::chart::FONT;
pub use crate::run::tables::ConfusionMatrix;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One off-diagonal cell: how often `true_class` was predicted as `predicted`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusedPair {
    /// Row index into the matrix.
    pub true_index: usize,
    /// Column index into the matrix.
    pub predicted_index: usize,
    /// Queries of the true class predicted as the other.
    pub count: usize,
    /// `count` over the true class's queries.
    pub share: f64,
}

/// The `limit` largest off-diagonal cells, largest first (ties by row, then column).
pub fn top_confused(m: &ConfusionMatrix, limit: usize) -> Vec<ConfusedPair> {
    let mut pairs = Vec::new();
    for (i, row) in m.counts.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (j, &c) in row.iter().enumerate() {
            if i != j && c > 0 {
                pairs.push(ConfusedPair {
                    true_index: i,
                    predicted_index: j,
                    count: c,
                    share: c as f64 / total.max(1) as f64,
                });
            }
        }
    }
    pairs.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.share.total_cmp(&a.share))
            .then(a.true_index.cmp(&b.true_index))
            .then(a.predicted_index.cmp(&b.predicted_index))
    });
    pairs.truncate(limit);
    pairs
}

/// An order of the matrix's classes that puts mutually confused classes together:
/// chains grown greedily from the most confused class, each step appending the
/// unplaced class most confused (either way) with the last one placed.
pub fn grouped_order(m: &ConfusionMatrix) -> Vec<usize> {
    let n = m.labels.len();
    let s = |i: usize, j: usize| {
        if i == j {
            0
        } else {
            m.counts[i][j] + m.counts[j][i]
        }
    };
    let weight: Vec<usize> = (0..n).map(|i| (0..n).map(|j| s(i, j)).sum()).collect();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let start = (0..n)
            .filter(|&i| !placed[i])
            .max_by(|&a, &b| weight[a].cmp(&weight[b]).then(b.cmp(&a)))
            .unwrap();
        placed[start] = true;
        order.push(start);
        let mut last = start;
        loop {
            let next = (0..n)
                .filter(|&j| !placed[j] && s(last, j) > 0)
                .max_by(|&a, &b| s(last, a).cmp(&s(last, b)).then(b.cmp(&a)));
            let Some(next) = next else { break };
            placed[next] = true;
            order.push(next);
            last = next;
        }
    }
    order
}

/// The heat map figure.
pub struct HeatMap<'a> {
    /// The matrix.
    pub matrix: &'a ConfusionMatrix,
    /// Class name per class index (labels index into it).
    pub class_names: &'a [String],
    /// Display order of the rows and columns (indices into the matrix).
    pub order: Vec<usize>,
}

impl HeatMap<'_> {
    fn cell(&self) -> u32 {
        let n = self.order.len().max(1) as u32;
        (900 / n).clamp(5, 18)
    }

    fn label_width(&self) -> u32 {
        if self.cell() >= 8 {
            190
        } else {
            20
        }
    }
}

const TOP: u32 = 50;

impl Figure for HeatMap<'_> {
    fn size(&self) -> (u32, u32) {
        let side = self.cell() * self.order.len().max(1) as u32;
        ((self.label_width() + side + 20).max(330), TOP + side + 30)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let cell = self.cell() as i32;
        let left = self.label_width() as i32;
        let n = self.order.len() as i32;
        area.draw(&Text::new(
            "Confusion matrix: rows true, columns predicted",
            (8, 8),
            (FONT, 13).into_font(),
        ))
        .map_err(plot_error)?;
        let top = TOP as i32;
        area.draw(&Rectangle::new(
            [(left - 1, top - 1), (left + n * cell, top + n * cell)],
            RGBColor(200, 200, 200),
        ))
        .map_err(plot_error)?;
        for (r, &i) in self.order.iter().enumerate() {
            let total: usize = self.matrix.counts[i].iter().sum();
            for (c, &j) in self.order.iter().enumerate() {
                let count = self.matrix.counts[i][j];
                if count == 0 {
                    continue;
                }
                let v = count as f64 / total.max(1) as f64;
                // White → dark blue by share; the diagonal (correct) in green so mistakes stand out.
                let target = if i == j {
                    (26.0, 127.0, 55.0)
                } else {
                    (20.0, 50.0, 150.0)
                };
                let t = 0.15 + 0.85 * v;
                let mix = |c: f64| (255.0 + (c - 255.0) * t).round().clamp(0.0, 255.0) as u8;
                let colour = RGBColor(mix(target.0), mix(target.1), mix(target.2));
                let (x, y) = (left + c as i32 * cell, top + r as i32 * cell);
                area.draw(&Rectangle::new(
                    [(x, y), (x + cell - 1, y + cell - 1)],
                    colour.filled(),
                ))
                .map_err(plot_error)?;
            }
            if cell >= 8 {
                let label = self
                    .matrix
                    .labels
                    .get(i)
                    .and_then(|&l| self.class_names.get(l))
                    .cloned()
                    .unwrap_or_else(|| format!("class {i}"));
                let size = (cell - 2).clamp(7, 13);
                area.draw(&Text::new(
                    shorten(&label, 26),
                    (4, top + r as i32 * cell + (cell - size) / 2),
                    (FONT, size).into_font(),
                ))
                .map_err(plot_error)?;
            }
        }
        area.draw(&Text::new(
            format!("{n} classes; the same order on both axes"),
            (8, top + n * cell + 8),
            (FONT, 12).into_font(),
        ))
        .map_err(plot_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> ConfusionMatrix {
        // Classes 0 and 2 are confused with each other; 1 is always right.
        ConfusionMatrix::new(
            vec![0, 1, 2],
            vec![vec![1, 0, 3], vec![0, 4, 0], vec![2, 0, 2]],
        )
    }

    #[test]
    fn lists_the_most_confused_pairs_first() {
        let pairs = top_confused(&matrix(), 10);
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            (
                pairs[0].true_index,
                pairs[0].predicted_index,
                pairs[0].count
            ),
            (0, 2, 3)
        );
        assert!((pairs[0].share - 0.75).abs() < 1e-12);
        assert_eq!((pairs[1].true_index, pairs[1].predicted_index), (2, 0));
    }

    #[test]
    fn confused_classes_are_grouped() {
        assert_eq!(grouped_order(&matrix()), vec![0, 2, 1]);
    }

    #[test]
    fn heat_maps_render_at_200_classes() {
        let n = 200;
        let counts = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| usize::from(i == j) * 2 + usize::from(j == (i * 7) % n))
                    .collect()
            })
            .collect();
        let m = ConfusionMatrix::new((0..n).collect(), counts);
        let names: Vec<String> = (0..n).map(|i| format!("{i:03}.<class>")).collect();
        let map = HeatMap {
            matrix: &m,
            class_names: &names,
            order: grouped_order(&m),
        };
        let png = super::super::figure::png(&map).unwrap();
        let image = image::load_from_memory(&png).unwrap();
        assert!(
            image.width() <= 1200 && image.width() >= 1000,
            "{}",
            image.width()
        );
    }
}
