//! HiResCAM for an embedding network (docs/REFERENCE.md, "HiResCAM"): the map is
//! ReLU(Σ_c g_c ⊙ A_c), the gradient ∂score/∂A multiplied element-wise (not averaged) with
//! the activations.

use super::cam::{CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::method::{MethodInfo, Pass};
use anyhow::Result;

/// HiResCAM as a [`CamRule`] with per-location weights (registered as `Cam(HiResCam)`).
pub struct HiResCam;

const INFO: MethodInfo = MethodInfo {
    name: "hirescam",
    aliases: &["hires_cam"],
    title: "HiResCAM",
    note: "HiResCAM (Draelos and Carin): gradient times activation at every location, summed over channels (no spatial averaging of the gradient); ReLU.",
    passes: &[Pass::LayerGradient],
    weight_store: false,
};

impl CamRule for HiResCam {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn weights(&self, _chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        Ok(CamWeights {
            weights: input.layer.grads()?.shallow_clone(),
            activations: input.layer.activations.shallow_clone(),
            dead: input.dead.to_vec(),
        })
    }
}
