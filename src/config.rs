//! Experiment configuration (`experiments/*.toml`). Every table rejects unknown keys
//! with the key's name, so a typo never silently falls back to a default.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A whole experiment: what to train on, which network, loss and optimiser, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Experiment name; the run directory is `runs/<name>` unless told otherwise.
    pub name: String,
    /// One line on what the experiment tests.
    #[serde(default)]
    pub description: String,
    /// Name of the preset this one varies (the report shows the difference).
    #[serde(default)]
    pub baseline: Option<String>,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub loss: crate::loss::LossConfig,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    pub training: TrainingConfig,
}

/// Dataset, split and the seen/unseen protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset directory (image-folder or CUB layout), relative to the working directory.
    pub path: PathBuf,
    /// How to build it when missing, e.g.
    /// `{ source = "emoji", category = "Animals & Nature" }` (the older list of
    /// `dmlviz data fetch` words is still read, and converted).
    #[serde(default, deserialize_with = "crate::data::fetch::spec::typed_or_words")]
    pub fetch: Option<crate::data::fetch::FetchSpec>,
    #[serde(default)]
    pub split: SplitKind,
    #[serde(default = "default_test_ratio")]
    pub test_ratio: f64,
    /// The last N classes are held out from the phase-seen model; at least 2 classes
    /// must remain (checked against the dataset before training).
    #[serde(default = "default_held_out")]
    pub held_out_classes: usize,
    /// Network input side (crop), in pixels: 16 to 1024 ([`MAX_IMAGE_SIZE`]).
    pub image_size: u32,
    /// Side the image is resized to before cropping (default: `image_size`, as the
    /// reference's Resize(224) + RandomCrop(224)): `image_size` to 2048.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Random crop and horizontal flip during training.
    #[serde(default)]
    pub augment: bool,
    /// Keep decoded images in memory across epochs.
    #[serde(default = "default_true")]
    pub cache_images: bool,
}

/// Which train/test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitKind {
    /// Per-class stratified at `test_ratio` (the reference experiments).
    #[default]
    Stratified,
    /// The dataset's own split (CUB's `train_test_split.txt`).
    Official,
}

/// Backbone, initialisation and embedding head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub backbone: crate::model::Arch,
    pub init: Init,
    /// Weights file for `init = "imagenet"` (safetensors with torchvision names); by
    /// default `weights/<backbone>-imagenet.safetensors`.
    #[serde(default)]
    pub weights: Option<PathBuf>,
    pub distance: crate::search::Distance,
    /// Embedding size: 2 to 8192 ([`MAX_EMBEDDING_DIM`]).
    #[serde(default = "default_embedding_dim")]
    pub embedding_dim: i64,
    /// 1-D BatchNorm on the embedding.
    #[serde(default)]
    pub batch_norm: bool,
    /// Skip-connection head.
    #[serde(default)]
    pub skip_connection: bool,
    /// BatchNorm layers of the backbone kept in eval mode, without gradients.
    #[serde(default)]
    pub frozen_bn: bool,
}

/// Where the backbone's starting weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// ImageNet-pretrained torchvision weights (`model.weights`).
    Imagenet,
    /// Random initialisation (torchvision's).
    Scratch,
    /// A classifier trained first with cross-entropy for this many epochs (1 to 10 000).
    Classifier { epochs: usize },
    /// SimCLR (NT-Xent) self-supervised pretraining on the same images for this many
    /// epochs (1 to 10 000).
    Simclr { epochs: usize },
    /// Another run's phase directory (`runs/X/phase-all`).
    Checkpoint { path: PathBuf },
}

/// Optimiser. Loss parameters (proxies, class weights) have their own learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Learning rate of the network: finite, in (0, 10] ([`MAX_LR`]).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// SGD momentum, in [0, 1).
    #[serde(default)]
    pub momentum: f64,
    /// L2 weight decay, in [0, 1].
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning rate of the loss's parameters (default: `lr`): finite, in (0, 1000].
    #[serde(default)]
    pub loss_lr: Option<f64>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: default_lr(),
            momentum: 0.0,
            weight_decay: 0.0,
            loss_lr: None,
        }
    }
}

/// SGD (PyTorch semantics, momentum without dampening) or Adam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    #[default]
    Sgd,
    Adam,
}

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    #[default]
    Constant,
    /// ×gamma at each milestone, given as fractions of the epochs (official EPSHN: 0.5, 0.75);
    /// milestones in [0, 1], gamma in (0, 1].
    MultiStep { milestones: Vec<f64>, gamma: f64 },
    /// Cosine annealing to 0 over the epochs.
    Cosine,
}

/// Length, batches, randomness and hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Epochs per phase: 1 to 10 000.
    pub epochs: usize,
    /// Classes per batch (P) and images per class (K): batch size P·K, each at least 2
    /// and P·K at most 4096 ([`MAX_BATCH`]). Before training, P is checked against the
    /// classes with 2 or more training images, K against the largest class.
    pub classes_per_batch: usize,
    /// K, see `classes_per_batch`.
    pub images_per_class: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub device: DeviceKind,
    /// libtorch and loader threads: 1 to 256. On the CPU, with two phases and two
    /// threads or more, the phases train side by side, each with half (rounded down).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Which protocol phases to train: "all" and/or "seen".
    #[serde(default = "default_phases")]
    pub phases: Vec<Phase>,
    /// The network's forward pass under autocast (`--amp` sets it): bfloat16 on the
    /// CPU, float16 with a dynamic loss scale on CUDA. The loss, the gradients and the
    /// weights stay in single precision. Off by default.
    #[serde(default)]
    pub mixed_precision: bool,
}

/// The compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
}

impl DeviceKind {
    /// The `tch` device, or an error saying why CUDA is absent and how to get it
    /// (`crate::device::DeviceSpec::resolve`).
    pub fn device(self) -> Result<tch::Device> {
        let spec = match self {
            DeviceKind::Cpu => crate::device::DeviceSpec::Cpu,
            DeviceKind::Cuda => crate::device::DeviceSpec::Cuda(0),
        };
        spec.resolve()
            .context("training.device = \"cuda\" in the config")
    }
}

/// A phase of the two-phase protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Trained on every class.
    All,
    /// Trained without the held-out classes.
    Seen,
}

impl Phase {
    /// Directory name inside the run directory.
    pub fn dir_name(self) -> &'static str {
        match self {
            Phase::All => "phase-all",
            Phase::Seen => "phase-seen",
        }
    }
}

fn default_test_ratio() -> f64 {
    0.2
}
fn default_held_out() -> usize {
    20
}
fn default_true() -> bool {
    true
}
fn default_embedding_dim() -> i64 {
    128
}
fn default_lr() -> f64 {
    0.03
}
fn default_seed() -> u64 {
    42
}
fn default_threads() -> usize {
    2
}
fn default_phases() -> Vec<Phase> {
    vec![Phase::All, Phase::Seen]
}

// The bounds `validate` holds values to. Each is far above what the presets and the
// papers they follow use, and below where a value only crashes or exhausts memory.

/// Smallest `data.image_size`: the backbones downsample 32×; below 16 nothing is left.
pub const MIN_IMAGE_SIZE: u32 = 16;
/// Largest `data.image_size`: 4× the reference 224; one 1024² batch of 128 images is
/// already 1.6 GB of input and tens of GB of activations.
pub const MAX_IMAGE_SIZE: u32 = 1024;
/// Largest `data.resize` (2× the largest crop).
pub const MAX_RESIZE: u32 = 2048;
/// Largest `model.embedding_dim`: 4× a ResNet50's 2048 features; the reference uses 512 at most.
pub const MAX_EMBEDDING_DIM: i64 = 8192;
/// Largest `training.epochs` (and pretraining epochs): the reference trains 100.
pub const MAX_EPOCHS: usize = 10_000;
/// Largest batch P×K (and each of P and K): the reference uses 128.
pub const MAX_BATCH: usize = 4096;
/// Largest `training.threads`.
pub const MAX_THREADS: usize = 256;
/// Largest `optimizer.lr`: the presets use 0.03 (SGD) and 1e-4 (Adam); over 10 every
/// update overshoots by orders of magnitude.
pub const MAX_LR: f64 = 10.0;
/// Largest `optimizer.loss_lr`: proxies are often trained 100× faster than the network.
pub const MAX_LOSS_LR: f64 = 1000.0;
/// Largest `optimizer.weight_decay` (the papers use 1e-4 to 5e-4).
pub const MAX_WEIGHT_DECAY: f64 = 1.0;

/// `value` of `key` is within `[min, max]`.
fn in_range<T: PartialOrd + std::fmt::Display>(key: &str, value: T, min: T, max: T) -> Result<()> {
    if value < min || value > max {
        bail!("{key} must be between {min} and {max}, got {value}");
    }
    Ok(())
}

/// A learning rate is finite, positive and at most `max`.
fn learning_rate(key: &str, lr: f64, max: f64) -> Result<()> {
    if !(lr > 0.0 && lr <= max) {
        bail!("{key} must be a number in (0, {max}], got {lr}");
    }
    Ok(())
}

impl ExperimentConfig {
    /// Parses a TOML config; errors name the file, the line and the offending key.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let cfg: ExperimentConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", origin.display()))?;
        cfg.validate()
            .with_context(|| format!("{}", origin.display()))?;
        Ok(cfg)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text, path)
    }

    /// The config as TOML (what the run directory stores as `config.toml`).
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Checks values a type cannot express, each against the bound documented on its
    /// field; errors name the key. Checks against the dataset (held-out classes, P×K
    /// against class sizes) and the weights files run later, before training
    /// (`train::preflight`).
    pub fn validate(&self) -> Result<()> {
        let d = &self.data;
        if !(d.test_ratio > 0.0 && d.test_ratio < 1.0) {
            bail!("data.test_ratio must be in (0, 1), got {}", d.test_ratio);
        }
        in_range(
            "data.image_size",
            d.image_size,
            MIN_IMAGE_SIZE,
            MAX_IMAGE_SIZE,
        )?;
        if let Some(r) = d.resize {
            // The lower bound is the crop: the crop is taken from the resized image.
            in_range("data.resize", r, d.image_size, MAX_RESIZE)?;
        }
        let m = &self.model;
        in_range("model.embedding_dim", m.embedding_dim, 2, MAX_EMBEDDING_DIM)?;
        match m.init {
            Init::Classifier { epochs } => {
                in_range("model.init.classifier.epochs", epochs, 1, MAX_EPOCHS)?
            }
            Init::Simclr { epochs } => in_range("model.init.simclr.epochs", epochs, 1, MAX_EPOCHS)?,
            _ => {}
        }
        let t = &self.training;
        in_range("training.epochs", t.epochs, 1, MAX_EPOCHS)?;
        in_range(
            "training.classes_per_batch",
            t.classes_per_batch,
            2,
            MAX_BATCH,
        )?;
        in_range(
            "training.images_per_class",
            t.images_per_class,
            2,
            MAX_BATCH,
        )?;
        let batch = t.classes_per_batch.saturating_mul(t.images_per_class);
        if batch > MAX_BATCH {
            bail!(
                "training.classes_per_batch × training.images_per_class must be at most \
                 {MAX_BATCH}, got {} × {} = {batch}",
                t.classes_per_batch,
                t.images_per_class
            );
        }
        in_range("training.threads", t.threads, 1, MAX_THREADS)?;
        if t.phases.is_empty() {
            bail!("training.phases is empty: give \"all\", \"seen\" or both");
        }
        let o = &self.optimizer;
        learning_rate("optimizer.lr", o.lr, MAX_LR)?;
        if let Some(lr) = o.loss_lr {
            learning_rate("optimizer.loss_lr", lr, MAX_LOSS_LR)?;
        }
        if !(0.0..1.0).contains(&o.momentum) {
            bail!("optimizer.momentum must be in [0, 1), got {}", o.momentum);
        }
        if !(0.0..=MAX_WEIGHT_DECAY).contains(&o.weight_decay) {
            bail!(
                "optimizer.weight_decay must be in [0, {MAX_WEIGHT_DECAY}], got {}",
                o.weight_decay
            );
        }
        if let ScheduleConfig::MultiStep { milestones, gamma } = &self.schedule {
            if let Some(m) = milestones.iter().find(|m| !(0.0..=1.0).contains(*m)) {
                bail!("schedule.milestones are fractions of the epochs in [0, 1], got {m}");
            }
            if !(*gamma > 0.0 && *gamma <= 1.0) {
                bail!("schedule.gamma must be in (0, 1], got {gamma}");
            }
        }
        self.loss.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// The resize side (defaults to the crop side).
    pub fn resize(&self) -> u32 {
        self.data.resize.unwrap_or(self.data.image_size)
    }
}
