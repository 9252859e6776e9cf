//! Grad-CAM for an embedding network (docs/REFERENCE.md, "Saliency for embedding
//! networks"): channel weights are the spatial mean of ∂score/∂A; the map is
//! ReLU(Σ_c w_c·A_c), scaled to [0, 1] and resized to the input.

use super::map::{scale_maps, SaliencyMap};
use super::saliency::{gradients, Explainable, Gradients, ScoreFn};
use tch::Tensor;

/// Grad-CAM's channel weights `[B, C]`: the spatial mean of the gradient `[B, C, h, w]`.
pub fn channel_weights(activation_grads: &Tensor) -> Tensor {
    activation_grads.mean_dim([2i64, 3].as_slice(), false, None)
}

/// `ReLU(Σ_c w_c·A_c)` `[B, h, w]` for weights `[B, C]` and activations `[B, C, h, w]`, and
/// per image the largest `Σ_c |w_c·A_c|` over locations (the magnitude of the summed
/// terms: a map below its rounding noise is zero, see [`super::map::judge`]).
pub fn weighted_activations(weights: &Tensor, activations: &Tensor) -> (Tensor, Vec<f64>) {
    let w = weights
        .to_kind(activations.kind())
        .unsqueeze(-1)
        .unsqueeze(-1);
    let terms = activations * &w;
    let raw = terms.sum_dim_intlist([1i64].as_slice(), false, None).relu();
    let magnitude = terms
        .abs()
        .sum_dim_intlist([1i64].as_slice(), false, None)
        .amax([1i64, 2].as_slice(), false);
    let reference = Vec::try_from(
        magnitude
            .to_kind(tch::Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .unwrap_or_default();
    (raw, reference)
}

/// Grad-CAM maps of a computed pass at the input's size `height`×`width`, and the weights.
pub fn gradcam_maps(g: &Gradients, height: i64, width: i64) -> (Vec<SaliencyMap>, Tensor) {
    let weights = channel_weights(&g.activation_grads);
    let (raw, reference) = weighted_activations(&weights, &g.activations);
    (
        scale_maps(&raw, &reference, &g.dead(), height, width),
        weights,
    )
}

/// Grad-CAM of images `x` `[B, 3, H, W]` against `score`: the maps, the channel weights
/// `[B, C]` and the pass they came from.
pub fn gradcam(
    net: &dyn Explainable,
    x: &Tensor,
    score: &ScoreFn<'_>,
) -> (Vec<SaliencyMap>, Tensor, Gradients) {
    let (_, _, h, w) = x.size4().expect("images must be [B, 3, H, W]");
    let g = gradients(net, x, score, false);
    let (maps, weights) = gradcam_maps(&g, h, w);
    (maps, weights, g)
}
