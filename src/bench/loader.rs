//! Loader benchmark: decoded + augmented images per second at a given size, beside
//! the time one ResNet18 training step takes on a batch of the same size, to tell
//! whether the loader keeps the trainer fed.

use crate::data::loader::{BatchLoader, DecodedCache, LoaderOptions};
use crate::data::sampler::shuffled_batches;
use crate::data::transform::Transform;
use crate::data::Dataset;
use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tch::nn::{self, ModuleT, OptimizerConfig};

/// What to measure.
#[derive(Debug, Clone)]
pub struct LoaderBenchOptions {
    pub sizes: Vec<u32>,
    pub batch_size: usize,
    pub batches: usize,
    pub threads: usize,
    /// Training steps timed for the ResNet18 reference (after one warm-up step).
    pub train_steps: usize,
}

/// One row of the result: a size, the loader's speed cold (decoding every image)
/// and warm (from the decoded-image cache), and the trainer's speed.
#[derive(Debug, Clone, Serialize)]
pub struct LoaderBenchRow {
    pub size: u32,
    pub batch_size: usize,
    pub threads: usize,
    pub loader_cold_images_per_s: f64,
    pub loader_cached_images_per_s: f64,
    pub resnet18_step_s: f64,
    pub resnet18_images_per_s: f64,
    /// loader (cold) images/s ÷ trainer images/s: above 1 the loader keeps up.
    pub cold_over_trainer: f64,
    pub cached_over_trainer: f64,
}

fn loader_speed(
    dataset: &Dataset,
    transform: Transform,
    opts: &LoaderBenchOptions,
    cache: Option<Arc<DecodedCache>>,
) -> Result<f64> {
    let indices: Vec<usize> = (0..dataset.samples.len()).collect();
    let mut batches = Vec::new();
    let mut epoch = 0;
    while batches.len() < opts.batches {
        batches.extend(shuffled_batches(&indices, opts.batch_size, 1, epoch, true));
        epoch += 1;
    }
    batches.truncate(opts.batches);
    let samples = Arc::new(dataset.samples.clone());
    let loader = BatchLoader::start(
        samples,
        batches,
        LoaderOptions {
            transform,
            threads: opts.threads,
            prefetch: 4,
            seed: 1,
            epoch: 0,
            cache,
        },
    )?;
    let start = Instant::now();
    let images: usize = loader.map(|b| b.indices.len()).sum();
    Ok(images as f64 / start.elapsed().as_secs_f64())
}

fn resnet18_step_seconds(size: u32, batch_size: usize, steps: usize) -> Result<f64> {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let net = tch::vision::resnet::resnet18(&vs.root(), 128);
    let mut opt = nn::Sgd {
        momentum: 0.9,
        ..Default::default()
    }
    .build(&vs, 0.01)?;
    let x = tch::Tensor::randn(
        [batch_size as i64, 3, size as i64, size as i64],
        (tch::Kind::Float, tch::Device::Cpu),
    );
    let mut step = || {
        let loss = net.forward_t(&x, true).square().mean(None);
        opt.backward_step(&loss);
    };
    step(); // warm-up: first-call allocations
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    Ok(start.elapsed().as_secs_f64() / steps as f64)
}

/// Runs the benchmark on `dataset`; libtorch uses `opts.threads` threads too.
pub fn run(dataset: &Dataset, opts: &LoaderBenchOptions) -> Result<Vec<LoaderBenchRow>> {
    tch::set_num_threads(opts.threads as i32);
    let mut rows = Vec::new();
    for &size in &opts.sizes {
        // The reference experiments' augmentation: resize, random crop, flip.
        let transform = Transform::train(size + size / 8, size, true);
        let cold = loader_speed(dataset, transform, opts, None)?;
        let cache = DecodedCache::new();
        loader_speed(dataset, transform, opts, Some(cache.clone()))?; // fills the cache
        let cached = loader_speed(dataset, transform, opts, Some(cache))?;
        let step = resnet18_step_seconds(size, opts.batch_size, opts.train_steps)?;
        let trainer = opts.batch_size as f64 / step;
        rows.push(LoaderBenchRow {
            size,
            batch_size: opts.batch_size,
            threads: opts.threads,
            loader_cold_images_per_s: cold,
            loader_cached_images_per_s: cached,
            resnet18_step_s: step,
            resnet18_images_per_s: trainer,
            cold_over_trainer: cold / trainer,
            cached_over_trainer: cached / trainer,
        });
    }
    Ok(rows)
}
