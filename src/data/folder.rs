//! The image-folder layout: one sub-folder per class, class order = sorted folder names.

use super::dataset::{Dataset, Sample};
use super::decode::{has_image_extension, IMAGE_EXTENSIONS};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
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

/// Opens `root/<class>/<image>` (the formats of [`IMAGE_EXTENSIONS`], as torchvision's
/// ImageFolder takes them); other files are skipped and counted in a warning.
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
    let mut other = BTreeMap::new();
    for folder in folders {
        let files = sorted_entries(&folder, |p| p.is_file())?;
        let (images, skipped): (Vec<PathBuf>, Vec<PathBuf>) =
            files.into_iter().partition(|p| has_image_extension(p));
        for path in skipped {
            let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
            *other.entry(ext).or_insert(0usize) += 1;
        }
        if images.is_empty() {
            warnings.push(format!(
                "class folder {} holds no image ({}): left out",
                folder.display(),
                IMAGE_EXTENSIONS.join(", ")
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
    if let Some(line) = skipped_extensions(&other) {
        warnings.push(line);
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

/// The warning counting files left out for their extension, `None` when there are none:
/// "3 files skipped for their extension (2 .txt, 1 without one)".
fn skipped_extensions(counts: &BTreeMap<Option<String>, usize>) -> Option<String> {
    let total: usize = counts.values().sum();
    if total == 0 {
        return None;
    }
    // By extension, in order; files without one last.
    let mut parts: Vec<String> = counts
        .iter()
        .filter_map(|(ext, n)| ext.as_ref().map(|e| format!("{n} .{e}")))
        .collect();
    if let Some(n) = counts.get(&None) {
        parts.push(format!("{n} without one"));
    }
    Some(format!(
        "{total} file{} skipped for their extension ({}; images are {})",
        if total == 1 { "" } else { "s" },
        parts.join(", "),
        IMAGE_EXTENSIONS.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decode::{check_header, decode_rgb};
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

    /// A 6×4 image whose every pixel says which one it is (lossless formats keep it).
    fn pattern(seed: u8) -> RgbImage {
        RgbImage::from_fn(6, 4, |x, y| Rgb([seed, (x * 40) as u8, (y * 60) as u8]))
    }

    /// A two-frame GIF: red, then blue; only the red one may be read.
    fn write_animated_gif(path: &Path) {
        let frame = |c: [u8; 4]| {
            Frame::from_parts(
                RgbaImage::from_pixel(5, 3, Rgba(c)),
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            )
        };
        let file = std::fs::File::create(path).unwrap();
        let mut encoder = GifEncoder::new(file);
        encoder
            .encode_frames([frame([255, 0, 0, 255]), frame([0, 0, 255, 255])])
            .unwrap();
    }

    #[test]
    fn every_image_folder_format_loads_and_other_files_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let formats = [
            ("webp", ImageFormat::WebP),
            ("bmp", ImageFormat::Bmp),
            ("tif", ImageFormat::Tiff),
            ("TIFF", ImageFormat::Tiff),
            ("png", ImageFormat::Png),
        ];
        for class in ["a", "b"] {
            let folder = dir.path().join(class);
            std::fs::create_dir(&folder).unwrap();
            for (i, (ext, format)) in formats.iter().enumerate() {
                let path = folder.join(format!("{i}.{ext}"));
                pattern(i as u8).save_with_format(&path, *format).unwrap();
            }
            write_animated_gif(&folder.join("anim.gif"));
            std::fs::write(folder.join("notes.txt"), "not an image").unwrap();
            std::fs::write(folder.join("README"), "no extension").unwrap();
        }
        let dataset = open_folder(dir.path()).unwrap();
        assert_eq!(dataset.classes, vec!["a", "b"]);
        assert_eq!(dataset.samples.len(), 12, "6 images per class");
        let counted: Vec<&String> = dataset
            .warnings
            .iter()
            .filter(|w| w.contains("skipped for their extension"))
            .collect();
        assert_eq!(counted.len(), 1, "{:?}", dataset.warnings);
        assert!(
            counted[0].starts_with("4 files skipped for their extension (2 .txt, 2 without one"),
            "{}",
            counted[0]
        );
        for sample in &dataset.samples {
            let path = &sample.path;
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let rgb = decode_rgb(path).unwrap();
            assert_eq!(check_header(path).unwrap(), rgb.dimensions(), "{name}");
            if name == "anim.gif" {
                assert_eq!(rgb.dimensions(), (5, 3));
                assert!(rgb.pixels().all(|p| *p == Rgb([255, 0, 0])), "first frame");
            } else {
                let i: u8 = name.split('.').next().unwrap().parse().unwrap();
                assert_eq!(rgb, pattern(i), "{name} decodes to the pixels written");
            }
        }
    }
}
