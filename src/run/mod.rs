//! The run directory: the contract between train, eval, explain, project and report.
//!
//! ```text
//! runs/NAME/config.toml
//! runs/NAME/phase-all/{checkpoint.safetensors, optimizer.safetensors, train-state.json, history.jsonl}
//! runs/NAME/phase-seen/ (same files)
//! ```

pub mod lock;

use crate::atomic::{write_atomic, write_json};
use crate::config::{ExperimentConfig, Phase};
use anyhow::{Context, Result};
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
        let path = self.state_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?,
        ))
    }

    pub fn write_state(&self, state: &TrainState) -> Result<()> {
        write_json(&self.state_path(), state)
    }
}

/// True when `path` looks like a run directory.
pub fn is_run_dir(path: &Path) -> bool {
    path.join("config.toml").is_file()
}
