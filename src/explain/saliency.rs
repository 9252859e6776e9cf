//! The saliency driver shared by every gradient method (pytorch-grad-cam's `BaseCAM`):
//! one eval-mode forward pass of a batch, the score of each image against its target, one
//! backward pass giving ∂score/∂A (last conv activation), ∂score/∂embedding and, when asked,
//! ∂score/∂input. Images of a batch are independent in eval mode (BatchNorm uses running
//! statistics), so the backward of the summed scores gives every image its own gradient.

use crate::model::{ActivationHook, EmbeddingNet, LayerTap};
use anyhow::{Context, Result};
use tch::Tensor;

/// Relative score sensitivity `|∂score/∂e|·|e|` below which a score is dead: it does not
/// change with the embedding (e.g. cos(e, t) with t = e, whose gradient is exactly zero in
/// exact arithmetic and rounding noise in floats).
pub const DEAD_SENSITIVITY: f64 = 1e-5;

/// A network the explain layer can look into.
pub trait Explainable {
    /// Embeddings `[B, D]` and the last convolution's activation `[B, C, h, w]` of images
    /// `x`, in evaluation mode, with every ReLU/ReLU6 computed by `hook` in forward order.
    fn forward_explained(&self, x: &Tensor, hook: &mut ActivationHook<'_>) -> (Tensor, Tensor);

    /// The names of the layers [`Explainable::forward_tapped`] reports, in forward order,
    /// the last convolution's last (torchvision module names for the backbones). None for a
    /// network that cannot be tapped.
    fn layer_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Embeddings `[B, D]` of images `x` in evaluation mode, with every named layer's output
    /// passed through `tap` (which may replace it) — what `--layer` and Ablation-CAM need.
    fn forward_tapped(
        &self,
        _x: &Tensor,
        _hook: &mut ActivationHook<'_>,
        _tap: &mut LayerTap<'_>,
    ) -> Result<Tensor> {
        anyhow::bail!("this network has no named layers to tap")
    }
}

impl Explainable for EmbeddingNet {
    fn forward_explained(&self, x: &Tensor, hook: &mut ActivationHook<'_>) -> (Tensor, Tensor) {
        let (e, f) = self.forward_hooked(x, false, hook);
        (e, f.last_conv)
    }

    fn layer_names(&self) -> Vec<String> {
        self.backbone.layer_names()
    }

    fn forward_tapped(
        &self,
        x: &Tensor,
        hook: &mut ActivationHook<'_>,
        tap: &mut LayerTap<'_>,
    ) -> Result<Tensor> {
        Ok(EmbeddingNet::forward_tapped(self, x, false, hook, tap))
    }
}

/// A score function: embeddings `[B, D]` → one score per image `[B]`.
pub type ScoreFn<'a> = dyn Fn(&Tensor) -> Tensor + 'a;

/// What one forward + backward pass gives for a batch (all tensors detached).
pub struct Gradients {
    /// `[B, D]`.
    pub embeddings: Tensor,
    /// Each image's score.
    pub scores: Vec<f64>,
    /// A: `[B, C, h, w]`.
    pub activations: Tensor,
    /// ∂score/∂A: `[B, C, h, w]`.
    pub activation_grads: Tensor,
    /// ∂score/∂x: `[B, 3, H, W]`, when asked for.
    pub input_grads: Option<Tensor>,
    /// `|∂score/∂e|·|e|` per image (see [`DEAD_SENSITIVITY`]).
    pub sensitivity: Vec<f64>,
}

impl Gradients {
    /// Per image: whether its score is dead (no gradient).
    pub fn dead(&self) -> Vec<bool> {
        dead(&self.sensitivity)
    }
}

/// Per image: whether a sensitivity is below [`DEAD_SENSITIVITY`] (or not finite).
pub fn dead(sensitivity: &[f64]) -> Vec<bool> {
    sensitivity
        .iter()
        .map(|&s| s.is_nan() || s < DEAD_SENSITIVITY)
        .collect()
}

/// `|g_b|·|e_b|` per row of ∂score/∂e `g` and embeddings `e`.
pub fn sensitivity(grad_embeddings: &Tensor, embeddings: &Tensor) -> Result<Vec<f64>> {
    let g = grad_embeddings.norm_scalaropt_dim(2.0, [1i64], false);
    let n = embeddings.norm_scalaropt_dim(2.0, [1i64], false);
    Vec::try_from(
        (g * n)
            .to_kind(tch::Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .context("reading the scores' sensitivity")
}

/// One forward + backward pass of images `x` (`[B, 3, H, W]`) scored by `score`.
/// Only the part of the graph the requested gradients need is traversed: without
/// `input_grads`, the backward pass goes through the head alone.
pub fn gradients(
    net: &dyn Explainable,
    x: &Tensor,
    score: &ScoreFn<'_>,
    input_grads: bool,
) -> Result<Gradients> {
    // The input always requires a gradient, so A does even when no parameter does.
    let x = x.detach().set_requires_grad(true);
    let (e, a) = net.forward_explained(&x, &mut crate::model::layers::apply_activation);
    let s = score(&e);
    let mut inputs = vec![a.shallow_clone(), e.shallow_clone()];
    if input_grads {
        inputs.push(x.shallow_clone());
    }
    let grads = Tensor::run_backward(&[s.sum(s.kind())], &inputs, false, false);
    let scores = Vec::try_from(
        s.detach()
            .to_kind(tch::Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .context("reading the scores")?;
    let e = e.detach();
    Ok(Gradients {
        sensitivity: sensitivity(&grads[1], &e)?,
        embeddings: e,
        scores,
        activations: a.detach(),
        activation_grads: grads[0].shallow_clone(),
        input_grads: input_grads.then(|| grads[2].shallow_clone()),
    })
}
