//! The run directory: the contract between train, eval, explain, project and report.
//!
//! ```text
//! runs/NAME/config.toml
//! runs/NAME/phase-all/{checkpoint.safetensors, optimizer.safetensors, train-state.json, history.jsonl}
//! runs/NAME/phase-all/commit.json (the manifest that vouches for the four, see epoch_commit)
//! runs/NAME/phase-seen/ (same files)
//! ```

pub mod epoch_commit;
pub mod lock;

use crate::atomic::{write_atomic, write_json};
use crate::config::{ExperimentConfig, Phase};
use anyhow::{bail, Context, Result};
use epoch_commit::{committed_path, Staging};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One line of `history.jsonl`: what an epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    pub train_loss: f64,
    /// precision@1 of the test images against the training images, all classes.
    pub test_accuracy: f64,
    /// precision@1 restricted to the held-out classes' test images (phase-seen only).
    #[serde(default)]
    pub test_accuracy_unseen: Option<f64>,
    /// Backbone learning rate during the epoch.
    pub lr: f64,
    /// Training images per second (loader + forward + backward + update).
    pub images_per_s: f64,
    /// Share of the epoch's training time spent waiting for the loader.
    pub data_wait_share: f64,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
}

/// What a phase directory says about where training stands (for `--resume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Epochs completed; the checkpoint holds the weights after this many.
    pub epochs_done: usize,
    pub epochs_total: usize,
    pub finished: bool,
    /// Why training stopped early, when it did (interrupted, non-finite loss).
    #[serde(default)]
    pub stopped: Option<String>,
    /// precision@1 (all classes) of the network before its first epoch: the baseline
    /// training must beat.
    #[serde(default)]
    pub initial_test_accuracy: Option<f64>,
}

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// `config.toml` of the run.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
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
        let path = self.history_path();
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{} line {}", path.display(), i + 1))
            })
            .collect()
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
        let path = self.state_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?,
        ))
    }

    /// Stages `train-state.json` into `commit`.
    pub fn stage_state(&self, commit: &mut Staging, state: &TrainState) -> Result<()> {
        write_json(&commit.path(STATE_FILE), state)
    }
}

/// True when `path` looks like a run directory.
pub fn is_run_dir(path: &Path) -> bool {
    path.join("config.toml").is_file()
}
