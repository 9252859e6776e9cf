//! LayerCAM for an embedding network (docs/REFERENCE.md, "LayerCAM"): the map is
//! ReLU(Σ_c ReLU(g_c) ⊙ A_c), each location weighted by its positive gradient.

use super::cam::{CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::method::{MethodInfo, Pass};
use anyhow::Result;

/// LayerCAM as a [`CamRule`] with per-location weights (registered as `Cam(LayerCam)`).
pub struct LayerCam;

const INFO: MethodInfo = MethodInfo {
    name: "layercam",
    aliases: &["layer_cam"],
    title: "LayerCAM",
    note: "LayerCAM (Jiang et al.): the positive part of the gradient times the activation at every location, summed over channels; ReLU.",
    passes: &[Pass::LayerGradient],
    weight_store: false,
};

impl CamRule for LayerCam {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn weights(&self, _chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        Ok(CamWeights {
            weights: input.layer.grads()?.relu(),
            activations: input.layer.activations.shallow_clone(),
            dead: input.dead.to_vec(),
        })
    }
}
