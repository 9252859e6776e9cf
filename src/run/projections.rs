//! `phase-P/projections/`: one 2-D layout per method (`umap`, `tsne`, ...), each as
//! `<method>.json` ([`ProjectionRecord`]), `.csv`, `.png`, `.svg`, `.html` and optionally
//! `<method>-thumbnails.png`, beside the hover sprite (`sprite.jpg`, `sprite.json`) and
//! the TensorBoard export (`tensorboard/`). Written by `dmlviz project`, read by the
//! report.

use super::record::{f64_or_nan, legacy_schema, nan};
use crate::search::Distance;
use serde::{Deserialize, Serialize};

/// Stem of the hover sprite files (`sprite.jpg`, `sprite.json`): not a layout.
pub const SPRITE_STEM: &str = "sprite";
/// Folder of the TensorBoard projector export.
pub const TENSORBOARD_DIR: &str = "tensorboard";
/// What `<method>` + this + `.png` names: the map drawn with the images.
pub const THUMBNAILS_SUFFIX: &str = "-thumbnails";

/// File name of a layout's file: `<method>.<ext>`.
pub fn file_name(method: &str, ext: &str) -> String {
    format!("{method}.{ext}")
}

/// File name of a layout's map drawn with the images: `<method>-thumbnails.png`.
pub fn thumbnails_name(method: &str) -> String {
    format!("{method}{THUMBNAILS_SUFFIX}.png")
}

/// One layout's record (`<method>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectionRecord {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// The method's name (`umap`, `tsne`): a string, so a newer method still reads.
    pub method: String,
    /// Number of points.
    #[serde(default)]
    pub points: usize,
    /// Dimensions of the embeddings.
    #[serde(default)]
    pub dims: usize,
    /// The parameters used (t-SNE: the perplexity after lowering to (n − 1)/3).
    #[serde(default)]
    pub params: serde_json::Value,
    /// Wall-clock seconds of the layout (neighbour search included).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub seconds: f64,
    /// Trustworthiness at k = 15.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub trustworthiness: f64,
    /// Share of the 15 nearest 2-D neighbours with the same class.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub knn_label_agreement: f64,
    /// Dimensions after PCA, when PCA ran first.
    #[serde(default)]
    pub pca_dims: Option<usize>,
    /// The run's distance (`cosine`: rows were L2-normalised first); unknown in older records.
    #[serde(default)]
    pub distance: Option<Distance>,
    /// Rows equal to an earlier row.
    #[serde(default)]
    pub duplicates: usize,
}
