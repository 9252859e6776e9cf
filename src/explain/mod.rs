//! Saliency for embedding networks (docs/REFERENCE.md, "Saliency for embedding networks"):
//! Grad-CAM against a similarity target, Grad-CAM with weight transfer, similarity
//! decomposition of a pair, vanilla, guided and guided Grad-CAM backprop — for every
//! backbone and any image size.
//!
//! - [`saliency`]: the shared driver (forward, score, backward) and [`Explainable`];
//! - [`target`]: what is explained (cosine similarity to a neighbour, centroid, image);
//! - [`map`]: [`SaliencyMap`] in [0, 1] with its [`MapStatus`] (degenerate maps are labelled);
//! - one file per method: [`gradcam`], [`transfer`], [`pair`], [`vanilla`], [`guided`],
//!   [`guided_gradcam`];
//! - [`input`], [`render`] (PNGs), [`explainer`] (one image or a batch, all methods, the
//!   output directory), [`page`] (HTML), [`samples`] (the report's sample of explained
//!   test images, `explanations.json`).

pub mod explainer;
pub mod gradcam;
pub mod guided;
pub mod guided_gradcam;
pub mod input;
pub mod map;
pub mod page;
pub mod pair;
pub mod render;
pub mod saliency;
pub mod samples;
pub mod target;
pub mod transfer;
pub mod vanilla;

pub use map::{MapStatus, SaliencyMap};
pub use saliency::Explainable;

#[cfg(test)]
mod tests;
