//! `dmlviz data fetch`: builds real datasets from registry packages into the
//! image-folder layout (one sub-folder per class) plus a `dataset.json` manifest.

pub mod cards;
pub mod emoji;
pub mod fashion_mnist;
pub mod registry;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    let manifest = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some(manifest))
}

/// Folder name for class number `index` (0-based): `"0007.Name"`. The zero-padded
/// prefix keeps the class order (and so the held-out "last N classes") stable,
/// as CUB-200's `001.Black_footed_Albatross` does.
pub fn class_folder_name(index: usize, name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
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
}
