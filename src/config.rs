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
    /// The last N classes are held out from the phase-seen model.
    #[serde(default = "default_held_out")]
    pub held_out_classes: usize,
    /// Network input side (crop), in pixels.
    pub image_size: u32,
    /// Side the image is resized to before cropping (default: `image_size`, as the
    /// reference's Resize(224) + RandomCrop(224)).
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
    pub distance: crate::loss::Distance,
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
    /// A classifier trained first with cross-entropy for this many epochs.
    Classifier { epochs: usize },
    /// SimCLR (NT-Xent) self-supervised pretraining on the same images for this many epochs.
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
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default)]
    pub momentum: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning rate of the loss's parameters (default: `lr`).
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
    /// ×gamma at each milestone, given as fractions of the epochs (official EPSHN: 0.5, 0.75).
    MultiStep { milestones: Vec<f64>, gamma: f64 },
    /// Cosine annealing to 0 over the epochs.
    Cosine,
}

/// Length, batches, randomness and hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub epochs: usize,
    /// Classes per batch (P) and images per class (K): batch size P·K.
    pub classes_per_batch: usize,
    pub images_per_class: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub device: DeviceKind,
    /// libtorch and loader threads.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Which protocol phases to train: "all" and/or "seen".
    #[serde(default = "default_phases")]
    pub phases: Vec<Phase>,
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
    /// The `tch` device, or an error when CUDA is asked for but absent.
    pub fn device(self) -> Result<tch::Device> {
        match self {
            DeviceKind::Cpu => Ok(tch::Device::Cpu),
            DeviceKind::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceKind::Cuda => {
                bail!("device = \"cuda\" but no CUDA device is available; use device = \"cpu\"")
            }
        }
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

    /// Checks values a type cannot express.
    pub fn validate(&self) -> Result<()> {
        let d = &self.data;
        if !(d.test_ratio > 0.0 && d.test_ratio < 1.0) {
            bail!("data.test_ratio must be in (0, 1), got {}", d.test_ratio);
        }
        if d.image_size < 16 {
            bail!("data.image_size must be at least 16, got {}", d.image_size);
        }
        if d.resize.is_some_and(|r| r < d.image_size) {
            bail!(
                "data.resize ({}) is smaller than data.image_size ({})",
                d.resize.unwrap(),
                d.image_size
            );
        }
        let t = &self.training;
        if t.epochs == 0 {
            bail!("training.epochs must be at least 1");
        }
        if t.classes_per_batch < 2 || t.images_per_class < 2 {
            bail!("training.classes_per_batch and training.images_per_class must be at least 2");
        }
        if t.threads == 0 {
            bail!("training.threads must be at least 1");
        }
        if t.phases.is_empty() {
            bail!("training.phases is empty: give \"all\", \"seen\" or both");
        }
        if self.optimizer.lr <= 0.0 || self.optimizer.loss_lr.is_some_and(|lr| lr <= 0.0) {
            bail!("optimizer learning rates must be positive");
        }
        if let ScheduleConfig::MultiStep { milestones, gamma } = &self.schedule {
            if milestones.iter().any(|m| !(0.0..=1.0).contains(m)) || *gamma <= 0.0 {
                bail!("schedule milestones are fractions of the epochs in [0, 1] and gamma > 0");
            }
        }
        self.loss.validate().map_err(anyhow::Error::msg)?;
        if self.model.embedding_dim < 2 {
            bail!("model.embedding_dim must be at least 2");
        }
        Ok(())
    }

    /// The resize side (defaults to the crop side).
    pub fn resize(&self) -> u32 {
        self.data.resize.unwrap_or(self.data.image_size)
    }
}
