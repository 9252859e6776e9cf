//! A phase's stored embeddings: `embeddings.safetensors` (the tensors named below) and
//! `embeddings.json` ([`EmbeddingsIndex`]: class names and each row's image). Written by
//! `dmlviz eval` (and `train`, through it), read by `dmlviz project`.

use super::record::legacy_schema;
use crate::data::path_text;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Tensor of the training (reference) embeddings, `[n_train, d]`.
pub const TRAIN_EMBEDDINGS: &str = "train_embeddings";
/// Tensor of the training labels, `[n_train]`.
pub const TRAIN_LABELS: &str = "train_labels";
/// Tensor of the training rows' sample indices, `[n_train]`.
pub const TRAIN_INDICES: &str = "train_indices";
/// Tensor of the test (query) embeddings, `[n_test, d]`.
pub const TEST_EMBEDDINGS: &str = "test_embeddings";
/// Tensor of the test labels, `[n_test]`.
pub const TEST_LABELS: &str = "test_labels";
/// Tensor of the test rows' sample indices, `[n_test]`.
pub const TEST_INDICES: &str = "test_indices";

/// `embeddings.json`: what the rows of `embeddings.safetensors` are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsIndex {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// Class names; labels index them.
    pub classes: Vec<String>,
    /// Image of each training row, in row order. Stored with [`path_text`], so a file
    /// name that is not UTF-8 is kept byte for byte rather than crashing the writer.
    #[serde(with = "path_text::vec")]
    pub train_paths: Vec<PathBuf>,
    /// Image of each test row, in row order.
    #[serde(with = "path_text::vec")]
    pub test_paths: Vec<PathBuf>,
}
