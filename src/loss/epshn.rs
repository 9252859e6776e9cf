//! Easy-positive hard-negative mining (Xuan et al., WACV 2020) in its two published
//! forms: the official softmax form ([`EasyPositiveHardNegative`]) and
//! pytorch-metric-learning's miner + triplet-margin form
//! ([`EasyPositiveSemiHardNegative`]).
//!
//! Both mine on detached similarities (mining picks indices; the gradient flows only
//! through the chosen pairs, as in the reference code) and are fully vectorised:
//! masks, then one arg-max/arg-min per row.

use super::{class_masks, masked_mean, MetricLoss};
use crate::search::distance::{normalize, Distance};
use tch::{Kind, Tensor};

/// Same-class pairs more similar than this (cosine) are near-duplicates (the same
/// image twice, or an augmentation that changed nothing) and never serve as the
/// positive. The official code's value.
pub const NEAR_DUPLICATE_COSINE: f64 = 0.9999;

/// EPSHN, official softmax form. Per anchor: the positive is the most similar
/// same-class sample with cosine ≤ [`NEAR_DUPLICATE_COSINE`]; negatives more similar
/// than that positive are masked out; the hardest (most similar) remaining negative
/// is taken. Loss = −log softmax([S_ap, S_an] / σ)[0], averaged over the anchors that
/// have both (0 when none has).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EasyPositiveHardNegative {
    /// Softmax temperature σ (paper and official code: 0.1).
    pub sigma: f64,
}

impl Default for EasyPositiveHardNegative {
    fn default() -> Self {
        Self { sigma: 0.1 }
    }
}

impl MetricLoss for EasyPositiveHardNegative {
    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        let z = normalize(embeddings);
        let s = z.matmul(&z.tr());
        let s_mine = s.detach();
        let (same, other) = class_masks(labels);

        // Easy positive: most similar same-class sample that is not a near-duplicate.
        let pos_mask = same.logical_and(&s_mine.le(NEAR_DUPLICATE_COSINE));
        let (pos_sim, pos_idx) = s_mine
            .masked_fill(&pos_mask.logical_not(), f64::NEG_INFINITY)
            .max_dim(1, false);
        let has_pos = pos_mask.any_dim(1, false);

        // Hard negative among those not more similar than the positive. For anchors
        // without a positive `pos_sim` is −inf, so no negative qualifies either.
        let neg_mask = other.logical_and(&s_mine.le_tensor(&pos_sim.unsqueeze(1)));
        let neg_idx = s_mine
            .masked_fill(&neg_mask.logical_not(), f64::NEG_INFINITY)
            .argmax(1, false);
        let has_neg = neg_mask.any_dim(1, false);

        let s_ap = s.gather(1, &pos_idx.unsqueeze(1), false);
        let s_an = s.gather(1, &neg_idx.unsqueeze(1), false);
        let pair = Tensor::cat(&[s_ap, s_an], 1) / self.sigma;
        let per_anchor = -pair.log_softmax(1, None::<Kind>).select(1, 0);
        masked_mean(&per_anchor, &has_pos.logical_and(&has_neg))
    }

    fn name(&self) -> &'static str {
        "epshn"
    }
}

/// EPSHN, pytorch-metric-learning form: `BatchEasyHardMiner(pos=EASY,
/// neg=SEMIHARD)` + `TripletMarginLoss`. Embeddings are L2-normalised first. Per
/// anchor: easy positive = closest same-class sample; semi-hard negative = closest
/// other-class sample strictly farther than that positive (no margin bound);
/// anchors lacking either are dropped. Loss = relu(d_ap − d_an + margin), averaged
/// over the triplets with a non-zero loss (0 when there are none), as PML's
/// `AvgNonZeroReducer`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EasyPositiveSemiHardNegative {
    /// Triplet margin (the reference experiments: 0.05).
    pub margin: f64,
    /// Distance used for mining and for the triplet (PML's default: Euclidean).
    pub distance: Distance,
}

impl Default for EasyPositiveSemiHardNegative {
    fn default() -> Self {
        Self {
            margin: 0.05,
            distance: Distance::Euclidean,
        }
    }
}

impl MetricLoss for EasyPositiveSemiHardNegative {
    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        let z = normalize(embeddings);
        let d = self.distance.matrix(&z, &z);
        let d_mine = d.detach();
        let (same, other) = class_masks(labels);

        let (pos_dist, pos_idx) = d_mine
            .masked_fill(&same.logical_not(), f64::INFINITY)
            .min_dim(1, false);
        let has_pos = same.any_dim(1, false);

        // Strictly farther than the positive; +inf `pos_dist` (no positive) admits none.
        let neg_mask = other.logical_and(&d_mine.gt_tensor(&pos_dist.unsqueeze(1)));
        let neg_idx = d_mine
            .masked_fill(&neg_mask.logical_not(), f64::INFINITY)
            .argmin(1, false);
        let has_neg = neg_mask.any_dim(1, false);

        let d_ap = d.gather(1, &pos_idx.unsqueeze(1), false).squeeze_dim(1);
        let d_an = d.gather(1, &neg_idx.unsqueeze(1), false).squeeze_dim(1);
        let per_anchor = (d_ap - d_an + self.margin).relu();
        let counted = has_pos
            .logical_and(&has_neg)
            .logical_and(&per_anchor.detach().gt(0.0));
        masked_mean(&per_anchor, &counted)
    }

    fn name(&self) -> &'static str {
        "epshn_triplet"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::testutil::*;

    /// The official algorithm written out with plain floats and loops.
    fn official_reference(emb: &[Vec<f64>], lab: &[i64], sigma: f64) -> f64 {
        let z: Vec<Vec<f64>> = emb.iter().map(|e| unit(e)).collect();
        let (mut sum, mut count) = (0.0, 0);
        for a in 0..z.len() {
            let mut pos: Option<f64> = None;
            for p in 0..z.len() {
                let s = dot(&z[a], &z[p]);
                if p != a
                    && lab[p] == lab[a]
                    && s <= NEAR_DUPLICATE_COSINE
                    && pos.is_none_or(|b| s > b)
                {
                    pos = Some(s);
                }
            }
            let Some(sp) = pos else { continue };
            let mut neg: Option<f64> = None;
            for n in 0..z.len() {
                let s = dot(&z[a], &z[n]);
                if lab[n] != lab[a] && s <= sp && neg.is_none_or(|b| s > b) {
                    neg = Some(s);
                }
            }
            let Some(sn) = neg else { continue };
            sum += neg_log_softmax(&[sp / sigma, sn / sigma], 0);
            count += 1;
        }
        if count == 0 {
            0.0
        } else {
            sum / count as f64
        }
    }

    /// PML's miner + triplet margin loss with plain floats (Euclidean on unit vectors).
    fn pml_reference(emb: &[Vec<f64>], lab: &[i64], margin: f64) -> f64 {
        let z: Vec<Vec<f64>> = emb.iter().map(|e| unit(e)).collect();
        let (mut sum, mut count) = (0.0, 0);
        for a in 0..z.len() {
            let mut pos: Option<f64> = None;
            for p in 0..z.len() {
                let d = dist(&z[a], &z[p]);
                if p != a && lab[p] == lab[a] && pos.is_none_or(|b| d < b) {
                    pos = Some(d);
                }
            }
            let Some(dp) = pos else { continue };
            let mut neg: Option<f64> = None;
            for n in 0..z.len() {
                let d = dist(&z[a], &z[n]);
                if lab[n] != lab[a] && d > dp && neg.is_none_or(|b| d < b) {
                    neg = Some(d);
                }
            }
            let Some(dn) = neg else { continue };
            let l = (dp - dn + margin).max(0.0);
            if l > 0.0 {
                sum += l;
                count += 1;
            }
        }
        if count == 0 {
            0.0
        } else {
            sum / count as f64
        }
    }

    fn at_degrees(deg: &[f64]) -> Tensor {
        let rows: Vec<Vec<f64>> = deg
            .iter()
            .map(|d| vec![d.to_radians().cos(), d.to_radians().sin()])
            .collect();
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        mat(&refs)
    }

    #[test]
    fn official_form_by_hand() {
        tch::set_num_threads(1);
        // Unit vectors at 0°, 40° (class 0) and 20°, 90° (class 1), lengths varied to
        // show normalisation. Anchor 0: pos 40° (cos 40°); negatives 20° (cos 20° >
        // cos 40°: masked) and 90° → S_an = cos 90° = 0. Anchor 1 (40°): pos cos 40°,
        // negatives 20° (cos 20°, masked), 90° (cos 50°) → cos 50°. Anchor 2 (20°):
        // pos 90° (cos 70°), negatives 0° (cos 20°), 40° (cos 20°): both masked →
        // dropped. Anchor 3 (90°): pos cos 70°, negatives 0° (cos 90°), 40° (cos 50° >
        // cos 70°: masked) → cos 90°.
        let deg = [0.0, 40.0, 20.0, 90.0];
        let e = at_degrees(&deg) * Tensor::from_slice(&[1.0, 2.0, 0.5, 3.0]).unsqueeze(1);
        let l = labels(&[0, 0, 1, 1]);
        let c = |d: f64| d.to_radians().cos();
        let term = |sp: f64, sn: f64| (1.0 + ((sn - sp) / 0.1).exp()).ln();
        let expected =
            (term(c(40.0), c(90.0)) + term(c(40.0), c(50.0)) + term(c(70.0), c(90.0))) / 3.0;
        let got = value(&EasyPositiveHardNegative::default().loss(&e, &l));
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!((expected - official_reference(&rows(&e), &[0, 0, 1, 1], 0.1)).abs() < 1e-12);
    }

    #[test]
    fn official_form_skips_near_duplicates_and_drops_anchors() {
        tch::set_num_threads(1);
        // Row 1 duplicates row 0 (cosine 1 > 0.9999): each must take row 2 as positive.
        // Row 4 is the only sample of its class: no positive, dropped.
        let e = at_degrees(&[10.0, 10.0, 30.0, 70.0, 200.0, 100.0]);
        let lab = [0, 0, 0, 1, 2, 1];
        let got = value(&EasyPositiveHardNegative::default().loss(&e, &labels(&lab)));
        let expected = official_reference(&rows(&e), &lab, 0.1);
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        // By hand for anchor 0: positive cos 20° (row 2, not the duplicate); negatives
        // 70° (cos 60°), 200° (cos 190°), 100° (cos 90°) → hardest cos 60°.
        let c = |d: f64| d.to_radians().cos();
        let anchor0 = (1.0 + ((c(60.0) - c(20.0)) / 0.1).exp()).ln();
        let anchor2 = (1.0 + ((c(40.0) - c(20.0)) / 0.1).exp()).ln(); // neg 70° at 40°
        let anchor3 = (1.0 + ((c(40.0) - c(30.0)) / 0.1).exp()).ln(); // pos 100°, neg 30°
        let anchor5 = (1.0 + ((c(70.0) - c(30.0)) / 0.1).exp()).ln(); // pos 70°, neg 30°
        let by_hand = (2.0 * anchor0 + anchor2 + anchor3 + anchor5) / 5.0;
        assert!((got - by_hand).abs() < 1e-12, "{got} vs {by_hand}");
    }

    #[test]
    fn official_form_without_valid_anchors_is_zero_with_a_gradient() {
        tch::set_num_threads(1);
        let e = leaf(&at_degrees(&[0.0, 90.0, 180.0]));
        let loss = EasyPositiveHardNegative::default().loss(&e, &labels(&[0, 1, 2]));
        assert_eq!(value(&loss), 0.0);
        loss.backward();
        assert_eq!(value(&e.grad().abs().sum(Kind::Double)), 0.0);
    }

    #[test]
    fn official_form_gradient() {
        tch::set_num_threads(1);
        let e = leaf(&randn(&[10, 4], 7));
        let lab = labels(&[0, 0, 0, 1, 1, 1, 2, 2, 3, 3]);
        let loss = EasyPositiveHardNegative::default();
        assert!(value(&loss.loss(&e, &lab)) > 0.0);
        check_grad(&e, || loss.loss(&e, &lab));
    }

    #[test]
    fn pml_form_by_hand() {
        tch::set_num_threads(1);
        // 0°, 60° (class 0), 20°, 100° (class 1): chord d(α) = 2 sin(α/2).
        // Anchor 0: pos d(60); negatives farther than it: 100° → d(100).
        //   relu(d60 − d100 + m) = 0 (d100 ≫ d60).
        // Anchor 1 (60°): pos d(60); negs 20° (d40 < d60, not semi-hard), 100° (d40) →
        //   none farther → dropped.
        // Anchor 2 (20°): pos d(80); negs 0° (d20), 60° (d40) → none → dropped.
        // Anchor 3 (100°): pos d(80); negs 0° (d100), 60° (d40) → d100;
        //   d80 − d100 + 0.05 < 0 → 0.
        // All zero → loss 0. A larger margin makes anchors 0 and 3 non-zero.
        let e = at_degrees(&[0.0, 60.0, 20.0, 100.0]);
        let l = labels(&[0, 0, 1, 1]);
        let chord = |a: f64| 2.0 * (a.to_radians() / 2.0).sin();
        let small = EasyPositiveSemiHardNegative::default();
        assert_eq!(value(&small.loss(&e, &l)), 0.0);
        let big = EasyPositiveSemiHardNegative {
            margin: 0.6,
            distance: Distance::Euclidean,
        };
        let a0 = chord(60.0) - chord(100.0) + 0.6;
        let a3 = chord(80.0) - chord(100.0) + 0.6;
        assert!(a0 > 0.0 && a3 > 0.0);
        let got = value(&big.loss(&e, &l));
        assert!((got - (a0 + a3) / 2.0).abs() < 1e-9, "{got}");
        assert!((got - pml_reference(&rows(&e), &[0, 0, 1, 1], 0.6)).abs() < 1e-9);
        // Cosine distance ranks like the chord on unit vectors: same triplets.
        let cos = EasyPositiveSemiHardNegative {
            margin: 0.6,
            distance: Distance::Cosine,
        };
        let c = |a: f64| 1.0 - a.to_radians().cos();
        // In cosine distance anchor 0's triplet is satisfied (0.5 − 1.17 + 0.6 < 0), so
        // the average runs over anchor 3's non-zero triplet only.
        assert!(c(60.0) - c(100.0) + 0.6 < 0.0);
        let expected = c(80.0) - c(100.0) + 0.6;
        assert!((value(&cos.loss(&e, &l)) - expected).abs() < 1e-9);
    }

    #[test]
    fn pml_form_matches_reference_on_random_batch_and_averages_non_zero_only() {
        tch::set_num_threads(1);
        let e = randn(&[12, 3], 3);
        let lab = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4];
        let loss = EasyPositiveSemiHardNegative {
            margin: 0.3,
            distance: Distance::Euclidean,
        };
        let got = value(&loss.loss(&e, &labels(&lab)));
        let expected = pml_reference(&rows(&e), &lab, 0.3);
        assert!(expected > 0.0);
        assert!((got - expected).abs() < 1e-9, "{got} vs {expected}");
    }

    #[test]
    fn pml_form_gradient() {
        tch::set_num_threads(1);
        let e = leaf(&randn(&[12, 3], 3));
        let lab = labels(&[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4]);
        for distance in [Distance::Euclidean, Distance::Cosine] {
            let loss = EasyPositiveSemiHardNegative {
                margin: 0.3,
                distance,
            };
            assert!(value(&loss.loss(&e, &lab)) > 0.0);
            check_grad(&e, || loss.loss(&e, &lab));
        }
    }
}
