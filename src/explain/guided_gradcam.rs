//! Guided Grad-CAM: the guided-backprop gradient multiplied by the (upsampled) Grad-CAM map,
//! shown in the reference's display normalisation.

use super::chunk::Chunk;
use super::gradcam::gradcam_maps;
use super::guided::{dead_images, display_maps};
use super::map::{MapStatus, SaliencyMap};
use super::method::{MethodInfo, MethodOutput, Pass, SaliencyMethod};
use anyhow::Result;
use tch::Tensor;

/// Guided Grad-CAM as a saliency method; the raw product is stored as `guided_gradcam_product`.
pub struct GuidedGradCam;

const INFO: MethodInfo = MethodInfo {
    name: "guided_gradcam",
    aliases: &[],
    title: "Guided Grad-CAM",
    note: "Guided Grad-CAM: the guided-backprop gradient × the Grad-CAM map, shown like guided backprop.",
    passes: &[Pass::LayerGradient, Pass::GuidedWalk],
    weight_store: false,
};

impl SaliencyMethod for GuidedGradCam {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn explain(&self, chunk: &Chunk<'_>, out: &mut MethodOutput) -> Result<()> {
        let (cams, _) = gradcam_maps(chunk.layer()?, chunk.height, chunk.width)?;
        let rg = chunk.guided()?;
        let (product, display) = guided_gradcam(&rg.input_grads, &cams, &dead_images(rg))?;
        out.put_rows("guided_gradient", &rg.input_grads)?;
        out.put_rows("guided_gradcam_product", &product)?;
        out.put_maps(INFO.name, display)
    }
}

/// `[B, 3, H, W]` products of guided gradients and Grad-CAM maps (each `H`×`W`), and their
/// displays. An image whose Grad-CAM map is degenerate gets that status: the product would
/// be zero or a uniform rescaling of the guided map, not a guided Grad-CAM.
pub fn guided_gradcam(
    guided: &Tensor,
    cams: &[SaliencyMap],
    dead: &[bool],
) -> Result<(Tensor, Vec<SaliencyMap>)> {
    let cam = Tensor::stack(&cams.iter().map(|m| m.to_tensor()).collect::<Vec<_>>(), 0)
        .to_kind(guided.kind());
    let product = guided.detach().to_device(tch::Device::Cpu) * cam;
    let mut maps = display_maps(&product, dead)?;
    for (m, c) in maps.iter_mut().zip(cams) {
        if c.status != MapStatus::Ok && m.status != MapStatus::NonFinite {
            *m = SaliencyMap::blank(m.channels, m.height, m.width, c.status);
        }
    }
    Ok((product, maps))
}
