//! The image-folder layout: one sub-folder per class, class order = sorted folder names.

use super::dataset::{Dataset, Sample};
use super::decode::has_image_extension;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Sorted, non-hidden entries of a directory that satisfy `keep`.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && keep(&path) {
            entries.push(path);
        }
    }
    entries.sort();
    Ok(entries)
}

/// Opens `root/<class>/<image>` (PNG or JPEG; other files are ignored).
pub fn open_folder(root: &Path) -> Result<Dataset> {
    let folders = sorted_entries(root, |p| p.is_dir())?;
    if folders.is_empty() {
        bail!(
            "{}: no class sub-folders (expected one folder of images per class)",
            root.display()
        );
    }
    let mut classes = Vec::new();
    let mut candidates = Vec::new();
    let mut warnings = Vec::new();
    for folder in folders {
        let images = sorted_entries(&folder, |p| p.is_file() && has_image_extension(p))?;
        if images.is_empty() {
            warnings.push(format!(
                "class folder {} holds no PNG or JPEG image: left out",
                folder.display()
            ));
            continue;
        }
        let label = classes.len();
        classes.push(folder.file_name().unwrap().to_string_lossy().into_owned());
        candidates.extend(images.into_iter().map(|path| Sample {
            path,
            label,
            official_train: None,
        }));
    }
    let name = super::dataset::directory_name(root);
    Dataset::from_candidates(
        name,
        root.to_path_buf(),
        "folder",
        classes,
        candidates,
        Vec::new(),
        warnings,
    )
}
