//! The embedding network: backbone → global average pool → embedding head.
//!
//! Variable names. The backbone's variables carry torchvision's names *relative to the
//! path it is given*, and the head's are relative to its own path. [`EmbeddingNet::new`]
//! puts them at `<root>/backbone` and `<root>/head`, so a var store (and a checkpoint)
//! holds `backbone.conv1.weight`, …, `head.linear.weight`: a torchvision `state_dict` entry
//! `X` is the var `backbone.X` ([`backbone_var_name`]), its classifier entries
//! ([`super::Arch::classifier_prefixes`]) have no counterpart. A caller who wants the
//! torchvision names at the var store's root passes `&vs.root()` as the backbone path to
//! [`EmbeddingNet::from_paths`].

#![warn(missing_docs)]

use super::backbone::{Arch, Backbone, Features};
use super::head::{EmbeddingHead, HeadConfig};
use super::layers::{apply_activation, ActivationHook, LayerTap};
use tch::{nn, Tensor};

/// Sub-path of the backbone's variables under the root given to [`EmbeddingNet::new`].
pub const BACKBONE_PATH: &str = "backbone";
/// Sub-path of the head's variables under the root given to [`EmbeddingNet::new`].
pub const HEAD_PATH: &str = "head";

/// The var-store name, in an [`EmbeddingNet::new`] network built at the var store's root,
/// of the torchvision `state_dict` entry `torchvision_name`.
pub fn backbone_var_name(torchvision_name: &str) -> String {
    format!("{BACKBONE_PATH}.{torchvision_name}")
}

/// Backbone + embedding head.
#[derive(Debug)]
pub struct EmbeddingNet {
    /// The torchvision backbone.
    pub backbone: Backbone,
    /// The head on the pooled features.
    pub head: EmbeddingHead,
}

impl EmbeddingNet {
    /// Creates the network with its backbone under `root/backbone` and its head under
    /// `root/head` (pass `&vs.root()`).
    pub fn new(root: &nn::Path, arch: Arch, cfg: &HeadConfig) -> EmbeddingNet {
        EmbeddingNet::from_paths(&(root / BACKBONE_PATH), &(root / HEAD_PATH), arch, cfg)
    }

    /// Creates the network with the backbone's torchvision-named variables directly under
    /// `backbone_path` and the head's under `head_path`.
    pub fn from_paths(
        backbone_path: &nn::Path,
        head_path: &nn::Path,
        arch: Arch,
        cfg: &HeadConfig,
    ) -> EmbeddingNet {
        let backbone = Backbone::new(backbone_path, arch);
        let head = EmbeddingHead::new(head_path, backbone.out_dim(), cfg);
        EmbeddingNet { backbone, head }
    }

    /// The backbone architecture.
    pub fn arch(&self) -> Arch {
        self.backbone.arch()
    }

    /// Embedding dimension D.
    pub fn embedding_dim(&self) -> i64 {
        self.head.out_dim()
    }

    /// Embeddings `[B, D]` of images `[B, 3, H, W]`; `train` selects training-mode
    /// BatchNorm (frozen backbone BNs stay in eval mode).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_with_features(x, train).0
    }

    /// Embeddings and the backbone's features (last conv activation for Grad-CAM, pooled).
    pub fn forward_with_features(&self, x: &Tensor, train: bool) -> (Tensor, Features) {
        self.forward_hooked(x, train, &mut apply_activation)
    }

    /// As [`EmbeddingNet::forward_with_features`], with every ReLU/ReLU6 of the backbone and
    /// of the head (skip-connection MLP) computed by `hook`, in forward order.
    pub fn forward_hooked(
        &self,
        x: &Tensor,
        train: bool,
        hook: &mut ActivationHook<'_>,
    ) -> (Tensor, Features) {
        let features = self.backbone.forward_hooked(x, train, hook);
        let embedding = self.head.forward_hooked(&features.pooled, train, hook);
        (embedding, features)
    }

    /// Embeddings of images `[B, 3, H, W]`, with every ReLU/ReLU6 computed by `hook` and
    /// every named backbone layer's output passed through `tap` ([`Backbone::forward_tapped`]).
    pub fn forward_tapped(
        &self,
        x: &Tensor,
        train: bool,
        hook: &mut ActivationHook<'_>,
        tap: &mut LayerTap<'_>,
    ) -> Tensor {
        let last = self.backbone.forward_tapped(x, train, hook, tap);
        let pooled = last.mean_dim([2i64, 3].as_slice(), false, None);
        self.head.forward_hooked(&pooled, train, hook)
    }

    /// Freezes or unfreezes the backbone's BatchNorms ([`Backbone::set_frozen_bn`]). The
    /// head's 1-D BatchNorm is not touched: "frozen BN" keeps the *pretrained* statistics of
    /// the backbone (the reference freezes its BatchNorm2d layers); the head's BN is new
    /// and has nothing to keep.
    pub fn set_frozen_bn(&mut self, frozen: bool) {
        self.backbone.set_frozen_bn(frozen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::VarStore, Device, Kind};

    #[test]
    fn embeddings_for_each_arch() {
        tch::set_num_threads(1);
        for arch in Arch::ALL {
            let vs = VarStore::new(Device::Cpu);
            let cfg = HeadConfig {
                embedding_dim: 16,
                batch_norm: true,
                skip_connection: arch == Arch::ResNet18,
                normalize: true,
            };
            let net = EmbeddingNet::new(&vs.root(), arch, &cfg);
            assert_eq!(net.embedding_dim(), 16);
            let x = Tensor::randn([2, 3, 32, 48], (Kind::Float, Device::Cpu));
            let (e, f) = net.forward_with_features(&x, true);
            assert_eq!(e.size(), [2, 16]);
            assert_eq!(f.pooled.size(), [2, arch.out_dim()]);
            assert_eq!(f.last_conv.size(), [2, arch.out_dim(), 1, 2]);
            let n = e.norm_scalaropt_dim(2.0, [1i64], false);
            assert!(n.allclose(
                &Tensor::ones([2], (Kind::Float, Device::Cpu)),
                1e-5,
                1e-6,
                false
            ));
            let e2 = net.forward_t(&x, false);
            assert_eq!(e2.size(), [2, 16]);
        }
    }

    #[test]
    fn names_are_prefixed_torchvision_names_and_round_trip_through_safetensors() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let mut net = EmbeddingNet::new(&vs.root(), Arch::MobileNetV2, &HeadConfig::default());
        let vars = vs.variables();
        assert_eq!(vars.len(), 312 + 2);
        assert!(vars.contains_key(&backbone_var_name("features.0.0.weight")));
        assert!(vars.contains_key("head.linear.weight"));
        assert!(vars
            .keys()
            .all(|k| k.starts_with("backbone.") || k.starts_with("head.")));

        // Train-mode pass moves BN stats and counters; a saved store reloads them exactly,
        // int64 `num_batches_tracked` scalars included.
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let _ = net.forward_t(&x, true);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("net.safetensors");
        vs.save(&file).unwrap();
        let mut vs2 = VarStore::new(Device::Cpu);
        let net2 = EmbeddingNet::new(&vs2.root(), Arch::MobileNetV2, &HeadConfig::default());
        vs2.load(&file).unwrap();
        let nbt = &vs2.variables()["backbone.features.18.1.num_batches_tracked"];
        assert_eq!((nbt.kind(), nbt.int64_value(&[])), (Kind::Int64, 1));
        let (a, b) = (net.forward_t(&x, false), net2.forward_t(&x, false));
        assert!(a.allclose(&b, 1e-6, 1e-6, false));

        net.set_frozen_bn(true);
        assert!(net.backbone.frozen_bn());
        assert!(!vs.variables()["backbone.features.0.1.weight"].requires_grad());
        assert!(vs.variables()["head.linear.weight"].requires_grad());
    }

    #[test]
    fn backbone_at_root_has_bare_torchvision_names() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let _net = EmbeddingNet::from_paths(
            &vs.root(),
            &(vs.root() / "head"),
            Arch::ResNet18,
            &HeadConfig::default(),
        );
        let vars = vs.variables();
        assert!(
            vars.contains_key("conv1.weight")
                && vars.contains_key("layer4.1.bn2.num_batches_tracked")
        );
        assert_eq!(vars.len(), 120 + 2);
    }
}
