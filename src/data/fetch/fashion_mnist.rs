//! `dmlviz data fetch fashion-mnist`: the 70 000 Fashion-MNIST images (Zalando) from
//! the Debian package `dataset-fashion-mnist`, as grey PNGs in one folder per class.
//!
//! Files are named after their place in the original IDX files (`train-00001.png` is
//! the first training image), so any image can be traced back, and a subset made with
//! `per_class` keeps the names it has in the full set.

use super::registry::debian_package;
use super::{class_folder_name, DatasetManifest, FetchReport, SourcePackage};
use super::{previous_manifest, prune_stale};
use crate::atomic::{write_json, write_png};
use crate::progress::Progress;
use anyhow::{bail, ensure, Context, Result};
use image::{DynamicImage, GrayImage};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Debian package holding the IDX files.
pub const PACKAGE: &str = "dataset-fashion-mnist";

/// Where the package installs the IDX files.
const IDX_DIR: &str = "usr/share/datasets/fashion-mnist";

/// Label `i` of the IDX files is class `CLASS_NAMES[i]` (Fashion-MNIST README).
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Options of `dmlviz data fetch fashion-mnist`.
#[derive(Debug, Clone)]
pub struct FashionMnistOptions {
    /// Dataset directory (one sub-folder per class, plus `dataset.json`).
    pub out: PathBuf,
    /// Where the `.deb` and its unpacked files are kept between runs.
    pub cache: PathBuf,
    /// Keep only the first N images of each class (training file first), for small subsets.
    pub per_class: Option<usize>,
}

impl Default for FashionMnistOptions {
    fn default() -> Self {
        FashionMnistOptions {
            out: PathBuf::from("data/fashion-mnist"),
            cache: PathBuf::from("data/.cache"),
            per_class: None,
        }
    }
}

/// Parses an IDX file (already gunzipped) of unsigned bytes: returns its dimensions
/// and data. `what` names the file in errors (bad magic, wrong type, size mismatch).
pub fn parse_idx(bytes: &[u8], what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let (dims, header) = parse_idx_header(bytes, what)?;
    Ok((dims, bytes[header..].to_vec()))
}

/// Checks an IDX file and returns its dimensions and header length.
fn parse_idx_header(bytes: &[u8], what: &str) -> Result<(Vec<usize>, usize)> {
    ensure!(
        bytes.len() >= 4,
        "{what}: {} bytes, too short for an IDX header",
        bytes.len()
    );
    ensure!(
        bytes[0] == 0 && bytes[1] == 0,
        "{what}: bad IDX magic {:02x} {:02x} (expected 00 00); is it still gzipped?",
        bytes[0],
        bytes[1]
    );
    ensure!(
        bytes[2] == 0x08,
        "{what}: IDX data type 0x{:02x}, only unsigned bytes (0x08) are supported",
        bytes[2]
    );
    let ndims = bytes[3] as usize;
    ensure!(ndims > 0, "{what}: IDX file with no dimensions");
    let header = 4 + 4 * ndims;
    ensure!(
        bytes.len() >= header,
        "{what}: truncated IDX header ({} dimensions, {} bytes)",
        ndims,
        bytes.len()
    );
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .with_context(|| format!("{what}: IDX dimensions {dims:?} overflow"))?;
    let data = bytes.len() - header;
    ensure!(
        data == expected,
        "{what}: IDX dimensions {dims:?} need {expected} data bytes, the file has {data}"
    );
    Ok((dims, header))
}

/// Reads and parses one gzipped IDX file of the package.
fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut bytes)
        .with_context(|| format!("gunzipping {}", path.display()))?;
    let (dims, header) = parse_idx_header(&bytes, &path.display().to_string())?;
    // In place rather than through `parse_idx`: the training images would be held twice.
    bytes.drain(..header);
    Ok((dims, bytes))
}

/// One split of the data set: `rows`×`cols` images and their labels.
struct Split {
    prefix: &'static str,
    images: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
}

/// Loads `<name>-images-idx3-ubyte.gz` and `<name>-labels-idx1-ubyte.gz` and checks they match.
fn load_split(dir: &Path, name: &str, prefix: &'static str) -> Result<Split> {
    let images_path = dir.join(format!("{name}-images-idx3-ubyte.gz"));
    let labels_path = dir.join(format!("{name}-labels-idx1-ubyte.gz"));
    let (image_dims, images) = read_idx(&images_path)?;
    let (label_dims, labels) = read_idx(&labels_path)?;
    ensure!(
        image_dims.len() == 3,
        "{}: expected 3 dimensions (n, rows, cols), got {image_dims:?}",
        images_path.display()
    );
    ensure!(
        label_dims.len() == 1,
        "{}: expected 1 dimension, got {label_dims:?}",
        labels_path.display()
    );
    if image_dims[0] != label_dims[0] {
        bail!(
            "{} holds {} images but {} holds {} labels",
            images_path.display(),
            image_dims[0],
            labels_path.display(),
            label_dims[0]
        );
    }
    Ok(Split {
        prefix,
        images,
        labels,
        rows: image_dims[1],
        cols: image_dims[2],
    })
}

/// One image to write: which split, its 0-based index there, its class.
struct Job {
    split: usize,
    index: usize,
    class: usize,
}

/// Picks the images to write: all, or the first `per_class` of each class, training
/// split first. Unknown labels are reported in `skipped`.
fn choose(splits: &[Split], per_class: Option<usize>, skipped: &mut Vec<String>) -> Vec<Job> {
    let mut taken = [0usize; CLASS_NAMES.len()];
    let mut jobs = Vec::new();
    for (s, split) in splits.iter().enumerate() {
        for (index, &label) in split.labels.iter().enumerate() {
            let class = label as usize;
            if class >= CLASS_NAMES.len() {
                skipped.push(format!(
                    "{}-{:05}: label {label} is not one of the {} classes",
                    split.prefix,
                    index + 1,
                    CLASS_NAMES.len()
                ));
                continue;
            }
            if per_class.is_some_and(|n| taken[class] >= n) {
                continue;
            }
            taken[class] += 1;
            jobs.push(Job {
                split: s,
                index,
                class,
            });
        }
    }
    jobs
}

/// Builds the Fashion-MNIST dataset into `opts.out` (see the module comment).
pub fn fetch_fashion_mnist(opts: &FashionMnistOptions) -> Result<FetchReport> {
    let previous = previous_manifest(&opts.out, "fashion-mnist")?;
    let package = debian_package(PACKAGE, &opts.cache)?;
    let dir = package.root.join(IDX_DIR);
    let splits = [
        load_split(&dir, "train", "train")?,
        load_split(&dir, "t10k", "test")?,
    ];

    let mut report = FetchReport::default();
    let jobs = choose(&splits, opts.per_class, &mut report.skipped);
    let folders: Vec<String> = CLASS_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| class_folder_name(i, name))
        .collect();

    let bar = Progress::new(jobs.len() as u64, "fashion-mnist");
    jobs.par_iter().try_for_each(|job| -> Result<()> {
        bar.inc(1);
        let split = &splits[job.split];
        let size = split.rows * split.cols;
        let pixels = split.images[job.index * size..(job.index + 1) * size].to_vec();
        let image = GrayImage::from_raw(split.cols as u32, split.rows as u32, pixels)
            .context("image buffer size mismatch")?;
        let path = opts
            .out
            .join(&folders[job.class])
            .join(file_name(split.prefix, job.index));
        write_png(&path, &DynamicImage::ImageLuma8(image))
    })?;

    bar.finish();
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for job in &jobs {
        written
            .entry(folders[job.class].clone())
            .or_default()
            .insert(file_name(splits[job.split].prefix, job.index));
    }
    report.images = jobs.len();
    report.classes = written.len();

    let classes = folders
        .iter()
        .zip(CLASS_NAMES)
        .filter(|(folder, _)| written.contains_key(*folder))
        .map(|(folder, name)| {
            (
                folder.clone(),
                BTreeMap::from([("name".to_string(), name.to_string())]),
            )
        })
        .collect();
    let mut settings = BTreeMap::new();
    if let Some(n) = opts.per_class {
        settings.insert("per_class".to_string(), n.to_string());
    }
    let manifest = DatasetManifest {
        name: "fashion-mnist".to_string(),
        sources: vec![SourcePackage { registry: "debian".to_string(), name: package.name.clone(), version: package.version.clone() }],
        licences: vec![
            "Fashion-MNIST images: MIT (Expat), Copyright 2017 Zalando SE (debian/copyright of dataset-fashion-mnist)".to_string(),
        ],
        classes,
        settings,
    };
    prune_stale(&opts.out, previous.as_ref(), &written)?;
    // Written last: a dataset.json means the images beside it are complete.
    write_json(&opts.out.join("dataset.json"), &manifest)?;
    Ok(report)
}

/// `train-00001.png`: split prefix and 1-based index in the IDX file.
fn file_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{:05}.png", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IDX file of unsigned bytes with the given dimensions and data.
    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn parses_a_three_dimensional_idx_file() {
        let data: Vec<u8> = (0..12).collect();
        let (dims, parsed) = parse_idx(&idx(&[2, 3, 2], &data), "images").unwrap();
        assert_eq!(dims, [2, 3, 2]);
        assert_eq!(parsed, data);
        // Dimensions are big-endian.
        let (dims, _) = parse_idx(&idx(&[258], &[7; 258]), "labels").unwrap();
        assert_eq!(dims, [258]);
    }

    #[test]
    fn rejects_bad_magic_and_wrong_type_naming_the_file() {
        let mut bytes = idx(&[1], &[5]);
        bytes[0] = 0x1f; // a gzip header starts 1f 8b
        let err = parse_idx(&bytes, "train-labels").unwrap_err().to_string();
        assert!(
            err.contains("train-labels") && err.contains("magic"),
            "{err}"
        );
        let mut bytes = idx(&[1], &[0, 0, 0, 0]);
        bytes[2] = 0x0d; // float data
        assert!(parse_idx(&bytes, "x")
            .unwrap_err()
            .to_string()
            .contains("0x0d"));
        assert!(parse_idx(&[0, 0], "x").is_err());
    }

    #[test]
    fn rejects_truncated_header_and_data() {
        let err = parse_idx(&idx(&[2, 2, 2], &[0; 7]), "t10k-images")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t10k-images") && err.contains("need 8") && err.contains("has 7"),
            "{err}"
        );
        assert!(
            parse_idx(&idx(&[2, 2, 2], &[0; 9]), "x").is_err(),
            "trailing bytes accepted"
        );
        let mut short_header = idx(&[2, 2, 2], &[]);
        short_header.truncate(10);
        assert!(parse_idx(&short_header, "x")
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }

    #[test]
    fn per_class_takes_the_first_images_training_split_first() {
        let split = |prefix, labels: Vec<u8>| Split {
            prefix,
            images: vec![0; labels.len()],
            labels,
            rows: 1,
            cols: 1,
        };
        let splits = [
            split("train", vec![0, 1, 0, 12]),
            split("test", vec![0, 1, 1, 2]),
        ];
        let mut skipped = Vec::new();
        let picked = |jobs: Vec<Job>| {
            jobs.iter()
                .map(|j| (j.split, j.index, j.class))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            picked(choose(&splits, Some(2), &mut skipped)),
            [(0, 0, 0), (0, 1, 1), (0, 2, 0), (1, 1, 1), (1, 3, 2)]
        );
        assert_eq!(
            skipped,
            ["train-00004: label 12 is not one of the 10 classes"]
        );
        assert_eq!(choose(&splits, None, &mut Vec::new()).len(), 7);
    }

    #[test]
    fn file_names_follow_the_source_position() {
        assert_eq!(file_name("train", 0), "train-00001.png");
        assert_eq!(file_name("test", 9999), "test-10000.png");
        assert_eq!(class_folder_name(0, CLASS_NAMES[0]), "0001.T-shirt_top");
        assert_eq!(class_folder_name(9, CLASS_NAMES[9]), "0010.Ankle_boot");
    }
}
