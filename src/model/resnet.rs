//! ResNet18 and ResNet50 with torchvision's parameter and buffer names, so a torchvision
//! `state_dict` loads entry for entry (its `fc.*` classifier aside: the backbone stops at
//! the last convolution stage; the embedding head replaces `fc`).
//!
//! Names under the path given to [`ResNet::new`]:
//! `conv1.weight`, `bn1.*`, `layer{1..4}.{i}.conv{1,2[,3]}.weight`, `layer{1..4}.{i}.bn{1,2[,3]}.*`,
//! `layer{1..4}.0.downsample.0.weight`, `layer{1..4}.0.downsample.1.*`, where `*` is
//! `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
//! ResNet50 is torchvision's (v1.5): the stride sits on the 3×3 convolution of a bottleneck.

#![warn(missing_docs)]

use super::fold::conv_bn;
use super::layers::{Activation, ActivationHook, BatchNorm, Conv2d, LayerTap};
use tch::{nn, Tensor};

/// Which ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResNetDepth {
    /// BasicBlocks [2, 2, 2, 2], 512 output channels.
    R18,
    /// Bottlenecks [3, 4, 6, 3], 2048 output channels.
    R50,
}

impl ResNetDepth {
    /// Blocks per stage.
    pub fn blocks_per_stage(self) -> [usize; 4] {
        match self {
            ResNetDepth::R18 => [2, 2, 2, 2],
            ResNetDepth::R50 => [3, 4, 6, 3],
        }
    }

    /// Output channels per planes (BasicBlock 1, Bottleneck 4).
    pub fn expansion(self) -> i64 {
        match self {
            ResNetDepth::R18 => 1,
            ResNetDepth::R50 => 4,
        }
    }
}

/// The 1×1 strided convolution + BN that reshapes the identity path
/// (`downsample.0`, `downsample.1`).
#[derive(Debug)]
pub struct Downsample {
    /// `downsample.0`.
    pub conv: Conv2d,
    /// `downsample.1`.
    pub bn: BatchNorm,
}

impl Downsample {
    fn new(path: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Downsample {
        Downsample {
            conv: Conv2d::new(&(path / "0"), c_in, c_out, 1, stride, 0, 1),
            bn: BatchNorm::new(&(path / "1"), c_out),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        conv_bn(&self.conv, &self.bn, x, train)
    }
}

/// torchvision's `BasicBlock`: relu(bn1(conv1 x)) → bn2(conv2 ·) + identity → relu.
#[derive(Debug)]
pub struct BasicBlock {
    /// 3×3, carries the stride.
    pub conv1: Conv2d,
    /// After conv1, followed by ReLU.
    pub bn1: BatchNorm,
    /// 3×3.
    pub conv2: Conv2d,
    /// After conv2, before the residual sum.
    pub bn2: BatchNorm,
    /// Identity reshaping when the stride or channel count changes.
    pub downsample: Option<Downsample>,
}

/// torchvision's `Bottleneck` (v1.5): 1×1 reduce → 3×3 (stride) → 1×1 expand ×4, + identity → relu.
#[derive(Debug)]
pub struct Bottleneck {
    /// 1×1 reduce.
    pub conv1: Conv2d,
    /// After conv1, followed by ReLU.
    pub bn1: BatchNorm,
    /// 3×3, carries the stride.
    pub conv2: Conv2d,
    /// After conv2, followed by ReLU.
    pub bn2: BatchNorm,
    /// 1×1 expand.
    pub conv3: Conv2d,
    /// After conv3, before the residual sum.
    pub bn3: BatchNorm,
    /// Identity reshaping when the stride or channel count changes.
    pub downsample: Option<Downsample>,
}

/// One residual block of either kind.
#[derive(Debug)]
pub enum ResidualBlock {
    /// ResNet18/34's two 3×3 convolutions.
    Basic(BasicBlock),
    /// ResNet50+'s 1×1 → 3×3 → 1×1.
    Bottleneck(Bottleneck),
}

impl ResidualBlock {
    fn new(
        path: &nn::Path,
        depth: ResNetDepth,
        c_in: i64,
        planes: i64,
        stride: i64,
    ) -> ResidualBlock {
        let c_out = planes * depth.expansion();
        let downsample = (stride != 1 || c_in != c_out)
            .then(|| Downsample::new(&(path / "downsample"), c_in, c_out, stride));
        match depth {
            ResNetDepth::R18 => ResidualBlock::Basic(BasicBlock {
                conv1: Conv2d::new(&(path / "conv1"), c_in, planes, 3, stride, 1, 1),
                bn1: BatchNorm::new(&(path / "bn1"), planes),
                conv2: Conv2d::new(&(path / "conv2"), planes, planes, 3, 1, 1, 1),
                bn2: BatchNorm::new(&(path / "bn2"), planes),
                downsample,
            }),
            ResNetDepth::R50 => ResidualBlock::Bottleneck(Bottleneck {
                conv1: Conv2d::new(&(path / "conv1"), c_in, planes, 1, 1, 0, 1),
                bn1: BatchNorm::new(&(path / "bn1"), planes),
                conv2: Conv2d::new(&(path / "conv2"), planes, planes, 3, stride, 1, 1),
                bn2: BatchNorm::new(&(path / "bn2"), planes),
                conv3: Conv2d::new(&(path / "conv3"), planes, c_out, 1, 1, 0, 1),
                bn3: BatchNorm::new(&(path / "bn3"), c_out),
                downsample,
            }),
        }
    }

    /// The block's forward pass; each ReLU goes through `hook`.
    pub fn forward_hooked(&self, x: &Tensor, train: bool, hook: &mut ActivationHook<'_>) -> Tensor {
        let relu = Activation::Relu;
        match self {
            ResidualBlock::Basic(b) => {
                let y = hook(&conv_bn(&b.conv1, &b.bn1, x, train), relu);
                let y = conv_bn(&b.conv2, &b.bn2, &y, train);
                let identity = b
                    .downsample
                    .as_ref()
                    .map_or_else(|| x.shallow_clone(), |d| d.forward_t(x, train));
                hook(&(y + identity), relu)
            }
            ResidualBlock::Bottleneck(b) => {
                let y = hook(&conv_bn(&b.conv1, &b.bn1, x, train), relu);
                let y = hook(&conv_bn(&b.conv2, &b.bn2, &y, train), relu);
                let y = conv_bn(&b.conv3, &b.bn3, &y, train);
                let identity = b
                    .downsample
                    .as_ref()
                    .map_or_else(|| x.shallow_clone(), |d| d.forward_t(x, train));
                hook(&(y + identity), relu)
            }
        }
    }

    /// Every BatchNorm of the block, mutably (for freezing).
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let (mut v, ds): (Vec<&mut BatchNorm>, _) = match self {
            ResidualBlock::Basic(b) => (vec![&mut b.bn1, &mut b.bn2], &mut b.downsample),
            ResidualBlock::Bottleneck(b) => {
                (vec![&mut b.bn1, &mut b.bn2, &mut b.bn3], &mut b.downsample)
            }
        };
        if let Some(d) = ds {
            v.push(&mut d.bn);
        }
        v
    }

    /// Every BatchNorm of the block.
    pub fn batch_norms(&self) -> Vec<&BatchNorm> {
        let (mut v, ds): (Vec<&BatchNorm>, _) = match self {
            ResidualBlock::Basic(b) => (vec![&b.bn1, &b.bn2], &b.downsample),
            ResidualBlock::Bottleneck(b) => (vec![&b.bn1, &b.bn2, &b.bn3], &b.downsample),
        };
        if let Some(d) = ds {
            v.push(&d.bn);
        }
        v
    }
}

/// A torchvision ResNet without its `fc` head: stem (conv1, bn1, relu, maxpool) and four
/// stages (`layer1`..`layer4`).
#[derive(Debug)]
pub struct ResNet {
    /// Which ResNet.
    pub depth: ResNetDepth,
    /// 7×7 stride 2.
    pub conv1: Conv2d,
    /// After conv1, followed by ReLU and max pool.
    pub bn1: BatchNorm,
    /// `layers[s][i]` is `layer{s+1}.{i}`.
    pub layers: Vec<Vec<ResidualBlock>>,
}

impl ResNet {
    /// Creates the parameters under `path` with torchvision's names and initialisation.
    pub fn new(path: &nn::Path, depth: ResNetDepth) -> ResNet {
        let conv1 = Conv2d::new(&(path / "conv1"), 3, 64, 7, 2, 3, 1);
        let bn1 = BatchNorm::new(&(path / "bn1"), 64);
        let mut c_in = 64;
        let mut layers = Vec::with_capacity(4);
        for (s, (&n, planes)) in depth
            .blocks_per_stage()
            .iter()
            .zip([64i64, 128, 256, 512])
            .enumerate()
        {
            let stage_path = path / format!("layer{}", s + 1);
            let stride = if s == 0 { 1 } else { 2 };
            let mut blocks = Vec::with_capacity(n);
            for i in 0..n {
                blocks.push(ResidualBlock::new(
                    &(&stage_path / i),
                    depth,
                    c_in,
                    planes,
                    if i == 0 { stride } else { 1 },
                ));
                c_in = planes * depth.expansion();
            }
            layers.push(blocks);
        }
        ResNet {
            depth,
            conv1,
            bn1,
            layers,
        }
    }

    /// Channels of the last stage (512 or 2048).
    pub fn out_dim(&self) -> i64 {
        512 * self.depth.expansion()
    }

    /// Stem: conv1 → bn1 → relu (through `hook`) → 3×3 stride-2 max pool.
    pub fn stem_hooked(&self, x: &Tensor, train: bool, hook: &mut ActivationHook<'_>) -> Tensor {
        let y = hook(&conv_bn(&self.conv1, &self.bn1, x, train), Activation::Relu);
        y.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
    }

    /// The last stage's activation `[B, C, H/32, W/32]` (after the final ReLU); each ReLU
    /// goes through `hook`.
    pub fn forward_hooked(&self, x: &Tensor, train: bool, hook: &mut ActivationHook<'_>) -> Tensor {
        self.forward_tapped(x, train, hook, &mut |_, t| t)
    }

    /// As [`ResNet::forward_hooked`], with each block's output (`layer{s}.{i}`) and each
    /// stage's output (`layer{s}`, after its last block's) passed through `tap`, which
    /// may record or replace it.
    pub fn forward_tapped(
        &self,
        x: &Tensor,
        train: bool,
        hook: &mut ActivationHook<'_>,
        tap: &mut LayerTap<'_>,
    ) -> Tensor {
        let mut y = self.stem_hooked(x, train, hook);
        for (s, stage) in self.layers.iter().enumerate() {
            for (i, block) in stage.iter().enumerate() {
                y = tap(
                    &format!("layer{}.{i}", s + 1),
                    block.forward_hooked(&y, train, hook),
                );
            }
            y = tap(&format!("layer{}", s + 1), y);
        }
        y
    }

    /// The names [`ResNet::forward_tapped`] reports, in forward order.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (s, stage) in self.layers.iter().enumerate() {
            names.extend((0..stage.len()).map(|i| format!("layer{}.{i}", s + 1)));
            names.push(format!("layer{}", s + 1));
        }
        names
    }

    /// Every BatchNorm, in definition order.
    pub fn batch_norms(&self) -> Vec<&BatchNorm> {
        let mut v = vec![&self.bn1];
        v.extend(self.layers.iter().flatten().flat_map(|b| b.batch_norms()));
        v
    }

    /// Every BatchNorm, mutably.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut v = vec![&mut self.bn1];
        v.extend(
            self.layers
                .iter_mut()
                .flatten()
                .flat_map(|b| b.batch_norms_mut()),
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::apply_activation;
    use tch::{nn::VarStore, Device, Kind};

    fn names_and_shapes(vs: &VarStore) -> Vec<(String, Vec<i64>)> {
        let mut v: Vec<_> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.size()))
            .collect();
        v.sort();
        v
    }

    fn trainable_count(vs: &VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// torchvision's `resnet18().state_dict()` has 122 entries: 20 convolutions (conv1, 8
    /// blocks × 2, 3 downsample.0) → 20 weights; 20 BatchNorms × 5 entries = 100; `fc.weight`,
    /// `fc.bias` = 2. Without fc: 120. Parameters without fc: 11,689,512 − 513,000 = 11,176,512.
    #[test]
    fn resnet18_matches_torchvision_state_dict() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), ResNetDepth::R18);
        let ns = names_and_shapes(&vs);
        assert_eq!(ns.len(), 120);
        assert_eq!(trainable_count(&vs), 11_176_512);
        assert_eq!(net.batch_norms().len(), 20);
        let get = |n: &str| {
            ns.iter()
                .find(|(k, _)| k == n)
                .unwrap_or_else(|| panic!("missing {n}"))
                .1
                .clone()
        };
        assert_eq!(get("conv1.weight"), [64, 3, 7, 7]);
        assert_eq!(get("bn1.running_var"), [64]);
        assert_eq!(get("bn1.num_batches_tracked"), Vec::<i64>::new());
        assert_eq!(get("layer1.0.conv1.weight"), [64, 64, 3, 3]);
        assert_eq!(get("layer1.1.bn2.weight"), [64]);
        assert_eq!(get("layer2.0.conv1.weight"), [128, 64, 3, 3]);
        assert_eq!(get("layer2.0.downsample.0.weight"), [128, 64, 1, 1]);
        assert_eq!(get("layer2.0.downsample.1.running_mean"), [128]);
        assert_eq!(get("layer4.1.conv2.weight"), [512, 512, 3, 3]);
        assert!(
            !ns.iter().any(|(k, _)| k.starts_with("layer1.0.downsample")),
            "resnet18 layer1.0 has no downsample"
        );
        assert!(!ns.iter().any(|(k, _)| k.starts_with("fc.")));
    }

    /// torchvision's `resnet50().state_dict()` has 320 entries: 53 convolutions (conv1, 16
    /// blocks × 3, 4 downsample.0), 53 BatchNorms × 5 = 265, fc 2. Without fc: 318.
    /// Parameters without fc: 25,557,032 − 2,049,000 = 23,508,032.
    #[test]
    fn resnet50_matches_torchvision_state_dict() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), ResNetDepth::R50);
        let ns = names_and_shapes(&vs);
        assert_eq!(ns.len(), 318);
        assert_eq!(trainable_count(&vs), 23_508_032);
        assert_eq!(net.out_dim(), 2048);
        let get = |n: &str| {
            ns.iter()
                .find(|(k, _)| k == n)
                .unwrap_or_else(|| panic!("missing {n}"))
                .1
                .clone()
        };
        assert_eq!(get("layer1.0.downsample.0.weight"), [256, 64, 1, 1]);
        assert_eq!(get("layer1.0.conv3.weight"), [256, 64, 1, 1]);
        assert_eq!(get("layer3.5.bn3.num_batches_tracked"), Vec::<i64>::new());
        // v1.5: the stride is on conv2 (3×3); conv1 of the first block of a stage is 1×1 stride 1.
        if let ResidualBlock::Bottleneck(b) = &net.layers[1][0] {
            assert_eq!((b.conv1.stride, b.conv2.stride), (1, 2));
        } else {
            panic!("resnet50 blocks are bottlenecks");
        }
        assert_eq!(get("layer4.2.conv3.weight"), [2048, 512, 1, 1]);
    }

    #[test]
    fn resnet18_shapes() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), ResNetDepth::R18);
        for (h, w, oh, ow) in [(32, 32, 1, 1), (64, 64, 2, 2), (64, 96, 2, 3)] {
            let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
            let y = net.forward_hooked(&x, false, &mut apply_activation);
            assert_eq!(y.size(), [2, 512, oh, ow]);
            assert!(y.min().double_value(&[]) >= 0.0, "after the final ReLU");
        }
    }
}
