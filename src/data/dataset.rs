//! A labelled image collection: samples (path, class), the class list, files that
//! could not be used and why, and a summary for users.

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    #[serde(serialize_with = "super::path_text::serialize")]
    pub path: PathBuf,
    /// Index into [`Dataset::classes`].
    pub label: usize,
    /// The dataset's own train/test assignment, where it has one (CUB's
    /// `train_test_split.txt`); `None` for layouts without one.
    pub official_train: Option<bool>,
}

/// A file that was listed or found but cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    #[serde(serialize_with = "super::path_text::serialize")]
    pub path: PathBuf,
    pub reason: String,
}

/// A dataset opened from disk.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    /// Short name (the directory name unless the layout says otherwise).
    pub name: String,
    #[serde(serialize_with = "super::path_text::serialize")]
    pub root: PathBuf,
    /// `cub` or `folder`.
    pub layout: &'static str,
    /// Class names in class-index order; the order fixes which classes are "last".
    pub classes: Vec<String>,
    /// Usable images only.
    pub samples: Vec<Sample>,
    /// Images skipped when the dataset was opened (and, later, by the loader).
    pub unreadable: Vec<Unreadable>,
    /// Non-fatal problems worth a user's attention (empty class folder, lone image).
    pub warnings: Vec<String>,
}

impl Dataset {
    /// Opens a dataset directory, detecting its layout: `images.txt` means the
    /// CUB-200-2011 layout, otherwise one sub-folder per class.
    pub fn open(root: &Path) -> Result<Dataset> {
        if !root.is_dir() {
            bail!("{}: not a directory", root.display());
        }
        if root.join("images.txt").exists() {
            super::cub::open_cub(root)
        } else {
            super::folder::open_folder(root)
        }
    }

    /// Builds a dataset from candidate samples: every file's header is checked (in
    /// parallel); unusable files move to `unreadable`, classes left with no image are
    /// reported, lone-image classes are warned about.
    pub fn from_candidates(
        name: String,
        root: PathBuf,
        layout: &'static str,
        classes: Vec<String>,
        candidates: Vec<Sample>,
        mut unreadable: Vec<Unreadable>,
        mut warnings: Vec<String>,
    ) -> Result<Dataset> {
        let checked: Vec<(Sample, Option<String>)> = candidates
            .into_par_iter()
            .map(|s| {
                let problem = super::decode::check_header(&s.path)
                    .err()
                    .map(|e| format!("{e:#}"));
                (s, problem)
            })
            .collect();
        let mut samples = Vec::with_capacity(checked.len());
        for (sample, problem) in checked {
            match problem {
                None => samples.push(sample),
                Some(reason) => unreadable.push(Unreadable {
                    path: sample.path,
                    reason,
                }),
            }
        }
        if samples.is_empty() {
            bail!(
                "{}: no readable images found ({} unreadable)",
                root.display(),
                unreadable.len()
            );
        }
        // Classes left without a usable image are dropped (and named), so every class
        // index downstream has data; labels are renumbered in the original order.
        let mut counts = vec![0usize; classes.len()];
        for s in &samples {
            counts[s.label] += 1;
        }
        let mut new_index = vec![usize::MAX; classes.len()];
        let mut kept = Vec::new();
        for (i, class) in classes.into_iter().enumerate() {
            match counts[i] {
                0 => warnings.push(format!("class {class:?} has no readable image: left out")),
                n => {
                    if n == 1 {
                        let lone = samples.iter().find(|s| s.label == i).unwrap();
                        warnings.push(format!(
                            "class {class:?} has a single image ({}): it can serve as a reference, never as a test query",
                            lone.path.display()
                        ));
                    }
                    new_index[i] = kept.len();
                    kept.push(class);
                }
            }
        }
        for s in &mut samples {
            s.label = new_index[s.label];
        }
        let classes = kept;
        Ok(Dataset {
            name,
            root,
            layout,
            classes,
            samples,
            unreadable,
            warnings,
        })
    }

    /// Number of usable images per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.classes.len()];
        for s in &self.samples {
            counts[s.label] += 1;
        }
        counts
    }

    /// The summary `dmlviz data` commands print.
    pub fn summary(&self) -> Summary {
        let mut counts = self.class_counts();
        counts.sort_unstable();
        let median = match counts.len() {
            0 => 0.0,
            n if n % 2 == 1 => counts[n / 2] as f64,
            n => (counts[n / 2 - 1] + counts[n / 2]) as f64 / 2.0,
        };
        Summary {
            name: self.name.clone(),
            root: self.root.clone(),
            layout: self.layout,
            classes: self.classes.len(),
            images: self.samples.len(),
            images_per_class_min: counts.first().copied().unwrap_or(0),
            images_per_class_median: median,
            images_per_class_max: counts.last().copied().unwrap_or(0),
            unreadable: self.unreadable.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

/// A dataset's default name: the name of its directory (resolved, so `.` works).
pub(super) fn directory_name(root: &Path) -> String {
    root.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "dataset".into())
}

/// What a user sees of a dataset: sizes, balance, and every problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    #[serde(serialize_with = "super::path_text::serialize")]
    pub root: PathBuf,
    pub layout: &'static str,
    pub classes: usize,
    pub images: usize,
    pub images_per_class_min: usize,
    pub images_per_class_median: f64,
    pub images_per_class_max: usize,
    pub unreadable: Vec<Unreadable>,
    pub warnings: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dataset      {} ({} layout, {})",
            self.name,
            self.layout,
            self.root.display()
        )?;
        writeln!(f, "classes      {}", self.classes)?;
        writeln!(f, "images       {}", self.images)?;
        writeln!(
            f,
            "per class    min {} / median {} / max {}",
            self.images_per_class_min, self.images_per_class_median, self.images_per_class_max
        )?;
        writeln!(f, "unreadable   {}", self.unreadable.len())?;
        const SHOWN: usize = 10;
        for u in self.unreadable.iter().take(SHOWN) {
            writeln!(f, "  skipped {}: {}", u.path.display(), u.reason)?;
        }
        if self.unreadable.len() > SHOWN {
            writeln!(f, "  ... and {} more", self.unreadable.len() - SHOWN)?;
        }
        for w in self.warnings.iter().take(SHOWN) {
            writeln!(f, "warning: {w}")?;
        }
        if self.warnings.len() > SHOWN {
            writeln!(f, "... and {} more warnings", self.warnings.len() - SHOWN)?;
        }
        Ok(())
    }
}
