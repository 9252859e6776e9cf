//! Grad-CAM for an embedding network (docs/REFERENCE.md, "Saliency for embedding
//! networks"): channel weights are the spatial mean of ∂score/∂A; the map is
//! ReLU(Σ_c w_c·A_c), scaled to [0, 1] and resized to the input.

use super::cam::{cam_maps, CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::map::SaliencyMap;
use super::method::{MethodInfo, Pass};
use super::saliency::{gradients, Explainable, Gradients, ScoreFn};
use anyhow::{Context, Result};
use tch::Tensor;

/// Grad-CAM as a [`CamRule`] (registered as `Cam(GradCam)`).
pub struct GradCam;

const INFO: MethodInfo = MethodInfo {
    name: "gradcam",
    aliases: &["grad_cam"],
    title: "Grad-CAM",
    note: "Grad-CAM: channel weights = spatial mean of the gradient of the cosine similarity (to the target) w.r.t. the last conv activation; ReLU of the weighted sum, scaled to [0,1], resized bilinearly.",
    passes: &[Pass::LayerGradient],
    weight_store: false,
};

impl CamRule for GradCam {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn weights(&self, _chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        Ok(CamWeights {
            weights: channel_weights(input.layer.grads()?),
            activations: input.layer.activations.shallow_clone(),
            dead: input.dead.to_vec(),
        })
    }
}

/// Grad-CAM's channel weights `[B, C]`: the spatial mean of the gradient `[B, C, h, w]`.
pub fn channel_weights(activation_grads: &Tensor) -> Tensor {
    activation_grads.mean_dim([2i64, 3].as_slice(), false, None)
}

/// Grad-CAM's weights of a computed pass, with its activations.
pub fn gradcam_weights(g: &Gradients) -> CamWeights {
    CamWeights {
        weights: channel_weights(&g.activation_grads),
        activations: g.activations.shallow_clone(),
        dead: g.dead(),
    }
}

/// Grad-CAM maps of a computed pass at the input's size `height`×`width`, and the weights.
pub fn gradcam_maps(g: &Gradients, height: i64, width: i64) -> Result<(Vec<SaliencyMap>, Tensor)> {
    let w = gradcam_weights(g);
    Ok((cam_maps(&w, height, width)?, w.weights))
}

/// Grad-CAM of images `x` `[B, 3, H, W]` against `score`: the maps, the channel weights
/// `[B, C]` and the pass they came from.
pub fn gradcam(
    net: &dyn Explainable,
    x: &Tensor,
    score: &ScoreFn<'_>,
) -> Result<(Vec<SaliencyMap>, Tensor, Gradients)> {
    let (_, _, h, w) = x.size4().context("images must be [B, 3, H, W]")?;
    let g = gradients(net, x, score, false)?;
    let (maps, weights) = gradcam_maps(&g, h, w)?;
    Ok((maps, weights, g))
}
