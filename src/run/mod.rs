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
//!   commit.json                             epoch_commit::Manifest  train → train (vouches for the epoch's four files)
//!   train-state.json                        history::TrainState     train → train, report
//!   history.jsonl                           history::EpochRecord    train → train, eval, report
//!   embeddings.safetensors, embeddings.json embeddings::EmbeddingsIndex  eval → project
//!   metrics.json                            metrics::PhaseMetrics   eval → report, study
//!   cost.json                               cost::PhaseCost         eval (study) → study
//!   tables/*.csv, tables/confusion_matrix.json  tables::ConfusionMatrix  eval → report
//!   gallery.safetensors (manifest inside; older runs: + gallery.json)  (eval::gallery)  eval, index add → predict
//!   projections/<method>.{json,csv,png,svg,html}  projections::ProjectionRecord  project → report
//!   galleries/galleries.json, q<N>.jpg      galleries::Galleries    project → report
//!   explanations/explanations.json, NN-*/   explanations::ExplanationIndex  explain → report
//!   explanations/trust.json                 trust::TrustTable       explain → report, study
//! runs/NAME/provenance.json                 provenance::Provenance  import → report, eval, explain, predict
//! ```

pub mod comparison;
pub mod cost;
pub mod embeddings;
pub mod epoch_commit;
pub mod explanations;
pub mod galleries;
pub mod hardware;
pub mod history;
pub mod latest;
pub mod lock;
pub mod metrics;
pub mod projections;
pub mod provenance;
pub mod record;
pub mod tables;
pub mod trust;

pub use history::{EpochRecord, TrainState};

use crate::atomic::{write_atomic, write_json};
use crate::config::{ExperimentConfig, Phase};
use anyhow::{bail, Result};
use epoch_commit::{committed_path, Staging};
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
/// The record file of the galleries folder.
pub const GALLERIES_FILE: &str = "galleries.json";
/// The record file of the explanations folder.
pub const EXPLANATIONS_FILE: &str = "explanations.json";
/// `phase-P/gallery.safetensors`: the reference gallery, its manifest inside
/// (`eval::gallery`).
pub const GALLERY_FILE: &str = "gallery.safetensors";
/// `phase-P/gallery.json`: the manifest beside the gallery, in runs written before the
/// manifest moved into [`GALLERY_FILE`] (read, never written).
pub const OLD_GALLERY_MANIFEST: &str = "gallery.json";
/// `phase-P/gradcam-weights.safetensors`: the weight-transfer store (`explain::transfer`).
pub const GRADCAM_WEIGHTS_FILE: &str = "gradcam-weights.safetensors";
/// `phase-P/explain/`: default output of `dmlviz explain --image` / `--batch`.
pub const EXPLAIN_DIR: &str = "explain";
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

    /// `provenance.json` of an imported run ([`provenance::Provenance`]).
    pub fn provenance(&self) -> PathBuf {
        self.root.join(provenance::PROVENANCE_FILE)
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

/// File names of a phase's training files, committed together each epoch
/// (see [`epoch_commit`]).
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// Optimiser state file (see [`CHECKPOINT_FILE`]).
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Per-epoch history file (see [`CHECKPOINT_FILE`]).
pub const HISTORY_FILE: &str = "history.jsonl";
/// Train-state file (see [`CHECKPOINT_FILE`]).
pub const STATE_FILE: &str = "train-state.json";

impl PhaseDir {
    /// Model and loss parameters after the last committed epoch.
    pub fn checkpoint(&self) -> PathBuf {
        committed_path(&self.root, CHECKPOINT_FILE)
    }

    /// Optimiser state matching the checkpoint.
    pub fn optimizer(&self) -> PathBuf {
        committed_path(&self.root, OPTIMIZER_FILE)
    }

    /// The committed `history.jsonl`.
    pub fn history_path(&self) -> PathBuf {
        committed_path(&self.root, HISTORY_FILE)
    }

    /// The committed `train-state.json`.
    pub fn state_path(&self) -> PathBuf {
        committed_path(&self.root, STATE_FILE)
    }

    /// Brings the phase directory to its last committed epoch before training writes
    /// into it (see [`epoch_commit::recover`]). A directory written before commits
    /// existed is trusted only when consistent (its train-state counts as many epochs
    /// as its history, with a checkpoint and optimiser state when any was done), and
    /// is then committed as it is; otherwise it is refused with the reason.
    pub fn recover(&self) -> Result<()> {
        if epoch_commit::recover(&self.root)?.is_some() {
            return Ok(());
        }
        let Some(state) = self.read_state()? else {
            return Ok(());
        };
        let history = self.read_history()?;
        let mut files = vec![STATE_FILE, HISTORY_FILE];
        if state.epochs_done > 0 {
            files.extend([CHECKPOINT_FILE, OPTIMIZER_FILE]);
        }
        let missing = files.iter().find(|f| !self.root.join(f).is_file());
        if history.len() != state.epochs_done || missing.is_some() {
            bail!(
                "{} is inconsistent (a training process was killed while writing it): {} says \
                 {} epochs done, {} holds {} epochs{}; it cannot be resumed, start again with \
                 another --out",
                self.root.display(),
                STATE_FILE,
                state.epochs_done,
                HISTORY_FILE,
                history.len(),
                missing
                    .map(|f| format!(", {f} is missing"))
                    .unwrap_or_default()
            );
        }
        epoch_commit::adopt(&self.root, state.epochs_done, &files)?;
        Ok(())
    }

    /// Reads `history.jsonl`; errors name the line.
    pub fn read_history(&self) -> Result<Vec<EpochRecord>> {
        let lines = record::read_lines(&self.history_path())?;
        lines.unwrap_or_default().into_iter().collect()
    }

    /// Stages `history.jsonl` with `records` into `commit` (so it always matches the
    /// checkpoint committed with it).
    pub fn stage_history(&self, commit: &mut Staging, records: &[EpochRecord]) -> Result<()> {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        write_atomic(&commit.path(HISTORY_FILE), text.as_bytes())
    }

    /// Reads the committed `train-state.json`, if there is one; errors name the file.
    pub fn read_state(&self) -> Result<Option<TrainState>> {
        record::read_record(&self.state_path())
    }

    /// Stages `train-state.json` into `commit`.
    pub fn stage_state(&self, commit: &mut Staging, state: &TrainState) -> Result<()> {
        write_json(&commit.path(STATE_FILE), state)
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

    /// `explanations/trust.json` ([`trust::TrustTable`]): which method to trust.
    pub fn trust(&self) -> PathBuf {
        self.explanations_dir().join(trust::TRUST_FILE)
    }

    /// `gradcam-weights.safetensors`: the stored Grad-CAM weights of weight transfer.
    pub fn gradcam_weights(&self) -> PathBuf {
        self.root.join(GRADCAM_WEIGHTS_FILE)
    }

    /// `explain/`: where `dmlviz explain --image` and `--batch` write by default.
    pub fn explain_dir(&self) -> PathBuf {
        self.root.join(EXPLAIN_DIR)
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
