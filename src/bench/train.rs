//! Training-loop benchmark: the real trainer (loader, P×K sampling, loss, optimiser)
//! beside a bare forward + backward + update of the same network and loss on one
//! pre-made batch, in the same run. The ratio is the loop's overhead over raw libtorch.

use crate::config::{ExperimentConfig, Init, Phase};
use crate::mixed_precision::autocast;
use crate::model::Arch;
use crate::run::RunDir;
use crate::train::model::{Model, ModelSpec};
use crate::train::trainer::{train, TrainOptions};
use anyhow::Result;
use serde::Serialize;
use std::time::Instant;
use tch::{Kind, Tensor};

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchRow {
    pub arch: String,
    pub size: u32,
    pub batch_size: usize,
    /// Trainer images/s (epochs after the first, whose loader fills the image cache).
    pub loop_images_per_s: f64,
    /// Share of the trainer's time spent waiting for the loader.
    pub data_wait_share: f64,
    /// Bare forward + loss + backward + update on one batch, images/s.
    pub bare_images_per_s: f64,
    /// bare ÷ loop − 1: the training loop's overhead over raw libtorch.
    pub loop_overhead: f64,
    /// Both sides' forward pass under autocast (`training.mixed_precision`).
    pub mixed_precision: bool,
}

/// Measures `cfg` with the given backbone and image size (weights from scratch: speed
/// does not depend on them) for `epochs` epochs (≥ 2; the first is a warm-up).
/// On `device` (`--device`); both sides of the ratio run there.
pub fn run(
    cfg: &ExperimentConfig,
    arch: Arch,
    size: u32,
    epochs: usize,
    device: tch::Device,
) -> Result<TrainBenchRow> {
    let mut cfg = cfg.clone();
    cfg.model.backbone = arch;
    cfg.model.init = Init::Scratch;
    cfg.data.image_size = size;
    cfg.data.resize = Some(size + size / 8);
    cfg.training.epochs = epochs.max(2);
    cfg.training.phases = vec![Phase::All];
    tch::set_num_threads(cfg.training.threads as i32);
    let batch = cfg.training.classes_per_batch * cfg.training.images_per_class;

    let dir = tempfile::tempdir()?;
    let outcome = train(
        &cfg,
        &RunDir::new(dir.path().join("bench")),
        &TrainOptions {
            device: Some(device),
            ..TrainOptions::default()
        },
    )?;
    let measured = &outcome[0].history[1..];
    let loop_images_per_s =
        measured.iter().map(|r| r.images_per_s).sum::<f64>() / measured.len() as f64;
    let data_wait_share =
        measured.iter().map(|r| r.data_wait_share).sum::<f64>() / measured.len() as f64;

    let spec = ModelSpec::from_config(&cfg, 1000);
    let model = Model::new(&spec, &cfg.loss, device, cfg.training.seed)?;
    let mut optimizer = model.optimizer(&cfg.optimizer);
    let x = Tensor::randn(
        [batch as i64, 3, size as i64, size as i64],
        (Kind::Float, device),
    );
    let labels: Vec<i64> = (0..batch)
        .map(|i| (i / cfg.training.images_per_class) as i64)
        .collect();
    let y = crate::device::onto(&Tensor::from_slice(&labels), device);
    let mixed = cfg.training.mixed_precision;
    let mut step = || {
        let embeddings = autocast(mixed, device, || model.net.forward_t(&x, true));
        let loss = model.loss.loss(&embeddings.to_kind(Kind::Float), &y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step(1.0);
    };
    step();
    let steps = 5;
    crate::device::synchronize(device);
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    crate::device::synchronize(device);
    let bare_images_per_s = (steps * batch) as f64 / start.elapsed().as_secs_f64();
    Ok(TrainBenchRow {
        arch: arch.name().into(),
        size,
        batch_size: batch,
        loop_images_per_s,
        data_wait_share,
        bare_images_per_s,
        loop_overhead: bare_images_per_s / loop_images_per_s - 1.0,
        mixed_precision: mixed,
    })
}
