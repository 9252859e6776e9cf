//! Bringing models and embeddings made elsewhere into run directories
//! (docs/DESIGN.md, "Imported runs"):
//!
//! - [`model`]: `dmlviz import model`, a PyTorch `state_dict` of a whole embedding network
//!   (names mapped by [`keys`]) becomes a run with a checkpoint;
//! - [`embeddings`]: `dmlviz import embeddings`, train/test embedding matrices
//!   ([`matrix`]) with labels and image paths ([`labels`]) become a run without a network.
//!
//! Both write `provenance.json` (`run::provenance`) and nothing at all when the input is
//! refused.

pub mod embeddings;
pub mod keys;
pub mod labels;
pub mod matrix;
pub mod model;

use crate::config::{
    DataConfig, ExperimentConfig, ModelConfig, OptimizerConfig, Phase, ScheduleConfig,
    TrainingConfig,
};
use crate::loss::LossConfig;
use crate::run::RunDir;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The `config.toml` of an imported run: its data and network as given, with the
/// parameter-free loss and a training section that is never used (training is refused
/// on an imported run); they make the checkpoint load as a trained run's does.
pub(crate) fn imported_config(
    name: &str,
    description: String,
    data: DataConfig,
    model: ModelConfig,
    seed: u64,
) -> Result<ExperimentConfig> {
    let cfg = ExperimentConfig {
        name: name.to_string(),
        description,
        baseline: None,
        data,
        model,
        loss: LossConfig::EpshnTriplet { margin: 0.05 },
        optimizer: OptimizerConfig::default(),
        schedule: ScheduleConfig::Constant,
        training: TrainingConfig {
            epochs: 1,
            classes_per_batch: 2,
            images_per_class: 2,
            seed,
            device: Default::default(),
            threads: 2,
            phases: vec![Phase::All],
            mixed_precision: false,
        },
    };
    cfg.validate().context("the import's settings")?;
    Ok(cfg)
}

/// The run directory an import writes: `out` must not exist yet or be an empty folder,
/// so an import never mixes its files into another run.
pub(crate) fn new_run_dir(out: &Path) -> Result<RunDir> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none());
        if !matches!(empty, Ok(true)) {
            bail!(
                "{}: already exists and is not an empty folder; import into a new --out",
                out.display()
            );
        }
    }
    Ok(RunDir::new(out))
}
