//! Networks: backbones with torchvision parameter names (so torchvision weights load),
//! embedding heads, and the embedding network that joins them.
//!
//! - [`backbone`]: [`Arch`] and [`Backbone`] (last conv activation + pooled features);
//! - [`resnet`], [`mobilenet_v2`]: the architectures, block by block, each activation
//!   routed through an [`ActivationHook`] so explain code can segment the forward pass;
//! - [`layers`]: convolution, freezable BatchNorm (with `num_batches_tracked`), activations;
//! - [`head`]: [`HeadConfig`], [`EmbeddingHead`];
//! - [`embedding_net`]: [`EmbeddingNet`] (backbone under `backbone.`, head under `head.`).

pub mod backbone;
pub mod embedding_net;
pub mod fold;
pub mod head;
pub mod import;
pub mod layers;
pub mod mobilenet_v2;
pub mod resnet;

pub use backbone::{Arch, Backbone, Features, Network};
pub use embedding_net::EmbeddingNet;
pub use head::{EmbeddingHead, HeadConfig};
pub use layers::{Activation, ActivationHook, BatchNorm, LayerTap};
