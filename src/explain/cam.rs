//! The CAM family: a map is ReLU(Σ_c w_c·A_c) of activations A `[B, C, h, w]`, scaled to
//! [0, 1] and resized to the input ([`super::map::scale_maps`]). Methods of the family
//! differ only in their weights, so each is a [`CamRule`] — its identity and its weight
//! rule — and [`Cam`] makes it a [`SaliencyMethod`], with what pytorch-grad-cam 1.5's
//! `BaseCAM` adds around every rule (docs/REFERENCE.md, "CAM smoothing" and "Target
//! layers"): the chosen layers (`--layer`, each map resized to the input, then their mean
//! rescaled), `--eigen-smooth` (first principal component instead of the channel sum)
//! and `--aug-smooth` (the mean over six flipped and scaled inputs).

use super::chunk::Chunk;
use super::layers::{layer_passes, CamLayer, LayerPasses};
use super::map::{scale_maps, MapStatus, SaliencyMap};
use super::method::{MethodInfo, MethodOutput, Pass, SaliencyMethod};
use super::smooth::{first_component, mean_maps, Augmentation, AUGMENTATIONS};
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

/// What a rule weights: one layer's pass over the (possibly augmented) input images.
pub struct CamInput<'c> {
    /// The images `[B, 3, H, W]` the pass ran on.
    pub images: &'c Tensor,
    /// The layer's activations (and gradients).
    pub layer: &'c CamLayer,
    /// Per image: whether its score has no gradient.
    pub dead: &'c [bool],
}

/// A member of the CAM family: its identity and its weight rule.
pub trait CamRule: Sync {
    /// Name, title, note and needs (the passes its weights read).
    fn info(&self) -> &'static MethodInfo;
    /// The weights for a chunk's images as `input` gives them (and the activations they
    /// weight).
    fn weights(&self, chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights>;
    /// Whether the rule follows `--layer` and `--aug-smooth`; one that does not (weight
    /// transfer, whose stored weights are the last convolution's) is computed once, at the
    /// last convolution of the plain input.
    fn follows_layer(&self) -> bool {
        true
    }
    /// Whether the map is always the first principal component of the weighted
    /// activations (Eigen-CAM), not only under `--eigen-smooth`.
    fn projects(&self) -> bool {
        false
    }
}

/// A [`CamRule`] as a saliency method: its maps are stored under its name, its weights
/// (of the first layer, on the plain input) as `<name>_weights`.
pub struct Cam<R>(pub R);

impl<R: CamRule> SaliencyMethod for Cam<R> {
    fn info(&self) -> &'static MethodInfo {
        self.0.info()
    }

    fn explain(&self, chunk: &Chunk<'_>, out: &mut MethodOutput) -> Result<()> {
        let name = self.info().name;
        let x = &chunk.base.inputs.tensor;
        if !self.0.follows_layer() {
            let layer = CamLayer {
                name: String::new(),
                activations: chunk.base.activations.shallow_clone(),
                grads: None,
            };
            let dead = vec![false; chunk.len()];
            let input = CamInput {
                images: x,
                layer: &layer,
                dead: &dead,
            };
            let w = self.0.weights(chunk, &input)?;
            out.put_rows(&format!("{name}_weights"), &w.weights)?;
            return out.put_maps(name, cam_maps(&w, chunk.height, chunk.width)?);
        }
        let augmentations: &[Augmentation] = if chunk.base.options.aug_smooth {
            &AUGMENTATIONS
        } else {
            &AUGMENTATIONS[1..2]
        };
        let grads = self.info().passes.contains(&Pass::LayerGradient);
        let mut per_aug = Vec::with_capacity(augmentations.len());
        for aug in augmentations {
            let (aug_images, aug_passes);
            let (images, passes) = if aug.is_identity() {
                (x, chunk.cam_layers()?)
            } else {
                aug_images = aug.augment(x);
                let score = |e: &Tensor| chunk.score(e);
                let names = &chunk.base.options.layers;
                aug_passes = layer_passes(chunk.base.net, &aug_images, &score, names, grads)?;
                (&aug_images, &aug_passes)
            };
            let (maps, weights) = self.layer_maps(chunk, images, passes)?;
            if aug.is_identity() {
                out.put_rows(&format!("{name}_weights"), &weights)?;
            }
            per_aug.push(maps.into_iter().map(|m| aug.deaugment(m)).collect());
        }
        out.put_maps(name, mean_maps(per_aug))
    }
}

impl<R: CamRule> Cam<R> {
    /// The maps of one pass over every chosen layer (each scaled and resized to the input,
    /// their mean rescaled), and the first layer's weights.
    fn layer_maps(
        &self,
        chunk: &Chunk<'_>,
        images: &Tensor,
        passes: &LayerPasses,
    ) -> Result<(Vec<SaliencyMap>, Tensor)> {
        let project = self.0.projects() || chunk.base.options.eigen_smooth;
        let mut per_layer = Vec::with_capacity(passes.layers.len());
        let mut first = None;
        for layer in &passes.layers {
            let input = CamInput {
                images,
                layer,
                dead: &passes.dead,
            };
            let w = self
                .0
                .weights(chunk, &input)
                .with_context(|| format!("at layer {}", layer.name))?;
            let (raw, reference) = if project {
                projected_activations(&w.weights, &w.activations)?
            } else {
                weighted_activations(&w.weights, &w.activations)?
            };
            per_layer.push(scale_maps(
                &raw,
                &reference,
                &w.dead,
                chunk.height,
                chunk.width,
            )?);
            first.get_or_insert(w.weights);
        }
        let weights = first.context("internal error: no CAM layer")?;
        Ok((rescale(mean_maps(per_layer)), weights))
    }
}

/// pytorch-grad-cam's last `scale_cam_image` over the mean of the layers' maps: shifted by
/// its minimum, divided by the shifted maximum + 1e-7 (ok maps only).
pub fn rescale(maps: Vec<SaliencyMap>) -> Vec<SaliencyMap> {
    maps.into_iter()
        .map(|mut m| {
            if m.status == MapStatus::Ok {
                let lo = m.values.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = m.values.iter().map(|v| v - lo).fold(0.0, f32::max);
                for v in &mut m.values {
                    *v = ((*v - lo) / (hi + 1e-7)).clamp(0.0, 1.0);
                }
            }
            m
        })
        .collect()
}

/// `ReLU` of the first principal component of the weighted activations `w·A` `[B, h, w]`
/// ([`first_component`]), and the magnitude of the terms as in [`weighted_activations`].
pub fn projected_activations(weights: &Tensor, activations: &Tensor) -> Result<(Tensor, Vec<f64>)> {
    let terms = weighted_terms(weights, activations);
    let raw = first_component(&terms)?.relu();
    Ok((raw, terms_magnitude(&terms)?))
}

/// `w·A` `[B, C, h, w]` for weights `[B, C]` or `[B, C, h, w]`.
fn weighted_terms(weights: &Tensor, activations: &Tensor) -> Tensor {
    let w = weights.to_kind(activations.kind());
    let w = if w.dim() == 2 {
        w.unsqueeze(-1).unsqueeze(-1)
    } else {
        w
    };
    activations * &w
}

/// Per image, the largest `Σ_c |terms_c|` over locations.
fn terms_magnitude(terms: &Tensor) -> Result<Vec<f64>> {
    let magnitude = terms
        .abs()
        .sum_dim_intlist([1i64].as_slice(), false, None)
        .amax([1i64, 2].as_slice(), false);
    Vec::try_from(
        magnitude
            .to_kind(tch::Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .context("reading the magnitude of a CAM's terms")
}

/// `ReLU(Σ_c w_c·A_c)` `[B, h, w]` for weights `[B, C]` (or `[B, C, h, w]`) and activations
/// `[B, C, h, w]`, and per image the largest `Σ_c |w_c·A_c|` over locations (the magnitude
/// of the summed terms: a map below its rounding noise is zero, see [`super::map::judge`]).
pub fn weighted_activations(weights: &Tensor, activations: &Tensor) -> Result<(Tensor, Vec<f64>)> {
    let terms = weighted_terms(weights, activations);
    let raw = terms.sum_dim_intlist([1i64].as_slice(), false, None).relu();
    Ok((raw, terms_magnitude(&terms)?))
}

/// The [0, 1] maps of CAM weights at the input's size `height`×`width`.
pub fn cam_maps(w: &CamWeights, height: i64, width: i64) -> Result<Vec<SaliencyMap>> {
    let (raw, reference) = weighted_activations(&w.weights, &w.activations)?;
    scale_maps(&raw, &reference, &w.dead, height, width)
}
