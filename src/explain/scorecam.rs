//! Score-CAM for an embedding network (docs/REFERENCE.md, "Score-CAM"): each channel of
//! the layer, upsampled to the input (bilinear, corners aligned) and min-max normalised,
//! masks the image; the similarity score of each masked image, softmaxed over channels,
//! is the channel's weight. One forward pass per channel, run in gradient-free batches
//! through [`Chunk::forward_batched`] (the batch size changes speed only).

use super::cam::{CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::method::{MethodInfo, Pass};
use super::target::cosine_score;
use anyhow::{Context, Result};
use tch::Tensor;

/// Score-CAM as a [`CamRule`] (registered as `Cam(ScoreCam)`).
pub struct ScoreCam;

const INFO: MethodInfo = MethodInfo {
    name: "scorecam",
    aliases: &["score_cam"],
    title: "Score-CAM",
    note: "Score-CAM (Wang et al.): each channel, upsampled and normalised, masks the image; the softmax over channels of the masked images' similarity scores weights the channels; no gradient, one forward pass per channel (batched).",
    passes: &[Pass::LayerActivations],
    weight_store: false,
};

impl CamRule for ScoreCam {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn weights(&self, chunk: &Chunk<'_>, input: &CamInput<'_>) -> Result<CamWeights> {
        let a = &input.layer.activations;
        let (b, c, _, _) = a.size4().context("activations must be [B, C, h, w]")?;
        let (_, _, height, width) = input.images.size4().context("images must be [B, 3, H, W]")?;
        let step = chunk.forward_only_batch() as i64;
        let mut rows = Vec::with_capacity(b as usize);
        for i in 0..b {
            let masks = channel_masks(&a.get(i).unsqueeze(0), height, width).squeeze_dim(0);
            let image = input.images.get(i).to_kind(masks.kind());
            let target = chunk.base.targets.get(i).unsqueeze(0);
            let mut scores = Vec::new();
            for start in (0..c).step_by(step as usize) {
                let group = masks.narrow(0, start, step.min(c - start)).unsqueeze(1);
                let (e, _) = chunk.forward_batched(&(&image.unsqueeze(0) * group))?;
                scores.push(cosine_score(&e, &target));
            }
            rows.push(Tensor::cat(&scores, 0).softmax(0, scores[0].kind()));
        }
        Ok(CamWeights {
            weights: Tensor::stack(&rows, 0),
            activations: a.shallow_clone(),
            dead: input.dead.to_vec(),
        })
    }
}

/// Each channel of `activations` `[B, C, h, w]` upsampled to `height`×`width` (bilinear,
/// `align_corners = true`, as torch's `UpsamplingBilinear2d`) and scaled to [0, 1] by its
/// own minimum and maximum (`(u − min)/(max − min + 1e-8)`): `[B, C, height, width]`.
pub fn channel_masks(activations: &Tensor, height: i64, width: i64) -> Tensor {
    let up = activations.upsample_bilinear2d([height, width], true, None, None);
    let lo = up.amin([2i64, 3].as_slice(), true);
    let hi = up.amax([2i64, 3].as_slice(), true);
    (&up - &lo) / (hi - lo + 1e-8)
}
