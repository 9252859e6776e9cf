//! NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al.,
//! ICML 2020), for self-supervised pre-training on two augmented views per image.

use super::{cross_entropy, MetricLoss};
use crate::search::distance::normalize;
use tch::{Kind, Tensor};

/// NT-Xent over a batch of 2N embeddings in which rows i and i + N are the two views
/// of the same image. **Labels are ignored**: the pairing comes from the row order
/// only, so images of the same class are still negatives of each other, as in
/// SimCLR. Each row is classified against the 2N − 1 other rows by cosine
/// similarity / τ (self-similarity excluded), its other view being the target;
/// the loss is the mean over all 2N rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NtXent {
    /// Temperature τ. Default 0.5, SimCLR's value for CIFAR-10 (small images and
    /// batches like ours); SimCLR used 0.1 on ImageNet, PML defaults to 0.07.
    pub temperature: f64,
}

impl Default for NtXent {
    fn default() -> Self {
        Self { temperature: 0.5 }
    }
}

impl MetricLoss for NtXent {
    fn loss(&self, embeddings: &Tensor, _labels: &Tensor) -> Tensor {
        let b = embeddings.size()[0];
        assert!(
            b % 2 == 0 && b > 0,
            "NT-Xent needs 2N rows (two views per image), got {b}"
        );
        let n = b / 2;
        let z = normalize(embeddings);
        let idx = Tensor::arange(b, (Kind::Int64, embeddings.device()));
        let own = idx.unsqueeze(1).eq_tensor(&idx.unsqueeze(0));
        let sim = (z.matmul(&z.tr()) / self.temperature).masked_fill(&own, f64::NEG_INFINITY);
        let partner = (idx + n).remainder(b);
        cross_entropy(&sim, &partner)
    }

    fn name(&self) -> &'static str {
        "nt_xent"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::testutil::*;

    fn reference(emb: &[Vec<f64>], tau: f64) -> f64 {
        let b = emb.len();
        let z: Vec<Vec<f64>> = emb.iter().map(|e| unit(e)).collect();
        let mut total = 0.0;
        for i in 0..b {
            let partner = (i + b / 2) % b;
            let num = (dot(&z[i], &z[partner]) / tau).exp();
            let den: f64 = (0..b)
                .filter(|&k| k != i)
                .map(|k| (dot(&z[i], &z[k]) / tau).exp())
                .sum();
            total += -(num / den).ln();
        }
        total / b as f64
    }

    #[test]
    fn by_hand() {
        tch::set_num_threads(1);
        // Views: image A at 0° and 90°, image B at 180° and 45°. Rows: A, B, A', B'.
        let e = mat(&[&[2.0, 0.0], &[-1.0, 0.0], &[0.0, 3.0], &[1.0, 1.0]]);
        let tau = 0.5;
        let s = std::f64::consts::FRAC_1_SQRT_2;
        // Row 0 (0°): others 180° (−1), 90° (0), 45° (s); target 90°.
        // Row 1 (180°): others 0° (−1), 90° (0), 45° (−s); target 45°.
        // Row 2 (90°): others 0° (0), 180° (0), 45° (s); target 0°.
        // Row 3 (45°): others 0° (s), 180° (−s), 90° (s); target 180°.
        let rows_sims = [[0.0, -1.0, s], [-s, -1.0, 0.0], [0.0, 0.0, s], [-s, s, s]];
        let expected = rows_sims
            .iter()
            .map(|r| {
                let x: Vec<f64> = r.iter().map(|v| v / tau).collect();
                neg_log_softmax(&x, 0)
            })
            .sum::<f64>()
            / 4.0;
        let got = value(&NtXent::default().loss(&e, &labels(&[0, 1, 0, 1])));
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!((expected - reference(&rows(&e), tau)).abs() < 1e-12);
    }

    #[test]
    fn labels_are_ignored() {
        tch::set_num_threads(1);
        let e = randn(&[6, 3], 12);
        let loss = NtXent { temperature: 0.2 };
        let a = value(&loss.loss(&e, &labels(&[0, 0, 0, 0, 0, 0])));
        let b = value(&loss.loss(&e, &labels(&[0, 1, 2, 0, 1, 2])));
        assert_eq!(a, b);
        assert!((a - reference(&rows(&e), 0.2)).abs() < 1e-12);
    }

    #[test]
    fn gradient() {
        tch::set_num_threads(1);
        let e = leaf(&randn(&[8, 3], 13));
        let lab = labels(&[0; 8]);
        check_grad(&e, || NtXent::default().loss(&e, &lab));
    }
}
