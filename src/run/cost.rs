//! `phase-P/cost.json`: what a trained phase costs to use. Written by `eval::cost`
//! (`dmlviz study`), read by the study's trade-off table.

use super::record::{f64_or_nan, legacy_schema, nan};
use serde::{Deserialize, Serialize};

/// The cost record of one phase (all times in seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseCost {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// Sum of the epochs' wall time.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub training_seconds: f64,
    /// Mean training images per second over the epochs.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub training_images_per_s: f64,
    /// Test images embedded per second (batched, the evaluation path).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub embedding_images_per_s: f64,
    /// Gallery entries (training images).
    #[serde(default)]
    pub index_entries: usize,
    /// Embedding dimension.
    #[serde(default)]
    pub embedding_dim: usize,
    /// Bytes of the index's vectors (float32).
    #[serde(default)]
    pub index_bytes: usize,
    /// Median seconds to classify one image file by kNN (decode, embed, search, vote).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub knn_predict_seconds: f64,
    /// Median seconds to classify one image file by the loss's own logits (decode,
    /// embed, logits, argmax); `None` for losses without class parameters.
    #[serde(default)]
    pub logits_predict_seconds: Option<f64>,
    /// How many images the latency medians were taken over.
    #[serde(default)]
    pub latency_images: usize,
}
