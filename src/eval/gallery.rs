//! The reference gallery of a trained phase: embeddings of labelled images that
//! `predict` searches. It starts as the phase's training images and grows with
//! `dmlviz index add` — new classes enrolled without retraining, the promise of
//! metric learning. Stored in the phase directory as `gallery.safetensors`
//! (embeddings, labels) + `gallery.json` (class names, one entry per row).

use crate::atomic::write_json;
use crate::tensor_io::{read_safetensors, write_safetensors};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Where a gallery row came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A training image of the experiment's dataset.
    Train,
    /// Enrolled later with `dmlviz index add`.
    Enrolled,
}

/// One gallery row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GalleryEntry {
    pub path: PathBuf,
    /// Index into [`GalleryManifest::classes`].
    pub label: usize,
    pub origin: Origin,
}

/// `gallery.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GalleryManifest {
    pub classes: Vec<String>,
    pub entries: Vec<GalleryEntry>,
}

/// Embeddings and their labels, searchable.
pub struct Gallery {
    /// `[N, D]` float.
    pub embeddings: Tensor,
    pub manifest: GalleryManifest,
}

fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("gallery.safetensors"), dir.join("gallery.json"))
}

impl Gallery {
    /// True when `dir` holds a gallery.
    pub fn exists(dir: &Path) -> bool {
        let (t, j) = files(dir);
        t.exists() && j.exists()
    }

    /// Reads a gallery and checks its two files agree.
    pub fn load(dir: &Path) -> Result<Gallery> {
        let (tensors, json) = files(dir);
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("reading {}", json.display()))?;
        let manifest: GalleryManifest =
            serde_json::from_str(&text).with_context(|| format!("{}", json.display()))?;
        let embeddings = read_safetensors(&tensors)?
            .into_iter()
            .find(|(n, _)| n == "embeddings")
            .with_context(|| format!("{}: no `embeddings` tensor", tensors.display()))?
            .1;
        if embeddings.size()[0] as usize != manifest.entries.len() {
            bail!(
                "{} has {} rows but {} lists {} entries",
                tensors.display(),
                embeddings.size()[0],
                json.display(),
                manifest.entries.len()
            );
        }
        if let Some(e) = manifest
            .entries
            .iter()
            .find(|e| e.label >= manifest.classes.len())
        {
            bail!(
                "{}: entry {} has label {} beyond the {} classes",
                json.display(),
                e.path.display(),
                e.label,
                manifest.classes.len()
            );
        }
        Ok(Gallery {
            embeddings,
            manifest,
        })
    }

    /// Writes both files atomically (tensors first: the manifest is the commit point).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let (tensors, json) = files(dir);
        write_safetensors(
            &tensors,
            &[
                ("embeddings".into(), self.embeddings.shallow_clone()),
                ("labels".into(), self.labels()),
            ],
        )?;
        write_json(&json, &self.manifest)
    }

    /// Labels as an int64 tensor.
    pub fn labels(&self) -> Tensor {
        let labels: Vec<i64> = self
            .manifest
            .entries
            .iter()
            .map(|e| e.label as i64)
            .collect();
        Tensor::from_slice(&labels)
    }

    /// Appends embeddings of images of class `class` (created when new).
    pub fn add(&mut self, class: &str, paths: Vec<PathBuf>, embeddings: &Tensor) -> Result<usize> {
        if embeddings.size()[0] as usize != paths.len() {
            bail!(
                "{} embeddings for {} images",
                embeddings.size()[0],
                paths.len()
            );
        }
        let label = match self.manifest.classes.iter().position(|c| c == class) {
            Some(i) => i,
            None => {
                self.manifest.classes.push(class.to_string());
                self.manifest.classes.len() - 1
            }
        };
        self.embeddings = Tensor::cat(&[&self.embeddings, &embeddings.to_kind(Kind::Float)], 0);
        let n = paths.len();
        self.manifest
            .entries
            .extend(paths.into_iter().map(|path| GalleryEntry {
                path,
                label,
                origin: Origin::Enrolled,
            }));
        Ok(n)
    }
}
