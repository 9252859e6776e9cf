//! Embedding a set of images with a network: the test transform, no gradients,
//! BatchNorm in eval mode and folded into the convolutions, batches prepared by the
//! loader (or taken from an [`super::eval_inputs::EvalInputs`] cache).

use crate::data::loader::{Batch, BatchLoader, DecodedCache, LoaderOptions};
use crate::data::sampler::sequential_batches;
use crate::data::transform::Transform;
use crate::data::Sample;
use crate::device::onto;
use crate::model::fold::with_folded_batch_norms;
use crate::model::EmbeddingNet;
use crate::progress::Progress;
use anyhow::{bail, Result};
use std::borrow::Borrow;
use std::sync::Arc;
use tch::{Device, Tensor};

/// Embeddings of a set of samples.
pub struct Embedded {
    /// `[N, D]` on the CPU.
    pub embeddings: Tensor,
    /// `[N]` int64 class indices.
    pub labels: Tensor,
    /// Sample index of each row (unreadable images are absent).
    pub indices: Vec<usize>,
}

/// What embedding needs besides the network.
#[derive(Clone)]
pub struct EmbedOptions {
    pub transform: Transform,
    pub batch_size: usize,
    pub threads: usize,
    pub device: Device,
    pub cache: Option<Arc<DecodedCache>>,
    /// Label of a progress bar over the images; `None`: no bar (inside training).
    pub progress: Option<&'static str>,
}

/// The loader that prepares `indices` of `samples` for embedding, in order.
pub fn evaluation_loader(
    samples: &Arc<Vec<Sample>>,
    indices: &[usize],
    opts: &EmbedOptions,
) -> Result<BatchLoader> {
    BatchLoader::start(
        samples.clone(),
        sequential_batches(indices, opts.batch_size),
        LoaderOptions {
            transform: opts.transform,
            threads: opts.threads,
            prefetch: 2,
            seed: 0,
            epoch: 0,
            cache: opts.cache.clone(),
        },
    )
}

/// Embeds `indices` of `samples` with `net` in evaluation mode.
pub fn embed(
    net: &EmbeddingNet,
    samples: &Arc<Vec<Sample>>,
    indices: &[usize],
    opts: &EmbedOptions,
) -> Result<Embedded> {
    let loader = evaluation_loader(samples, indices, opts)?;
    let bar = match opts.progress {
        Some(label) => Progress::new(indices.len() as u64, label),
        None => Progress::hidden(),
    };
    let embedded = embed_batches(net, loader, opts.device, indices.len(), &bar);
    bar.finish();
    embedded
}

/// Embeds prepared batches (owned from a loader, or borrowed from a cache) with `net`
/// in evaluation mode, without autograd and with each BatchNorm folded into its
/// convolution ([`crate::model::fold`]); `requested` only names the count in the error
/// when no batch came; `bar` counts the images.
pub fn embed_batches<B: Borrow<Batch>>(
    net: &EmbeddingNet,
    batches: impl IntoIterator<Item = B>,
    device: Device,
    requested: usize,
    bar: &Progress,
) -> Result<Embedded> {
    let (mut embs, mut labels, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    tch::no_grad(|| {
        with_folded_batch_norms(|| {
            for batch in batches {
                let batch = batch.borrow();
                bar.inc(batch.indices.len() as u64);
                embs.push(
                    net.forward_t(&onto(&batch.images, device), false)
                        .to_device(Device::Cpu),
                );
                labels.push(batch.labels.shallow_clone());
                kept.extend(batch.indices.iter().copied());
            }
        })
    });
    if embs.is_empty() {
        bail!("no image could be embedded ({requested} requested)");
    }
    Ok(Embedded {
        embeddings: Tensor::cat(&embs, 0),
        labels: Tensor::cat(&labels, 0),
        indices: kept,
    })
}
