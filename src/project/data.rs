//! What a projection reads from a run: a phase's stored embeddings (train rows, then
//! test rows), their labels and image paths, and which classes are held out.

use super::input::Matrix;
use crate::config::Phase;
use crate::data::split::ClassProtocol;
use crate::run::embeddings::{
    EmbeddingsIndex, TEST_EMBEDDINGS, TEST_LABELS, TRAIN_EMBEDDINGS, TRAIN_LABELS,
};
use crate::run::record::read_record;
use crate::run::{PhaseDir, RunDir};
use crate::search::Distance;
use crate::tensor_io::read_safetensors;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Which side of the split a point comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// A training image (a reference of the kNN search).
    Train,
    /// A test image (a query).
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// One phase's embeddings, train rows first.
#[derive(Debug, Clone)]
pub struct PhaseData {
    /// The phase.
    pub phase: Phase,
    /// The phase directory (`runs/X/phase-P`).
    pub dir: PhaseDir,
    /// Class names; labels index them.
    pub classes: Vec<String>,
    /// `[n, d]` embeddings.
    pub embeddings: Matrix,
    /// Label of each row.
    pub labels: Vec<i64>,
    /// Split of each row.
    pub split: Vec<Split>,
    /// Image of each row, as stored in `embeddings.json`.
    pub paths: Vec<PathBuf>,
    /// Per class: held out by the protocol (the last `data.held_out_classes`).
    pub held_out: Vec<bool>,
    /// Number of training rows (they come first).
    pub n_train: usize,
    /// The run's distance between embeddings.
    pub distance: Distance,
}

impl PhaseData {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no point.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// True when point `i` belongs to a held-out class.
    pub fn unseen(&self, i: usize) -> bool {
        self.held_out
            .get(self.labels[i] as usize)
            .copied()
            .unwrap_or(false)
    }

    /// Name of point `i`'s class.
    pub fn class_name(&self, i: usize) -> &str {
        self.classes
            .get(self.labels[i] as usize)
            .map_or("?", |s| s.as_str())
    }

    /// Rows `range` as a tensor.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Tensor {
        let d = self.embeddings.cols;
        Tensor::from_slice(&self.embeddings.data[range.start * d..range.end * d])
            .view([(range.end - range.start) as i64, d as i64])
    }
}

fn tensor(tensors: &[(String, Tensor)], name: &str, file: &Path) -> Result<Tensor> {
    tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.shallow_clone())
        .with_context(|| format!("{}: no `{name}` tensor", file.display()))
}

fn labels(t: &Tensor, name: &str, file: &Path) -> Result<Vec<i64>> {
    Vec::<i64>::try_from(&t.to_kind(tch::Kind::Int64).view([-1]))
        .with_context(|| format!("{}: reading `{name}`", file.display()))
}

/// Reads `embeddings.safetensors` and `embeddings.json` of a phase (written by
/// `dmlviz train` / `dmlviz eval`) and the run's config; checks that they agree.
/// Long: one check per way the three files can disagree, each with its own message.
pub fn load_phase(run: &RunDir, phase: Phase) -> Result<PhaseData> {
    let cfg = run.read_config()?;
    let dir = run.phase(phase);
    let file = dir.embeddings();
    let json_file = dir.embeddings_index();
    if !file.exists() {
        bail!(
            "{}: not found (train the run, or run `dmlviz eval --run {}`)",
            file.display(),
            run.root.display()
        );
    }
    let tensors = read_safetensors(&file)?;
    let Some(meta) = read_record::<EmbeddingsIndex>(&json_file)? else {
        bail!("{}: not found", json_file.display());
    };
    let train = Matrix::from_tensor(&tensor(&tensors, TRAIN_EMBEDDINGS, &file)?)
        .with_context(|| format!("{}: {TRAIN_EMBEDDINGS}", file.display()))?;
    let test = Matrix::from_tensor(&tensor(&tensors, TEST_EMBEDDINGS, &file)?)
        .with_context(|| format!("{}: {TEST_EMBEDDINGS}", file.display()))?;
    let train_labels = labels(&tensor(&tensors, TRAIN_LABELS, &file)?, TRAIN_LABELS, &file)?;
    let test_labels = labels(&tensor(&tensors, TEST_LABELS, &file)?, TEST_LABELS, &file)?;
    if train.cols != test.cols {
        bail!(
            "{}: train_embeddings have {} dimensions, test_embeddings {}",
            file.display(),
            train.cols,
            test.cols
        );
    }
    for (what, rows, n_labels, n_paths) in [
        (
            "train",
            train.rows,
            train_labels.len(),
            meta.train_paths.len(),
        ),
        ("test", test.rows, test_labels.len(), meta.test_paths.len()),
    ] {
        if rows != n_labels || rows != n_paths {
            bail!(
                "{what}: {} has {rows} embeddings and {n_labels} labels, {} lists {n_paths} paths",
                file.display(),
                json_file.display()
            );
        }
    }
    let classes = meta.classes;
    if let Some(bad) = train_labels
        .iter()
        .chain(&test_labels)
        .find(|&&l| l < 0 || l as usize >= classes.len())
    {
        bail!(
            "{}: label {bad} is outside the {} classes of {}",
            file.display(),
            classes.len(),
            json_file.display()
        );
    }
    let mut held_out = vec![false; classes.len()];
    if cfg.data.held_out_classes > 0 {
        if let Ok(protocol) = ClassProtocol::hold_out_last(classes.len(), cfg.data.held_out_classes)
        {
            protocol.unseen.iter().for_each(|&c| held_out[c] = true);
        }
    }
    let n_train = train.rows;
    let mut data = train.data;
    data.extend(test.data);
    let n = n_train + test.rows;
    Ok(PhaseData {
        phase,
        dir,
        classes,
        embeddings: Matrix::new(n, train.cols, data)?,
        labels: train_labels.into_iter().chain(test_labels).collect(),
        split: splits(n, n_train),
        paths: meta
            .train_paths
            .into_iter()
            .chain(meta.test_paths)
            .collect(),
        held_out,
        n_train,
        distance: cfg.model.distance,
    })
}

/// The split of each of `n` points stored training rows first: the first `n_train`
/// are training images, the rest test images.
fn splits(n: usize, n_train: usize) -> Vec<Split> {
    (0..n)
        .map(|i| {
            if i < n_train {
                Split::Train
            } else {
                Split::Test
            }
        })
        .collect()
}

/// A phase of clustered synthetic points for tests: `classes` names, the last
/// `held_out` of them held out, `n_train` + `n_test` points cycling through classes,
/// image paths that do not exist.
#[cfg(test)]
pub(crate) fn synthetic(
    classes: &[&str],
    held_out: usize,
    n_train: usize,
    n_test: usize,
    dim: usize,
) -> PhaseData {
    let n = n_train + n_test;
    let (points, labels) = super::clustered_points(n, dim, classes.len(), 0.3, 5);
    PhaseData {
        phase: Phase::All,
        dir: PhaseDir {
            root: PathBuf::from("unused"),
        },
        classes: classes.iter().map(|c| c.to_string()).collect(),
        embeddings: points,
        labels,
        split: splits(n, n_train),
        paths: (0..n)
            .map(|i| PathBuf::from(format!("no/such/dir/{i}.png")))
            .collect(),
        held_out: (0..classes.len())
            .map(|c| c + held_out >= classes.len())
            .collect(),
        n_train,
        distance: Distance::Euclidean,
    }
}
