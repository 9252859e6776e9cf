//! An experiment's data, opened and split once and shared by its phases, training
//! and evaluation alike.

use super::embed::{embed, EmbedOptions, Embedded};
use super::eval_inputs::{EvalInputs, EvalSets, EVAL_INPUTS_BUDGET};
use super::model::Model;
use crate::config::{ExperimentConfig, Phase, SplitKind};
use crate::data::loader::DecodedCache;
use crate::data::transform::Transform;
use crate::data::{ClassProtocol, Dataset, Sample, Split};
use crate::search::precision::precision_at_1;
use anyhow::{Context, Result};
use std::sync::{Arc, Mutex};
use tch::{Device, Tensor};

/// A dataset opened and split for an experiment, shared by its phases.
pub struct Experiment {
    pub cfg: ExperimentConfig,
    pub dataset: Dataset,
    pub samples: Arc<Vec<Sample>>,
    pub split: Split,
    pub device: Device,
    /// Decoded images shared by training and evaluation.
    pub cache: Option<Arc<DecodedCache>>,
    /// The per-epoch evaluation's normalised tensors, made at its first call (kept
    /// when the decoded-image cache is on and they fit [`EVAL_INPUTS_BUDGET`]).
    /// Each call takes its own handles and embeds outside the lock: phases trained
    /// side by side evaluate at the same time.
    eval_sets: Mutex<Option<EvalSets>>,
}

impl Experiment {
    /// Opens the config's dataset and splits it, to compute on the config's
    /// `training.device`.
    pub fn prepare(cfg: &ExperimentConfig) -> Result<Experiment> {
        Experiment::prepare_on(cfg, cfg.training.device.device()?)
    }

    /// [`Experiment::prepare`] computing on `device` whatever the config says
    /// (`--device` of train, eval, explain...).
    pub fn prepare_on(cfg: &ExperimentConfig, device: Device) -> Result<Experiment> {
        let dataset = Dataset::open(&cfg.data.path)
            .with_context(|| format!("opening the dataset of experiment {}", cfg.name))?;
        let split = match cfg.data.split {
            SplitKind::Stratified => {
                Split::stratified(&dataset, cfg.data.test_ratio, cfg.training.seed)?
            }
            SplitKind::Official => Split::official(&dataset)?,
        };
        let cache = cfg.data.cache_images.then(DecodedCache::new);
        Ok(Experiment {
            device,
            samples: Arc::new(dataset.samples.clone()),
            cfg: cfg.clone(),
            dataset,
            split,
            cache,
            eval_sets: Mutex::new(None),
        })
    }

    /// The evaluation transform: resize, centre crop.
    pub fn test_transform(&self) -> Transform {
        Transform::test(self.cfg.resize(), self.cfg.data.image_size)
    }

    /// Which classes a phase trains on.
    pub fn protocol(&self, phase: Phase) -> Result<ClassProtocol> {
        let n = self.dataset.classes.len();
        match phase {
            Phase::All => Ok(ClassProtocol::all(n)),
            Phase::Seen => ClassProtocol::hold_out_last(n, self.cfg.data.held_out_classes),
        }
    }

    /// How this experiment embeds images for evaluation.
    pub fn embed_options(&self) -> EmbedOptions {
        EmbedOptions {
            transform: self.test_transform(),
            batch_size: 64,
            threads: self.cfg.training.threads,
            device: self.device,
            cache: self.cache.clone(),
            progress: None,
        }
    }

    /// Whether the evaluation's inputs are kept across epochs: the decoded-image cache
    /// is on and their tensors fit [`EVAL_INPUTS_BUDGET`].
    fn keeps_eval_inputs(&self, opts: &EmbedOptions) -> bool {
        let images = self.split.train.len() + self.split.test.len();
        self.cache.is_some() && EvalInputs::bytes_for(images, opts) <= EVAL_INPUTS_BUDGET
    }

    /// The training (reference) and test (query) images embedded by `model`, from the
    /// inputs transformed at the first call when they are kept.
    fn embed_evaluation_sets(&self, model: &Model) -> Result<(Embedded, Embedded)> {
        let opts = self.embed_options();
        if !self.keeps_eval_inputs(&opts) {
            return Ok((
                embed(&model.net, &self.samples, &self.split.train, &opts)?,
                embed(&model.net, &self.samples, &self.split.test, &opts)?,
            ));
        }
        let sets = {
            let mut kept = self.eval_sets.lock().unwrap_or_else(|e| e.into_inner());
            if kept.is_none() {
                *kept = Some(EvalSets {
                    references: EvalInputs::load(&self.samples, &self.split.train, &opts)?,
                    queries: EvalInputs::load(&self.samples, &self.split.test, &opts)?,
                });
            }
            kept.as_ref().expect("just filled").shallow_clone()
        };
        Ok((
            sets.references.embed(&model.net, &opts)?,
            sets.queries.embed(&model.net, &opts)?,
        ))
    }

    /// precision@1 of the test images against the training images (all classes), and
    /// restricted to the classes `protocol` holds out (when it holds any out).
    pub fn evaluate(&self, model: &Model, protocol: &ClassProtocol) -> Result<(f64, Option<f64>)> {
        let (refs, queries) = self.embed_evaluation_sets(model)?;
        let distance = self.cfg.model.distance;
        let all = precision_at_1(
            &queries.embeddings,
            &queries.labels,
            &refs.embeddings,
            &refs.labels,
            distance,
        )
        .context("precision@1 of the test images")?;
        let unseen = if protocol.unseen.is_empty() {
            None
        } else {
            let rows: Vec<i64> = queries
                .indices
                .iter()
                .enumerate()
                .filter(|(_, &i)| !protocol.is_seen(self.samples[i].label))
                .map(|(r, _)| r as i64)
                .collect();
            let rows = Tensor::from_slice(&rows);
            Some(
                precision_at_1(
                    &queries.embeddings.index_select(0, &rows),
                    &queries.labels.index_select(0, &rows),
                    &refs.embeddings,
                    &refs.labels,
                    distance,
                )
                .context("precision@1 of the held-out classes' test images")?,
            )
        };
        Ok((all, unseen))
    }
}
