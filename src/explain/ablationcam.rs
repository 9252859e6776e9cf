//! Ablation-CAM for an embedding network (docs/REFERENCE.md, "Ablation-CAM"): each channel
//! of the layer is ablated in turn (set to 0, or far below the layer's minimum when the
//! layer has no zero) and the similarity score recomputed from there on; a channel's
//! weight is the relative drop (s − s_c)/s. One forward pass per channel, run in
//! gradient-free batches ([`Chunk::forward_only_batch`], BatchNorm folded), the layer's
//! output replaced through the network's layer tap (the batch size changes speed only).

use super::cam::{CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::method::{MethodInfo, Pass};
use super::target::cosine_score;
use crate::model::fold::with_folded_batch_norms;
use crate::model::layers::apply_activation;
use anyhow::{Context, Result};
use tch::{Kind, Tensor};

/// Ablation-CAM as a [`CamRule`] (registered as `Cam(AblationCam)`).
pub struct AblationCam;

/// What an ablated channel is set to below the layer's minimum when the layer has no zero
/// (pytorch-grad-cam's `ABLATION_VALUE`).
pub const ABLATION_VALUE: f64 = 1e7;

const INFO: MethodInfo = MethodInfo {
    name: "ablationcam",
    aliases: &["ablation_cam"],
    title: "Ablation-CAM",
    note: "Ablation-CAM (Desai and Ramaswamy): each channel is zeroed in turn and the similarity recomputed; a channel's weight is the relative drop of the score; no gradient, one forward pass per channel (batched).",
    passes: &[Pass::LayerActivations],
    weight_store: false,
};

impl CamRule for AblationCam {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn weights(&self, chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        let a = &input.layer.activations;
        let (b, c, _, _) = a.size4().context("activations must be [B, C, h, w]")?;
        let net = chunk.base.net;
        let step = chunk.forward_only_batch() as i64;
        // Folded like every gradient-free pass (`chunk::forward_batched`), the original
        // score with the ablated ones.
        let (e, _) = tch::no_grad(|| {
            with_folded_batch_norms(|| net.forward_explained(input.images, &mut apply_activation))
        });
        let original = chunk.score(&e).to_kind(Kind::Float);
        let mut rows = Vec::with_capacity(b as usize);
        for i in 0..b {
            let ai = a.get(i);
            let value = ablation_value(&ai);
            let image = input.images.get(i).unsqueeze(0);
            let target = chunk.base.targets.get(i).unsqueeze(0);
            let mut scores = Vec::new();
            for start in (0..c).step_by(step as usize) {
                let n = step.min(c - start);
                let ablated = ablated_copies(&ai, start, n, value);
                let mut tap = |name: &str, t: Tensor| {
                    if name == input.layer.name {
                        ablated.shallow_clone()
                    } else {
                        t
                    }
                };
                let batch = image.expand([n, -1, -1, -1], false);
                let e = tch::no_grad(|| {
                    with_folded_batch_norms(|| {
                        net.forward_tapped(&batch, &mut apply_activation, &mut tap)
                    })
                })
                    .with_context(|| format!("ablating channels of {}", input.layer.name))?;
                scores.push(cosine_score(&e, &target).to_kind(Kind::Float));
            }
            let s = original.get(i);
            rows.push((&s - Tensor::cat(&scores, 0)) / &s);
        }
        Ok(CamWeights {
            weights: Tensor::stack(&rows, 0),
            activations: a.shallow_clone(),
            dead: input.dead.to_vec(),
        })
    }
}

/// What an ablated channel of one image's activations `[C, h, w]` is set to: 0 when the
/// activations hold a zero (after a ReLU), else their minimum − [`ABLATION_VALUE`].
/// pytorch-grad-cam lowers that value again for each further copy of a batch (its
/// minimum is taken after the earlier copies were ablated); we keep the first copy's
/// value for all, so that the batch size changes speed only.
pub fn ablation_value(activations: &Tensor) -> f64 {
    let lo = activations.min().double_value(&[]);
    if lo == 0.0 {
        0.0
    } else {
        lo - ABLATION_VALUE
    }
}

/// `n` copies of activations `[C, h, w]`, copy j with channel `start + j` set to `value`:
/// `[n, C, h, w]`.
pub fn ablated_copies(activations: &Tensor, start: i64, n: i64, value: f64) -> Tensor {
    let c = activations.size()[0];
    let opts = (Kind::Int64, activations.device());
    let rows = Tensor::arange(n, opts).unsqueeze(1);
    let cols = Tensor::arange(c, opts).unsqueeze(0);
    let hit = cols.eq_tensor(&(rows + start)).unsqueeze(-1).unsqueeze(-1);
    let copies = activations.unsqueeze(0).expand([n, -1, -1, -1], false);
    copies.where_self(&hit.logical_not(), &copies.full_like(value))
}
