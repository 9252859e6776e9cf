//! Exact k-nearest-neighbour search over embedding tensors, in chunks of queries so
//! memory stays bounded for large galleries.

use crate::loss::Distance;
use tch::{Kind, Tensor};

/// Queries per chunk: a chunk's distance matrix is `CHUNK × references` floats.
const CHUNK: i64 = 1024;

/// Indices `[n_queries, k]` and distances of the `k` nearest references of each
/// query, nearest first (ties keep the lower reference index first).
pub fn k_nearest(queries: &Tensor, references: &Tensor, k: i64, distance: Distance) -> (Tensor, Tensor) {
    let n = queries.size()[0];
    let k = k.min(references.size()[0]);
    let mut indices = Vec::new();
    let mut distances = Vec::new();
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let d = distance.matrix(&queries.narrow(0, start, len), references);
        // A stable sort makes ties deterministic (lower index first).
        let (sorted, order) = d.sort_stable(true, 1, false);
        distances.push(sorted.narrow(1, 0, k));
        indices.push(order.narrow(1, 0, k));
        start += len;
    }
    if indices.is_empty() {
        let empty = Tensor::zeros([0, k], (Kind::Int64, queries.device()));
        return (empty.shallow_clone(), empty.to_kind(Kind::Float));
    }
    (Tensor::cat(&indices, 0), Tensor::cat(&distances, 0))
}

/// Precision@1 (the literature's Recall@1, the reference's "test accuracy"): the
/// share of queries whose nearest reference has their label.
pub fn precision_at_1(queries: &Tensor, query_labels: &Tensor, references: &Tensor, reference_labels: &Tensor, distance: Distance) -> f64 {
    if queries.size()[0] == 0 {
        return 0.0;
    }
    let (nearest, _) = k_nearest(queries, references, 1, distance);
    let predicted = reference_labels.index_select(0, &nearest.squeeze_dim(1));
    predicted.eq_tensor(query_labels).to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_neighbours_equal_brute_force() {
        tch::set_num_threads(1);
        tch::manual_seed(3);
        let q = Tensor::randn([37, 5], (Kind::Float, tch::Device::Cpu));
        let r = Tensor::randn([50, 5], (Kind::Float, tch::Device::Cpu));
        let qv: Vec<Vec<f32>> = Vec::try_from(&q).unwrap();
        let rv: Vec<Vec<f32>> = Vec::try_from(&r).unwrap();
        for distance in [Distance::Euclidean, Distance::Cosine] {
            let (idx, dist) = k_nearest(&q, &r, 3, distance);
            let idx: Vec<Vec<i64>> = Vec::try_from(&idx).unwrap();
            let dist: Vec<Vec<f32>> = Vec::try_from(&dist).unwrap();
            for (i, a) in qv.iter().enumerate() {
                let mut all: Vec<(f64, usize)> = rv
                    .iter()
                    .enumerate()
                    .map(|(j, b)| {
                        let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
                        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                        let d = match distance {
                            Distance::Euclidean => a.iter().zip(b).map(|(x, y)| ((*x - *y) as f64).powi(2)).sum::<f64>().sqrt(),
                            Distance::Cosine => 1.0 - dot / (na * nb),
                        };
                        (d, j)
                    })
                    .collect();
                all.sort_by(|x, y| x.partial_cmp(y).unwrap());
                for r in 0..3 {
                    assert_eq!(idx[i][r] as usize, all[r].1, "{distance:?} query {i} rank {r}");
                    assert!((dist[i][r] as f64 - all[r].0).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn precision_at_1_on_a_hand_computed_case() {
        tch::set_num_threads(1);
        // References at 0, 10 (class 0) and 5 (class 1); queries at 1 (→0, class 0 ✓),
        // 6 (→5, class 1 ✓), 9 (→10, class 1 ✗), 4 (→5, class 0 ✗).
        let refs = Tensor::from_slice(&[0.0f32, 10.0, 5.0]).view([3, 1]);
        let ref_labels = Tensor::from_slice(&[0i64, 0, 1]);
        let q = Tensor::from_slice(&[1.0f32, 6.0, 9.0, 4.0]).view([4, 1]);
        let q_labels = Tensor::from_slice(&[0i64, 1, 1, 0]);
        assert_eq!(precision_at_1(&q, &q_labels, &refs, &ref_labels, Distance::Euclidean), 0.5);
    }
}
