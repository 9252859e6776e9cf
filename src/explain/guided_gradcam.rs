//! Guided Grad-CAM: the guided-backprop gradient multiplied by the (upsampled) Grad-CAM map,
//! shown in the reference's display normalisation.

use super::guided::display_maps;
use super::map::{MapStatus, SaliencyMap};
use tch::Tensor;

/// `[B, 3, H, W]` products of guided gradients and Grad-CAM maps (each `H`×`W`), and their
/// displays. An image whose Grad-CAM map is degenerate gets that status: the product would
/// be zero or a uniform rescaling of the guided map, not a guided Grad-CAM.
pub fn guided_gradcam(
    guided: &Tensor,
    cams: &[SaliencyMap],
    dead: &[bool],
) -> (Tensor, Vec<SaliencyMap>) {
    let cam = Tensor::stack(&cams.iter().map(|m| m.to_tensor()).collect::<Vec<_>>(), 0)
        .to_kind(guided.kind());
    let product = guided.detach().to_device(tch::Device::Cpu) * cam;
    let mut maps = display_maps(&product, dead);
    for (m, c) in maps.iter_mut().zip(cams) {
        if c.status != MapStatus::Ok && m.status != MapStatus::NonFinite {
            *m = SaliencyMap::blank(m.channels, m.height, m.width, c.status);
        }
    }
    (product, maps)
}
