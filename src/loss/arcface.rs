//! ArcFace, additive angular margin (Deng et al., CVPR 2019): cosine logits against
//! learnable class weights, with the angle to the true class widened by a margin.

use super::{cross_entropy, MetricLoss};
use crate::search::distance::normalize;
use tch::{nn, Tensor};

/// ArcFace loss. W `[embedding_dim, num_classes]` (PML's layout and name); logits
/// are cos θ_j between the normalised embedding and the normalised columns of W; the
/// true class's logit becomes cos(θ + m) when θ ≤ π − m, else cos θ − m·sin m
/// (insightface's fallback, which keeps the logit decreasing in θ); all logits are
/// multiplied by s and fed to cross-entropy.
#[derive(Debug)]
pub struct ArcFace {
    /// Class weights `[embedding_dim, num_classes]`, the variable `W` under the path
    /// given to [`ArcFace::new`]; they give [`MetricLoss::logits`], so they are saved
    /// with the checkpoint.
    pub weight: Tensor,
    /// Angular margin m in radians (default 0.5 rad = 28.6°, PML's 28.6 degrees).
    pub margin: f64,
    /// Logit scale s (default 64).
    pub scale: f64,
}

impl ArcFace {
    /// Default margin in radians.
    pub const DEFAULT_MARGIN: f64 = 0.5;
    /// Default scale.
    pub const DEFAULT_SCALE: f64 = 64.0;

    /// Creates W (standard-normal init, as PML) under `path`.
    pub fn new(
        path: &nn::Path,
        embedding_dim: i64,
        num_classes: i64,
        margin: f64,
        scale: f64,
    ) -> Self {
        let weight = path.randn_standard("W", &[embedding_dim, num_classes]);
        Self {
            weight,
            margin,
            scale,
        }
    }

    /// `[B, C]` cosines between embeddings and class weights.
    pub fn cosine(&self, embeddings: &Tensor) -> Tensor {
        cosine_to_columns(embeddings, &self.weight)
    }
}

impl MetricLoss for ArcFace {
    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        angular_margin_loss(&self.cosine(embeddings), labels, self.margin, self.scale)
    }

    /// s·cos θ, without the margin (the margin is a training device only).
    fn logits(&self, embeddings: &Tensor) -> Option<Tensor> {
        Some(self.cosine(embeddings) * self.scale)
    }

    fn name(&self) -> &'static str {
        "arcface"
    }
}

/// `[B, K]` cosines between the rows of `embeddings` `[B, D]` and the columns of
/// `weight` `[D, K]`.
pub(crate) fn cosine_to_columns(embeddings: &Tensor, weight: &Tensor) -> Tensor {
    normalize(embeddings).matmul(&normalize(&weight.tr()).tr())
}

/// ArcFace's loss from the class cosines `[B, C]`: margin on the true class, ×s,
/// cross-entropy. Shared with SubCenterArcFace.
pub(crate) fn angular_margin_loss(
    cosine: &Tensor,
    labels: &Tensor,
    margin: f64,
    scale: f64,
) -> Tensor {
    let labels = labels.view([-1, 1]);
    let target = cosine.gather(1, &labels, false);
    // sin θ from cos θ instead of acos: acos has an infinite slope at ±1. The floor
    // keeps sqrt's gradient finite when cos θ = ±1 (value change ≤ 1e-6·sin m).
    let sine = (1f64 - target.square()).clamp_min(1e-12).sqrt();
    let widened = &target * margin.cos() - sine * margin.sin();
    // θ ≤ π − m  ⇔  cos θ ≥ cos(π − m) = −cos m.
    let fallback = &target - margin * margin.sin();
    let modified = widened.where_self(&target.ge(-margin.cos()), &fallback);
    let one_hot = cosine.zeros_like().scatter_value(1, &labels, 1.0);
    let logits = (cosine + one_hot * (modified - target)) * scale;
    cross_entropy(&logits, &labels.view([-1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::testutil::*;
    use tch::{Device, Kind};

    fn double_loss(d: i64, c: i64, margin: f64, scale: f64) -> (nn::VarStore, ArcFace) {
        tch::manual_seed(5);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let loss = ArcFace::new(&vs.root(), d, c, margin, scale);
        vs.double();
        (vs, loss)
    }

    /// ArcFace with plain floats, via the angle itself (acos), independent of the
    /// sin-based tensor formula.
    pub(crate) fn reference_from_cosines(cos: &[Vec<f64>], lab: &[i64], m: f64, s: f64) -> f64 {
        let mut total = 0.0;
        for (row, &y) in cos.iter().zip(lab) {
            let y = y as usize;
            let theta = row[y].clamp(-1.0, 1.0).acos();
            let mut logits: Vec<f64> = row.iter().map(|c| c * s).collect();
            logits[y] = s * if theta <= std::f64::consts::PI - m {
                (theta + m).cos()
            } else {
                row[y] - m * m.sin()
            };
            total += neg_log_softmax(&logits, y);
        }
        total / cos.len() as f64
    }

    fn cosines(emb: &[Vec<f64>], w: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let classes = w[0].len();
        let cols: Vec<Vec<f64>> = (0..classes).map(|j| unit(&column(w, j))).collect();
        emb.iter()
            .map(|e| cols.iter().map(|c| dot(&unit(e), c)).collect())
            .collect()
    }

    #[test]
    fn by_hand_both_branches() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(2, 2, 0.5, 4.0);
        // W columns: class 0 along x, class 1 along y (scaled: normalised away).
        tch::no_grad(|| {
            loss.weight
                .shallow_clone()
                .copy_(&mat(&[&[3.0, 0.0], &[0.0, 2.0]]))
        });
        // Sample A at 20°, class 0: θ = 20° ≤ π − m → logit cos(20° + 0.5 rad).
        // Sample B at 170°, class 1: θ to y = 80° → cos(80° + 0.5 rad).
        // Sample C at 200°, class 0: θ = 160° > π − 0.5 rad (151.35°) → cos θ − m sin m.
        let deg = [20.0f64, 170.0, 200.0];
        let e_rows: Vec<Vec<f64>> = deg
            .iter()
            .map(|d| vec![d.to_radians().cos(), d.to_radians().sin()])
            .collect();
        let refs: Vec<&[f64]> = e_rows.iter().map(|r| r.as_slice()).collect();
        let e = mat(&refs);
        let (m, s) = (0.5f64, 4.0);
        let ce = |t: f64, o: f64| (1.0 + (s * o - s * t).exp()).ln(); // −log softmax([t, o]·s)[0]
        let a = ce((20f64.to_radians() + m).cos(), 20f64.to_radians().sin());
        let b = ce((80f64.to_radians() + m).cos(), 170f64.to_radians().cos());
        let c = ce(
            200f64.to_radians().cos() - m * m.sin(),
            200f64.to_radians().sin(),
        );
        let expected = (a + b + c) / 3.0;
        let got = value(&loss.loss(&e, &labels(&[0, 1, 0])));
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        let w = rows(&loss.weight);
        assert!(
            (expected - reference_from_cosines(&cosines(&e_rows, &w), &[0, 1, 0], m, s)).abs()
                < 1e-12
        );
        // logits(): s·cos θ, no margin.
        let logits = loss.logits(&e).unwrap();
        assert!((logits.double_value(&[0, 0]) - s * 20f64.to_radians().cos()).abs() < 1e-12);
    }

    #[test]
    fn matches_reference_with_defaults() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(6, 5, ArcFace::DEFAULT_MARGIN, ArcFace::DEFAULT_SCALE);
        let e = randn(&[8, 6], 9);
        let lab = [0, 1, 2, 3, 4, 0, 1, 2];
        let got = value(&loss.loss(&e, &labels(&lab)));
        let expected =
            reference_from_cosines(&cosines(&rows(&e), &rows(&loss.weight)), &lab, 0.5, 64.0);
        assert!(
            (got - expected).abs() < 1e-9 * expected.abs().max(1.0),
            "{got} vs {expected}"
        );
    }

    #[test]
    fn gradients_for_embeddings_and_weights_in_both_branches() {
        tch::set_num_threads(1);
        // A small scale keeps the softmax away from saturation, so gradients are not
        // vanishingly small; labels chosen so some samples fall in each branch.
        let (_vs, loss) = double_loss(3, 3, 0.5, 2.0);
        let lab_v = [0i64, 1, 2, 0, 1, 2, 0, 1];
        let lab = labels(&lab_v);
        // The first three samples point away from their class weight (plus noise), so
        // θ > π − m there; the rest are random.
        let w = rows(&loss.weight);
        let mut e_rows = rows(&randn(&[8, 3], 4));
        for (i, row) in e_rows.iter_mut().enumerate().take(3) {
            let col = column(&w, lab_v[i] as usize);
            for (x, c) in row.iter_mut().zip(col) {
                *x = -2.0 * c + 0.2 * *x;
            }
        }
        let refs: Vec<&[f64]> = e_rows.iter().map(|r| r.as_slice()).collect();
        let e = leaf(&mat(&refs));
        let cos = tch::no_grad(|| loss.cosine(&e).gather(1, &lab.view([-1, 1]), false));
        let far = value(&cos.lt(-0.5f64.cos()).sum(Kind::Int64)) as i64;
        assert!(
            far > 0 && far < 8,
            "want both branches, got {far} fallback samples"
        );
        check_grad(&e, || loss.loss(&e, &lab));
        check_grad(&loss.weight, || loss.loss(&e, &lab));
    }

    #[test]
    fn weight_lives_under_the_given_path() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _loss = ArcFace::new(&(vs.root() / "loss"), 8, 5, 0.5, 64.0);
        assert_eq!(vs.variables()["loss.W"].size(), vec![8, 5]);
    }
}
