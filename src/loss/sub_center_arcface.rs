//! Sub-center ArcFace (Deng et al., ECCV 2020): K weight vectors per class, the
//! cosine to a class is the best of its sub-centres, then ArcFace. Samples far from
//! their class's dominant sub-centre are likely label noise or atypical images.

use super::arcface::{angular_margin_loss, cosine_to_columns};
use super::MetricLoss;
use tch::{nn, Kind, Tensor};

/// Default angle (degrees) beyond which a sample is an outlier of its class
/// (the paper's and PML's 75°).
pub const OUTLIER_ANGLE_DEGREES: f64 = 75.0;

/// SubCenterArcFace loss. W `[embedding_dim, num_classes · sub_centers]`, column
/// `c·K + k` being sub-centre k of class c (PML's layout); the class cosine is the
/// maximum over the class's sub-centres; then margin, scale and cross-entropy as
/// [`super::arcface::ArcFace`].
#[derive(Debug)]
pub struct SubCenterArcFace {
    /// Sub-centre weights, the variable `W` under the path given to
    /// [`SubCenterArcFace::new`].
    pub weight: Tensor,
    /// Number of classes C.
    pub num_classes: i64,
    /// Sub-centres per class K (default 3).
    pub sub_centers: i64,
    /// Angular margin in radians (default 0.5).
    pub margin: f64,
    /// Logit scale (default 64).
    pub scale: f64,
}

/// Sub-centre analysis of one class in a batch (see [`SubCenterArcFace::outliers`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierReport {
    /// The class.
    pub class: i64,
    /// Index (0..K) of the sub-centre most of the class's samples are closest to
    /// (ties: the lowest index, as torch's argmax over the counts).
    pub dominant_sub_center: i64,
    /// How many of the class's samples chose each sub-centre.
    pub counts: Vec<usize>,
    /// Rows of the batch of this class whose cosine to the dominant sub-centre is
    /// below the threshold, in batch order.
    pub outliers: Vec<usize>,
    /// Those rows' cosines to the dominant sub-centre (same order as `outliers`).
    pub outlier_cosines: Vec<f64>,
}

impl SubCenterArcFace {
    /// Default number of sub-centres per class.
    pub const DEFAULT_SUB_CENTERS: i64 = 3;

    /// Creates W (standard-normal init, as PML) under `path`.
    pub fn new(
        path: &nn::Path,
        embedding_dim: i64,
        num_classes: i64,
        sub_centers: i64,
        margin: f64,
        scale: f64,
    ) -> Self {
        assert!(
            sub_centers >= 1,
            "sub_centers must be at least 1, got {sub_centers}"
        );
        let weight = path.randn_standard("W", &[embedding_dim, num_classes * sub_centers]);
        Self {
            weight,
            num_classes,
            sub_centers,
            margin,
            scale,
        }
    }

    /// `[B, C, K]` cosines between embeddings and every sub-centre.
    pub fn sub_center_cosine(&self, embeddings: &Tensor) -> Tensor {
        cosine_to_columns(embeddings, &self.weight).view([-1, self.num_classes, self.sub_centers])
    }

    /// `[B, C]` class cosines: the best sub-centre of each class.
    pub fn cosine(&self, embeddings: &Tensor) -> Tensor {
        self.sub_center_cosine(embeddings).max_dim(2, false).0
    }

    /// Per class present in `labels`: the dominant sub-centre and the samples whose
    /// cosine to it is below cos(75°). Classes in ascending order. Runs without
    /// gradients.
    pub fn outliers(&self, embeddings: &Tensor, labels: &Tensor) -> Vec<OutlierReport> {
        self.outliers_at(embeddings, labels, OUTLIER_ANGLE_DEGREES)
    }

    /// [`Self::outliers`] with the angle threshold (degrees) given.
    pub fn outliers_at(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        degrees: f64,
    ) -> Vec<OutlierReport> {
        let threshold = degrees.to_radians().cos();
        let cos = tch::no_grad(|| self.sub_center_cosine(embeddings))
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu)
            .contiguous();
        let cos = Vec::<f64>::try_from(cos.view([-1])).expect("cosines to f64");
        let labels = Vec::<i64>::try_from(
            labels
                .to_kind(Kind::Int64)
                .to_device(tch::Device::Cpu)
                .view([-1]),
        )
        .expect("labels to i64");
        let (c, k) = (self.num_classes as usize, self.sub_centers as usize);
        let at = |row: usize, class: usize, sub: usize| cos[(row * c + class) * k + sub];

        let mut classes: Vec<i64> = labels.clone();
        classes.sort_unstable();
        classes.dedup();
        classes
            .into_iter()
            .map(|class| {
                let cl = class as usize;
                assert!(cl < c, "label {class} outside 0..{c}");
                let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
                let mut counts = vec![0usize; k];
                for &r in &rows {
                    // First maximum, as torch.argmax.
                    let best =
                        (0..k).fold(0, |b, s| if at(r, cl, s) > at(r, cl, b) { s } else { b });
                    counts[best] += 1;
                }
                let dominant = (0..k).fold(0, |b, s| if counts[s] > counts[b] { s } else { b });
                let (outliers, outlier_cosines) = rows
                    .iter()
                    .map(|&r| (r, at(r, cl, dominant)))
                    .filter(|&(_, v)| v < threshold)
                    .unzip();
                OutlierReport {
                    class,
                    dominant_sub_center: dominant as i64,
                    counts,
                    outliers,
                    outlier_cosines,
                }
            })
            .collect()
    }
}

impl MetricLoss for SubCenterArcFace {
    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        angular_margin_loss(&self.cosine(embeddings), labels, self.margin, self.scale)
    }

    /// s·(class cosine), without the margin.
    fn logits(&self, embeddings: &Tensor) -> Option<Tensor> {
        Some(self.cosine(embeddings) * self.scale)
    }

    fn outliers(&self, embeddings: &Tensor, labels: &Tensor) -> Option<Vec<OutlierReport>> {
        Some(SubCenterArcFace::outliers(self, embeddings, labels))
    }

    fn name(&self) -> &'static str {
        "sub_center_arcface"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::testutil::*;
    use tch::Device;

    fn double_loss(
        d: i64,
        c: i64,
        k: i64,
        margin: f64,
        scale: f64,
    ) -> (nn::VarStore, SubCenterArcFace) {
        tch::manual_seed(21);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let loss = SubCenterArcFace::new(&vs.root(), d, c, k, margin, scale);
        vs.double();
        (vs, loss)
    }

    fn angle(deg: f64) -> Vec<f64> {
        vec![deg.to_radians().cos(), deg.to_radians().sin()]
    }

    /// Rows of `W` from sub-centre directions (degrees) listed class by class.
    fn set_weight(loss: &SubCenterArcFace, degrees: &[f64]) {
        let cols: Vec<Vec<f64>> = degrees.iter().map(|&d| angle(d)).collect();
        let w_rows: Vec<Vec<f64>> = (0..2)
            .map(|i| cols.iter().map(|c| c[i]).collect())
            .collect();
        let refs: Vec<&[f64]> = w_rows.iter().map(|r| r.as_slice()).collect();
        tch::no_grad(|| loss.weight.shallow_clone().copy_(&mat(&refs)));
    }

    fn embeddings(degrees: &[f64]) -> Tensor {
        let r: Vec<Vec<f64>> = degrees.iter().map(|&d| angle(d)).collect();
        let refs: Vec<&[f64]> = r.iter().map(|x| x.as_slice()).collect();
        mat(&refs)
    }

    #[test]
    fn by_hand_max_pooling_then_arcface() {
        tch::set_num_threads(1);
        let (m, s) = (0.5f64, 4.0);
        let (_vs, loss) = double_loss(2, 2, 2, m, s);
        // Class 0 sub-centres at 0° and 120°; class 1 at 60° and 270°.
        set_weight(&loss, &[0.0, 120.0, 60.0, 270.0]);
        // Sample at 100°, class 0: best class-0 sub-centre 120° (θ = 20°); best class-1
        // 60° (40° away). Sample at 300°, class 1: best 270° (θ = 30°); class 0 best
        // 0° (60° away).
        let e = embeddings(&[100.0, 300.0]);
        let c = |d: f64| d.to_radians().cos();
        let ce = |t: f64, o: f64| (1.0 + (s * o - s * t).exp()).ln();
        let expected = (ce((20f64.to_radians() + m).cos(), c(40.0))
            + ce((30f64.to_radians() + m).cos(), c(60.0)))
            / 2.0;
        let got = value(&loss.loss(&e, &labels(&[0, 1])));
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        let logits = loss.logits(&e).unwrap();
        assert!((logits.double_value(&[0, 1]) - s * c(40.0)).abs() < 1e-12);
    }

    #[test]
    fn outliers_by_hand() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(2, 2, 3, 0.5, 64.0);
        // Class 0 sub-centres 0°, 90°, 180°; class 1: 45°, 135°, 315°.
        set_weight(&loss, &[0.0, 90.0, 180.0, 45.0, 135.0, 315.0]);
        // Class 0 samples: 10°, 350°, 20° choose 0° (dominant); 100° chooses 90° and is
        // 100° from 0° → outlier; 80° is closest to 90°, and 80° from 0° > 75° →
        // outlier; 70° chooses 90° (20° < 70°) but is 70° from 0° → not an outlier.
        // Class 1 samples: 130°, 140° choose 135° (dominant), 40° chooses 45° and is
        // 95° from 135° → outlier.
        let e = embeddings(&[10.0, 130.0, 350.0, 100.0, 40.0, 20.0, 80.0, 140.0, 70.0]);
        let lab = labels(&[0, 1, 0, 0, 1, 0, 0, 1, 0]);
        let report = loss.outliers(&e, &lab);
        assert_eq!(report.len(), 2);
        assert_eq!(report[0].class, 0);
        assert_eq!(report[0].dominant_sub_center, 0);
        assert_eq!(report[0].counts, vec![3, 3, 0]);
        assert_eq!(report[0].outliers, vec![3, 6]);
        assert!((report[0].outlier_cosines[0] - 100f64.to_radians().cos()).abs() < 1e-12);
        assert_eq!(report[1].class, 1);
        assert_eq!(report[1].dominant_sub_center, 1);
        assert_eq!(report[1].counts, vec![1, 2, 0]);
        assert_eq!(report[1].outliers, vec![4]);
        // A looser threshold keeps everyone.
        assert!(loss
            .outliers_at(&e, &lab, 110.0)
            .iter()
            .all(|r| r.outliers.is_empty()));
    }

    #[test]
    fn gradients_for_embeddings_and_weights() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(4, 3, 3, 0.5, 3.0);
        let e = leaf(&randn(&[7, 4], 8));
        let lab = labels(&[0, 1, 2, 0, 1, 2, 0]);
        check_grad(&e, || loss.loss(&e, &lab));
        check_grad(&loss.weight, || loss.loss(&e, &lab));
    }

    #[test]
    fn one_sub_center_is_arcface() {
        tch::set_num_threads(1);
        let (_vs, sub) = double_loss(4, 3, 1, 0.5, 64.0);
        let vs = nn::VarStore::new(Device::Cpu);
        let arc = crate::loss::arcface::ArcFace::new(&vs.root(), 4, 3, 0.5, 64.0);
        let w = tch::no_grad(|| arc.weight.to_kind(Kind::Double));
        tch::no_grad(|| sub.weight.shallow_clone().copy_(&w));
        let e = randn(&[6, 4], 1);
        let lab = labels(&[0, 1, 2, 2, 1, 0]);
        let arc_value = value(&crate::loss::arcface::angular_margin_loss(
            &crate::loss::arcface::cosine_to_columns(&e, &w),
            &lab,
            0.5,
            64.0,
        ));
        assert!((value(&sub.loss(&e, &lab)) - arc_value).abs() < 1e-12);
    }
}
