//! Eigen-CAM (docs/REFERENCE.md, "Eigen-CAM"): the activations' projection on their first
//! principal component over locations ([`super::smooth::first_component`]); no gradient and
//! no target: the map is the same whatever the image is compared with.

use super::cam::{CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::method::{MethodInfo, Pass};
use anyhow::{Context, Result};
use tch::Tensor;

/// Eigen-CAM as a [`CamRule`] with unit weights that always projects (registered as
/// `Cam(EigenCam)`).
pub struct EigenCam;

const INFO: MethodInfo = MethodInfo {
    name: "eigencam",
    aliases: &["eigen_cam"],
    title: "Eigen-CAM",
    note: "Eigen-CAM (Muhammad and Yeasin): the activations projected on their first principal component over locations; no gradient, independent of the target.",
    passes: &[Pass::LayerActivations],
    weight_store: false,
};

impl CamRule for EigenCam {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn projects(&self) -> bool {
        true
    }

    fn weights(&self, _chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        let a = &input.layer.activations;
        let (b, c, _, _) = a.size4().context("activations must be [B, C, h, w]")?;
        Ok(CamWeights {
            weights: Tensor::ones([b, c], (a.kind(), a.device())),
            activations: a.shallow_clone(),
            dead: vec![false; b as usize],
        })
    }
}
