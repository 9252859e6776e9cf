//! `phase-P/galleries/galleries.json`: the nearest-neighbour galleries of chosen test
//! images, beside `index.html`. Their thumbnails are cells of tiled sheets
//! ([`GalleryThumbs`]): the map's hover sheets when their cells are large enough, else
//! the gallery's own `thumbs-<k>.jpg`. Earlier versions drew one contact sheet per query
//! (`q<N>.jpg`, [`GalleryItem::sheet`]). Written by `dmlviz project`, read by the report.

use super::projections::SpriteInfo;
use super::record::{f64_or_nan, legacy_schema, nan};
use serde::{Deserialize, Serialize};

/// Where a gallery's thumbnails are: tiled sheets and their folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryThumbs {
    /// The sheets' layout; a thumbnail's cell is [`GalleryItem::cell`] or
    /// [`GalleryNeighbour::cell`].
    pub sprite: SpriteInfo,
    /// The sheets' folder relative to `galleries/`, empty or ending in `/`
    /// (`../projections/` for the map's sheets).
    pub dir: String,
}

/// `galleries/galleries.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Galleries {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// The queries shown.
    #[serde(default)]
    pub items: Vec<GalleryItem>,
    /// The thumbnails' sheets; absent in files with contact sheets instead.
    #[serde(default)]
    pub thumbs: Option<GalleryThumbs>,
}

/// The query of a gallery entry: its image path; in legacy files, its point index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Query {
    /// The query image's path (what dmlviz writes).
    Path(String),
    /// The query's point index in the phase's train-then-test order (legacy files).
    Index(usize),
}

impl std::fmt::Display for Query {
    /// The path, or `#N` for a legacy point index.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::Path(p) => f.write_str(p),
            Query::Index(i) => write!(f, "#{i}"),
        }
    }
}

/// One gallery entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    /// `q<N>`, the anchor of the entry in `galleries/index.html`; absent in legacy files
    /// (see [`GalleryItem::anchor`]).
    #[serde(default)]
    pub id: String,
    /// The query.
    pub query: Query,
    /// Its class.
    pub true_class: String,
    /// Class of the nearest training image.
    pub predicted: String,
    /// Majority vote of the k nearest (ties: nearest wins); empty when not recorded.
    #[serde(default)]
    pub majority: String,
    /// `predicted == true_class`.
    #[serde(default)]
    pub correct: bool,
    /// The query's class is held out.
    #[serde(default)]
    pub unseen: bool,
    /// Contact sheet file name, beside `galleries.json`, in earlier versions; empty
    /// when the thumbnails are cells of [`Galleries::thumbs`].
    #[serde(default)]
    pub sheet: String,
    /// The query's cell in [`Galleries::thumbs`].
    #[serde(default)]
    pub cell: Option<usize>,
    /// The k nearest training images, nearest first.
    #[serde(default)]
    pub neighbours: Vec<GalleryNeighbour>,
    /// Classes of the k nearest by votes (ties: order of first appearance).
    #[serde(default)]
    pub top_classes: Vec<ClassVotes>,
}

impl GalleryItem {
    /// The entry's anchor in `galleries/index.html`: its `id`, or for a legacy entry
    /// without one, `q<N>` from its point index; `None` when neither is known.
    pub fn anchor(&self) -> Option<String> {
        match (&self.query, self.id.is_empty()) {
            (_, false) => Some(self.id.clone()),
            (Query::Index(i), true) => Some(format!("q{i}")),
            (Query::Path(_), true) => None,
        }
    }
}

/// One neighbour of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryNeighbour {
    /// Image path as stored in the run.
    #[serde(default)]
    pub path: String,
    /// Its class.
    pub class: String,
    /// Distance to the query (the run's distance).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub distance: f64,
    /// Same class as the query.
    #[serde(default)]
    pub correct: bool,
    /// Its cell in [`Galleries::thumbs`].
    #[serde(default)]
    pub cell: Option<usize>,
}

/// A class among the top k and its votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassVotes {
    /// Class name.
    pub class: String,
    /// How many of the k nearest have it.
    pub votes: usize,
}
