//! The training records of a phase: `history.jsonl` (one [`EpochRecord`] a line) and
//! `train-state.json` ([`TrainState`]). Written by `dmlviz train`, read by `--resume`,
//! `dmlviz eval` (cost), the report and the study.

use super::record::{f64_or_nan, nan};
use serde::{Deserialize, Serialize};

/// One line of `history.jsonl`: what an epoch did. Numbers that were non-finite are
/// written as `null` and read back as NaN; a number missing from an older line reads as
/// NaN too (the report leaves NaN out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss of the epoch.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub train_loss: f64,
    /// precision@1 of the test images against the training images, all classes.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub test_accuracy: f64,
    /// precision@1 restricted to the held-out classes' test images (phase-seen only).
    #[serde(default)]
    pub test_accuracy_unseen: Option<f64>,
    /// Backbone learning rate during the epoch.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub lr: f64,
    /// Training images per second (loader + forward + backward + update).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub images_per_s: f64,
    /// Share of the epoch's training time spent waiting for the loader.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub data_wait_share: f64,
    /// Wall-clock seconds of the epoch, evaluation included.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub seconds: f64,
}

/// What a phase directory says about where training stands (for `--resume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed; the checkpoint holds the weights after this many.
    pub epochs_done: usize,
    /// Epochs the config asks for.
    pub epochs_total: usize,
    /// All epochs trained.
    pub finished: bool,
    /// Why training stopped early, when it did (interrupted, non-finite loss).
    #[serde(default)]
    pub stopped: Option<String>,
    /// precision@1 (all classes) of the network before its first epoch: the baseline
    /// training must beat.
    #[serde(default)]
    pub initial_test_accuracy: Option<f64>,
}
