//! Vanilla backprop: the gradient of the score with respect to the input pixels, shown as a
//! heat map of its largest absolute value over the colour channels (Simonyan et al.).

use super::map::{scale_maps, SaliencyMap};
use tch::Tensor;

/// Heat maps `[0, 1]` of input gradients `[B, 3, H, W]`: `max_c |∂score/∂x_c|`, scaled;
/// `dead` images (no score gradient) are zero maps.
pub fn gradient_heat_maps(input_grads: &Tensor, dead: &[bool]) -> Vec<SaliencyMap> {
    let (_, _, h, w) = input_grads.size4().expect("gradients must be [B, 3, H, W]");
    let raw = input_grads.abs().amax([1i64].as_slice(), false);
    let reference = vec![0.0; dead.len()];
    scale_maps(&raw, &reference, dead, h, w)
}
