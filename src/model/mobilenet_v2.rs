//! torchvision's MobileNetV2 (width multiplier 1.0) without its classifier, with torchvision's
//! parameter and buffer names so `mobilenet_v2-b0353104.pth` loads entry for entry.
//!
//! Names under the path given to [`MobileNetV2::new`]:
//! - `features.0.0.weight`, `features.0.1.*`: 3×3 stride-2 stem, 32 channels, ReLU6;
//! - `features.1`: inverted residual with expansion 1:
//!   `conv.0.0` (depthwise 3×3) + `conv.0.1` BN + ReLU6, `conv.1` (1×1 projection), `conv.2` BN;
//! - `features.2`..`features.17`: expansion 6:
//!   `conv.0.{0,1}` (1×1 expand, ReLU6), `conv.1.{0,1}` (depthwise 3×3, ReLU6),
//!   `conv.2` (1×1 projection), `conv.3` BN;
//! - `features.18.0.weight`, `features.18.1.*`: 1×1 to 1280 channels, ReLU6.
//!
//! (`*` = `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.)
//! torchvision's `classifier.1.{weight,bias}` (dropout + linear to 1000 classes) is not built.

#![warn(missing_docs)]

use super::layers::{Activation, ActivationHook, BatchNorm, ConvBn, LayerTap};
use tch::{nn, Tensor};

/// torchvision's inverted-residual setting: (expansion t, output channels c, repeats n, stride s).
pub const INVERTED_RESIDUAL_SETTING: [(i64, i64, usize, i64); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Channels of the stem.
pub const STEM_CHANNELS: i64 = 32;
/// Channels of the last convolution (`features.18`) and of the pooled feature.
pub const LAST_CHANNELS: i64 = 1280;

/// torchvision's `InvertedResidual`: optional 1×1 expansion (ReLU6), 3×3 depthwise (ReLU6),
/// linear 1×1 projection; the input is added back when stride is 1 and channels match.
#[derive(Debug)]
pub struct InvertedResidual {
    /// 1×1 expansion to `t·c_in` channels (`None` when t = 1).
    pub expand: Option<ConvBn>,
    /// 3×3 depthwise convolution, carries the stride.
    pub depthwise: ConvBn,
    /// 1×1 linear projection (no activation).
    pub project: ConvBn,
    /// Whether the block's input is added to its output.
    pub use_res_connect: bool,
}

impl InvertedResidual {
    /// Creates the block under `path` (`features.{i}`), names as torchvision.
    pub fn new(
        path: &nn::Path,
        c_in: i64,
        c_out: i64,
        stride: i64,
        expand_ratio: i64,
    ) -> InvertedResidual {
        let conv = path / "conv";
        let hidden = c_in * expand_ratio; // round(inp * t) with integer t
        let relu6 = Some(Activation::Relu6);
        // Index of the next element of torchvision's `self.conv` Sequential.
        let mut idx = 0;
        let expand = (expand_ratio != 1).then(|| {
            let p = &conv / 0;
            idx = 1;
            ConvBn::new(&(&p / 0), &(&p / 1), c_in, hidden, 1, 1, 1, relu6)
        });
        let p = &conv / idx;
        let depthwise = ConvBn::new(
            &(&p / 0),
            &(&p / 1),
            hidden,
            hidden,
            3,
            stride,
            hidden,
            relu6,
        );
        // The projection's conv and BN are siblings in the Sequential: conv.{idx+1}, conv.{idx+2}.
        let project = ConvBn::new(
            &(&conv / (idx + 1)),
            &(&conv / (idx + 2)),
            hidden,
            c_out,
            1,
            1,
            1,
            None,
        );
        InvertedResidual {
            expand,
            depthwise,
            project,
            use_res_connect: stride == 1 && c_in == c_out,
        }
    }

    /// The block's forward pass; each ReLU6 goes through `hook`.
    pub fn forward_hooked(&self, x: &Tensor, train: bool, hook: &mut ActivationHook<'_>) -> Tensor {
        let y = match &self.expand {
            Some(e) => e.forward_hooked(x, train, hook),
            None => x.shallow_clone(),
        };
        let y = self.depthwise.forward_hooked(&y, train, hook);
        let y = self.project.forward_hooked(&y, train, hook);
        if self.use_res_connect {
            x + y
        } else {
            y
        }
    }

    fn batch_norms(&self) -> Vec<&BatchNorm> {
        self.expand
            .iter()
            .chain([&self.depthwise, &self.project])
            .map(|c| &c.bn)
            .collect()
    }

    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        self.expand
            .iter_mut()
            .chain([&mut self.depthwise, &mut self.project])
            .map(|c| &mut c.bn)
            .collect()
    }
}

/// torchvision's MobileNetV2 `features` (width 1.0): stem, 17 inverted residuals, 1×1 conv to 1280.
#[derive(Debug)]
pub struct MobileNetV2 {
    /// `features.0`.
    pub stem: ConvBn,
    /// `features.1` .. `features.17`: `blocks[i]` is `features.{i+1}`.
    pub blocks: Vec<InvertedResidual>,
    /// `features.18`.
    pub last: ConvBn,
}

impl MobileNetV2 {
    /// Creates the parameters under `path` with torchvision's names and initialisation.
    pub fn new(path: &nn::Path) -> MobileNetV2 {
        let features = path / "features";
        let relu6 = Some(Activation::Relu6);
        let f0 = &features / 0;
        let stem = ConvBn::new(&(&f0 / 0), &(&f0 / 1), 3, STEM_CHANNELS, 3, 2, 1, relu6);
        let mut blocks = Vec::with_capacity(17);
        let mut c_in = STEM_CHANNELS;
        for &(t, c, n, s) in INVERTED_RESIDUAL_SETTING.iter() {
            // With width 1.0, _make_divisible(c, 8) = c for every c above.
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                blocks.push(InvertedResidual::new(
                    &(&features / (blocks.len() + 1)),
                    c_in,
                    c,
                    stride,
                    t,
                ));
                c_in = c;
            }
        }
        let fl = &features / (blocks.len() + 1);
        let last = ConvBn::new(&(&fl / 0), &(&fl / 1), c_in, LAST_CHANNELS, 1, 1, 1, relu6);
        MobileNetV2 { stem, blocks, last }
    }

    /// Channels of the last convolution (1280).
    pub fn out_dim(&self) -> i64 {
        LAST_CHANNELS
    }

    /// The last convolution's activation `[B, 1280, ⌈H/32⌉, ⌈W/32⌉]` (after its ReLU6);
    /// each ReLU6 goes through `hook`.
    pub fn forward_hooked(&self, x: &Tensor, train: bool, hook: &mut ActivationHook<'_>) -> Tensor {
        self.forward_tapped(x, train, hook, &mut |_, t| t)
    }

    /// As [`MobileNetV2::forward_hooked`], with each output `features.{i}` passed through
    /// `tap`, which may record or replace it.
    pub fn forward_tapped(
        &self,
        x: &Tensor,
        train: bool,
        hook: &mut ActivationHook<'_>,
        tap: &mut LayerTap<'_>,
    ) -> Tensor {
        let mut y = tap("features.0", self.stem.forward_hooked(x, train, hook));
        for (i, b) in self.blocks.iter().enumerate() {
            y = tap(
                &format!("features.{}", i + 1),
                b.forward_hooked(&y, train, hook),
            );
        }
        let name = format!("features.{}", self.blocks.len() + 1);
        tap(&name, self.last.forward_hooked(&y, train, hook))
    }

    /// The names [`MobileNetV2::forward_tapped`] reports, in forward order.
    pub fn layer_names(&self) -> Vec<String> {
        (0..self.blocks.len() + 2)
            .map(|i| format!("features.{i}"))
            .collect()
    }

    /// Every BatchNorm, in definition order.
    pub fn batch_norms(&self) -> Vec<&BatchNorm> {
        let mut v = vec![&self.stem.bn];
        v.extend(self.blocks.iter().flat_map(|b| b.batch_norms()));
        v.push(&self.last.bn);
        v
    }

    /// Every BatchNorm, mutably.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut v = vec![&mut self.stem.bn];
        v.extend(self.blocks.iter_mut().flat_map(|b| b.batch_norms_mut()));
        v.push(&mut self.last.bn);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::apply_activation;
    use tch::{nn::VarStore, Device, Kind};

    /// torchvision's `mobilenet_v2().state_dict()` has 314 entries (as the ImageNet file):
    /// 52 convolutions (stem, features.1 × 2, features.2..17 × 3 = 48, features.18) → 52
    /// weights; 52 BatchNorms × 5 = 260; `classifier.1.{weight,bias}` = 2. Without the
    /// classifier: 312. Parameters: 3,504,872 − (1280·1000 + 1000) = 2,223,872.
    #[test]
    fn matches_torchvision_state_dict() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let net = MobileNetV2::new(&vs.root());
        let vars = vs.variables();
        assert_eq!(vars.len(), 312);
        assert_eq!(net.blocks.len(), 17);
        assert_eq!(net.batch_norms().len(), 52);
        let n: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(n, 2_223_872);
        let shape = |k: &str| vars.get(k).unwrap_or_else(|| panic!("missing {k}")).size();
        assert_eq!(shape("features.0.0.weight"), [32, 3, 3, 3]);
        assert_eq!(shape("features.0.1.num_batches_tracked"), Vec::<i64>::new());
        assert_eq!(shape("features.1.conv.0.0.weight"), [32, 1, 3, 3]);
        assert_eq!(shape("features.1.conv.0.1.running_mean"), [32]);
        assert_eq!(shape("features.1.conv.1.weight"), [16, 32, 1, 1]);
        assert_eq!(shape("features.1.conv.2.weight"), [16]);
        assert!(!vars.contains_key("features.1.conv.3.weight"));
        assert_eq!(shape("features.2.conv.0.0.weight"), [96, 16, 1, 1]);
        assert_eq!(shape("features.2.conv.1.0.weight"), [96, 1, 3, 3]);
        assert_eq!(shape("features.2.conv.2.weight"), [24, 96, 1, 1]);
        assert_eq!(shape("features.2.conv.3.running_var"), [24]);
        assert_eq!(shape("features.17.conv.2.weight"), [320, 960, 1, 1]);
        assert_eq!(shape("features.18.0.weight"), [1280, 320, 1, 1]);
        assert_eq!(shape("features.18.1.bias"), [1280]);
        // Residual connections: stride 1 and equal channels (e.g. features.3, not features.2).
        let res: Vec<usize> = net
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.use_res_connect)
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(res, [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]);
    }

    #[test]
    fn shapes() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let net = MobileNetV2::new(&vs.root());
        for (h, w, oh, ow) in [
            (32, 32, 1, 1),
            (64, 64, 2, 2),
            (64, 96, 2, 3),
            (40, 40, 2, 2),
        ] {
            let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
            let y = net.forward_hooked(&x, false, &mut apply_activation);
            assert_eq!(y.size(), [2, 1280, oh, ow]);
            let (lo, hi) = (y.min().double_value(&[]), y.max().double_value(&[]));
            assert!(lo >= 0.0 && hi <= 6.0, "after ReLU6: [{lo}, {hi}]");
        }
    }
}
