//! The points a projection starts from: a dense row-major matrix, its validation
//! (checked here so that no dependency ever panics on bad input), and PCA (for the
//! optional reduction to 50 dimensions and for t-SNE's initial layout).

use crate::search::Distance;
use anyhow::{bail, ensure, Result};
use tch::Kind;

pub use crate::matrix::Matrix;

/// What [`validate`] found in acceptable input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputReport {
    /// Rows equal to an earlier row (kept; both libraries cope with some).
    pub duplicates: usize,
    /// Number of distinct rows.
    pub distinct: usize,
}

/// Checks that a projection can run on `points`: at least one dimension, only finite
/// values, more than `min_neighbours` points and more than `min_neighbours` distinct
/// points (a neighbour graph of copies is meaningless). Errors say which row is bad
/// and what `source` (a file name) held it.
pub fn validate(points: &Matrix, min_neighbours: usize, source: &str) -> Result<InputReport> {
    if points.cols == 0 {
        bail!("{source}: embeddings have no dimensions");
    }
    if let Some(pos) = points.data.iter().position(|v| !v.is_finite()) {
        let (row, col) = (pos / points.cols, pos % points.cols);
        bail!(
            "{source}: embedding row {row} holds a non-finite value ({}) in dimension {col}",
            points.data[pos]
        );
    }
    if points.rows <= min_neighbours {
        bail!(
            "{source}: {} points, but the projection needs more than {min_neighbours} (its number of neighbours)",
            points.rows
        );
    }
    // Exact duplicates by bit pattern (−0 and +0 differ, which only undercounts).
    let mut seen = std::collections::HashSet::with_capacity(points.rows);
    let mut duplicates = 0;
    for i in 0..points.rows {
        let key: Vec<u32> = points
            .row(i)
            .iter()
            .map(|v| if *v == 0.0 { 0 } else { v.to_bits() })
            .collect();
        if !seen.insert(key) {
            duplicates += 1;
        }
    }
    let distinct = points.rows - duplicates;
    if distinct <= min_neighbours {
        bail!(
            "{source}: only {distinct} distinct points among {} ({duplicates} duplicates); the projection needs more than {min_neighbours}",
            points.rows
        );
    }
    Ok(InputReport {
        duplicates,
        distinct,
    })
}

/// The points in the space the neighbour search uses: unit rows for cosine, as they
/// are for Euclidean. Euclidean distance between unit rows orders neighbours as cosine does.
pub fn for_distance(points: &Matrix, distance: Distance) -> Matrix {
    match distance {
        Distance::Cosine => points.normalized(),
        Distance::Euclidean => points.clone(),
    }
}

/// Principal component scores: the centred points projected on their `components`
/// leading principal axes (fewer when there are fewer dimensions). Signs follow
/// scikit-learn's `svd_flip`: each axis's largest-magnitude loading is positive, so
/// the result is deterministic.
pub fn pca(points: &Matrix, components: usize) -> Result<Matrix> {
    let m = components.min(points.cols);
    ensure!(m > 0 && points.rows > 0, "PCA of an empty matrix");
    let x = points.to_tensor().to_kind(Kind::Double);
    let centred = &x - x.mean_dim(0, true, Kind::Double);
    let cov = centred.tr().mm(&centred) / (points.rows.max(2) - 1) as f64;
    let (_values, vectors) = cov.linalg_eigh("L");
    // eigh sorts ascending: the last `m` columns, reversed.
    let axes = vectors
        .narrow(1, points.cols as i64 - m as i64, m as i64)
        .flip([1]);
    let biggest = axes.abs().argmax(0, true);
    let signs = axes.gather(0, &biggest, false).sign();
    let signs = signs.where_self(&signs.ne(0.0), &signs.ones_like());
    let scores = centred.mm(&(axes * signs)).to_kind(Kind::Float);
    Matrix::from_tensor(&scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[f32]]) -> Matrix {
        Matrix::new(
            rows.len(),
            rows[0].len(),
            rows.iter().flat_map(|r| r.iter().copied()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn rejects_non_finite_values_naming_the_row() {
        let mut m = matrix(&[&[0.0, 1.0], &[1.0, 0.0], &[2.0, 2.0], &[3.0, 1.0]]);
        m.data[5] = f32::NAN;
        let err = validate(&m, 1, "embeddings.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 2") && err.contains("embeddings.safetensors") && err.contains("NaN"),
            "{err}"
        );
        m.data[5] = f32::INFINITY;
        assert!(validate(&m, 1, "x")
            .unwrap_err()
            .to_string()
            .contains("inf"));
    }

    #[test]
    fn rejects_too_few_points_and_too_many_duplicates() {
        let m = matrix(&[&[0.0, 1.0], &[1.0, 0.0], &[2.0, 2.0]]);
        let err = validate(&m, 15, "e").unwrap_err().to_string();
        assert!(err.contains("3 points") && err.contains("15"), "{err}");
        let copies = matrix(&[
            &[1.0, 1.0],
            &[1.0, 1.0],
            &[1.0, 1.0],
            &[1.0, 1.0],
            &[2.0, 0.0],
        ]);
        let err = validate(&copies, 2, "e").unwrap_err().to_string();
        assert!(
            err.contains("2 distinct") && err.contains("3 duplicates"),
            "{err}"
        );
        let some = matrix(&[
            &[1.0, 1.0],
            &[1.0, 1.0],
            &[0.0, 1.0],
            &[3.0, 1.0],
            &[2.0, 0.0],
        ]);
        assert_eq!(
            validate(&some, 2, "e").unwrap(),
            InputReport {
                duplicates: 1,
                distinct: 4
            }
        );
    }

    #[test]
    fn pca_finds_the_long_axis_with_a_fixed_sign() {
        tch::set_num_threads(1);
        // Points along (1, 1, 0), each twice, at z = ±0.1 (uncorrelated with the line).
        let rows: Vec<Vec<f32>> = (0..20)
            .map(|r| {
                vec![
                    (r / 2) as f32,
                    (r / 2) as f32,
                    if r % 2 == 0 { 0.1 } else { -0.1 },
                ]
            })
            .collect();
        let m = Matrix::new(20, 3, rows.concat()).unwrap();
        let p = pca(&m, 2).unwrap();
        assert_eq!((p.rows, p.cols), (20, 2));
        // First score grows along the line (sign fixed), scaled by √2; second is z.
        let expected = |r: usize| ((r / 2) as f32 - 4.5) * 2f32.sqrt();
        for i in 0..20 {
            assert!(
                (p.row(i)[0] - expected(i)).abs() < 1e-3,
                "row {i}: {:?}",
                p.row(i)
            );
            assert!((p.row(i)[1].abs() - 0.1).abs() < 1e-3);
        }
    }
}
