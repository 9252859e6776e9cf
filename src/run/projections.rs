//! `phase-P/projections/`: one 2-D layout per method (`umap`, `tsne`, ...), each as
//! `<method>.json` ([`ProjectionRecord`]), `.csv`, `.png`, `.svg`, `.html` and optionally
//! `<method>-thumbnails.jpg` (`.png` in older runs), beside the hover sprite sheets
//! (`sprite-<k>.jpg`, `sprite.json`), the added points (`added.json`) and
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

/// What `<method>` + this + `.png` names: held-out classes moving from phase-all's map.
pub const MOVES_SUFFIX: &str = "-moves";

/// File name of the figure of held-out classes moving between the aligned phase maps:
/// `<method>-moves.png`.
pub fn moves_name(method: &str) -> String {
    format!("{method}{MOVES_SUFFIX}.png")
}

/// File name of a layout's map drawn with the images: `<method>-thumbnails.jpg` (a
/// JPEG: a PNG of hundreds of photos is several times larger, nothing sharper).
pub fn thumbnails_name(method: &str) -> String {
    format!("{method}{THUMBNAILS_SUFFIX}.jpg")
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
    /// How the layout was turned onto another phase's map of the same images, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aligned_to: Option<Alignment>,
}

/// How a layout was aligned onto a reference layout (Procrustes on the shared images;
/// `project::align`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    /// The reference phase (`phase-all`).
    pub reference: String,
    /// Images both layouts hold.
    pub shared: usize,
    /// Scale applied.
    pub scale: f64,
    /// Rotation applied, degrees.
    pub degrees: f64,
    /// A reflection was applied.
    pub reflected: bool,
    /// Squared distance left between the shared points, over their spread around their
    /// centre in the reference (0: the same map, 1: no better than its centre).
    pub residual_share: f64,
}

/// The images placed on a stored layout without recomputing it (`added.json`,
/// written by `dmlviz project --add`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedRecord {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// Nearest stored points each new point is placed among.
    pub k: usize,
    /// Epochs of the short optimisation with the stored points fixed.
    pub epochs: usize,
    /// The added images, in order.
    pub points: Vec<AddedPoint>,
}

/// One added image: its embedding, so it can be placed again on a new layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedPoint {
    /// The image.
    pub path: String,
    /// Its class (the folder it came from).
    pub class: String,
    /// Its embedding (the run's model).
    pub embedding: Vec<f32>,
    /// Per method (`umap`, `tsne`): its position on that layout.
    pub positions: std::collections::BTreeMap<String, [f32; 2]>,
    /// Nearest stored points (row in train-then-test order, distance), nearest first.
    pub neighbours: Vec<(usize, f32)>,
}

/// File name of the added points' record.
pub const ADDED_FILE: &str = "added.json";
/// Stem of the added points' sprite sheets.
pub const ADDED_SPRITE_STEM: &str = "added-sprite";
