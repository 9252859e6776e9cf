//! Guided backprop (Springenberg et al.) with the exact rule at every activation:
//! the backward signal R becomes R·1[x > 0]·1[R > 0] at a ReLU and R·1[0 < x < 6]·1[R > 0]
//! at a ReLU6 (x: the activation's input).
//!
//! tch has no autograd hooks, so the rule is applied by hand: the forward pass is cut at
//! every activation through [`crate::model::ActivationHook`] — the hook returns a fresh leaf
//! holding the activation's value and records (pre-activation with its graph, leaf). The
//! backward walk then goes segment by segment, last to first: the signal reaching a leaf
//! is complete once every later segment has been walked (a leaf is only read by later
//! segments, residual branches included), the rule turns it into the signal at the
//! pre-activation, and one vector-Jacobian product sends it to the earlier leaves
//! (and the input) that segment reads. With [`BackwardRule::Plain`] the rule is the
//! activation's own derivative and the walk gives autograd's gradient exactly.

use super::chunk::Chunk;
use super::map::{judge, MapStatus, SaliencyMap};
use super::method::{MethodInfo, MethodOutput, Pass, SaliencyMethod};
use super::saliency::{dead, sensitivity, Explainable, ScoreFn};
use crate::model::Activation;
use anyhow::{Context, Result};
use tch::{Kind, Tensor};

/// Guided backprop as a saliency method; the raw gradient is stored as `guided_gradient`.
pub struct Guided;

const INFO: MethodInfo = MethodInfo {
    name: "guided",
    aliases: &[],
    title: "Guided backprop",
    note: "Guided backprop: gradient with the ReLU/ReLU6 rule R·1[x>0]·1[R>0] (ReLU6: 0<x<6), shown as (x−mean)/(std+1e-5)·0.1+0.5 clipped.",
    passes: &[Pass::GuidedWalk],
    weight_store: false,
};

impl SaliencyMethod for Guided {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn explain(&self, chunk: &Chunk<'_>, out: &mut MethodOutput) -> Result<()> {
        let rg = chunk.guided()?;
        out.put_rows("guided_gradient", &rg.input_grads)?;
        out.put_maps(INFO.name, display_maps(&rg.input_grads, &dead_images(rg))?)
    }
}

/// What happens to the backward signal at an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackwardRule {
    /// The activation's derivative (R·1[x > 0], ReLU6: R·1[0 < x < 6]): plain backprop.
    Plain,
    /// Guided backprop: additionally only positive signals pass (R·mask·1[R > 0]).
    Guided,
}

/// Input gradients under a rule, with the pass's embeddings and score sensitivity.
pub struct RuleGradients {
    /// `[B, 3, H, W]`.
    pub input_grads: Tensor,
    /// `[B, D]`, detached.
    pub embeddings: Tensor,
    /// `|∂score/∂e|·|e|` per image.
    pub sensitivity: Vec<f64>,
    /// Activations walked.
    pub segments: usize,
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) {
    if g.defined() {
        *slot = Some(match slot.take() {
            Some(a) => a + g,
            None => g,
        });
    }
}

/// ∂score/∂x of images `x` `[B, 3, H, W]` with `rule` applied at every activation of `net`.
pub fn backprop_with_rule(
    net: &dyn Explainable,
    x: &Tensor,
    score: &ScoreFn<'_>,
    rule: BackwardRule,
) -> Result<RuleGradients> {
    let x = x.detach().set_requires_grad(true);
    let mut segments: Vec<(Tensor, Activation)> = Vec::new();
    let mut leaves: Vec<Tensor> = vec![x.shallow_clone()];
    let (e, _) = {
        let mut cut = |z: &Tensor, act: Activation| -> Tensor {
            let leaf = act.apply(&z.detach()).set_requires_grad(true);
            segments.push((z.shallow_clone(), act));
            leaves.push(leaf.shallow_clone());
            leaf
        };
        net.forward_explained(&x, &mut cut)
    };
    let s = score(&e);
    // What the score sends directly to each leaf (and to the embedding, for the sensitivity).
    let mut inputs: Vec<Tensor> = leaves.iter().map(|l| l.shallow_clone()).collect();
    inputs.push(e.shallow_clone());
    // Segments share interior nodes (MobileNetV2's linear residual stream feeds several
    // later segments), so every walk keeps the graph.
    let mut direct = Tensor::run_backward(&[s.sum(s.kind())], &inputs, true, false);
    let grad_e = direct.pop().context("no embedding gradient")?;
    let mut acc: Vec<Option<Tensor>> = direct
        .into_iter()
        .map(|g| g.defined().then_some(g))
        .collect();
    for i in (1..leaves.len()).rev() {
        let Some(r) = acc[i].take() else { continue };
        let (z, act) = &segments[i - 1];
        let mask = act.grad_mask(&z.detach());
        let r = match rule {
            BackwardRule::Plain => r * mask,
            BackwardRule::Guided => r.clamp_min(0.0) * mask,
        };
        if !z.requires_grad() {
            continue;
        }
        let root = (z * r).sum(z.kind());
        let grads = Tensor::run_backward(&[root], &leaves[..i], true, false);
        for (j, g) in grads.into_iter().enumerate() {
            accumulate(&mut acc[j], g);
        }
    }
    let e = e.detach();
    Ok(RuleGradients {
        input_grads: acc[0].take().unwrap_or_else(|| x.zeros_like()),
        sensitivity: sensitivity(&grad_e, &e)?,
        embeddings: e,
        segments: segments.len(),
    })
}

/// Guided backprop of `x` against `score`: `[B, 3, H, W]` input gradients under the guided rule.
pub fn guided_backprop(
    net: &dyn Explainable,
    x: &Tensor,
    score: &ScoreFn<'_>,
) -> Result<RuleGradients> {
    backprop_with_rule(net, x, score, BackwardRule::Guided)
}

/// pytorch-grad-cam's `deprocess_image`, the reference's display of gradient images:
/// (x − mean)/(std + 1e-5)·0.1 + 0.5, clipped to [0, 1], mean and (population) std over the
/// whole image. Returns `[3, H, W]` maps; a dead, all-zero, constant or non-finite gradient
/// gives a blank map with that status instead of amplified noise.
pub fn display_maps(grads: &Tensor, dead_images: &[bool]) -> Result<Vec<SaliencyMap>> {
    let g = grads
        .detach()
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Float);
    let (b, c, h, w) = g.size4().context("gradients must be [B, C, H, W]")?;
    (0..b)
        .map(|i| {
            let values: Vec<f32> =
                Vec::try_from(g.get(i).flatten(0, -1)).context("reading a gradient image")?;
            let mut status = judge(&values, 0.0);
            if dead_images.get(i as usize).copied().unwrap_or(false)
                && status != MapStatus::NonFinite
            {
                status = MapStatus::Zero;
            }
            if status != MapStatus::Ok {
                return Ok(SaliencyMap::blank(
                    c as usize, h as usize, w as usize, status,
                ));
            }
            let n = values.len() as f64;
            let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
            let std = (values
                .iter()
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / n)
                .sqrt();
            let values = values
                .iter()
                .map(|&v| (((v as f64 - mean) / (std + 1e-5) * 0.1 + 0.5).clamp(0.0, 1.0)) as f32)
                .collect();
            Ok(SaliencyMap {
                channels: c as usize,
                height: h as usize,
                width: w as usize,
                values,
                status,
            })
        })
        .collect()
}

/// Per image: whether its score is dead, from a rule pass.
pub fn dead_images(g: &RuleGradients) -> Vec<bool> {
    dead(&g.sensitivity)
}
