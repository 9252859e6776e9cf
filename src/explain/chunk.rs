//! A chunk of images as the saliency methods read it: the network's inputs, the forward
//! pass, the targets and scores, the nearest training images, and the passes the chosen
//! methods declared ([`Pass`]), each run once for the whole chunk.

use super::explainer::{ExplainOptions, TargetInfo};
use super::guided::{guided_backprop, RuleGradients};
use super::input::Inputs;
use super::layers::{last_layer_name, layer_passes, CamLayer, LayerPasses};
use super::method::{MethodOutput, Pass, SaliencyMethod};
use super::saliency::{gradients, Explainable, Gradients};
use super::target::similarity_score;
use super::transfer::WeightStore;
use crate::data::transform::Transform;
use crate::eval::predict::Prediction;
use crate::model::fold::with_folded_batch_norms;
use crate::model::layers::apply_activation;
use crate::search::Distance;
use anyhow::{bail, Context, Result};
use image::RgbImage;
use std::path::PathBuf;
use tch::{Device, Tensor};

/// What the forward pass and the prediction give for a chunk (computed by the driver).
pub struct ChunkBase<'a> {
    /// The network.
    pub net: &'a dyn Explainable,
    /// The images, their crops and the input tensor `[B, 3, H, W]` (on `device`).
    pub inputs: &'a Inputs,
    /// The run's test transform (for other images a method loads, e.g. neighbours).
    pub transform: Transform,
    /// Where the network runs.
    pub device: Device,
    /// The run's distance.
    pub distance: Distance,
    /// Embeddings `[B, D]` of the forward pass, on the CPU.
    pub embeddings: &'a Tensor,
    /// Last-conv activations `[B, C, h, w]` of the forward pass, on `device`.
    pub activations: &'a Tensor,
    /// Target embeddings `[B, D]`, on `device`.
    pub targets: &'a Tensor,
    /// Contrast embeddings `[B, D]` on `device` (`--contrast`): the score is then
    /// cos(e, target) − cos(e, contrast).
    pub contrast: Option<&'a Tensor>,
    /// What each image's score compares with, and the score.
    pub target_info: &'a [TargetInfo],
    /// Nearest training images and majority vote, per image.
    pub predictions: &'a [Prediction],
    /// The weight-transfer store, when a chosen method needs it.
    pub store: Option<&'a WeightStore>,
    /// What was asked.
    pub options: &'a ExplainOptions,
}

/// A chunk with the passes its methods need.
pub struct Chunk<'a> {
    /// Forward pass, targets, prediction.
    pub base: ChunkBase<'a>,
    /// Input height and width (every map's size).
    pub height: i64,
    /// See `height`.
    pub width: i64,
    layer: Option<Gradients>,
    guided: Option<RuleGradients>,
    cams: Option<LayerPasses>,
}

impl<'a> Chunk<'a> {
    /// Runs each pass that one of `methods` declares, once.
    pub fn run(base: ChunkBase<'a>, methods: &[&dyn SaliencyMethod]) -> Result<Chunk<'a>> {
        let needs = |p: Pass| methods.iter().any(|m| m.info().passes.contains(&p));
        let x = &base.inputs.tensor;
        let (_, _, height, width) = x.size4().context("images must be [B, 3, H, W]")?;
        let score = |e: &Tensor| similarity_score(e, base.targets, base.contrast);
        let input = needs(Pass::InputGradient);
        let layer = if input || needs(Pass::LayerGradient) {
            Some(gradients(base.net, x, &score, input)?)
        } else {
            None
        };
        let guided = if needs(Pass::GuidedWalk) {
            Some(guided_backprop(base.net, x, &score)?)
        } else {
            None
        };
        let cams = cam_passes(&base, x, &score, layer.as_ref(), methods)?;
        Ok(Chunk {
            base,
            height,
            width,
            layer,
            guided,
            cams,
        })
    }

    /// The CAM layers' pass over the plain input ([`Pass::LayerActivations`], with
    /// gradients when [`Pass::LayerGradient`] was declared).
    pub fn cam_layers(&self) -> Result<&LayerPasses> {
        match &self.cams {
            Some(c) => Ok(c),
            None => bail!("internal error: a CAM read its layers without declaring a layer pass"),
        }
    }

    /// Images in the chunk.
    pub fn len(&self) -> usize {
        self.base.inputs.paths.len()
    }

    /// True for a chunk without images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The [`Pass::LayerGradient`] pass (with ∂score/∂x when [`Pass::InputGradient`] was
    /// declared too).
    pub fn layer(&self) -> Result<&Gradients> {
        match &self.layer {
            Some(g) => Ok(g),
            None => bail!("internal error: a method read the layer gradient without declaring it"),
        }
    }

    /// ∂score/∂x `[B, 3, H, W]` of the [`Pass::InputGradient`] pass.
    pub fn input_gradient(&self) -> Result<&Tensor> {
        match self.layer()?.input_grads.as_ref() {
            Some(g) => Ok(g),
            None => bail!("internal error: a method read the input gradient without declaring it"),
        }
    }

    /// The [`Pass::GuidedWalk`] pass.
    pub fn guided(&self) -> Result<&RuleGradients> {
        match &self.guided {
            Some(g) => Ok(g),
            None => bail!("internal error: a method read the guided walk without declaring it"),
        }
    }

    /// The weight-transfer store.
    pub fn store(&self) -> Result<&WeightStore> {
        match self.base.store {
            Some(s) => Ok(s),
            None => bail!("internal error: a method read the weight store without declaring it"),
        }
    }

    /// Each image's score `[B]` for embeddings `[B, D]` (against its own target).
    pub fn score(&self, embeddings: &Tensor) -> Tensor {
        similarity_score(embeddings, self.base.targets, self.base.contrast)
    }

    /// Images per gradient-free pass of this chunk's methods: the explain batch size, at
    /// least [`FORWARD_ONLY_BATCH`].
    pub fn forward_only_batch(&self) -> usize {
        forward_only_batch(self.base.options.batch_size)
    }

    /// Forward passes without gradients over many images `[N, 3, H, W]` (e.g. masked
    /// copies of the chunk's images, as Score-CAM makes them), in batches of
    /// [`Chunk::forward_only_batch`]: embeddings `[N, D]` and last-conv activations.
    pub fn forward_batched(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        forward_batched(self.base.net, images, self.forward_only_batch())
    }
}

/// Runs `methods` on images given as a tensor `x` `[B, 3, H, W]` against target embeddings
/// `targets` `[B, D]`, without files, gallery or neighbours (benchmarks and tests): the
/// same chunk passes and method calls as `dmlviz explain`, with placeholder paths
/// `image-<i>.png` and no neighbours (so no pair maps).
pub fn explain_tensor(
    net: &dyn Explainable,
    x: &Tensor,
    targets: &Tensor,
    methods: &[&dyn SaliencyMethod],
    options: &ExplainOptions,
) -> Result<MethodOutput> {
    let (b, _, h, w) = x.size4().context("images must be [B, 3, H, W]")?;
    let paths: Vec<PathBuf> = (0..b)
        .map(|i| PathBuf::from(format!("image-{i}.png")))
        .collect();
    let inputs = Inputs {
        images: (0..b).map(|_| RgbImage::new(w as u32, h as u32)).collect(),
        tensor: x.shallow_clone(),
        paths: paths.clone(),
    };
    let (e, a) = tch::no_grad(|| net.forward_explained(x, &mut apply_activation));
    let target_info: Vec<TargetInfo> = (0..b)
        .map(|_| TargetInfo {
            kind: "reference".into(),
            class: None,
            path: None,
            score: 0.0,
            contrast: None,
        })
        .collect();
    let predictions: Vec<Prediction> = paths
        .into_iter()
        .map(|image| Prediction {
            image,
            nearest: String::new(),
            majority: String::new(),
            votes: 0,
            neighbours: Vec::new(),
        })
        .collect();
    let base = ChunkBase {
        net,
        inputs: &inputs,
        transform: Transform::test(h as u32, h as u32),
        device: x.device(),
        distance: Distance::Cosine,
        embeddings: &e.to_device(Device::Cpu),
        activations: &a,
        targets,
        target_info: &target_info,
        predictions: &predictions,
        store: None,
        options,
        contrast: None,
    };
    let chunk = Chunk::run(base, methods)?;
    let mut out = MethodOutput::new(b as usize);
    for m in methods {
        m.explain(&chunk, &mut out)
            .with_context(|| format!("computing {}", m.info().title))?;
    }
    Ok(out)
}

/// The CAM layers' pass of a chunk, when a method declared [`Pass::LayerActivations`] or
/// [`Pass::LayerGradient`]: the last convolution's from the passes already run when no
/// `--layer` is given, a tapped pass otherwise.
fn cam_passes(
    base: &ChunkBase<'_>,
    x: &Tensor,
    score: &super::saliency::ScoreFn<'_>,
    layer: Option<&Gradients>,
    methods: &[&dyn SaliencyMethod],
) -> Result<Option<LayerPasses>> {
    let needs = |p: Pass| methods.iter().any(|m| m.info().passes.contains(&p));
    let grads = needs(Pass::LayerGradient);
    if !grads && !needs(Pass::LayerActivations) {
        return Ok(None);
    }
    let names = &base.options.layers;
    if names.is_empty() {
        if let Some(g) = layer {
            return Ok(Some(LayerPasses {
                layers: vec![CamLayer::of_gradients(base.net, g)],
                dead: g.dead(),
            }));
        }
        if !grads {
            return Ok(Some(LayerPasses {
                layers: vec![CamLayer {
                    name: last_layer_name(base.net),
                    activations: base.activations.shallow_clone(),
                    grads: None,
                }],
                dead: vec![false; base.inputs.paths.len()],
            }));
        }
    }
    Ok(Some(layer_passes(base.net, x, score, names, grads)?))
}

/// Gradient-free passes (Score-CAM's masked copies, Ablation-CAM's ablated ones, the
/// trust table's perturbed images) take at least this many images at a time. Without a
/// backward nothing is kept between layers, so memory holds one batch's activations of
/// one layer, and bigger batches keep libtorch's kernels busy: the demo's trust table
/// (8 images, 12 methods, no sanity check) took 8.5 s with 64-image passes against
/// 9.6–10.1 s with 16, alternating; 128 gained nothing more.
pub const FORWARD_ONLY_BATCH: usize = 64;

/// Images per gradient-free pass for an explain batch size of `batch_size`.
pub fn forward_only_batch(batch_size: usize) -> usize {
    batch_size.max(FORWARD_ONLY_BATCH)
}

/// Forward passes without gradients of `images` `[N, 3, H, W]` through `net` in batches of
/// `batch_size`: embeddings `[N, D]` and last-conv activations `[N, C, h, w]`. BatchNorm
/// is folded into the convolutions ([`crate::model::fold`]): nothing differentiates
/// these passes.
pub fn forward_batched(
    net: &dyn Explainable,
    images: &Tensor,
    batch_size: usize,
) -> Result<(Tensor, Tensor)> {
    let n = images.size().first().copied().unwrap_or(0);
    if n == 0 {
        bail!("no images to forward");
    }
    let step = batch_size.max(1) as i64;
    let (mut e, mut a) = (Vec::new(), Vec::new());
    for start in (0..n).step_by(step as usize) {
        let x = images.narrow(0, start, step.min(n - start));
        let (eb, ab) = tch::no_grad(|| {
            with_folded_batch_norms(|| net.forward_explained(&x, &mut apply_activation))
        });
        e.push(eb);
        a.push(ab);
    }
    Ok((Tensor::cat(&e, 0), Tensor::cat(&a, 0)))
}
