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

/// Largest side of one sprite sheet, pixels (well under TensorBoard's 8192).
pub const SHEET_SIDE: u32 = 2048;

/// Layout of the tiled hover-thumbnail sheets (`<stem>.json`, written by
/// `project::sprites`): sheet `k` is `<stem>-<k>.jpg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpriteInfo {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// File stem: sheet `k` is `<stem>-<k>.jpg` beside the map.
    pub stem: String,
    /// Side of a square cell, pixels.
    pub cell: u32,
    /// Cells per row of a sheet.
    pub columns: u32,
    /// Rows of cells of a full sheet (the last sheet may have fewer).
    pub rows: u32,
    /// Number of sheets.
    pub sheets: u32,
    /// Number of cells used: one per point, in point order, row-major, sheet after sheet.
    pub count: usize,
}

impl SpriteInfo {
    /// Sheets for `count` points: cells of 64 px up to 1 000 points, 48 up to 4 000,
    /// else 32; each sheet square-ish and at most [`SHEET_SIDE`] px a side.
    pub fn for_points(stem: &str, count: usize) -> SpriteInfo {
        let cell = if count <= 1000 {
            64
        } else if count <= 4000 {
            48
        } else {
            32
        };
        SpriteInfo::with_cell(stem, count, cell)
    }

    /// Sheets for `count` cells of `cell` px, each sheet square-ish and at most
    /// [`SHEET_SIDE`] px a side.
    pub fn with_cell(stem: &str, count: usize, cell: u32) -> SpriteInfo {
        let cell = cell.clamp(1, SHEET_SIDE);
        let most = SHEET_SIDE / cell;
        let columns = ((count as f64).sqrt().ceil() as u32).clamp(1, most);
        let rows = (count as u32).div_ceil(columns).clamp(1, most);
        let per_sheet = (columns * rows) as usize;
        SpriteInfo {
            schema_version: super::record::SCHEMA_VERSION,
            stem: stem.to_string(),
            cell,
            columns,
            rows,
            sheets: count.div_ceil(per_sheet).max(1) as u32,
            count,
        }
    }

    /// Cells on one full sheet.
    pub fn per_sheet(&self) -> usize {
        (self.columns * self.rows) as usize
    }

    /// Where point `i` is drawn: (sheet, column, row).
    pub fn locate(&self, i: usize) -> (u32, u32, u32) {
        let sheet = i / self.per_sheet();
        let j = (i % self.per_sheet()) as u32;
        (sheet as u32, j % self.columns, j / self.columns)
    }

    /// File name of sheet `k`.
    pub fn sheet_name(&self, k: u32) -> String {
        format!("{}-{k}.jpg", self.stem)
    }

    /// Rows of cells on sheet `k` (the last one holds only what is left).
    pub fn sheet_rows(&self, k: u32) -> u32 {
        let left = self.count.saturating_sub(k as usize * self.per_sheet());
        (left as u32).div_ceil(self.columns).clamp(1, self.rows)
    }
}
