//! Grad-CAM++ for an embedding network (docs/REFERENCE.md, "Grad-CAM++"): channel weights
//! Σ_ij ReLU(g_ij)·α_ij with α = g² / (2g² + (Σ_ij A)·g³ + 1e-6) (0 where g = 0), g = ∂score/∂A.

use super::cam::{CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::method::{MethodInfo, Pass};
use anyhow::Result;
use tch::Tensor;

/// Grad-CAM++ as a [`CamRule`] (registered as `Cam(GradCamPlusPlus)`).
pub struct GradCamPlusPlus;

const INFO: MethodInfo = MethodInfo {
    name: "gradcam_pp",
    aliases: &["gradcam++", "gradcampp", "gradcam_plusplus"],
    title: "Grad-CAM++",
    note: "Grad-CAM++ (Chattopadhay et al.): channel weights = sum over locations of ReLU(gradient) times the second-order coefficient g²/(2g² + ΣA·g³); ReLU of the weighted sum.",
    passes: &[Pass::LayerGradient],
    weight_store: false,
};

impl CamRule for GradCamPlusPlus {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn weights(&self, _chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        let (a, g) = (&input.layer.activations, input.layer.grads()?);
        Ok(CamWeights {
            weights: plus_plus_weights(a, g),
            activations: a.shallow_clone(),
            dead: input.dead.to_vec(),
        })
    }
}

/// Grad-CAM++'s weights `[B, C]` of activations and gradients `[B, C, h, w]`.
pub fn plus_plus_weights(a: &Tensor, g: &Tensor) -> Tensor {
    let g2 = g * g;
    let g3 = &g2 * g;
    let sum_a = a.sum_dim_intlist([2i64, 3].as_slice(), true, None);
    let alpha = &g2 / (&g2 * 2.0 + sum_a * g3 + 1e-6);
    let alpha = alpha.where_self(&g.ne(0.0), &alpha.zeros_like());
    (g.relu() * alpha).sum_dim_intlist([2i64, 3].as_slice(), false, None)
}
