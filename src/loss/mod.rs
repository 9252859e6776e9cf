//! Metric-learning losses. Each loss is one file behind [`MetricLoss`]; losses with
//! learnable parameters (proxies, class weights) create them under the `VarStore`
//! path they are given, so they are saved with the checkpoint and can have an
//! optimiser group (and learning rate) of their own. [`LossConfig`] + [`build`]
//! turn the experiment config's `[loss]` table into a loss.
//!
//! All losses keep the embeddings' precision (single or double) and return a
//! scalar connected to the graph even when nothing in the batch contributes (then
//! its value and gradient are 0), so the trainer can always call `backward`.

pub mod arcface;
pub mod classifier;
pub mod config;
pub mod epshn;
pub mod nt_xent;
pub mod proxy_nca;
pub mod sub_center_arcface;
#[cfg(test)]
mod testutil;

pub use arcface::ArcFace;
pub use classifier::Classifier;
pub use config::{build, LossConfig};
pub use epshn::{EasyPositiveHardNegative, EasyPositiveSemiHardNegative};
pub use nt_xent::NtXent;
pub use proxy_nca::ProxyNca;
pub use sub_center_arcface::{OutlierReport, SubCenterArcFace};

use tch::{Kind, Tensor};

/// A loss over a batch of embeddings and their labels.
pub trait MetricLoss: Send {
    /// Scalar loss for `embeddings` `[B, D]` (float) and `labels` `[B]` (int64).
    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor;

    /// Class scores `[B, C]` for losses that hold per-class parameters (ProxyNCA's
    /// proxies, ArcFace's and SubCenterArcFace's class weights, the cross-entropy
    /// classifier); `None` for pure pair/triplet losses.
    fn logits(&self, _embeddings: &Tensor) -> Option<Tensor> {
        None
    }

    /// Per-class outlier report (SubCenterArcFace: samples far from their class's
    /// dominant sub-centre); `None` for losses that have no such notion.
    fn outliers(&self, _embeddings: &Tensor, _labels: &Tensor) -> Option<Vec<OutlierReport>> {
        None
    }

    /// Short name for logs and reports (the config's `kind`).
    fn name(&self) -> &'static str;
}

/// `[B, B]` boolean masks of the batch: same class excluding the sample itself
/// (positives), and different class (negatives).
pub(crate) fn class_masks(labels: &Tensor) -> (Tensor, Tensor) {
    let labels = labels.view([-1]);
    let same = labels.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
    let idx = Tensor::arange(labels.size()[0], (Kind::Int64, labels.device()));
    let itself = idx.unsqueeze(1).eq_tensor(&idx.unsqueeze(0));
    (same.logical_and(&itself.logical_not()), same.logical_not())
}

/// Mean of `values` over the entries where `mask` is true; 0 (still attached to
/// the graph) when none is. `where` rather than multiplying by the mask, so a
/// non-finite value in a dropped entry cannot leak in as NaN.
pub(crate) fn masked_mean(values: &Tensor, mask: &Tensor) -> Tensor {
    let kept = values.where_scalarother(mask, 0.0);
    let count = mask.sum(Kind::Int64).clamp_min(1).to_kind(values.kind());
    kept.sum(values.kind()) / count
}

/// Mean softmax cross-entropy of `logits` `[B, C]` against `labels` `[B]`, in the
/// logits' precision (tch's `cross_entropy_for_logits` always computes in f32).
pub(crate) fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits
        .log_softmax(-1, None::<Kind>)
        .nll_loss(&labels.view([-1]))
}
