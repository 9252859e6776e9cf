//! Vanilla backprop: the gradient of the score with respect to the input pixels, shown as a
//! heat map of its largest absolute value over the colour channels (Simonyan et al.).

use super::chunk::Chunk;
use super::map::{scale_maps, SaliencyMap};
use super::method::{MethodInfo, MethodOutput, Pass, SaliencyMethod};
use anyhow::{Context, Result};
use tch::Tensor;

/// Vanilla backprop as a saliency method; the raw gradient is stored as `vanilla_gradient`.
pub struct Vanilla;

const INFO: MethodInfo = MethodInfo {
    name: "vanilla",
    aliases: &[],
    title: "Vanilla backprop",
    note: "Vanilla backprop: max over colour channels of |gradient w.r.t. the pixels|.",
    passes: &[Pass::InputGradient],
    weight_store: false,
};

impl SaliencyMethod for Vanilla {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn explain(&self, chunk: &Chunk<'_>, out: &mut MethodOutput) -> Result<()> {
        let grads = chunk.input_gradient()?;
        out.put_rows("vanilla_gradient", grads)?;
        out.put_maps(
            INFO.name,
            gradient_heat_maps(grads, &chunk.layer()?.dead())?,
        )
    }
}

/// Heat maps `[0, 1]` of input gradients `[B, 3, H, W]`: `max_c |∂score/∂x_c|`, scaled;
/// `dead` images (no score gradient) are zero maps.
pub fn gradient_heat_maps(input_grads: &Tensor, dead: &[bool]) -> Result<Vec<SaliencyMap>> {
    let (_, _, h, w) = input_grads
        .size4()
        .context("gradients must be [B, 3, H, W]")?;
    let raw = input_grads.abs().amax([1i64].as_slice(), false);
    let reference = vec![0.0; dead.len()];
    scale_maps(&raw, &reference, dead, h, w)
}
