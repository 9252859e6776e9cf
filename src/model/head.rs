//! The embedding head: pooled backbone features `[B, C]` → embeddings `[B, D]`.
//!
//! Plain head: `e = linear(x)`. Skip-connection head (the reference's
//! "resnet18+skipConnHead" experiment): `e = linear(x) + mlp(x)` with
//! `mlp = linear(C→C) → ReLU → linear(C→D)`: the linear path is the plain head, the MLP a
//! residual non-linear correction beside it. Both paths use PyTorch's default `nn.Linear`
//! initialisation, so the skip head does not start out equal to the plain one.
//! Then, optionally, a 1-D BatchNorm on the embedding ("+1dBN") and L2 normalisation.
//!
//! Names under the head's path: `linear.{weight,bias}`, `mlp.0.{weight,bias}`,
//! `mlp.2.{weight,bias}` (index 1 is the ReLU, as in an `nn.Sequential`), `bn.*`.

#![warn(missing_docs)]

use super::layers::{apply_activation, Activation, ActivationHook, BatchNorm};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, Module};
use tch::Tensor;

/// Shape of the embedding head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// Embedding dimension D (the reference experiments: 128, or 512).
    #[serde(default = "default_embedding_dim")]
    pub embedding_dim: i64,
    /// 1-D BatchNorm on the embedding (before normalisation).
    #[serde(default)]
    pub batch_norm: bool,
    /// Skip-connection head: `linear(x) + mlp(x)`.
    #[serde(default)]
    pub skip_connection: bool,
    /// L2-normalise the embedding (unit norm), as cosine-based losses expect.
    #[serde(default = "default_true")]
    pub normalize: bool,
}

fn default_embedding_dim() -> i64 {
    128
}

fn default_true() -> bool {
    true
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            embedding_dim: default_embedding_dim(),
            batch_norm: false,
            skip_connection: false,
            normalize: true,
        }
    }
}

/// A linear layer with PyTorch's default `nn.Linear` initialisation
/// (weight and bias uniform in ±1/√in).
fn torch_linear(path: &nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let b = 1.0 / (c_in as f64).sqrt();
    let cfg = nn::LinearConfig {
        ws_init: Init::Uniform { lo: -b, up: b },
        bs_init: Some(Init::Uniform { lo: -b, up: b }),
        bias: true,
    };
    nn::linear(path, c_in, c_out, cfg)
}

/// The head's MLP branch (skip-connection head only).
#[derive(Debug)]
pub struct SkipMlp {
    /// `mlp.0`: C → C.
    pub fc1: nn::Linear,
    /// `mlp.2`: C → D.
    pub fc2: nn::Linear,
}

/// Maps pooled features to embeddings.
#[derive(Debug)]
pub struct EmbeddingHead {
    /// `linear`: C → D.
    pub linear: nn::Linear,
    /// `mlp`: present for the skip-connection head.
    pub mlp: Option<SkipMlp>,
    /// `bn`: 1-D BatchNorm on the embedding, when configured.
    pub bn: Option<BatchNorm>,
    /// L2-normalise the output.
    pub normalize: bool,
    in_dim: i64,
    out_dim: i64,
}

impl EmbeddingHead {
    /// Creates the head's parameters under `path` (callers use `"head"`) for `in_dim` features.
    pub fn new(path: &nn::Path, in_dim: i64, cfg: &HeadConfig) -> EmbeddingHead {
        let d = cfg.embedding_dim;
        assert!(
            d > 0 && in_dim > 0,
            "head dimensions must be positive ({in_dim} → {d})"
        );
        let linear = torch_linear(&(path / "linear"), in_dim, d);
        let mlp = cfg.skip_connection.then(|| {
            let p = path / "mlp";
            SkipMlp {
                fc1: torch_linear(&(&p / 0), in_dim, in_dim),
                fc2: torch_linear(&(&p / 2), in_dim, d),
            }
        });
        let bn = cfg.batch_norm.then(|| BatchNorm::new(&(path / "bn"), d));
        EmbeddingHead {
            linear,
            mlp,
            bn,
            normalize: cfg.normalize,
            in_dim,
            out_dim: d,
        }
    }

    /// Input (feature) dimension.
    pub fn in_dim(&self) -> i64 {
        self.in_dim
    }

    /// Embedding dimension D.
    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }

    /// Embeddings `[B, D]` of pooled features `[B, C]`. `train` drives the BatchNorm.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_hooked(x, train, &mut apply_activation)
    }

    /// As [`EmbeddingHead::forward_t`], with the MLP's ReLU computed by `hook`.
    pub fn forward_hooked(&self, x: &Tensor, train: bool, hook: &mut ActivationHook<'_>) -> Tensor {
        let mut e = self.linear.forward(x);
        if let Some(mlp) = &self.mlp {
            let h = hook(&mlp.fc1.forward(x), Activation::Relu);
            e += mlp.fc2.forward(&h);
        }
        if let Some(bn) = &self.bn {
            e = bn.forward_t(&e, train);
        }
        if self.normalize {
            e = l2_normalize(&e);
        }
        e
    }
}

/// Rows scaled to unit L2 norm (PyTorch's `F.normalize(x, dim=1)`, eps 1e-12).
pub fn l2_normalize(x: &Tensor) -> Tensor {
    let norm = x.norm_scalaropt_dim(2.0, [1i64], true).clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::VarStore, Device, Kind};

    fn names(vs: &VarStore) -> Vec<String> {
        let mut v: Vec<_> = vs.variables().into_keys().collect();
        v.sort();
        v
    }

    #[test]
    fn plain_head_dims_and_unit_norm() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let head = EmbeddingHead::new(&(vs.root() / "head"), 16, &HeadConfig::default());
        assert_eq!(names(&vs), ["head.linear.bias", "head.linear.weight"]);
        let x = Tensor::randn([5, 16], (Kind::Float, Device::Cpu));
        let e = head.forward_t(&x, true);
        assert_eq!(e.size(), [5, 128]);
        let norms = e.norm_scalaropt_dim(2.0, [1i64], false);
        assert!(norms.allclose(
            &Tensor::ones([5], (Kind::Float, Device::Cpu)),
            1e-5,
            1e-6,
            false
        ));
    }

    #[test]
    fn unnormalized_bn_head() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let cfg = HeadConfig {
            embedding_dim: 8,
            batch_norm: true,
            skip_connection: false,
            normalize: false,
        };
        let head = EmbeddingHead::new(&(vs.root() / "head"), 16, &cfg);
        assert!(names(&vs).contains(&"head.bn.running_mean".to_string()));
        let x = Tensor::randn([6, 16], (Kind::Float, Device::Cpu));
        let e = head.forward_t(&x, true);
        assert_eq!(e.size(), [6, 8]);
        // Training-mode BN with weight 1 / bias 0: each dimension has zero batch mean.
        let m = e
            .mean_dim([0i64].as_slice(), false, None)
            .abs()
            .max()
            .double_value(&[]);
        assert!(m < 1e-5, "batch mean {m}");
    }

    #[test]
    fn skip_head_differs_from_plain() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let plain = EmbeddingHead::new(
            &(vs.root() / "plain"),
            16,
            &HeadConfig {
                embedding_dim: 8,
                normalize: false,
                ..Default::default()
            },
        );
        let skip_cfg = HeadConfig {
            embedding_dim: 8,
            skip_connection: true,
            normalize: false,
            ..Default::default()
        };
        let skip = EmbeddingHead::new(&(vs.root() / "skip"), 16, &skip_cfg);
        // Give the skip head the plain head's linear path: the difference is then the MLP alone.
        tch::no_grad(|| {
            skip.linear.ws.shallow_clone().copy_(&plain.linear.ws);
            skip.linear
                .bs
                .as_ref()
                .unwrap()
                .shallow_clone()
                .copy_(plain.linear.bs.as_ref().unwrap());
        });
        let mut n: Vec<_> = names(&vs)
            .into_iter()
            .filter(|k| k.starts_with("skip."))
            .collect();
        n.sort();
        assert_eq!(
            n,
            [
                "skip.linear.bias",
                "skip.linear.weight",
                "skip.mlp.0.bias",
                "skip.mlp.0.weight",
                "skip.mlp.2.bias",
                "skip.mlp.2.weight"
            ]
        );
        let x = Tensor::randn([4, 16], (Kind::Float, Device::Cpu));
        let (a, b) = (plain.forward_t(&x, false), skip.forward_t(&x, false));
        assert_eq!(b.size(), [4, 8]);
        let mlp = skip.mlp.as_ref().unwrap();
        let expected = &a + mlp.fc2.forward(&mlp.fc1.forward(&x).relu());
        assert!(b.allclose(&expected, 1e-5, 1e-6, false));
        assert!((&b - &a).abs().max().double_value(&[]) > 1e-4);
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let c: HeadConfig = toml::from_str("embedding_dim = 512\nskip_connection = true").unwrap();
        assert_eq!(
            c,
            HeadConfig {
                embedding_dim: 512,
                skip_connection: true,
                ..Default::default()
            }
        );
        assert!(toml::from_str::<HeadConfig>("embeding_dim = 512").is_err());
    }
}
