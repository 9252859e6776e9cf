//! Plain classification: a linear layer on the embedding and softmax cross-entropy.
//! Used to pre-train a backbone as a classifier, and as the non-metric baseline.

use super::{cross_entropy, MetricLoss};
use tch::{nn, nn::Module, Tensor};

/// Linear classifier `embedding_dim → num_classes` (variables `weight` `[C, D]` and
/// `bias` `[C]` under the path given to [`Classifier::new`]) + cross-entropy.
#[derive(Debug)]
pub struct Classifier {
    /// The linear layer.
    pub linear: nn::Linear,
}

impl Classifier {
    /// Creates the layer under `path` (tch's default init, like torch's `nn.Linear`).
    pub fn new(path: &nn::Path, embedding_dim: i64, num_classes: i64) -> Self {
        Self {
            linear: nn::linear(path, embedding_dim, num_classes, Default::default()),
        }
    }
}

impl MetricLoss for Classifier {
    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        cross_entropy(&self.linear.forward(embeddings), labels)
    }

    /// The linear layer's output.
    fn logits(&self, embeddings: &Tensor) -> Option<Tensor> {
        Some(self.linear.forward(embeddings))
    }

    fn name(&self) -> &'static str {
        "classifier"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::testutil::*;
    use tch::Device;

    fn double_loss(d: i64, c: i64) -> (nn::VarStore, Classifier) {
        tch::manual_seed(3);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let loss = Classifier::new(&vs.root(), d, c);
        vs.double();
        (vs, loss)
    }

    #[test]
    fn by_hand() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(2, 2);
        tch::no_grad(|| {
            loss.linear
                .ws
                .shallow_clone()
                .copy_(&mat(&[&[1.0, 0.0], &[0.0, 2.0]]));
            loss.linear
                .bs
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.5, -0.5]));
        });
        let e = mat(&[&[1.0, 1.0], &[0.0, -1.0], &[2.0, 0.5], &[-1.0, 1.0]]);
        let lab = [0i64, 1, 0, 1];
        // logits = (x + 0.5, 2y − 0.5) per row.
        let logits = [[1.5, 1.5], [0.5, -2.5], [2.5, 0.5], [-0.5, 1.5]];
        let expected: f64 = logits
            .iter()
            .zip(lab)
            .map(|(l, y)| neg_log_softmax(l, y as usize))
            .sum::<f64>()
            / 4.0;
        let got = value(&loss.loss(&e, &labels(&lab)));
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!((loss.logits(&e).unwrap().double_value(&[1, 1]) + 2.5).abs() < 1e-12);
    }

    #[test]
    fn gradients_for_embeddings_and_weights() {
        tch::set_num_threads(1);
        let (_vs, loss) = double_loss(4, 3);
        let e = leaf(&randn(&[5, 4], 6));
        let lab = labels(&[0, 1, 2, 1, 0]);
        check_grad(&e, || loss.loss(&e, &lab));
        check_grad(&loss.linear.ws, || loss.loss(&e, &lab));
        check_grad(loss.linear.bs.as_ref().unwrap(), || loss.loss(&e, &lab));
    }

    #[test]
    fn parameters_live_under_the_given_path() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _loss = Classifier::new(&(vs.root() / "loss"), 8, 5);
        let vars = vs.variables();
        assert_eq!(vars["loss.weight"].size(), vec![5, 8]);
        assert_eq!(vars["loss.bias"].size(), vec![5]);
    }
}
