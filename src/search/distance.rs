//! Distances between embeddings, shared by the losses and the kNN search.

use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How two embeddings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// 1 − cosine similarity (embeddings are L2-normalised first).
    Cosine,
    /// Euclidean (L2) distance.
    Euclidean,
}

impl Distance {
    /// `[n, m]` matrix of distances between the rows of `x` `[n, d]` and `y` `[m, d]`.
    pub fn matrix(self, x: &Tensor, y: &Tensor) -> Tensor {
        match self {
            Distance::Cosine => 1.0 - normalize(x).matmul(&normalize(y).tr()),
            Distance::Euclidean => {
                // ‖x‖² + ‖y‖² − 2xy, clamped at 0 before the root (rounding); the small
                // floor keeps the gradient of sqrt finite at 0. Sums keep the input's kind.
                let xx = x.square().sum_dim_intlist(1, true, None::<tch::Kind>);
                let yy = y.square().sum_dim_intlist(1, true, None::<tch::Kind>).tr();
                (xx + yy - 2f64 * x.matmul(&y.tr())).clamp_min(1e-12).sqrt()
            }
        }
    }

    /// True when embeddings should be L2-normalised by the network's head.
    pub fn normalizes(self) -> bool {
        matches!(self, Distance::Cosine)
    }
}

/// Rows scaled to unit L2 norm (rows of zeros stay zero), as torch's F.normalize.
/// Keeps the input's precision (double stays double: the gradient checks need it).
pub fn normalize(x: &Tensor) -> Tensor {
    let norm = x
        .square()
        .sum_dim_intlist(1, true, None::<tch::Kind>)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[rows, 2]` double tensor.
    fn mat(rows: &[[f64; 2]]) -> Tensor {
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 2])
    }

    #[test]
    fn matrices_by_hand_in_double_precision() {
        tch::set_num_threads(1);
        let x = mat(&[[3.0, 4.0], [0.0, 0.0]]);
        let y = mat(&[[0.0, 2.0]]);
        let e = Distance::Euclidean.matrix(&x, &y);
        assert_eq!(e.kind(), tch::Kind::Double);
        assert!((e.double_value(&[0, 0]) - 13f64.sqrt()).abs() < 1e-12);
        assert!((e.double_value(&[1, 0]) - 2.0).abs() < 1e-12);
        let c = Distance::Cosine.matrix(&x, &y);
        assert!((c.double_value(&[0, 0]) - 0.2).abs() < 1e-12);
        // A zero row stays zero after normalisation: cosine distance 1.
        assert!((c.double_value(&[1, 0]) - 1.0).abs() < 1e-12);
        let n = normalize(&x);
        assert!((n.double_value(&[0, 0]) - 0.6).abs() < 1e-15);
    }
}
