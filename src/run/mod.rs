//! The run directory: the contract between train, eval, explain, project, report and
//! study. This module names every file of a run ([`RunDir`], [`PhaseDir`]) and owns the
//! record type of every JSON file that one command writes and another reads, one
//! definition that writers serialise and readers deserialise (rules in [`record`]).
//!
//! ```text
//! runs/NAME/config.toml                     ExperimentConfig        train → all
//! runs/NAME/hardware.json                   hardware::Hardware      train → report
//! runs/NAME/deductions.md                   (the user's notes)      user → report
//! runs/NAME/comparison/precision_drop.json  comparison::PrecisionDrop  eval → report, study
//! runs/NAME/comparison/comparison_*_classes_metrics.csv               eval → report
//! runs/NAME/phase-{all,seen}/
//!   checkpoint.safetensors, optimizer.safetensors                    train → train, eval, ...
//!   train-state.json                        history::TrainState     train → train, report
//!   history.jsonl                           history::EpochRecord    train → train, eval, report
//!   embeddings.safetensors, embeddings.json embeddings::EmbeddingsIndex  eval → project
//!   metrics.json                            metrics::PhaseMetrics   eval → report, study
//!   cost.json                               cost::PhaseCost         eval (study) → study
//!   tables/*.csv, tables/confusion_matrix.json  tables::ConfusionMatrix  eval → report
//!   gallery.safetensors, gallery.json       (eval::gallery)         eval, index add → predict
//!   projections/<method>.{json,csv,png,svg,html}  projections::ProjectionRecord  project → report
//!   galleries/galleries.json, q<N>.jpg      galleries::Galleries    project → report
//!   explanations/explanations.json, NN-*/   explanations::ExplanationIndex  explain → report
//! ```

pub mod comparison;
pub mod cost;
pub mod embeddings;
pub mod explanations;
pub mod galleries;
pub mod hardware;
pub mod history;
pub mod lock;
pub mod metrics;
pub mod projections;
pub mod record;
pub mod tables;

pub use history::{EpochRecord, TrainState};

use crate::atomic::{write_atomic, write_json};
use crate::config::{ExperimentConfig, Phase};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// `config.toml`: the resolved config of the run.
pub const CONFIG_FILE: &str = "config.toml";
/// `hardware.json`: the machine that trained the run.
pub const HARDWARE_FILE: &str = "hardware.json";
/// `deductions.md`: the user's notes on the run.
pub const DEDUCTIONS_FILE: &str = "deductions.md";
/// `comparison/`: the two phases compared.
pub const COMPARISON_DIR: &str = "comparison";
/// `phase-P/projections/`.
pub const PROJECTIONS_DIR: &str = "projections";
/// `phase-P/galleries/`.
pub const GALLERIES_DIR: &str = "galleries";
/// `phase-P/explanations/`.
pub const EXPLANATIONS_DIR: &str = "explanations";
/// `phase-P/tables/`.
pub const TABLES_DIR: &str = "tables";
/// The record file of the galleries and of the explanations folder.
pub const GALLERIES_FILE: &str = "galleries.json";
/// The record file of the explanations folder.
pub const EXPLANATIONS_FILE: &str = "explanations.json";
/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The run directory.
    pub root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// `config.toml` of the run.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// `hardware.json`: the training machine.
    pub fn hardware(&self) -> PathBuf {
        self.root.join(HARDWARE_FILE)
    }

    /// `deductions.md`: the user's notes.
    pub fn deductions(&self) -> PathBuf {
        self.root.join(DEDUCTIONS_FILE)
    }

    /// `comparison/`: the phases compared.
    pub fn comparison_dir(&self) -> PathBuf {
        self.root.join(COMPARISON_DIR)
    }

    /// `comparison/precision_drop.json` ([`comparison::PrecisionDrop`]).
    pub fn precision_drop(&self) -> PathBuf {
        self.comparison_dir().join("precision_drop.json")
    }

    /// `comparison/comparison_<classes>_classes_metrics.csv`, `classes` being `unseen`
    /// (the held-out classes) or `seen` (every class).
    pub fn comparison_table(&self, classes: &str) -> PathBuf {
        self.comparison_dir()
            .join(format!("comparison_{classes}_classes_metrics.csv"))
    }

    /// Directory of a protocol phase.
    pub fn phase(&self, phase: Phase) -> PhaseDir {
        PhaseDir {
            root: self.root.join(phase.dir_name()),
        }
    }

    /// Writes the resolved config.
    pub fn write_config(&self, cfg: &ExperimentConfig) -> Result<()> {
        write_atomic(&self.config_path(), cfg.to_toml()?.as_bytes())
    }

    /// Reads the run's config.
    pub fn read_config(&self) -> Result<ExperimentConfig> {
        ExperimentConfig::load(&self.config_path())
    }
}

/// Paths and records of one phase.
#[derive(Debug, Clone)]
pub struct PhaseDir {
    /// The phase directory (`runs/NAME/phase-P`).
    pub root: PathBuf,
}

impl PhaseDir {
    /// Model and loss parameters after the last completed epoch.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }

    /// Optimiser state matching the checkpoint.
    pub fn optimizer(&self) -> PathBuf {
        self.root.join("optimizer.safetensors")
    }

    pub fn history_path(&self) -> PathBuf {
        self.root.join("history.jsonl")
    }

    pub fn state_path(&self) -> PathBuf {
        self.root.join("train-state.json")
    }

    /// Reads `history.jsonl`; errors name the line.
    pub fn read_history(&self) -> Result<Vec<EpochRecord>> {
        let lines = record::read_lines(&self.history_path())?;
        lines.unwrap_or_default().into_iter().collect()
    }

    /// Rewrites `history.jsonl` with `records` (atomically, so it always matches the checkpoint).
    pub fn write_history(&self, records: &[EpochRecord]) -> Result<()> {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        write_atomic(&self.history_path(), text.as_bytes())
    }

    pub fn read_state(&self) -> Result<Option<TrainState>> {
        record::read_record(&self.state_path())
    }

    pub fn write_state(&self, state: &TrainState) -> Result<()> {
        write_json(&self.state_path(), state)
    }

    /// `embeddings.safetensors`: the tensors named in [`embeddings`].
    pub fn embeddings(&self) -> PathBuf {
        self.root.join("embeddings.safetensors")
    }

    /// `embeddings.json` ([`embeddings::EmbeddingsIndex`]).
    pub fn embeddings_index(&self) -> PathBuf {
        self.root.join("embeddings.json")
    }

    /// `metrics.json` ([`metrics::PhaseMetrics`]).
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }

    /// `cost.json` ([`cost::PhaseCost`]).
    pub fn cost(&self) -> PathBuf {
        self.root.join("cost.json")
    }

    /// `tables/`: the file names are in [`tables`].
    pub fn tables(&self) -> PathBuf {
        self.root.join(TABLES_DIR)
    }

    /// `tables/confusion_matrix.json` ([`tables::ConfusionMatrix`]).
    pub fn confusion_matrix(&self) -> PathBuf {
        self.tables().join(tables::CONFUSION_JSON)
    }

    /// `projections/`: the file names are in [`projections`].
    pub fn projections(&self) -> PathBuf {
        self.root.join(PROJECTIONS_DIR)
    }

    /// `projections/<method>.json` ([`projections::ProjectionRecord`]).
    pub fn projection_record(&self, method: &str) -> PathBuf {
        self.projections()
            .join(projections::file_name(method, "json"))
    }

    /// `galleries/`: contact sheets, `index.html`, `galleries.json`.
    pub fn galleries_dir(&self) -> PathBuf {
        self.root.join(GALLERIES_DIR)
    }

    /// `galleries/galleries.json` ([`galleries::Galleries`]).
    pub fn galleries(&self) -> PathBuf {
        self.galleries_dir().join(GALLERIES_FILE)
    }

    /// `explanations/`: `index.html`, one folder per image, `explanations.json`.
    pub fn explanations_dir(&self) -> PathBuf {
        self.root.join(EXPLANATIONS_DIR)
    }

    /// `explanations/explanations.json` ([`explanations::ExplanationIndex`]).
    pub fn explanations(&self) -> PathBuf {
        self.explanations_dir().join(EXPLANATIONS_FILE)
    }

    /// The files and folders of the phase that its report page is made from.
    pub fn report_inputs(&self) -> Vec<PathBuf> {
        vec![
            self.state_path(),
            self.history_path(),
            self.metrics(),
            self.tables(),
            self.projections(),
            self.galleries_dir(),
            self.explanations_dir(),
        ]
    }
}

/// True when `path` looks like a run directory.
pub fn is_run_dir(path: &Path) -> bool {
    path.join(CONFIG_FILE).is_file()
}
