//! How faithful a 2-D layout is: trustworthiness (scikit-learn's definition) and the
//! agreement of labels among 2-D neighbours. Both use the exact kNN search of
//! [`crate::search::knn`].

use super::input::Matrix;
use crate::search::knn::{k_nearest_with, Exclude, KnnOptions};
use crate::search::Distance;
use anyhow::{ensure, Result};
use tch::{Kind, Tensor};

/// Neighbours per point for both measures (docs/REFERENCE.md, "Projections": k = 15).
pub const QUALITY_K: usize = 15;

/// The `k` nearest other points of every point, `[n][k]`.
pub fn self_neighbours(points: &Tensor, k: usize, distance: Distance) -> Result<Vec<Vec<i64>>> {
    let options = KnnOptions {
        exclude: Exclude::SameIndex,
        ..Default::default()
    };
    let (idx, _) = k_nearest_with(points, points, k as i64, distance, &options);
    Ok(Vec::<Vec<i64>>::try_from(&idx)?)
}

/// Trustworthiness at `k` (scikit-learn `sklearn.manifold.trustworthiness`):
/// `T = 1 − 2/(n k (2n − 3k − 1)) · Σᵢ Σ_{j ∈ Uᵢ} (r(i, j) − k)`, where `Uᵢ` are the `k`
/// nearest neighbours of `i` in the layout that are not among its `k` nearest in the
/// input, and `r(i, j)` is the rank of `j` among `i`'s input neighbours (1 = nearest).
/// Input distances are `distance`; layout distances are Euclidean. Needs `k < n / 2`.
pub fn trustworthiness(
    input: &Matrix,
    layout: &Matrix,
    k: usize,
    distance: Distance,
) -> Result<f64> {
    let n = input.rows;
    ensure!(
        layout.rows == n,
        "layout has {} points, input {n}",
        layout.rows
    );
    ensure!(
        k >= 1 && k < n / 2 + n % 2 && 2 * n > 3 * k + 1,
        "trustworthiness needs 1 ≤ k < n/2 (k = {k}, n = {n})"
    );
    tch::no_grad(|| {
        let x = input.to_tensor();
        let near_in = self_neighbours(&x, k, distance)?;
        let near_out = self_neighbours(&layout.to_tensor(), k, Distance::Euclidean)?;
        // Per point, the layout neighbours missing from its input neighbourhood.
        let intruders: Vec<Vec<i64>> = near_out
            .iter()
            .zip(&near_in)
            .map(|(out, inn)| out.iter().copied().filter(|j| !inn.contains(j)).collect())
            .collect();
        let mut penalty = 0f64;
        let chunk = 256;
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            let rows: Vec<usize> = (start..start + len)
                .filter(|&i| !intruders[i].is_empty())
                .collect();
            if rows.is_empty() {
                continue;
            }
            let sel = Tensor::from_slice(&rows.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let d = distance
                .matrix(&x.index_select(0, &sel), &x)
                .to_kind(Kind::Double);
            let width = rows.iter().map(|&i| intruders[i].len()).max().unwrap_or(0);
            // Columns of the intruders (padded with the point itself; its count is masked).
            let intruders = &intruders;
            let cols: Vec<i64> = rows
                .iter()
                .flat_map(|&i| (0..width).map(move |c| *intruders[i].get(c).unwrap_or(&(i as i64))))
                .collect();
            let cols = Tensor::from_slice(&cols).view([rows.len() as i64, width as i64]);
            let thresholds = d.gather(1, &cols, false);
            // Rank = 1 + number of other points strictly nearer (the point itself is at
            // distance ≈ 0, nearer than any intruder: subtract it).
            let nearer = d
                .unsqueeze(1)
                .lt_tensor(&thresholds.unsqueeze(2))
                .sum_dim_intlist(2, false, Kind::Int64);
            let nearer = Vec::<Vec<i64>>::try_from(&nearer)?;
            for (r, &i) in rows.iter().enumerate() {
                for &count in &nearer[r][..intruders[i].len()] {
                    let self_counted = 1; // d(i, i) = 0 < threshold
                    let rank = (count - self_counted + 1).max(k as i64 + 1);
                    penalty += (rank - k as i64) as f64;
                }
            }
        }
        let (n, k) = (n as f64, k as f64);
        Ok(1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * penalty)
    })
}

/// kNN label agreement of a layout: the share of (point, neighbour) pairs, over each
/// point's `k` nearest other points in the layout, whose labels are equal.
pub fn knn_label_agreement(layout: &Matrix, labels: &[i64], k: usize) -> Result<f64> {
    ensure!(
        layout.rows == labels.len() && layout.rows > 1,
        "{} points, {} labels",
        layout.rows,
        labels.len()
    );
    let near = self_neighbours(&layout.to_tensor(), k, Distance::Euclidean)?;
    let (mut same, mut total) = (0usize, 0usize);
    for (i, row) in near.iter().enumerate() {
        same += row
            .iter()
            .filter(|&&j| labels[j as usize] == labels[i])
            .count();
        total += row.len();
    }
    Ok(same as f64 / total.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition computed the slow way: full argsort ranks per point.
    fn brute_force(input: &Matrix, layout: &Matrix, k: usize) -> f64 {
        let n = input.rows;
        let dist = |m: &Matrix, i: usize, j: usize| -> f64 {
            m.row(i)
                .iter()
                .zip(m.row(j))
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum()
        };
        let order = |m: &Matrix, i: usize| {
            let mut o: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            o.sort_by(|&a, &b| dist(m, i, a).partial_cmp(&dist(m, i, b)).unwrap());
            o
        };
        let mut sum = 0.0;
        for i in 0..n {
            let in_order = order(input, i);
            let out_order = order(layout, i);
            for &j in &out_order[..k] {
                let rank = in_order.iter().position(|&x| x == j).unwrap() + 1;
                if rank > k {
                    sum += (rank - k) as f64;
                }
            }
        }
        1.0 - 2.0 / (n as f64 * k as f64 * (2.0 * n as f64 - 3.0 * k as f64 - 1.0)) * sum
    }

    fn lcg_points(n: usize, d: usize, seed: u64) -> Matrix {
        let mut s = seed;
        let data = (0..n * d)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        Matrix::new(n, d, data).unwrap()
    }

    #[test]
    fn hand_checked_line() {
        tch::set_num_threads(1);
        // Input: 6 points on a line. Layout swaps the two ends' neighbourhoods: point 0
        // is placed beside point 5. k = 1.
        let input = Matrix::new(6, 1, vec![0.0, 1.0, 2.1, 3.3, 4.6, 6.0]).unwrap();
        let layout = Matrix::new(6, 1, vec![6.5, 1.0, 2.1, 3.3, 4.6, 6.0]).unwrap();
        // In the layout: 0's nearest is 5 (input rank 5), 5's nearest is 0 (input rank 5),
        // 1's nearest becomes 2 (input rank 2: 0 was nearer); 2, 3, 4 keep theirs.
        // Penalty (5−1) + (5−1) + (2−1) = 9; T = 1 − 2/(6·1·(12 − 3 − 1))·9 = 1 − 18/48.
        let t = trustworthiness(&input, &layout, 1, Distance::Euclidean).unwrap();
        assert!((t - (1.0 - 18.0 / 48.0)).abs() < 1e-12, "{t}");
        assert!((brute_force(&input, &layout, 1) - t).abs() < 1e-12);
    }

    #[test]
    fn matches_the_brute_force_definition_on_random_points() {
        tch::set_num_threads(1);
        let input = lcg_points(60, 5, 1);
        let layout = lcg_points(60, 2, 2);
        for k in [1, 5, 15] {
            let fast = trustworthiness(&input, &layout, k, Distance::Euclidean).unwrap();
            let slow = brute_force(&input, &layout, k);
            assert!((fast - slow).abs() < 1e-9, "k = {k}: {fast} vs {slow}");
        }
        // The input itself (first two coordinates dropped to none) is perfectly trustworthy.
        assert!(
            (trustworthiness(&input, &input, 5, Distance::Euclidean).unwrap() - 1.0).abs() < 1e-12
        );
    }

    #[test]
    fn label_agreement_counts_pairs() {
        tch::set_num_threads(1);
        let layout = Matrix::new(4, 2, vec![0.0, 0.0, 0.1, 0.0, 5.0, 5.0, 5.1, 5.0]).unwrap();
        assert_eq!(knn_label_agreement(&layout, &[0, 0, 1, 1], 1).unwrap(), 1.0);
        assert_eq!(knn_label_agreement(&layout, &[0, 1, 1, 0], 1).unwrap(), 0.0);
        // k = 2: each point's second neighbour is in the other pair.
        assert_eq!(knn_label_agreement(&layout, &[0, 0, 1, 1], 2).unwrap(), 0.5);
    }
}
