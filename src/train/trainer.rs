//! The trainer: the reference experiments' two-phase protocol (phase-all trains on
//! every class, phase-seen without the held-out ones), each phase evaluated on all
//! classes every epoch, its files committed together every epoch (`run::epoch_commit`),
//! resumable to the same result, stopped cleanly by Ctrl-C, a non-finite loss or
//! non-finite weights (last good checkpoint kept). One run directory has one
//! writer: the driver holds its lock for the whole run.

pub use super::experiment::Experiment;
use super::loss_scale::LossScale;
use super::model::{Model, ModelSpec};
use super::optimizer::Optimizer;
use super::schedule::lr_factor;
use crate::config::{ExperimentConfig, Init, Phase};
use crate::data::loader::{BatchLoader, LoaderOptions};
use crate::data::sampler::{shuffled_batches, PkSampler};
use crate::data::transform::Transform;
use crate::data::ClassProtocol;
use crate::device::onto;
use crate::loss::LossConfig;
use crate::mixed_precision::autocast;
use crate::progress::Progress;
use crate::run::epoch_commit::Staging;
use crate::run::lock::RunLock;
use crate::run::{EpochRecord, PhaseDir, RunDir, TrainState, OPTIMIZER_FILE};
use crate::tensor_io::{read_safetensors, write_safetensors};
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::Kind;

/// How `train` behaves beyond the config.
#[derive(Clone)]
pub struct TrainOptions {
    /// Continue from the phases' last checkpoints instead of starting over.
    pub resume: bool,
    /// Log lines instead of progress bars.
    pub quiet: bool,
    /// Set (e.g. by Ctrl-C) to stop after the current batch.
    pub stop: Arc<AtomicBool>,
    /// Compute device; `None`: the config's `training.device`.
    pub device: Option<tch::Device>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            resume: false,
            quiet: true,
            stop: Arc::new(AtomicBool::new(false)),
            device: None,
        }
    }
}

/// Why training stopped before the end, as an error the CLI can recognise.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    #[error("interrupted during {phase} epoch {epoch}: the checkpoint of epoch {kept} is kept; continue with --resume")]
    Interrupted {
        phase: String,
        epoch: usize,
        kept: usize,
    },
    #[error("non-finite {what} in {phase} epoch {epoch}, batch {batch}: training stopped; the checkpoint of epoch {kept} is kept (lower the learning rate?)")]
    NonFinite {
        phase: String,
        epoch: usize,
        batch: usize,
        /// What became non-finite: the loss (with its value) or the weights.
        what: String,
        kept: usize,
    },
}

/// How the batches of one fit are drawn.
enum Batching {
    /// P×K class-balanced (metric losses, the classifier pretraining).
    Pk(PkSampler),
    /// Two augmented views of each image, rows i and i + N (SimCLR).
    TwoViews { images: usize },
}

/// One stretch of training: the main phase or a pretraining stage.
struct Fit<'a> {
    exp: &'a Experiment,
    dir: PhaseDir,
    label: String,
    epochs: usize,
    train: Vec<usize>,
    protocol: ClassProtocol,
    batching: Batching,
    transform: Transform,
    /// Evaluate precision@1 each epoch (pretraining stages skip it).
    evaluate: bool,
}

impl Fit<'_> {
    /// Trains `model` for the remaining epochs of this fit, resuming from `dir` when asked.
    fn run(&self, model: &mut Model, opts: &TrainOptions) -> Result<Vec<EpochRecord>> {
        let cfg = &self.exp.cfg;
        let mut optimizer = model.optimizer(&cfg.optimizer);
        let mut history = Vec::new();
        let mut start = 0;
        let mut initial = None;
        self.dir.recover()?;
        if opts.resume {
            if let Some(state) = self.dir.read_state()? {
                initial = state.initial_test_accuracy;
                if state.epochs_done > 0 {
                    model.load_checkpoint(&self.dir.checkpoint())?;
                    optimizer.load_state(read_safetensors(&self.dir.optimizer())?);
                    history = self.dir.read_history()?;
                    history.truncate(state.epochs_done);
                    start = state.epochs_done;
                }
            }
        }
        if start >= self.epochs {
            return Ok(history);
        }
        if start == 0 && self.evaluate {
            initial = Some(self.exp.evaluate(model, &self.protocol)?.0);
            if opts.quiet {
                eprintln!(
                    "{} before training: test accuracy {:.4}",
                    self.label,
                    initial.unwrap()
                );
            }
        }
        let bar = if opts.quiet {
            Progress::hidden()
        } else {
            Progress::new((self.epochs - start) as u64, &self.label)
        };
        // CUDA mixed precision's loss scale carries over from epoch to epoch (a resumed
        // run starts anew).
        let mut scale = LossScale::default();
        for epoch in start..self.epochs {
            let record = self.epoch(model, &mut optimizer, epoch, opts, &bar, &mut scale)?;
            if opts.quiet {
                eprintln!(
                    "{} epoch {}/{}: loss {:.4}, test accuracy {:.4}, {:.0} img/s, {:.1} s",
                    self.label,
                    record.epoch,
                    self.epochs,
                    record.train_loss,
                    record.test_accuracy,
                    record.images_per_s,
                    record.seconds
                );
            }
            bar.set_message(format!(
                "loss {:.4} acc {:.3} {:.0} img/s",
                record.train_loss, record.test_accuracy, record.images_per_s
            ));
            bar.inc(1);
            history.push(record);
            // The epoch's four files become visible together at the commit, or not at all.
            let mut commit = Staging::begin(&self.dir.root)?;
            model.save_checkpoint(&commit.path(crate::run::CHECKPOINT_FILE))?;
            write_safetensors(&commit.path(OPTIMIZER_FILE), &optimizer.state())?;
            self.dir.stage_history(&mut commit, &history)?;
            let state = TrainState {
                epochs_done: epoch + 1,
                epochs_total: self.epochs,
                finished: epoch + 1 == self.epochs,
                stopped: None,
                initial_test_accuracy: initial,
            };
            self.dir.stage_state(&mut commit, &state)?;
            commit.commit(epoch + 1)?;
        }
        bar.finish();
        Ok(history)
    }

    fn batches(&self, epoch: usize) -> Result<Vec<Vec<usize>>> {
        let seed = self.exp.cfg.training.seed;
        match &self.batching {
            Batching::Pk(sampler) => sampler.epoch(
                &self.train,
                |i| self.exp.samples[i].label,
                seed,
                epoch as u64,
            ),
            Batching::TwoViews { images } => {
                Ok(
                    shuffled_batches(&self.train, *images, seed, epoch as u64, true)
                        .into_iter()
                        .map(|b| [b.clone(), b].concat())
                        .collect(),
                )
            }
        }
    }

    /// One epoch: every batch through loss, backward, step and the non-finite checks,
    /// then the per-epoch evaluation. Long: the batch loop's stop conditions (Ctrl-C,
    /// non-finite loss, non-finite weights) share its state and read best together.
    fn epoch(
        &self,
        model: &mut Model,
        optimizer: &mut Optimizer,
        epoch: usize,
        opts: &TrainOptions,
        bar: &Progress,
        scale: &mut LossScale,
    ) -> Result<EpochRecord> {
        let cfg = &self.exp.cfg;
        let started = Instant::now();
        let factor = lr_factor(&cfg.schedule, epoch, self.epochs);
        let mut loader = BatchLoader::start(
            self.exp.samples.clone(),
            self.batches(epoch)?,
            LoaderOptions {
                transform: self.transform,
                threads: cfg.training.threads,
                prefetch: 2,
                seed: cfg.training.seed,
                epoch: epoch as u64,
                cache: self.exp.cache.clone(),
            },
        )?;
        let (mut loss_sum, mut batches, mut images) = (0.0, 0usize, 0usize);
        let mut wait = Duration::ZERO;
        let mixed = cfg.training.mixed_precision;
        // float16 (CUDA) underflows small gradients without a loss scale; bfloat16 (the
        // CPU) has single precision's exponent range and needs none.
        let scaled = mixed && self.exp.device != tch::Device::Cpu;
        loop {
            let before = loader.waited();
            let Some(batch) = loader.next() else { break };
            wait += loader.waited() - before;
            if opts.stop.load(Ordering::SeqCst) {
                self.mark_stopped(epoch, "interrupted")?;
                return Err(Stopped::Interrupted {
                    phase: self.label.clone(),
                    epoch: epoch + 1,
                    kept: epoch,
                }
                .into());
            }
            let x = onto(&batch.images, self.exp.device);
            let y = onto(&batch.labels, self.exp.device);
            // Under mixed precision only the network runs in lower precision; the loss's
            // normalisations and exponentials stay in single precision.
            let embeddings = autocast(mixed, self.exp.device, || model.net.forward_t(&x, true));
            let loss = model.loss.loss(&embeddings.to_kind(Kind::Float), &y);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(self.stop_non_finite(epoch, batches + 1, format!("loss ({value})")));
            }
            optimizer.zero_grad();
            if scaled {
                (&loss * scale.scale).backward();
                let finite = optimizer.unscale_gradients(scale.scale);
                if scale.update(finite) {
                    optimizer.step(factor);
                }
            } else {
                loss.backward();
                optimizer.step(factor);
            }
            // A loss can stay finite (even 0) while the weights overflow: check them too,
            // BatchNorm statistics included (they overflow first, from huge activations).
            if !model.weights_finite() {
                return Err(self.stop_non_finite(epoch, batches + 1, "weights".into()));
            }
            loss_sum += value;
            batches += 1;
            images += batch.indices.len();
        }
        if batches == 0 {
            bail!(
                "{}: epoch {} had no readable training image",
                self.label,
                epoch + 1
            );
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let skipped = loader.skipped();
        if !skipped.is_empty() && epoch == 0 {
            // On stderr whatever it is (terminal, file, --quiet), above any progress bar.
            bar.note(&skipped_notice(&self.label, &skipped));
        }
        // Pretraining stages are not evaluated (their loss is not the metric one): 0 is
        // recorded, as JSON has no NaN.
        let (test_accuracy, unseen) = if self.evaluate {
            self.exp.evaluate(model, &self.protocol)?
        } else {
            (0.0, None)
        };
        let lr = optimizer
            .learning_rates(factor)
            .first()
            .map(|(_, lr)| *lr)
            .unwrap_or(0.0);
        Ok(EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / batches as f64,
            test_accuracy,
            test_accuracy_unseen: unseen,
            lr,
            images_per_s: images as f64 / train_seconds,
            data_wait_share: wait.as_secs_f64() / train_seconds,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Records why training stopped; the checkpoint of `epoch` completed epochs stays
    /// (only the train-state is committed again).
    fn mark_stopped(&self, epoch: usize, why: &str) -> Result<()> {
        let initial = self.dir.read_state()?.and_then(|s| s.initial_test_accuracy);
        let mut commit = Staging::begin(&self.dir.root)?;
        let state = TrainState {
            epochs_done: epoch,
            epochs_total: self.epochs,
            finished: false,
            stopped: Some(why.to_string()),
            initial_test_accuracy: initial,
        };
        self.dir.stage_state(&mut commit, &state)?;
        commit.commit(epoch)?;
        Ok(())
    }

    /// Stops on a non-finite `what` at `batch` of `epoch` (0-based): marks the phase
    /// stopped, keeping the last committed epoch, and returns the error to report.
    fn stop_non_finite(&self, epoch: usize, batch: usize, what: String) -> anyhow::Error {
        if let Err(e) = self.mark_stopped(epoch, &format!("non-finite {what} at batch {batch}")) {
            return e;
        }
        Stopped::NonFinite {
            phase: self.label.clone(),
            epoch: epoch + 1,
            batch,
            what,
            kept: epoch,
        }
        .into()
    }
}

/// How many images to name in the notice about unreadable training images.
const NAMED_UNREADABLE: usize = 20;

/// The notice about training images that could not be read: the first ones by name
/// and reason, then how many more.
fn skipped_notice(label: &str, skipped: &[crate::data::dataset::Unreadable]) -> String {
    let mut text = format!(
        "{label}: {} training images could not be read and were skipped:",
        skipped.len()
    );
    for u in skipped.iter().take(NAMED_UNREADABLE) {
        text.push_str(&format!("\n  {}: {}", u.path.display(), u.reason));
    }
    if skipped.len() > NAMED_UNREADABLE {
        text.push_str(&format!(
            "\n  and {} more",
            skipped.len() - NAMED_UNREADABLE
        ));
    }
    text
}

/// The result of one phase.
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    pub phase: Phase,
    pub history: Vec<EpochRecord>,
    /// precision@1 before training.
    pub initial_test_accuracy: Option<f64>,
}

/// Trains the phases the config asks for into `run`, evaluating every epoch, under
/// the run's writer lock (taken here, released on return).
pub fn train(
    cfg: &ExperimentConfig,
    run: &RunDir,
    opts: &TrainOptions,
) -> Result<Vec<PhaseOutcome>> {
    let lock = RunLock::acquire(&run.root, "train")?;
    train_locked(cfg, run, opts, &lock)
}

/// [`train`] for a caller that already holds the run's lock (`dmlviz train` holds it
/// through the evaluation and report that follow). Every check that can fail runs
/// before the first write: the run directory's state, the config against the dataset
/// and the starting weights.
pub fn train_locked(
    cfg: &ExperimentConfig,
    run: &RunDir,
    opts: &TrainOptions,
    lock: &RunLock,
) -> Result<Vec<PhaseOutcome>> {
    cfg.validate()?;
    // Each step allocates the same large activations again (crate::allocator's doc).
    let _heap = crate::allocator::HeapForEveryBlock::start();
    if let Some(holder) = &lock.stale_holder {
        eprintln!(
            "{}: the previous writer ({holder}) was killed; continuing from what it committed",
            run.root.display()
        );
    }
    crate::atomic::remove_stale_temp_files(&run.root)?;
    if !opts.resume {
        if let Some(what) = existing_run(run) {
            bail!(
                "{} already holds a run ({what}): use --resume to continue it, or another --out",
                run.root.display()
            );
        }
    }
    let device = match opts.device {
        Some(device) => device,
        None => cfg.training.device.device()?,
    };
    let exp = Experiment::prepare_on(cfg, device)?;
    for warning in &exp.dataset.warnings {
        eprintln!("{}: warning: {warning}", cfg.data.path.display());
    }
    super::preflight::check(&exp)?;
    run.write_config(cfg)?;
    let phases = &cfg.training.phases;
    let threads = cfg.training.threads.max(1);
    // This thread's count also serves the evaluation and report a caller runs after.
    tch::set_num_threads(threads as i32);
    if !trains_side_by_side(phases.len(), threads, device) {
        return phases
            .iter()
            .map(|&phase| train_phase(&exp, run, phase, opts))
            .collect();
    }
    // Each phase on its own thread with its share of libtorch's threads. The share is
    // set on that thread: libtorch's OpenMP thread count belongs to the calling thread.
    let share = (threads / phases.len()) as i32;
    let outcomes: Vec<Result<PhaseOutcome>> = std::thread::scope(|scope| {
        let running: Vec<_> = phases
            .iter()
            .map(|&phase| {
                let exp = &exp;
                scope.spawn(move || {
                    tch::set_num_threads(share);
                    train_phase(exp, run, phase, opts)
                })
            })
            .collect();
        running
            .into_iter()
            .map(|phase| {
                phase
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    });
    // Every phase ran to its end or its own error; the first error is the run's.
    outcomes.into_iter().collect()
}

/// Whether the phases train at the same time, each on its own thread: on the CPU, with
/// a libtorch thread for each. The phases share nothing but the read-only experiment,
/// and at the demo's sizes libtorch's threads scale poorly, so two phases of one thread
/// each finish sooner than the two one after the other on two (README, "Benchmarks").
/// A phase's numbers depend on its thread count, which the config fixes either way.
fn trains_side_by_side(phases: usize, threads: usize, device: tch::Device) -> bool {
    phases > 1 && threads >= phases && device == tch::Device::Cpu
}

/// What makes `run` hold a run already: its config or a phase directory.
fn existing_run(run: &RunDir) -> Option<String> {
    if run.config_path().exists() {
        return Some("config.toml".into());
    }
    [Phase::All, Phase::Seen]
        .into_iter()
        .map(|p| p.dir_name())
        .find(|name| run.root.join(name).exists())
        .map(|name| format!("{name}/"))
}

/// Trains one phase, after its pretraining stage when the init asks for one.
pub fn train_phase(
    exp: &Experiment,
    run: &RunDir,
    phase: Phase,
    opts: &TrainOptions,
) -> Result<PhaseOutcome> {
    let cfg = &exp.cfg;
    let dir = run.phase(phase);
    dir.recover()?;
    if opts.resume {
        // Done when every epoch the config asks for is (a longer config continues it).
        if let Some(state) = dir.read_state()? {
            if state.epochs_done >= cfg.training.epochs {
                return Ok(PhaseOutcome {
                    phase,
                    history: dir.read_history()?,
                    initial_test_accuracy: state.initial_test_accuracy,
                });
            }
        }
    }
    let protocol = exp.protocol(phase)?;
    let train = exp.split.train_for(&exp.dataset, &protocol);
    let spec = ModelSpec::from_config(cfg, exp.dataset.classes.len() as i64);
    let mut model = Model::new(&spec, &cfg.loss, exp.device, cfg.training.seed)?;
    let pk = PkSampler::new(
        cfg.training.classes_per_batch,
        cfg.training.images_per_class,
    )?;
    let train_transform = Transform::train(cfg.resize(), cfg.data.image_size, cfg.data.augment);
    let resumed = opts.resume && dir.read_state()?.is_some_and(|s| s.epochs_done > 0);
    if !resumed {
        initialise(exp, &mut model, &spec, &dir, &train, &protocol, pk, opts)?;
    }
    let fit = Fit {
        exp,
        dir: dir.clone(),
        label: phase.dir_name().to_string(),
        epochs: cfg.training.epochs,
        train,
        protocol,
        batching: Batching::Pk(pk),
        transform: train_transform,
        evaluate: true,
    };
    let history = fit.run(&mut model, opts)?;
    let initial_test_accuracy = dir.read_state()?.and_then(|s| s.initial_test_accuracy);
    Ok(PhaseOutcome {
        phase,
        history,
        initial_test_accuracy,
    })
}

/// Sets the starting weights of a phase's model as `model.init` says.
#[allow(clippy::too_many_arguments)]
fn initialise(
    exp: &Experiment,
    model: &mut Model,
    spec: &ModelSpec,
    dir: &PhaseDir,
    train: &[usize],
    protocol: &ClassProtocol,
    pk: PkSampler,
    opts: &TrainOptions,
) -> Result<()> {
    let cfg = &exp.cfg;
    match &cfg.model.init {
        Init::Scratch => Ok(()),
        Init::Imagenet => model.load_imagenet(cfg.model.weights.as_deref()),
        Init::Checkpoint { path } => {
            model.load_network_from(&PhaseDir { root: path.clone() }.checkpoint())
        }
        Init::Classifier { epochs } | Init::Simclr { epochs } => {
            let simclr = matches!(cfg.model.init, Init::Simclr { .. });
            // The pretraining stage has its own directory, history and checkpoints, so
            // it is resumable and inspectable like a phase.
            let stage_dir = PhaseDir {
                root: dir.root.join(if simclr {
                    "pretrain-simclr"
                } else {
                    "pretrain-classifier"
                }),
            };
            let (loss, batching, transform) = if simclr {
                // SimCLR learns from two random views of each image: augmentation is its signal.
                let crop = cfg.data.image_size;
                let resize = cfg.resize().max(crop + crop / 7);
                (
                    LossConfig::NtXent { temperature: 0.5 },
                    Batching::TwoViews {
                        images: pk.batch_size() / 2,
                    },
                    Transform::train(resize, crop, true),
                )
            } else {
                (
                    LossConfig::Classifier {},
                    Batching::Pk(pk),
                    Transform::train(cfg.resize(), cfg.data.image_size, cfg.data.augment),
                )
            };
            let mut stage = Model::new(spec, &loss, exp.device, cfg.training.seed)?;
            if !simclr {
                // The reference's classifier starts from ImageNet weights where we have them.
                if let Err(e) = stage.load_imagenet(cfg.model.weights.as_deref()) {
                    eprintln!("classifier pretraining starts from scratch: {e:#}");
                }
            }
            let fit = Fit {
                exp,
                dir: stage_dir,
                label: if simclr {
                    "pretrain-simclr".into()
                } else {
                    "pretrain-classifier".into()
                },
                epochs: *epochs,
                train: train.to_vec(),
                protocol: protocol.clone(),
                batching,
                transform,
                evaluate: false,
            };
            fit.run(
                &mut stage,
                &TrainOptions {
                    resume: true,
                    ..opts.clone()
                },
            )?;
            model.copy_network_from(&stage)
        }
    }
}
