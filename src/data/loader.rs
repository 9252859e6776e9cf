//! The batch loader: decodes and transforms images on a rayon pool, a few batches
//! ahead of the consumer, and yields `tch` tensors. Unreadable images are skipped
//! and recorded, never fatal.

use super::dataset::{Sample, Unreadable};
use super::decode::decode_rgb;
use super::rng::Rng;
use super::transform::{normalise_into, Transform};
use anyhow::{Context, Result};
use image::{imageops, RgbImage};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tch::Tensor;

/// One batch ready for the network.
#[derive(Debug)]
pub struct Batch {
    /// `[B, 3, crop, crop]` float32, ImageNet-normalised.
    pub images: Tensor,
    /// `[B]` int64 class indices.
    pub labels: Tensor,
    /// Dataset sample index of each row (rows whose image failed are absent).
    pub indices: Vec<usize>,
}

/// Decoded images kept in memory across epochs, already resized to the transform's
/// `resize` (decoding dominates the cost of small images; this keeps it to once).
#[derive(Default)]
pub struct DecodedCache {
    images: RwLock<HashMap<usize, Arc<RgbImage>>>,
}

impl DecodedCache {
    /// An empty, shareable cache.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Number of cached images.
    pub fn len(&self) -> usize {
        self.images.read().unwrap().len()
    }

    /// True when nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a loader runs.
#[derive(Clone)]
pub struct LoaderOptions {
    pub transform: Transform,
    /// Decoding threads.
    pub threads: usize,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
    /// Augmentation randomness: fixed by (seed, epoch, batch, position), so results
    /// do not depend on thread scheduling.
    pub seed: u64,
    pub epoch: u64,
    /// Optional cache of decoded, resized images shared across epochs.
    pub cache: Option<Arc<DecodedCache>>,
}

/// Iterator over prepared batches; see the module documentation.
pub struct BatchLoader {
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    skipped: Arc<Mutex<Vec<Unreadable>>>,
    waited: Duration,
}

/// Decodes one sample and resizes it to `resize`² (through the cache when given).
fn load_resized(
    index: usize,
    sample: &Sample,
    resize: u32,
    cache: Option<&DecodedCache>,
) -> Result<Arc<RgbImage>> {
    if let Some(hit) = cache.and_then(|c| c.images.read().unwrap().get(&index).cloned()) {
        return Ok(hit);
    }
    let image = decode_rgb(&sample.path)?;
    let image = if image.dimensions() == (resize, resize) {
        image
    } else {
        imageops::resize(&image, resize, resize, imageops::FilterType::Triangle)
    };
    let image = Arc::new(image);
    if let Some(cache) = cache {
        cache.images.write().unwrap().insert(index, image.clone());
    }
    Ok(image)
}

/// Builds one batch on the current rayon pool; failed images are returned apart.
fn build_batch(
    samples: &[Sample],
    indices: &[usize],
    opts: &LoaderOptions,
    batch_no: u64,
) -> (Option<Batch>, Vec<Unreadable>) {
    let len = opts.transform.output_len();
    let results: Vec<Result<Vec<f32>>> = indices
        .par_iter()
        .enumerate()
        .map(|(pos, &i)| {
            let sample = samples
                .get(i)
                .with_context(|| format!("sample index {i} out of range"))?;
            let resized = load_resized(i, sample, opts.transform.resize, opts.cache.as_deref())?;
            let mut rng = Rng::derive(opts.seed, &[opts.epoch, batch_no, pos as u64]);
            let image = opts.transform.apply(&resized, &mut rng);
            let mut buf = vec![0f32; len];
            normalise_into(&image, &mut buf);
            Ok(buf)
        })
        .collect();
    let mut data = Vec::with_capacity(indices.len() * len);
    let mut labels = Vec::with_capacity(indices.len());
    let mut kept = Vec::with_capacity(indices.len());
    let mut failed = Vec::new();
    for (&i, result) in indices.iter().zip(results) {
        match result {
            Ok(buf) => {
                data.extend_from_slice(&buf);
                labels.push(samples[i].label as i64);
                kept.push(i);
            }
            Err(e) => failed.push(Unreadable {
                path: samples.get(i).map(|s| s.path.clone()).unwrap_or_default(),
                reason: format!("{e:#}"),
            }),
        }
    }
    if kept.is_empty() {
        return (None, failed);
    }
    let c = opts.transform.crop as i64;
    let images = Tensor::from_slice(&data).view([kept.len() as i64, 3, c, c]);
    let batch = Batch {
        images,
        labels: Tensor::from_slice(&labels),
        indices: kept,
    };
    (Some(batch), failed)
}

impl BatchLoader {
    /// Starts preparing `batches` (lists of sample indices) in the background.
    pub fn start(
        samples: Arc<Vec<Sample>>,
        batches: Vec<Vec<usize>>,
        opts: LoaderOptions,
    ) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads.max(1))
            .thread_name(|i| format!("dmlviz-loader-{i}"))
            .build()
            .context("starting the loader's thread pool")?;
        let (tx, rx) = sync_channel(opts.prefetch.max(1));
        let skipped = Arc::new(Mutex::new(Vec::new()));
        let skipped_worker = skipped.clone();
        let worker = std::thread::Builder::new()
            .name("dmlviz-loader".into())
            .spawn(move || {
                for (batch_no, indices) in batches.iter().enumerate() {
                    let (batch, failed) =
                        pool.install(|| build_batch(&samples, indices, &opts, batch_no as u64));
                    skipped_worker.lock().unwrap().extend(failed);
                    // A closed channel means the consumer stopped early: stop too.
                    if let Some(batch) = batch {
                        if tx.send(batch).is_err() {
                            return;
                        }
                    }
                }
            })
            .context("starting the loader thread")?;
        Ok(BatchLoader {
            rx: Some(rx),
            worker: Some(worker),
            skipped,
            waited: Duration::ZERO,
        })
    }

    /// Images that failed to decode so far, with reasons.
    pub fn skipped(&self) -> Vec<Unreadable> {
        self.skipped.lock().unwrap().clone()
    }

    /// Total time the consumer spent waiting for a batch (to tell whether loading keeps up).
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl Iterator for BatchLoader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let start = Instant::now();
        let next = self.rx.as_ref()?.recv().ok();
        self.waited += start.elapsed();
        next
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // Closing the channel first lets a blocked worker notice and exit.
        self.rx.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
