//! The reference gallery of a trained phase: embeddings of labelled images that
//! `predict` searches. It starts as the phase's training images and grows with
//! `dmlviz index add` — new classes enrolled without retraining, the promise of
//! metric learning. Stored in the phase directory as one file, `gallery.safetensors`:
//! the `embeddings` and `labels` tensors, and the manifest (class names, one entry per
//! row) as JSON in its `__metadata__`, so one rename replaces rows and manifest together
//! and no reader can see one version's rows with another's names. Galleries written
//! before kept the manifest beside it in `gallery.json`; they are still read.

use crate::atomic::write_atomic;
use crate::data::path_text;
use crate::run::lock::RunLock;
use crate::run::{GALLERY_FILE, OLD_GALLERY_MANIFEST};
use crate::tensor_io::{read_safetensors_with_metadata, safetensors_bytes};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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
    #[serde(with = "path_text")]
    pub path: PathBuf,
    /// Index into [`GalleryManifest::classes`].
    pub label: usize,
    pub origin: Origin,
}

/// The gallery's manifest: stored in the `__metadata__` of `gallery.safetensors` (in
/// `gallery.json` beside it for galleries written before).
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

/// The `__metadata__` key holding the manifest as JSON.
const MANIFEST_KEY: &str = "dmlviz.gallery.manifest";

impl Gallery {
    /// True when `dir` holds a gallery.
    pub fn exists(dir: &Path) -> bool {
        dir.join(GALLERY_FILE).is_file()
    }

    /// Reads a gallery (one read of its file) and checks its rows and manifest agree.
    pub fn load(dir: &Path) -> Result<Gallery> {
        let file = dir.join(GALLERY_FILE);
        let (tensors, metadata) = read_safetensors_with_metadata(&file)?;
        let (manifest, source) = match metadata.get(MANIFEST_KEY) {
            Some(text) => (
                serde_json::from_str::<GalleryManifest>(text)
                    .with_context(|| format!("{}: the manifest in its metadata", file.display()))?,
                file.clone(),
            ),
            None => {
                let json = dir.join(OLD_GALLERY_MANIFEST);
                let text = std::fs::read_to_string(&json).with_context(|| {
                    format!(
                        "{} has no manifest in its metadata, and reading {} failed",
                        file.display(),
                        json.display()
                    )
                })?;
                let manifest = serde_json::from_str::<GalleryManifest>(&text)
                    .with_context(|| format!("{}", json.display()))?;
                (manifest, json)
            }
        };
        let embeddings = tensors
            .into_iter()
            .find(|(n, _)| n == "embeddings")
            .with_context(|| format!("{}: no `embeddings` tensor", file.display()))?
            .1;
        if embeddings.dim() != 2 || embeddings.size()[0] as usize != manifest.entries.len() {
            bail!(
                "{} has rows {:?} but {} lists {} entries",
                file.display(),
                embeddings.size(),
                source.display(),
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
                source.display(),
                e.path.display(),
                e.label,
                manifest.classes.len()
            );
        }
        Ok(Gallery {
            embeddings: embeddings.to_kind(Kind::Float),
            manifest,
        })
    }

    /// The gallery file's bytes: tensors and manifest together.
    fn file_bytes(&self, file: &Path) -> Result<Vec<u8>> {
        let manifest = serde_json::to_string(&self.manifest)
            .with_context(|| format!("writing {}: the manifest", file.display()))?;
        safetensors_bytes(
            file,
            &[
                ("embeddings".into(), self.embeddings.shallow_clone()),
                ("labels".into(), self.labels()),
            ],
            Some(HashMap::from([(MANIFEST_KEY.to_string(), manifest)])),
        )
    }

    /// Stores a gallery where none is stored yet, and never replaces one: the default
    /// gallery (the training images) is a cache that any reader may write, and a
    /// concurrent `index add` may have stored an enrolment meanwhile.
    pub fn save_if_absent(&self, dir: &Path) -> Result<()> {
        let file = dir.join(GALLERY_FILE);
        let staged = dir.join(format!(".{GALLERY_FILE}.new.{}", std::process::id()));
        write_atomic(&staged, &self.file_bytes(&file)?)?;
        // A hard link is an atomic "create unless it exists", where a rename would replace.
        let linked = match std::fs::hard_link(&staged, &file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // Filesystems without hard links: the small race left only loses a cache.
            Err(_) if !file.exists() => std::fs::rename(&staged, &file),
            Err(_) => Ok(()),
        };
        let _ = std::fs::remove_file(&staged);
        linked.with_context(|| format!("storing {}", file.display()))
    }

    /// Replaces the stored gallery, rows and manifest in one rename. `_lock` is the run's
    /// writer lock, held by the caller: replacing is read-modify-write, and two writers
    /// at once would lose one's enrolment.
    pub fn replace(&self, dir: &Path, _lock: &RunLock) -> Result<()> {
        let file = dir.join(GALLERY_FILE);
        write_atomic(&file, &self.file_bytes(&file)?)?;
        // The manifest of the old two-file form is stale now: the file's own metadata wins.
        match std::fs::remove_file(dir.join(OLD_GALLERY_MANIFEST)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)
                .with_context(|| format!("removing {}", dir.join(OLD_GALLERY_MANIFEST).display())),
            _ => Ok(()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::write_json;
    use crate::tensor_io::write_safetensors;

    fn gallery(classes: &[&str], rows: &[(usize, f32)]) -> Gallery {
        let data: Vec<f32> = rows.iter().flat_map(|&(_, v)| [v, -v, 1.0]).collect();
        Gallery {
            embeddings: Tensor::from_slice(&data).view([rows.len() as i64, 3]),
            manifest: GalleryManifest {
                classes: classes.iter().map(|c| c.to_string()).collect(),
                entries: rows
                    .iter()
                    .enumerate()
                    .map(|(i, &(label, _))| GalleryEntry {
                        path: PathBuf::from(format!("img/{i}.png")),
                        label,
                        origin: Origin::Train,
                    })
                    .collect(),
            },
        }
    }

    fn same(a: &Gallery, b: &Gallery) -> bool {
        a.manifest == b.manifest && a.embeddings.equal(&b.embeddings)
    }

    #[test]
    fn rows_and_manifest_are_replaced_as_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path(), "index add").unwrap();
        // A stale manifest of the old form beside it must not win, and is removed.
        write_json(
            &dir.path().join(OLD_GALLERY_MANIFEST),
            &gallery(&["x"], &[(0, 9.0)]).manifest,
        )
        .unwrap();
        let mut g = gallery(&["cat", "dog"], &[(0, 1.0), (1, 2.0)]);
        let extra = Tensor::from_slice(&[5f32, 6.0, 7.0]).view([1, 3]);
        g.add("otter", vec![PathBuf::from("otter.png")], &extra)
            .unwrap();
        g.replace(dir.path(), &lock).unwrap();
        assert!(!dir.path().join(OLD_GALLERY_MANIFEST).exists());
        let back = Gallery::load(dir.path()).unwrap();
        assert!(same(&back, &g));
        assert_eq!(back.manifest.entries[2].origin, Origin::Enrolled);
        assert_eq!(back.manifest.classes[2], "otter");
        // The manifest travels inside the tensor file itself.
        let (_, metadata) = read_safetensors_with_metadata(&dir.path().join(GALLERY_FILE)).unwrap();
        let inner: GalleryManifest = serde_json::from_str(&metadata[MANIFEST_KEY]).unwrap();
        assert_eq!(inner, g.manifest);
    }

    #[test]
    fn galleries_written_as_two_files_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let g = gallery(&["a", "b"], &[(1, 3.0), (0, 4.0), (1, 5.0)]);
        write_safetensors(
            &dir.path().join(GALLERY_FILE),
            &[
                ("embeddings".into(), g.embeddings.shallow_clone()),
                ("labels".into(), g.labels()),
            ],
        )
        .unwrap();
        write_json(&dir.path().join(OLD_GALLERY_MANIFEST), &g.manifest).unwrap();
        assert!(Gallery::exists(dir.path()));
        assert!(same(&Gallery::load(dir.path()).unwrap(), &g));

        // A manifest that disagrees with the rows is an error naming both files.
        write_json(
            &dir.path().join(OLD_GALLERY_MANIFEST),
            &gallery(&["a"], &[(0, 1.0)]).manifest,
        )
        .unwrap();
        let err = format!("{:#}", Gallery::load(dir.path()).err().unwrap());
        assert!(
            err.contains(GALLERY_FILE) && err.contains(OLD_GALLERY_MANIFEST),
            "{err}"
        );
    }

    #[test]
    fn the_default_gallery_never_replaces_a_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        let enrolled = gallery(&["a", "new"], &[(0, 1.0), (1, 2.0)]);
        enrolled.save_if_absent(dir.path()).unwrap();
        gallery(&["a"], &[(0, 1.0)])
            .save_if_absent(dir.path())
            .unwrap();
        assert!(same(&Gallery::load(dir.path()).unwrap(), &enrolled));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "staging files left behind: {names:?}");
    }
}
