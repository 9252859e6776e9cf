//! The CAM family: a map is ReLU(Σ_c w_c·A_c) of activations A `[B, C, h, w]`, scaled to
//! [0, 1] and resized to the input ([`super::map::scale_maps`]). Methods of the family
//! differ only in their weights, so each is a [`CamRule`] — its identity and its weight
//! rule — and [`Cam`] makes it a [`SaliencyMethod`].

use super::chunk::Chunk;
use super::map::{scale_maps, SaliencyMap};
use super::method::{MethodInfo, MethodOutput, SaliencyMethod};
use anyhow::{Context, Result};
use tch::Tensor;

/// The weights of a CAM and the activations they weight.
pub struct CamWeights {
    /// `[B, C]` channel weights, or `[B, C, h, w]` per-location weights (HiResCAM-like).
    pub weights: Tensor,
    /// `[B, C, h, w]`.
    pub activations: Tensor,
    /// Per image: whether its score has no gradient (its map is then zero).
    pub dead: Vec<bool>,
}

/// A member of the CAM family: its identity and its weight rule.
pub trait CamRule: Sync {
    /// Name, title, note and needs (the passes its weights read).
    fn info(&self) -> &'static MethodInfo;
    /// The weights for a chunk (and the activations they weight).
    fn weights(&self, chunk: &Chunk<'_>) -> Result<CamWeights>;
}

/// A [`CamRule`] as a saliency method: its maps are stored under its name, its weights
/// as `<name>_weights`.
pub struct Cam<R>(pub R);

impl<R: CamRule> SaliencyMethod for Cam<R> {
    fn info(&self) -> &'static MethodInfo {
        self.0.info()
    }

    fn explain(&self, chunk: &Chunk<'_>, out: &mut MethodOutput) -> Result<()> {
        let name = self.info().name;
        let w = self.0.weights(chunk)?;
        let maps = cam_maps(&w, chunk.height, chunk.width)?;
        out.put_rows(&format!("{name}_weights"), &w.weights)?;
        out.put_maps(name, maps)
    }
}

/// `ReLU(Σ_c w_c·A_c)` `[B, h, w]` for weights `[B, C]` (or `[B, C, h, w]`) and activations
/// `[B, C, h, w]`, and per image the largest `Σ_c |w_c·A_c|` over locations (the magnitude
/// of the summed terms: a map below its rounding noise is zero, see [`super::map::judge`]).
pub fn weighted_activations(weights: &Tensor, activations: &Tensor) -> Result<(Tensor, Vec<f64>)> {
    let w = weights.to_kind(activations.kind());
    let w = if w.dim() == 2 {
        w.unsqueeze(-1).unsqueeze(-1)
    } else {
        w
    };
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
    .context("reading the magnitude of a CAM's terms")?;
    Ok((raw, reference))
}

/// The [0, 1] maps of CAM weights at the input's size `height`×`width`.
pub fn cam_maps(w: &CamWeights, height: i64, width: i64) -> Result<Vec<SaliencyMap>> {
    let (raw, reference) = weighted_activations(&w.weights, &w.activations)?;
    scale_maps(&raw, &reference, &w.dead, height, width)
}
