//! XGrad-CAM for an embedding network (docs/REFERENCE.md, "XGrad-CAM"): channel weights
//! Σ_ij g_ij·A_ij / (Σ_ij A_ij + 1e-7), g = ∂score/∂A.

use super::cam::{CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::method::{MethodInfo, Pass};
use anyhow::Result;
use tch::Tensor;

/// XGrad-CAM as a [`CamRule`] (registered as `Cam(XGradCam)`).
pub struct XGradCam;

const INFO: MethodInfo = MethodInfo {
    name: "xgradcam",
    aliases: &["xgrad_cam"],
    title: "XGrad-CAM",
    note: "XGrad-CAM (Fu et al.): channel weights = sum over locations of gradient × activation, divided by the channel's activation sum; ReLU of the weighted sum.",
    passes: &[Pass::LayerGradient],
    weight_store: false,
};

impl CamRule for XGradCam {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn weights(&self, _chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        let (a, g) = (&input.layer.activations, input.layer.grads()?);
        Ok(CamWeights {
            weights: axiom_weights(a, g),
            activations: a.shallow_clone(),
            dead: input.dead.to_vec(),
        })
    }
}

/// XGrad-CAM's weights `[B, C]` of activations and gradients `[B, C, h, w]`.
pub fn axiom_weights(a: &Tensor, g: &Tensor) -> Tensor {
    let sum_a = a.sum_dim_intlist([2i64, 3].as_slice(), true, None);
    (g * a / (sum_a + 1e-7)).sum_dim_intlist([2i64, 3].as_slice(), false, None)
}
