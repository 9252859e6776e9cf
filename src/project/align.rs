//! Aligned phase maps: phase-seen's layout turned, scaled and moved onto phase-all's
//! by Procrustes on the images both maps hold, so a held-out class that moves between
//! the two models moves on the page, not because the layouts' axes differ.
//!
//! A layout's orientation, reflection, scale and position are arbitrary, so any
//! similarity transform of it is as good a layout; [`procrustes`] picks the one
//! closest (least squares) to the reference on the shared points. The distances
//! inside the layout, and so its trustworthiness, do not change.

use super::data::PhaseData;
use super::input::Matrix;
use crate::eval::report::parse_csv;
use crate::run::projections::Alignment;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;

/// `x ≈ scale · R · y + translation` with `R` a rotation or a reflection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// Row-major 2 × 2 orthogonal matrix.
    pub rotation: [[f64; 2]; 2],
    /// Uniform scale.
    pub scale: f64,
    /// Translation after rotating and scaling.
    pub translation: [f64; 2],
}

impl Similarity {
    /// The transform of a point.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let r = &self.rotation;
        [
            self.scale * (r[0][0] * p[0] + r[0][1] * p[1]) + self.translation[0],
            self.scale * (r[1][0] * p[0] + r[1][1] * p[1]) + self.translation[1],
        ]
    }

    /// True when `R` is a reflection (determinant −1).
    pub fn reflects(&self) -> bool {
        let r = &self.rotation;
        r[0][0] * r[1][1] - r[0][1] * r[1][0] < 0.0
    }

    /// The angle of `R`'s rotation part, degrees (of the reflection's axis pair when
    /// it reflects).
    pub fn degrees(&self) -> f64 {
        self.rotation[1][0].atan2(self.rotation[0][0]).to_degrees()
    }
}

fn mean(points: &[[f64; 2]]) -> [f64; 2] {
    let n = points.len() as f64;
    let s = points
        .iter()
        .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
    [s[0] / n, s[1] / n]
}

/// The similarity that maps `moving` closest to `reference` in least squares
/// (orthogonal Procrustes with scale, reflections allowed). In 2-D the best
/// orthogonal matrix has a closed form: with `M = Σ xᵢ yᵢᵀ` of the centred points,
/// the best rotation by θ scores `(m₁₁+m₂₂)cos θ + (m₂₁−m₁₂)sin θ`, the best
/// reflection `(m₁₁−m₂₂)cos θ + (m₁₂+m₂₁)sin θ`; each is largest at its `atan2`, and
/// the larger of the two wins. The scale is that score over `Σ |yᵢ|²`.
pub fn procrustes(reference: &[[f64; 2]], moving: &[[f64; 2]]) -> Result<Similarity> {
    if reference.len() != moving.len() {
        bail!(
            "{} reference points but {} to align",
            reference.len(),
            moving.len()
        );
    }
    if reference.len() < 3 {
        bail!(
            "aligning needs at least 3 shared points, not {}",
            reference.len()
        );
    }
    let (mx, my) = (mean(reference), mean(moving));
    let (mut m, mut norm) = ([[0.0f64; 2]; 2], 0.0);
    for (x, y) in reference.iter().zip(moving) {
        let (x, y) = ([x[0] - mx[0], x[1] - mx[1]], [y[0] - my[0], y[1] - my[1]]);
        for a in 0..2 {
            for b in 0..2 {
                m[a][b] += x[a] * y[b];
            }
        }
        norm += y[0] * y[0] + y[1] * y[1];
    }
    if norm <= 0.0 {
        bail!("the points to align all coincide");
    }
    let (rc, rs) = (m[0][0] + m[1][1], m[1][0] - m[0][1]);
    let (fc, fs) = (m[0][0] - m[1][1], m[0][1] + m[1][0]);
    let (rotation, score) = if rc.hypot(rs) >= fc.hypot(fs) {
        let t = rs.atan2(rc);
        ([[t.cos(), -t.sin()], [t.sin(), t.cos()]], rc.hypot(rs))
    } else {
        let t = fs.atan2(fc);
        ([[t.cos(), t.sin()], [t.sin(), -t.cos()]], fc.hypot(fs))
    };
    let mut s = Similarity {
        rotation,
        scale: score / norm,
        translation: [0.0, 0.0],
    };
    let moved = s.apply(my);
    s.translation = [mx[0] - moved[0], mx[1] - moved[1]];
    Ok(s)
}

/// A stored layout (`<method>.csv`): each image's path and 2-D position, in row order.
pub fn read_layout_csv(path: &Path) -> Result<Vec<(String, [f64; 2])>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows = parse_csv(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some((header, rows)) = rows.split_first() else {
        bail!("{}: empty", path.display());
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no `{name}` column", path.display()))
    };
    let (x, y, p) = (column("x")?, column("y")?, column("path")?);
    let mut out = Vec::with_capacity(rows.len());
    for (line, row) in rows.iter().enumerate() {
        let value = |c: usize| -> Result<f64> {
            row.get(c)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{}: line {}: bad coordinate", path.display(), line + 2))
        };
        let key = row.get(p).cloned().unwrap_or_default();
        out.push((key, [value(x)?, value(y)?]));
    }
    Ok(out)
}

/// `layout` of `data` aligned onto the reference layout in `reference_csv` by the
/// images both hold (matched by path); `None` when fewer than 3 are shared.
pub fn align_to(
    data: &PhaseData,
    layout: &Matrix,
    reference_csv: &Path,
    reference_phase: &str,
) -> Result<Option<(Matrix, Alignment)>> {
    let reference: HashMap<String, [f64; 2]> =
        read_layout_csv(reference_csv)?.into_iter().collect();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for (i, p) in data.paths.iter().enumerate() {
        if let Some(&x) = reference.get(&p.display().to_string()) {
            xs.push(x);
            ys.push([layout.row(i)[0] as f64, layout.row(i)[1] as f64]);
        }
    }
    if xs.len() < 3 {
        return Ok(None);
    }
    let s = procrustes(&xs, &ys)?;
    let moved: Vec<f32> = (0..layout.rows)
        .flat_map(|i| s.apply([layout.row(i)[0] as f64, layout.row(i)[1] as f64]))
        .map(|v| v as f32)
        .collect();
    let residual = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| {
            let m = s.apply(*y);
            (m[0] - x[0]).powi(2) + (m[1] - x[1]).powi(2)
        })
        .sum::<f64>();
    let spread: f64 = {
        let c = mean(&xs);
        xs.iter()
            .map(|x| (x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2))
            .sum()
    };
    let alignment = Alignment {
        reference: reference_phase.to_string(),
        shared: xs.len(),
        scale: s.scale,
        degrees: s.degrees(),
        reflected: s.reflects(),
        residual_share: if spread > 0.0 { residual / spread } else { 0.0 },
    };
    Ok(Some((Matrix::new(layout.rows, 2, moved)?, alignment)))
}

/// Per held-out class, its centroid on the reference layout and on `aligned` (its
/// images both hold), for the arrows of [`super::plot::moves_png`].
pub fn class_moves(
    data: &PhaseData,
    aligned: &Matrix,
    reference_csv: &Path,
) -> Result<Vec<super::plot::ClassMove>> {
    let reference: HashMap<String, [f64; 2]> =
        read_layout_csv(reference_csv)?.into_iter().collect();
    let mut sums: std::collections::BTreeMap<usize, ([f64; 2], [f64; 2], f64)> = Default::default();
    for (i, p) in data.paths.iter().enumerate() {
        let Some(r) = reference.get(&p.display().to_string()) else {
            continue;
        };
        if !data.unseen(i) {
            continue;
        }
        let e = sums
            .entry(data.labels[i] as usize)
            .or_insert(([0.0; 2], [0.0; 2], 0.0));
        e.0 = [e.0[0] + r[0], e.0[1] + r[1]];
        e.1 = [
            e.1[0] + aligned.row(i)[0] as f64,
            e.1[1] + aligned.row(i)[1] as f64,
        ];
        e.2 += 1.0;
    }
    Ok(sums
        .into_iter()
        .map(|(label, (from, to, n))| super::plot::ClassMove {
            class: data.classes[label].clone(),
            label,
            from: (from[0] / n, from[1] / n),
            to: (to[0] / n, to[1] / n),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::data::synthetic;
    use crate::project::export::layout_csv;

    /// Phase-seen's layout = phase-all's turned by 90°, scaled by 2 and with the
    /// held-out class moved by (5, 0): alignment undoes the similarity (the seen
    /// classes fit exactly) and the arrow of the held-out class is its move.
    #[test]
    fn aligned_layout_shows_the_held_out_class_moving() {
        let data = synthetic(&["a", "b", "c"], 1, 60, 30, 4);
        let n = data.len();
        let all: Vec<f32> = (0..2 * n).map(|v| ((v * 37) % 101) as f32 / 10.0).collect();
        let all = Matrix::new(n, 2, all).unwrap();
        let seen = Matrix::new(
            n,
            2,
            (0..n)
                .flat_map(|i| {
                    let (x, y) = (all.row(i)[0], all.row(i)[1]);
                    let x = if data.unseen(i) { x + 5.0 } else { x };
                    [-2.0 * y, 2.0 * x] // turned by 90°, scaled by 2
                })
                .collect(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("umap.csv");
        std::fs::write(&csv, layout_csv(&data, &all)).unwrap();
        let (aligned, record) = align_to(&data, &seen, &csv, "phase-all").unwrap().unwrap();
        assert_eq!(record.shared, n);
        assert!((record.degrees + 90.0).abs() < 15.0, "{record:?}");
        assert!(!record.reflected);
        let moves = class_moves(&data, &aligned, &csv).unwrap();
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].class, "c");
        let (dx, dy) = (
            moves[0].to.0 - moves[0].from.0,
            moves[0].to.1 - moves[0].from.1,
        );
        // Least squares spreads part of the move over the shared fit, so the arrow is
        // shorter than 5 but points the way the class went.
        assert!(
            dx > 2.0 && dx < 5.5 && dy.abs() < 1.0,
            "arrow ({dx:.2}, {dy:.2})"
        );
    }

    fn points() -> Vec<[f64; 2]> {
        (0..40)
            .map(|i| {
                let t = i as f64 * 0.37;
                [
                    t.cos() * (1.0 + 0.1 * i as f64),
                    (2.0 * t).sin() + 0.05 * i as f64,
                ]
            })
            .collect()
    }

    #[test]
    fn recovers_a_known_rotation_scale_and_shift() {
        let y = points();
        let (t, scale, shift) = (0.9f64, 2.5, [3.0, -7.0]);
        let truth = Similarity {
            rotation: [[t.cos(), -t.sin()], [t.sin(), t.cos()]],
            scale,
            translation: shift,
        };
        let x: Vec<[f64; 2]> = y.iter().map(|&p| truth.apply(p)).collect();
        let s = procrustes(&x, &y).unwrap();
        assert!((s.scale - scale).abs() < 1e-9, "{s:?}");
        assert!((s.degrees() - t.to_degrees()).abs() < 1e-7, "{s:?}");
        assert!(!s.reflects());
        for (a, b) in s.translation.iter().zip(shift) {
            assert!((a - b).abs() < 1e-9, "{s:?}");
        }
    }

    #[test]
    fn recovers_a_reflection_and_fits_noise_in_least_squares() {
        let y = points();
        // Mirror in the x axis, then turn by −40°, scale 0.5, move.
        let t = (-40.0f64).to_radians();
        let truth = Similarity {
            rotation: [[t.cos(), t.sin()], [t.sin(), -t.cos()]],
            scale: 0.5,
            translation: [1.0, 2.0],
        };
        assert!(truth.reflects());
        let x: Vec<[f64; 2]> = y
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let q = truth.apply(p);
                [q[0] + 0.01 * ((i * 7 % 5) as f64 - 2.0), q[1]]
            })
            .collect();
        let s = procrustes(&x, &y).unwrap();
        assert!(s.reflects());
        assert!((s.scale - 0.5).abs() < 0.01, "{s:?}");
        // Least squares: nudging the answer makes the fit worse.
        let cost = |s: &Similarity| -> f64 {
            x.iter()
                .zip(&y)
                .map(|(a, b)| {
                    let m = s.apply(*b);
                    (m[0] - a[0]).powi(2) + (m[1] - a[1]).powi(2)
                })
                .sum()
        };
        let best = cost(&s);
        for d in [[1e-3, 0.0], [0.0, 1e-3]] {
            let mut n = s;
            n.translation = [s.translation[0] + d[0], s.translation[1] + d[1]];
            assert!(cost(&n) > best);
        }
        let mut n = s;
        n.scale *= 1.001;
        assert!(cost(&n) > best);
    }

    #[test]
    fn refuses_too_few_or_coincident_points() {
        assert!(procrustes(&[[0.0, 0.0]; 2], &[[1.0, 1.0]; 2]).is_err());
        let err = procrustes(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &[[2.0, 2.0]; 3]).unwrap_err();
        assert!(err.to_string().contains("coincide"), "{err}");
    }

    #[test]
    fn a_stored_layout_is_read_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("umap.csv");
        std::fs::write(
            &file,
            "index,split,label,class,unseen,x,y,path\n0,train,0,\"a,b\",false,1.5,-2,\"x,y.png\"\n",
        )
        .unwrap();
        let layout = read_layout_csv(&file).unwrap();
        assert_eq!(layout, vec![("x,y.png".to_string(), [1.5, -2.0])]);
        std::fs::write(&file, "index,x,y,path\n0,1,zz,p.png\n").unwrap();
        let err = format!("{:#}", read_layout_csv(&file).unwrap_err());
        assert!(err.contains("line 2") && err.contains("umap.csv"), "{err}");
    }
}
