//! `dmlviz data fetch`: builds real datasets from registry packages into the
//! image-folder layout (one sub-folder per class) plus a `dataset.json` manifest.

pub mod cards;
pub mod emoji;
pub mod fashion_mnist;
pub mod registry;
pub mod spec;

pub use spec::{ensure_dataset, FetchSpec};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `dataset.json`: where a fetched dataset came from and what its classes are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetManifest {
    /// Dataset name (`emoji`, `cards`, `fashion-mnist`).
    pub name: String,
    /// Registry packages the images were built from, with their versions.
    pub sources: Vec<SourcePackage>,
    /// Licence notes a user must respect when redistributing the images.
    pub licences: Vec<String>,
    /// Per class folder name: metadata (display name, category, ...).
    pub classes: BTreeMap<String, BTreeMap<String, String>>,
    /// Free-form settings used to build it (vendors, size, filter...).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// One registry package a dataset was built from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourcePackage {
    /// `npm`, `debian` or `pypi`.
    pub registry: String,
    pub name: String,
    pub version: String,
}

/// What a fetch produced, printed by `dmlviz data fetch`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchReport {
    pub classes: usize,
    pub images: usize,
    /// Items that could not be turned into an image, each with the reason.
    pub skipped: Vec<String>,
}

/// Reads `dataset.json` from a dataset directory, if present.
pub fn read_manifest(dir: &Path) -> Result<Option<DatasetManifest>> {
    let path = dir.join("dataset.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    let manifest =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some(manifest))
}

/// Reads the manifest already in `out`, refusing to write over a different dataset.
pub(crate) fn previous_manifest(out: &Path, name: &str) -> Result<Option<DatasetManifest>> {
    let previous = read_manifest(out)
        .with_context(|| format!("reading the existing dataset in {}", out.display()))?;
    if let Some(m) = &previous {
        if m.name != name {
            bail!(
                "{} already holds the dataset {:?}; choose another directory for {name:?}",
                out.display(),
                m.name
            );
        }
    }
    Ok(previous)
}

/// Removes what a previous fetch of the same dataset left that this one did not
/// write: class folders no longer in the dataset, and `.png` files in the class
/// folders just written. Touches only folders named in the manifests, never other files.
pub(crate) fn prune_stale(
    out: &Path,
    previous: Option<&DatasetManifest>,
    written: &BTreeMap<String, BTreeSet<String>>,
) -> Result<()> {
    let Some(previous) = previous else {
        return Ok(());
    };
    // A manifest is data: only plain folder names may lead to a deletion.
    let plain =
        |name: &str| !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']);
    for folder in previous
        .classes
        .keys()
        .filter(|f| plain(f) && !written.contains_key(*f))
    {
        let dir = out.join(folder);
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing stale class folder {}", dir.display()))?;
        }
    }
    for (folder, files) in written {
        let dir = out.join(folder);
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".png") && !files.contains(&name) && path.is_file() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing stale image {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Folder name for class number `index` (0-based): `"0007.Name"`. The zero-padded
/// prefix keeps the class order (and so the held-out "last N classes") stable,
/// as CUB-200's `001.Black_footed_Albatross` does.
pub fn class_folder_name(index: usize, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{:04}.{}", index + 1, safe.trim_matches('_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_folder_names_sort_in_class_order_and_are_safe() {
        assert_eq!(class_folder_name(0, "dog face"), "0001.dog_face");
        assert_eq!(class_folder_name(41, "queen/heart?"), "0042.queen_heart");
        let mut names = vec![class_folder_name(10, "a"), class_folder_name(9, "z")];
        names.sort();
        assert_eq!(names, ["0010.z", "0011.a"]);
    }

    #[test]
    fn pruning_removes_only_what_the_previous_fetch_left() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        for f in [
            "0001.a/google.png",
            "0001.a/apple.png",
            "0001.a/notes.txt",
            "0002.b/google.png",
            "mine/x.png",
        ] {
            crate::atomic::write_atomic(&out.join(f), b"x").unwrap();
        }
        let previous = DatasetManifest {
            name: "emoji".into(),
            sources: vec![],
            licences: vec![],
            classes: ["0001.a", "0002.b", "../escape"]
                .iter()
                .map(|f| (f.to_string(), BTreeMap::new()))
                .collect(),
            settings: BTreeMap::new(),
        };
        let written = BTreeMap::from([(
            "0001.a".to_string(),
            BTreeSet::from(["google.png".to_string()]),
        )]);
        prune_stale(out, Some(&previous), &written).unwrap();
        assert!(out.join("0001.a/google.png").exists());
        assert!(!out.join("0001.a/apple.png").exists());
        assert!(out.join("0001.a/notes.txt").exists());
        assert!(!out.join("0002.b").exists());
        assert!(out.join("mine/x.png").exists());
    }
}
