//! Loading what a trained phase left in its run directory: the experiment's data and
//! the network at its last checkpoint, and the phase's reference gallery; and, for runs
//! of imported embeddings (no network), the stored embeddings ([`StoredEmbeddings`]).

use super::gallery::{Gallery, GalleryEntry, GalleryManifest, Origin};
use crate::config::Phase;
use crate::run::embeddings::{
    EmbeddingsIndex, TEST_EMBEDDINGS, TEST_INDICES, TEST_LABELS, TRAIN_EMBEDDINGS, TRAIN_INDICES,
    TRAIN_LABELS,
};
use crate::run::record::read_record;
use crate::run::{PhaseDir, RunDir};
use crate::tensor_io::read_safetensors;
use crate::train::embed::{embed, Embedded};
use crate::train::model::{Model, ModelSpec};
use crate::train::trainer::Experiment;
use anyhow::{bail, Context, Result};
use tch::{Device, Kind};

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
        if let Some(p) = crate::run::provenance::read(run)?.filter(|p| p.embeddings_only()) {
            bail!(
                "{}: holds imported embeddings and no network ({}); embedding or explaining \
                 an image (explain, predict, index add) needs a model: import one with \
                 `dmlviz import model`",
                run.root.display(),
                p.summary()
            );
        }
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

/// A phase's stored embeddings, read back from `embeddings.safetensors` and
/// `embeddings.json`: what `eval` scores for a run of imported embeddings.
pub struct StoredEmbeddings {
    /// Training (reference) rows; `indices` are the stored row indices.
    pub train: Embedded,
    /// Test (query) rows.
    pub test: Embedded,
    /// Class names and each row's image.
    pub index: EmbeddingsIndex,
}

impl StoredEmbeddings {
    /// Reads the phase's stored embeddings; errors name the file and what disagrees.
    pub fn load(dir: &PhaseDir) -> Result<StoredEmbeddings> {
        let file = dir.embeddings();
        let tensors = read_safetensors(&file)?;
        let Some(index) = read_record::<EmbeddingsIndex>(&dir.embeddings_index())? else {
            bail!("{}: not found", dir.embeddings_index().display());
        };
        let get = |name: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .with_context(|| format!("{}: no `{name}` tensor", file.display()))
        };
        let side = |e: &str, l: &str, i: &str, paths: usize| -> Result<Embedded> {
            let embeddings = get(e)?.to_kind(Kind::Float);
            let labels = get(l)?.to_kind(Kind::Int64);
            let indices: Vec<i64> = Vec::try_from(&get(i)?.to_kind(Kind::Int64))
                .with_context(|| format!("{}: reading `{i}`", file.display()))?;
            let rows = embeddings.size().first().copied().unwrap_or(0) as usize;
            if embeddings.dim() != 2 || labels.size() != [rows as i64] || indices.len() != rows {
                bail!(
                    "{}: `{e}` {:?}, `{l}` {:?} and `{i}` [{}] do not describe the same rows",
                    file.display(),
                    embeddings.size(),
                    labels.size(),
                    indices.len()
                );
            }
            if rows != paths {
                bail!(
                    "{}: {rows} rows in `{e}`, {} lists {paths} paths",
                    file.display(),
                    dir.embeddings_index().display()
                );
            }
            let n_classes = index.classes.len() as i64;
            let bad = labels.lt(0).logical_or(&labels.ge(n_classes)).any();
            if bad.int64_value(&[]) != 0 {
                bail!(
                    "{}: `{l}` holds a label outside the {n_classes} classes",
                    file.display()
                );
            }
            Ok(Embedded {
                embeddings,
                labels,
                indices: indices.into_iter().map(|i| i.max(0) as usize).collect(),
            })
        };
        let train = side(
            TRAIN_EMBEDDINGS,
            TRAIN_LABELS,
            TRAIN_INDICES,
            index.train_paths.len(),
        )?;
        let test = side(
            TEST_EMBEDDINGS,
            TEST_LABELS,
            TEST_INDICES,
            index.test_paths.len(),
        )?;
        let (a, b) = (train.embeddings.size()[1], test.embeddings.size()[1]);
        if a != b {
            bail!(
                "{}: {TRAIN_EMBEDDINGS} have {a} dimensions, {TEST_EMBEDDINGS} {b}",
                file.display()
            );
        }
        Ok(StoredEmbeddings { train, test, index })
    }
}
