//! The checks of a config against its dataset and weights files, run before any
//! training, so a run that cannot finish fails in seconds, not after a phase trained.

use super::experiment::Experiment;
use super::model::{Model, ModelSpec};
use crate::config::{Init, Phase};
use crate::run::PhaseDir;
use anyhow::Result;

/// A config value the dataset or the weights files cannot satisfy; the message names
/// the key. Callers that know the config file name it in front (see `dmlviz train`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsatisfiable(pub String);

/// Checks, for every phase the config trains, that its classes can be held out and
/// its P×K batches filled, and that the starting weights exist and fit the network.
pub fn check(exp: &Experiment) -> Result<()> {
    let cfg = &exp.cfg;
    let t = &cfg.training;
    let fail = |message: String| Err(Unsatisfiable(message).into());
    for &phase in &t.phases {
        let protocol = match exp.protocol(phase) {
            Ok(protocol) => protocol,
            Err(e) => {
                return fail(format!(
                    "data.held_out_classes = {}: {e} (the dataset {} has {} classes)",
                    cfg.data.held_out_classes,
                    exp.dataset.root.display(),
                    exp.dataset.classes.len()
                ))
            }
        };
        let mut per_class = vec![0usize; exp.dataset.classes.len()];
        for i in exp.split.train_for(&exp.dataset, &protocol) {
            per_class[exp.samples[i].label] += 1;
        }
        let usable = per_class.iter().filter(|&&n| n >= 2).count();
        if usable < t.classes_per_batch {
            return fail(format!(
                "training.classes_per_batch = {}: {} trains on {usable} classes with at least \
                 2 training images; at most {usable}",
                t.classes_per_batch,
                phase.dir_name()
            ));
        }
        let largest = per_class.iter().copied().max().unwrap_or(0);
        if t.images_per_class > largest {
            return fail(format!(
                "training.images_per_class = {}: the largest class of {}'s training set has \
                 {largest} images, so every batch would repeat images to fill its places; at \
                 most {largest}",
                t.images_per_class,
                phase.dir_name()
            ));
        }
    }
    check_weights(exp)
}

/// The starting weights `model.init` names exist and load into the network.
fn check_weights(exp: &Experiment) -> Result<()> {
    let cfg = &exp.cfg;
    let loaded = match &cfg.model.init {
        // The classifier stage falls back to scratch without ImageNet weights (said then).
        Init::Scratch | Init::Classifier { .. } | Init::Simclr { .. } => return Ok(()),
        Init::Imagenet => model(exp)?.load_imagenet(cfg.model.weights.as_deref()),
        Init::Checkpoint { path } => {
            let checkpoint = PhaseDir { root: path.clone() }.checkpoint();
            if !checkpoint.is_file() {
                return Err(Unsatisfiable(format!(
                    "model.init.checkpoint.path = {}: no checkpoint there ({} is missing; \
                     name a trained phase directory such as runs/X/{})",
                    path.display(),
                    checkpoint.display(),
                    Phase::All.dir_name()
                ))
                .into());
            }
            model(exp)?.load_network_from(&checkpoint)
        }
    };
    loaded.map_err(|e| Unsatisfiable(format!("model.init: {e:#}")).into())
}

fn model(exp: &Experiment) -> Result<Model> {
    let cfg = &exp.cfg;
    let spec = ModelSpec::from_config(cfg, exp.dataset.classes.len() as i64);
    Model::new(&spec, &cfg.loss, exp.device, cfg.training.seed)
}
