//! Loading what a trained phase left in its run directory: the experiment's data and
//! the network at its last checkpoint, and the phase's reference gallery.

use super::gallery::{Gallery, GalleryEntry, GalleryManifest, Origin};
use crate::config::Phase;
use crate::run::RunDir;
use crate::train::embed::embed;
use crate::train::model::{Model, ModelSpec};
use crate::train::trainer::Experiment;
use anyhow::{bail, Result};
use tch::Device;

/// A trained phase, ready to embed images.
pub struct PhaseModel {
    pub exp: Experiment,
    pub model: Model,
    pub phase: Phase,
}

impl PhaseModel {
    /// Opens the run's dataset and loads the phase's checkpoint, to compute on the CPU.
    pub fn load(run: &RunDir, phase: Phase) -> Result<PhaseModel> {
        PhaseModel::load_on(run, phase, Device::Cpu)
    }

    /// [`PhaseModel::load`] computing on `device` (`--device`), whatever device the
    /// run was trained on.
    pub fn load_on(run: &RunDir, phase: Phase, device: Device) -> Result<PhaseModel> {
        let cfg = run.read_config()?;
        let dir = run.phase(phase);
        if !dir.checkpoint().exists() {
            bail!(
                "{}: no checkpoint (has {} been trained?)",
                dir.root.display(),
                phase.dir_name()
            );
        }
        let exp = Experiment::prepare_on(&cfg, device)?;
        let spec = ModelSpec::from_config(&cfg, exp.dataset.classes.len() as i64);
        let mut model = Model::new(&spec, &cfg.loss, exp.device, cfg.training.seed)?;
        model.load_checkpoint(&dir.checkpoint())?;
        Ok(PhaseModel { exp, model, phase })
    }

    /// Directory of the phase.
    pub fn dir(&self, run: &RunDir) -> std::path::PathBuf {
        run.phase(self.phase).root
    }

    /// The phase's gallery: loaded when it exists, otherwise built from the training
    /// images of every class (the reference protocol's references) and saved.
    pub fn gallery(&self, run: &RunDir) -> Result<Gallery> {
        let dir = self.dir(run);
        if Gallery::exists(&dir) {
            return Gallery::load(&dir);
        }
        let refs = embed(
            &self.model.net,
            &self.exp.samples,
            &self.exp.split.train,
            &self.exp.embed_options(),
        )?;
        let entries = refs
            .indices
            .iter()
            .map(|&i| GalleryEntry {
                path: self.exp.samples[i].path.clone(),
                label: self.exp.samples[i].label,
                origin: Origin::Train,
            })
            .collect();
        let gallery = Gallery {
            embeddings: refs.embeddings,
            manifest: GalleryManifest {
                classes: self.exp.dataset.classes.clone(),
                entries,
            },
        };
        gallery.save_if_absent(&dir)?;
        Ok(gallery)
    }
}
