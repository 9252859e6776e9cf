//! Saliency for embedding networks (docs/REFERENCE.md, "Saliency for embedding networks"):
//! Grad-CAM against a similarity target, Grad-CAM with weight transfer, similarity
//! decomposition of a pair, vanilla, guided and guided Grad-CAM backprop — for every
//! backbone and any image size.
//!
//! - [`method`]: the [`SaliencyMethod`] trait and the passes a method declares;
//!   [`cam`]: the CAM family as channel-weight rules; [`chunk`]: what a method reads;
//! - [`METHODS`] (below): the registry, in page order; [`registry`]: lookups over it;
//! - [`saliency`]: the shared driver (forward, score, backward) and [`Explainable`];
//! - [`target`]: what is explained (cosine similarity to a neighbour, centroid, image);
//! - [`map`]: [`SaliencyMap`] in [0, 1] with its [`MapStatus`] (degenerate maps are labelled);
//! - one file per method: [`gradcam`], [`transfer`], [`gradcam_pp`], [`xgradcam`],
//!   [`hirescam`], [`layercam`], [`scorecam`], [`ablationcam`], [`eigencam`],
//!   [`random_map`], [`vanilla`], [`guided`], [`guided_gradcam`], [`pair`];
//! - [`layers`]: the CAM family's target layers (`--layer`); [`smooth`]: `--aug-smooth`
//!   and `--eigen-smooth`;
//! - [`input`], [`render`] (PNGs), [`explainer`] (one image or a batch, all methods, the
//!   output directory), [`batch`] (a folder of images), [`page`] (HTML), [`samples`]
//!   (the report's sample of explained test images, `explanations.json`).

pub mod batch;
pub mod cam;
pub mod chunk;
pub mod explainer;
pub mod faithfulness;
pub mod input;
pub mod layers;
pub mod map;
pub mod method;
pub mod page;
pub mod registry;
pub mod render;
pub mod saliency;
pub mod samples;
pub mod sanity;
pub mod smooth;
pub mod target;
pub mod trust;

pub use map::{MapStatus, SaliencyMap};
pub use method::SaliencyMethod;
pub use saliency::Explainable;

use cam::Cam;

/// Declares each method's file as a module and lists the methods, in page order.
macro_rules! saliency_methods {
    ($($module:ident => $method:expr,)*) => {
        $(pub mod $module;)*
        /// Every saliency method, in page order: the registry that the CLI, the pages, the
        /// report and the sample list methods from. Adding a method is its file plus one
        /// line here.
        pub static METHODS: &[&dyn SaliencyMethod] = &[$(&$method),*];
    };
}

saliency_methods! {
    gradcam => Cam(gradcam::GradCam),
    transfer => Cam(transfer::Transfer),
    gradcam_pp => Cam(gradcam_pp::GradCamPlusPlus),
    xgradcam => Cam(xgradcam::XGradCam),
    hirescam => Cam(hirescam::HiResCam),
    layercam => Cam(layercam::LayerCam),
    scorecam => Cam(scorecam::ScoreCam),
    ablationcam => Cam(ablationcam::AblationCam),
    eigencam => Cam(eigencam::EigenCam),
    random_map => Cam(random_map::RandomMap),
    vanilla => vanilla::Vanilla,
    guided => guided::Guided,
    guided_gradcam => guided_gradcam::GuidedGradCam,
    pair => pair::Pair,
}

#[cfg(test)]
mod cam_tests;
#[cfg(test)]
mod tests;
