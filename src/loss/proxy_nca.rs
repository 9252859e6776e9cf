//! ProxyNCA (Movshovitz-Attias et al., ICCV 2017), as pytorch-metric-learning's
//! `ProxyNCALoss`: one learnable proxy per class; each embedding is pulled towards
//! its class proxy and pushed from the others through a softmax over distances.

use super::{cross_entropy, MetricLoss};
use crate::search::distance::normalize;
use tch::{nn, Kind, Tensor};

/// ProxyNCA loss: d² = squared L2 distance between the L2-normalised embedding and
/// the L2-normalised proxies; loss = −log softmax(−scale·d²)[true class], averaged
/// over the batch.
#[derive(Debug)]
pub struct ProxyNca {
    /// Proxies `[num_classes, embedding_dim]`, the variable `proxies` under the path
    /// given to [`ProxyNca::new`] (saved with the checkpoint).
    pub proxies: Tensor,
    /// Softmax scale (PML's default 1; CUB-tuned setups use about 14).
    pub scale: f64,
}

impl ProxyNca {
    /// Default softmax scale (PML's `softmax_scale`).
    pub const DEFAULT_SCALE: f64 = 1.0;

    /// Creates the proxies (standard-normal init, as PML) under `path`.
    pub fn new(path: &nn::Path, embedding_dim: i64, num_classes: i64, scale: f64) -> Self {
        let proxies = path.randn_standard("proxies", &[num_classes, embedding_dim]);
        Self { proxies, scale }
    }

    /// `[B, C]` scores −scale·d² of each embedding against each class proxy.
    fn scores(&self, embeddings: &Tensor) -> Tensor {
        let z = normalize(embeddings);
        let p = normalize(&self.proxies);
        // ‖z‖² + ‖p‖² − 2 z·p: no [B, C, D] intermediate (thousands of classes).
        let zz = z.square().sum_dim_intlist(1, true, None::<Kind>);
        let pp = p.square().sum_dim_intlist(1, true, None::<Kind>).tr();
        let d2 = (zz + pp - 2f64 * z.matmul(&p.tr())).clamp_min(0.0);
        d2 * (-self.scale)
    }
}

impl MetricLoss for ProxyNca {
    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        cross_entropy(&self.scores(embeddings), labels)
    }

    /// −scale·d² to each proxy: the nearest proxy is the predicted class.
    fn logits(&self, embeddings: &Tensor) -> Option<Tensor> {
        Some(self.scores(embeddings))
    }

    fn name(&self) -> &'static str {
        "proxy_nca"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::testutil::*;
    use tch::{Device, Kind};

    fn double_loss(embedding_dim: i64, classes: i64, scale: f64) -> (nn::VarStore, ProxyNca) {
        tch::manual_seed(11);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let loss = ProxyNca::new(&vs.root(), embedding_dim, classes, scale);
        vs.double();
        (vs, loss)
    }

    fn reference(emb: &[Vec<f64>], lab: &[i64], proxies: &[Vec<f64>], scale: f64) -> f64 {
        let mut total = 0.0;
        for (e, &y) in emb.iter().zip(lab) {
            let z = unit(e);
            let scores: Vec<f64> = proxies
                .iter()
                .map(|p| -scale * dist(&z, &unit(p)).powi(2))
                .collect();
            total += neg_log_softmax(&scores, y as usize);
        }
        total / emb.len() as f64
    }

    #[test]
    fn by_hand() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(2, 2, 1.0);
        // Proxies along x and y; embeddings at 0°, 30° (class 0), 90°, 60° (class 1).
        tch::no_grad(|| {
            loss.proxies
                .shallow_clone()
                .copy_(&mat(&[&[2.0, 0.0], &[0.0, 0.5]]))
        });
        let e = mat(&[
            &[1.0, 0.0],
            &[3f64.sqrt(), 1.0],
            &[0.0, 4.0],
            &[1.0, 3f64.sqrt()],
        ]);
        let l = labels(&[0, 0, 1, 1]);
        // d² = 2 − 2 cos α. For 0°: d² to proxies 0 and 2 → −log(1/(1+e^−2)).
        // For 30°: d² = 2 − √3 and 2 − 1 = 1 → −log softmax([−(2−√3), −1])[0].
        let sp = |a: f64, b: f64| (1.0 + (a - b).exp()).ln(); // −log softmax([−a, −b])[0]
        let a30 = 2.0 - 3f64.sqrt();
        let expected = (2.0 * sp(0.0, 2.0) + 2.0 * sp(a30, 1.0)) / 4.0;
        let got = value(&loss.loss(&e, &l));
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        let scores = loss.logits(&e).unwrap();
        assert_eq!(
            Vec::<i64>::try_from(scores.argmax(1, false)).unwrap(),
            vec![0, 0, 1, 1]
        );
    }

    #[test]
    fn matches_reference_with_scale() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(5, 4, 14.0);
        let e = randn(&[9, 5], 2);
        let lab = [0, 1, 2, 3, 0, 1, 2, 3, 3];
        let got = value(&loss.loss(&e, &labels(&lab)));
        let expected = reference(&rows(&e), &lab, &rows(&loss.proxies), 14.0);
        assert!((got - expected).abs() < 1e-10, "{got} vs {expected}");
    }

    #[test]
    fn gradients_for_embeddings_and_proxies() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(4, 3, 3.0);
        let e = leaf(&randn(&[6, 4], 5));
        let l = labels(&[0, 1, 2, 0, 1, 2]);
        check_grad(&e, || loss.loss(&e, &l));
        check_grad(&loss.proxies, || loss.loss(&e, &l));
    }

    #[test]
    fn proxies_live_under_the_given_path() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _loss = ProxyNca::new(&(vs.root() / "loss").set_group(1), 8, 5, 1.0);
        let vars = vs.variables();
        assert_eq!(vars["loss.proxies"].size(), vec![5, 8]);
        assert_eq!(vars["loss.proxies"].kind(), Kind::Float);
        assert_eq!(vs.trainable_variables().len(), 1);
    }
}
