//! Embedding a set of images with a network: the test transform, no gradients,
//! BatchNorm in eval mode, batches prepared by the loader.

use crate::data::loader::{BatchLoader, DecodedCache, LoaderOptions};
use crate::data::sampler::sequential_batches;
use crate::data::transform::Transform;
use crate::data::Sample;
use crate::device::onto;
use crate::model::EmbeddingNet;
use crate::progress::Progress;
use anyhow::{bail, Result};
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
pub struct EmbedOptions {
    pub transform: Transform,
    pub batch_size: usize,
    pub threads: usize,
    pub device: Device,
    pub cache: Option<Arc<DecodedCache>>,
    /// Label of a progress bar over the images; `None`: no bar (inside training).
    pub progress: Option<&'static str>,
}

/// Embeds `indices` of `samples` with `net` in evaluation mode.
pub fn embed(
    net: &EmbeddingNet,
    samples: &Arc<Vec<Sample>>,
    indices: &[usize],
    opts: &EmbedOptions,
) -> Result<Embedded> {
    let loader = BatchLoader::start(
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
    )?;
    let (mut embs, mut labels, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    let bar = match opts.progress {
        Some(label) => Progress::new(indices.len() as u64, label),
        None => Progress::hidden(),
    };
    tch::no_grad(|| {
        for batch in loader {
            bar.inc(batch.indices.len() as u64);
            embs.push(
                net.forward_t(&onto(&batch.images, opts.device), false)
                    .to_device(Device::Cpu),
            );
            labels.push(batch.labels);
            kept.extend(batch.indices);
        }
    });
    bar.finish();
    if embs.is_empty() {
        bail!("no image could be embedded ({} requested)", indices.len());
    }
    Ok(Embedded {
        embeddings: Tensor::cat(&embs, 0),
        labels: Tensor::cat(&labels, 0),
        indices: kept,
    })
}
