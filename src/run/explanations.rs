//! `phase-P/explanations/explanations.json`: the sample of explained test images that
//! the report shows, beside `index.html` and one folder per image (`NN-<class>-<stem>/`,
//! with its own `explanation.json`, maps and page). Written by `dmlviz explain
//! --samples`, read by the report. Map files and folders are relative to
//! `explanations/`.

use super::record::{f64_or_nan, legacy_schema, nan};
use crate::config::Phase;
use crate::data::path_text;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The record file inside an explained image's own folder (written by explain, for
/// people and tools; dmlviz does not read it back).
pub const ITEM_FILE: &str = "explanation.json";

/// `explanations/explanations.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplanationIndex {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// The phase explained; unknown in legacy files.
    #[serde(default)]
    pub phase: Option<Phase>,
    /// Neighbours of the majority vote.
    #[serde(default)]
    pub k: usize,
    /// What each map shows.
    #[serde(default)]
    pub method_notes: String,
    /// The explained images.
    #[serde(default)]
    pub items: Vec<ExplanationItem>,
}

/// One explained image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplanationItem {
    /// The test image's path, as in the dataset (non-UTF-8 names kept, [`path_text`]).
    #[serde(with = "path_text")]
    pub image: PathBuf,
    /// Its class; empty when unknown.
    #[serde(default)]
    pub true_class: String,
    /// Majority-vote class; empty when unknown.
    #[serde(default)]
    pub predicted: String,
    /// Whether they agree.
    #[serde(default)]
    pub correct: bool,
    /// Whether the phase trained without this class.
    #[serde(default)]
    pub unseen_class: bool,
    /// The item's own folder (its page), relative to `explanations/`; empty when absent.
    #[serde(default)]
    pub dir: String,
    /// Map name (`image`, `gradcam`, `gradcam_heat`, `guided`, ...) → PNG path.
    #[serde(default)]
    pub maps: BTreeMap<String, String>,
    /// Map name → `ok`, or why the map is flat (`constant`, `zero`, `non_finite`, or a
    /// status a newer dmlviz added): strings, so unknown statuses still read.
    #[serde(default)]
    pub status: BTreeMap<String, String>,
    /// The k nearest training images, nearest first.
    #[serde(default)]
    pub neighbours: Vec<ExplanationNeighbour>,
}

/// What a map's status is when it carries information.
pub const STATUS_OK: &str = "ok";

impl ExplanationItem {
    /// Why map `key` is flat, when its status says so (`None` for a real map or no status).
    pub fn flat_status(&self, key: &str) -> Option<&str> {
        self.status
            .get(key)
            .map(String::as_str)
            .filter(|s| *s != STATUS_OK)
    }
}

/// A neighbour of an explained image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplanationNeighbour {
    /// The training image's path.
    #[serde(with = "path_text")]
    pub path: PathBuf,
    /// Its class.
    pub class: String,
    /// Distance to the explained image.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub distance: f64,
    /// Thumbnail, relative to `explanations/`.
    #[serde(default)]
    pub thumbnail: String,
}
