//! Explaining a folder of images (`explain --batch`): every readable image in it, each into
//! its own numbered directory (`NNN-<stem>/`, laid out as [`super::explainer`] says), the
//! unreadable ones skipped and named, and an index page listing both.
//!
//! Default output directories are `<base>/<parent folder name>/<file name>/`: the whole
//! file name (extension and every dot kept) under its parent's whole name, so two inputs
//! get the same directory only when both names are equal — never because their names
//! share a prefix (`0013.cat` and `0013.black_cat`, `x.png` and `x.jpg`).

use super::explainer::{write_explanation, Explanation, ExplanationRecord};
use super::input::Unreadable;
use super::page::{folder_page, FolderEntry};
use crate::data::decode::has_image_extension;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The image files of a folder (by extension), sorted; an error when there is none.
pub fn list_images(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("listing {}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && has_image_extension(p))
        .collect();
    found.sort();
    if found.is_empty() {
        bail!(
            "{}: no image inside (png, jpg, webp, bmp, tif, gif)",
            folder.display()
        );
    }
    Ok(found)
}

/// The default output directory of an input file or folder under `base`:
/// `<base>/<parent folder name>/<file name>` (see the module documentation).
pub fn default_dir(base: &Path, input: &Path) -> PathBuf {
    let full = input.canonicalize().unwrap_or_else(|_| input.to_path_buf());
    let name = full
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "input".into());
    match full.parent().and_then(|p| p.file_name()) {
        Some(parent) => base.join(parent).join(name),
        None => base.join(name),
    }
}

/// `text` with every character but ASCII letters, digits, `-` and `_` as `_`.
pub fn safe_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Directory of the i-th explained image of a batch: `NNN-<stem>` (the number makes it
/// unique, the stem readable).
fn item_dir(i: usize, image: &Path) -> String {
    let stem = image
        .file_stem()
        .or_else(|| image.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    format!("{:03}-{}", i + 1, safe_name(&stem))
}

/// Writes each explanation of `folder`'s images into its own directory of `dir`, and
/// `dir/index.html` listing them and the `skipped` files; returns each directory name
/// with its record.
pub fn write_batch(
    explanations: &[Explanation],
    skipped: &[Unreadable],
    folder: &Path,
    dir: &Path,
) -> Result<Vec<(String, ExplanationRecord)>> {
    let nav = vec![("../index.html".to_string(), "all images".to_string())];
    let mut records = Vec::new();
    for (i, e) in explanations.iter().enumerate() {
        let sub = item_dir(i, &e.image);
        let title = format!("Explanation of {}", e.image.display());
        let record = write_explanation(e, &dir.join(&sub), &title, &nav)?;
        records.push((sub, record));
    }
    let title = format!("Explanations of {}", folder.display());
    let entries: Vec<FolderEntry> = records
        .iter()
        .map(|(sub, record)| FolderEntry { dir: sub, record })
        .collect();
    crate::atomic::write_atomic(
        &dir.join("index.html"),
        folder_page(&title, &entries, skipped).as_bytes(),
    )?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_directories_keep_whole_names() {
        let base = Path::new("out");
        let dir = |p: &str| default_dir(base, Path::new(p));
        // Class folders that share the part before the first dot, and the same file in
        // two classes: all distinct.
        assert_eq!(dir("d/0013.cat"), Path::new("out/d/0013.cat"));
        assert_ne!(dir("d/0013.cat"), dir("d/0013.black_cat"));
        assert_eq!(
            dir("data/e/0013.cat/google.png"),
            Path::new("out/0013.cat/google.png")
        );
        assert_ne!(
            dir("d/0013.cat/google.png"),
            dir("d/0015.black_cat/google.png")
        );
        assert_ne!(dir("d/x.png"), dir("d/x.jpg"));
        assert_eq!(
            item_dir(2, Path::new("a/twit ter.v2.png")),
            "003-twit_ter_v2"
        );
    }
}
