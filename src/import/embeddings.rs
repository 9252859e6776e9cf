//! `dmlviz import embeddings`: training (reference) and test (query) embeddings made
//! elsewhere, with each row's label and image, become a run directory without a network.
//! `eval` scores them (every metric and table), `project` draws their maps and galleries,
//! `report` shows them; commands that must embed an image (explain, predict, index add)
//! refuse the run, saying it holds no model (docs/DESIGN.md, "Imported runs").
//!
//! Everything is checked before anything is written: row counts against the labels,
//! finite values, labels against the classes, and that every image exists.

use super::labels::{read_labels, LabelRow};
use super::matrix::{read_matrix, Matrix, Side};
use super::model::{distance_name, run_name};
use super::{imported_config, new_run_dir};
use crate::atomic::write_json;
use crate::config::{
    DataConfig, ExperimentConfig, Init, ModelConfig, Phase, SplitKind, MAX_EMBEDDING_DIM,
};
use crate::eval::run_eval::evaluate_run;
use crate::model::Arch;
use crate::run::embeddings::{
    EmbeddingsIndex, TEST_EMBEDDINGS, TEST_INDICES, TEST_LABELS, TRAIN_EMBEDDINGS, TRAIN_INDICES,
    TRAIN_LABELS,
};
use crate::run::lock::RunLock;
use crate::run::metrics::PhaseMetrics;
use crate::run::provenance::{now_unix, Provenance, KIND_EMBEDDINGS};
use crate::run::record::SCHEMA_VERSION;
use crate::run::RunDir;
use crate::search::Distance;
use crate::tensor_io::write_safetensors;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// What `dmlviz import embeddings` was asked to do.
#[derive(Debug, Clone)]
pub struct EmbeddingsImport {
    /// Training (reference) embeddings.
    pub train: PathBuf,
    /// Test (query) embeddings (may be the same `.npz`/`.safetensors` as `train`).
    pub test: PathBuf,
    /// Label and image of each training row.
    pub train_labels: PathBuf,
    /// Label and image of each test row.
    pub test_labels: PathBuf,
    /// Class names in order, one a line (default: the training labels, sorted).
    pub classes: Option<PathBuf>,
    /// The distance the embeddings are compared with.
    pub distance: Distance,
    /// The new run directory.
    pub out: PathBuf,
    /// Evaluate the run at once (metrics and tables).
    pub evaluate: bool,
}

/// What an import did.
#[derive(Debug)]
pub struct ImportedEmbeddings {
    /// The run written.
    pub run: RunDir,
    /// Training and test rows.
    pub rows: (usize, usize),
    /// Embedding dimension.
    pub dim: usize,
    /// Class names.
    pub classes: Vec<String>,
    /// The evaluation, when asked for.
    pub metrics: Vec<PhaseMetrics>,
}

/// One side's rows, checked: embeddings, label indices and images.
struct Rows {
    matrix: Matrix,
    labels: Vec<i64>,
    paths: Vec<PathBuf>,
}

/// The class names: the `--classes` file, else the training labels sorted.
fn class_names(opts: &EmbeddingsImport, train: &[LabelRow]) -> Result<Vec<String>> {
    let Some(file) = &opts.classes else {
        let set: BTreeSet<&str> = train.iter().map(|r| r.label.as_str()).collect();
        return Ok(set.into_iter().map(str::to_string).collect());
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        if names.iter().any(|n| n == name) {
            bail!(
                "{} line {}: class {name:?} listed twice",
                file.display(),
                i + 1
            );
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        bail!("{}: no class names", file.display());
    }
    Ok(names)
}

/// Pairs one side's matrix with its label rows; errors name the file and row.
fn side_rows(
    matrix: Matrix,
    embeddings: &Path,
    labels_file: &Path,
    rows: Vec<LabelRow>,
    classes: &[String],
) -> Result<Rows> {
    if matrix.rows != rows.len() {
        let first = matrix.rows.min(rows.len());
        let (longer, place) = if matrix.rows > rows.len() {
            (embeddings, format!("row {first} (counting from 0)"))
        } else {
            (labels_file, rows[first].place.clone())
        };
        bail!(
            "{} has {} rows, {} has {}: {} {place} has no partner",
            embeddings.display(),
            matrix.rows,
            labels_file.display(),
            rows.len(),
            longer.display()
        );
    }
    let mut labels = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(c) = classes.iter().position(|c| *c == r.label) else {
            bail!(
                "{} {}: unknown label {:?}: not one of the {} classes ({})",
                labels_file.display(),
                r.place,
                r.label,
                classes.len(),
                preview(classes)
            );
        };
        if !r.path.is_file() {
            bail!(
                "{} {}: image {} not found",
                labels_file.display(),
                r.place,
                r.path.display()
            );
        }
        labels.push(c as i64);
    }
    Ok(Rows {
        matrix,
        labels,
        paths: rows.into_iter().map(|r| r.path).collect(),
    })
}

/// The first class names, for messages.
fn preview(classes: &[String]) -> String {
    let shown: Vec<&str> = classes.iter().take(8).map(String::as_str).collect();
    let more = if classes.len() > 8 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// The config of a run without a network: the data section names the labels' folder,
/// the model section records only the distance and the dimension (`model.backbone` is a
/// placeholder that no command loads: provenance.json marks the run embeddings-only).
fn embeddings_config(opts: &EmbeddingsImport, name: &str, dim: usize) -> Result<ExperimentConfig> {
    if !(2..=MAX_EMBEDDING_DIM as usize).contains(&dim) {
        bail!(
            "{}: the embeddings have {dim} dimensions; dmlviz takes 2 to {MAX_EMBEDDING_DIM}",
            opts.train.display()
        );
    }
    let description = format!(
        "embeddings imported from {} and {}, no network",
        opts.train.display(),
        opts.test.display()
    );
    let data = DataConfig {
        path: opts
            .train_labels
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        fetch: None,
        split: SplitKind::Stratified,
        test_ratio: 0.2,
        held_out_classes: 0,
        image_size: 224,
        resize: None,
        augment: false,
        cache_images: false,
    };
    let model = ModelConfig {
        backbone: Arch::ResNet18,
        init: Init::Scratch,
        weights: None,
        distance: opts.distance,
        embedding_dim: dim as i64,
        batch_norm: false,
        skip_connection: false,
        frozen_bn: false,
    };
    imported_config(name, description, data, model, 42)
}

/// `phase-all/embeddings.safetensors` and `embeddings.json`, as `eval` writes them for a
/// trained run: training rows first, row indices counting on through the test rows.
fn write_embeddings(run: &RunDir, train: Rows, test: Rows, classes: &[String]) -> Result<()> {
    let dir = run.phase(Phase::All);
    let n_train = train.labels.len();
    let indices = |range: std::ops::Range<usize>| {
        Tensor::from_slice(&range.map(|i| i as i64).collect::<Vec<_>>())
    };
    write_safetensors(
        &dir.embeddings(),
        &[
            (TRAIN_EMBEDDINGS.into(), train.matrix.to_tensor()),
            (TRAIN_LABELS.into(), Tensor::from_slice(&train.labels)),
            (TRAIN_INDICES.into(), indices(0..n_train)),
            (TEST_EMBEDDINGS.into(), test.matrix.to_tensor()),
            (TEST_LABELS.into(), Tensor::from_slice(&test.labels)),
            (
                TEST_INDICES.into(),
                indices(n_train..n_train + test.labels.len()),
            ),
        ],
    )?;
    let index = EmbeddingsIndex {
        schema_version: SCHEMA_VERSION,
        classes: classes.to_vec(),
        train_paths: train.paths,
        test_paths: test.paths,
    };
    write_json(&dir.embeddings_index(), &index)
}

/// Reads and checks everything, then writes the run under its writer lock: config,
/// provenance, `phase-all/embeddings.{safetensors,json}`; evaluates it when asked.
pub fn import_embeddings(opts: &EmbeddingsImport) -> Result<ImportedEmbeddings> {
    let run = new_run_dir(&opts.out)?;
    let train_matrix = read_matrix(&opts.train, Side::Train)?;
    let test_matrix = read_matrix(&opts.test, Side::Test)?;
    if train_matrix.cols != test_matrix.cols {
        bail!(
            "{} has {} dimensions, {} has {}",
            opts.train.display(),
            train_matrix.cols,
            opts.test.display(),
            test_matrix.cols
        );
    }
    let train_rows = read_labels(&opts.train_labels)?;
    let test_rows = read_labels(&opts.test_labels)?;
    let classes = class_names(opts, &train_rows)?;
    let train = side_rows(
        train_matrix,
        &opts.train,
        &opts.train_labels,
        train_rows,
        &classes,
    )?;
    let test = side_rows(
        test_matrix,
        &opts.test,
        &opts.test_labels,
        test_rows,
        &classes,
    )?;
    let dim = train.matrix.cols;
    let cfg = embeddings_config(opts, &run_name(&opts.out), dim)?;
    let provenance = Provenance {
        schema_version: SCHEMA_VERSION,
        kind: KIND_EMBEDDINGS.into(),
        sources: vec![
            opts.train.clone(),
            opts.test.clone(),
            opts.train_labels.clone(),
            opts.test_labels.clone(),
        ],
        imported_at_unix: now_unix(),
        dmlviz: env!("CARGO_PKG_VERSION").into(),
        settings: vec![format!("distance = {}", distance_name(opts.distance))],
        loaded: 0,
        missing: Vec::new(),
        unexpected: Vec::new(),
        mismatched: Vec::new(),
    };

    let _lock = RunLock::acquire(&run.root, "import embeddings")?;
    run.write_config(&cfg)?;
    write_json(&run.provenance(), &provenance)?;
    let (n_train, n_test) = (train.labels.len(), test.labels.len());
    write_embeddings(&run, train, test, &classes)?;
    let metrics = if opts.evaluate {
        evaluate_run(&run, tch::Device::Cpu)
            .with_context(|| {
                format!(
                    "the embeddings were imported into {}, but evaluating them failed",
                    run.root.display()
                )
            })?
            .0
    } else {
        Vec::new()
    };
    Ok(ImportedEmbeddings {
        run,
        rows: (n_train, n_test),
        dim,
        classes,
        metrics,
    })
}
