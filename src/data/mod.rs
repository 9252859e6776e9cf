//! The data layer: datasets and their layouts, splits, image transforms,
//! class-balanced sampling and a parallel batch loader that yields `tch` tensors.

pub mod cub;
pub mod dataset;
pub mod decode;
pub mod fetch;
pub mod folder;
pub mod loader;
pub mod path_text;
pub mod rng;
pub mod sampler;
pub mod split;
pub mod transform;

pub use dataset::{Dataset, Sample, Summary, Unreadable};
pub use split::{ClassProtocol, Split};
