//! Building blocks shared by the backbones: a bias-free 2-D convolution, a BatchNorm that
//! can be frozen, and the activations (ReLU, ReLU6).
//!
//! They are written here instead of using `tch::nn::{conv2d, batch_norm2d}` because
//! - tch's BatchNorm creates no `num_batches_tracked` buffer, so a var store built from it
//!   would not hold every entry of a torchvision `state_dict`, and it cannot be frozen;
//! - tch's conv keeps stride/padding/groups private, and the explain layer wants to see them.
//!
//! Initialisation follows torchvision (`kaiming_normal_(mode="fan_out", nonlinearity="relu")`
//! for convolutions, weight 1 / bias 0 for BatchNorm).

#![warn(missing_docs)]

use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// `x` (`[B, C, H, W]`) with the same shape and values, stored channels-last (NHWC
/// strides: PyTorch's `torch.channels_last`). Convolutions follow the layout of their
/// input, and on CPU oneDNN's NHWC kernels (the depthwise ones above all) train
/// MobileNetV2 about twice as fast as the NCHW path at the demo's 64² (README, "Speed").
/// tch has no memory-format argument, so the layout is made by a permuted copy.
pub fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// A non-linearity of the backbone. Every activation of a network goes through one of these,
/// so the forward pass can be segmented there (guided backprop applies its rule per activation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `max(x, 0)` (ResNet).
    Relu,
    /// `min(max(x, 0), 6)` (MobileNetV2); guided backprop's input mask is `0 < x < 6`.
    Relu6,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            // `relu6` is hardtanh(0, 6), PyTorch's nn.ReLU6: gradient 1 strictly inside (0, 6).
            Activation::Relu6 => x.relu6(),
        }
    }

    /// Applies the activation in place and returns `x`, now the output.
    fn apply_in_place(self, x: &mut Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu_(),
            Activation::Relu6 => x.relu6_(),
        }
    }

    /// Gradient mask of the activation at pre-activation `x`: 1 where the activation passes
    /// the gradient through, 0 elsewhere (the same float kind as `x`).
    pub fn grad_mask(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.gt(0.0).to_kind(x.kind()),
            Activation::Relu6 => x.gt(0.0).logical_and(&x.lt(6.0)).to_kind(x.kind()),
        }
    }
}

/// Called at every activation of a forward pass with the pre-activation tensor; returns the
/// activation's output. [`apply_activation`] is the plain forward pass; the explain layer can
/// return a detached leaf instead to cut the graph into per-activation segments (tch has no
/// autograd hooks, see docs/DESIGN.md, "No autograd hooks").
pub type ActivationHook<'a> = dyn FnMut(&Tensor, Activation) -> Tensor + 'a;

/// A callback at each named layer's output (torchvision module names, e.g. `layer3`,
/// `features.14`), in forward order: it gets the name and the output and returns what the
/// forward pass continues with (the output itself, to record it; another tensor, to
/// replace it, as Ablation-CAM does).
pub type LayerTap<'a> = dyn FnMut(&str, Tensor) -> Tensor + 'a;

/// The hook of a plain forward pass: applies the activation in place, as torchvision's
/// `ReLU(inplace=True)` and `ReLU6(inplace=True)`. Every caller hands over a fresh
/// pre-activation (a BatchNorm's or a linear layer's output, a residual sum) that no
/// backward formula keeps, so this saves one activation-sized buffer per layer and its
/// page faults; autograd would refuse the backward pass loudly if one ever did keep it.
pub fn apply_activation(x: &Tensor, act: Activation) -> Tensor {
    act.apply_in_place(&mut x.shallow_clone())
}

/// A bias-free 2-D convolution (`<path>.weight`, shape `[out, in/groups, k, k]`), as every
/// convolution of torchvision's ResNet and MobileNetV2.
#[derive(Debug)]
pub struct Conv2d {
    /// The kernel, shared with the var store.
    pub weight: Tensor,
    /// Stride (both directions).
    pub stride: i64,
    /// Zero padding (both directions).
    pub padding: i64,
    /// Groups (the channel count for a depthwise convolution).
    pub groups: i64,
}

impl Conv2d {
    /// Creates `<path>.weight` for a `k`×`k` convolution with torchvision's initialisation.
    pub fn new(
        path: &nn::Path,
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        padding: i64,
        groups: i64,
    ) -> Conv2d {
        assert!(
            c_in % groups == 0 && c_out % groups == 0,
            "channels {c_in}→{c_out} not divisible by groups {groups}"
        );
        // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), fan_out = c_out·k·k
        // (PyTorch does not divide fan_out by groups, nor does tch's FanOut).
        let init = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::ReLU,
        };
        let weight = path.var("weight", &[c_out, c_in / groups, k, k], init);
        Conv2d {
            weight,
            stride,
            padding,
            groups,
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> i64 {
        self.weight.size()[0]
    }

    /// Applies the convolution to `[B, C_in, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            None::<&Tensor>,
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            self.groups,
        )
    }
}

/// PyTorch's BatchNorm (1-D or 2-D: the input is `[B, C]` or `[B, C, H, W]`) with eps 1e-5,
/// momentum 0.1 and torchvision's five entries: `weight`, `bias`, `running_mean`,
/// `running_var`, `num_batches_tracked` (int64 scalar, counted as PyTorch does; with a fixed
/// momentum it does not enter the computation, it is kept so the var store and a torchvision
/// `state_dict` hold exactly the same names).
///
/// Frozen (docs/REFERENCE.md, "Frozen BatchNorm"): the layer always normalises with its running
/// statistics and never updates them, even in a training-mode forward pass, and its weight
/// and bias do not require gradients. The flag lives in the layer, so it survives every
/// switch between training and evaluation passes without being re-applied.
#[derive(Debug)]
pub struct BatchNorm {
    /// Scale γ (trainable unless frozen).
    pub weight: Tensor,
    /// Shift β (trainable unless frozen).
    pub bias: Tensor,
    /// Running mean (buffer).
    pub running_mean: Tensor,
    /// Running unbiased variance (buffer).
    pub running_var: Tensor,
    /// Number of training-mode batches seen (int64 scalar buffer).
    pub num_batches_tracked: Tensor,
    /// Added to the variance (PyTorch default 1e-5).
    pub eps: f64,
    /// Weight of the new batch statistic in the running averages (PyTorch default 0.1).
    pub momentum: f64,
    frozen: bool,
}

impl BatchNorm {
    /// Creates the five entries under `path` for `channels` features.
    pub fn new(path: &nn::Path, channels: i64) -> BatchNorm {
        let weight = path.var("weight", &[channels], Init::Const(1.0));
        let bias = path.var("bias", &[channels], Init::Const(0.0));
        // Buffers in the var store's kind (tch's own BatchNorm always uses f32 here).
        let opts = (path.kind(), path.device());
        let running_mean = path.add("running_mean", Tensor::zeros([channels], opts), false);
        let running_var = path.add("running_var", Tensor::ones([channels], opts), false);
        let nbt = Tensor::zeros([] as [i64; 0], (Kind::Int64, path.device()));
        let num_batches_tracked = path.add("num_batches_tracked", nbt, false);
        BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            eps: 1e-5,
            momentum: 0.1,
            frozen: false,
        }
    }

    /// Number of features.
    pub fn channels(&self) -> i64 {
        self.weight.size()[0]
    }

    /// Whether the layer is frozen.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Freezes (eval mode always, no gradient for weight/bias) or unfreezes the layer.
    /// `requires_grad` is changed on the var store's own tensors (they share the
    /// TensorImpl), so an optimiser built over the var store sees it too.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
        let _ = self.weight.set_requires_grad(!frozen);
        let _ = self.bias.set_requires_grad(!frozen);
    }

    /// Normalises `x`; `train` uses batch statistics and updates the running ones, unless frozen.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let update = train && !self.frozen;
        if update {
            tch::no_grad(|| {
                let _ = self.num_batches_tracked.shallow_clone().g_add_scalar_(1);
            });
        }
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            update,
            self.momentum,
            self.eps,
            true,
        )
    }
}

/// A convolution, its BatchNorm and an optional activation: torchvision's
/// `Conv2dNormActivation`, or a convolution and BN that sit side by side in a `Sequential`
/// (MobileNetV2's linear projection), hence two paths.
#[derive(Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
    /// The activation after the BatchNorm (`None`: linear, e.g. a bottleneck projection).
    pub act: Option<Activation>,
}

impl ConvBn {
    /// Creates the convolution under `conv_path` and the BatchNorm under `bn_path`.
    /// Padding is `(k - 1) / 2`, as torchvision's `Conv2dNormActivation`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        conv_path: &nn::Path,
        bn_path: &nn::Path,
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        groups: i64,
        act: Option<Activation>,
    ) -> ConvBn {
        ConvBn {
            conv: Conv2d::new(conv_path, c_in, c_out, k, stride, (k - 1) / 2, groups),
            bn: BatchNorm::new(bn_path, c_out),
            act,
        }
    }

    /// Conv → BN → activation (through `hook`).
    pub fn forward_hooked(&self, x: &Tensor, train: bool, hook: &mut ActivationHook<'_>) -> Tensor {
        let y = super::fold::conv_bn(&self.conv, &self.bn, x, train);
        match self.act {
            Some(a) => hook(&y, a),
            None => y,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::VarStore, Device};

    /// The layout the convolutions are fed: same values, NHWC strides, and a depthwise
    /// convolution (MobileNetV2's) keeps the layout in its output and its values.
    #[test]
    fn channels_last_keeps_values_and_the_convolutions_keep_the_layout() {
        tch::set_num_threads(1);
        tch::manual_seed(3);
        let (b, c, h, w) = (2i64, 8, 5, 7);
        let x = Tensor::randn([b, c, h, w], (Kind::Float, Device::Cpu));
        let nhwc = channels_last(&x);
        assert_eq!(nhwc.size(), x.size());
        assert_eq!(nhwc.stride(), [h * w * c, 1, w * c, c]);
        assert!(nhwc.equal(&x));
        let vs = VarStore::new(Device::Cpu);
        let depthwise = Conv2d::new(&(vs.root() / "dw"), c, c, 3, 1, 1, c);
        let (planar, packed) = (depthwise.forward(&x), depthwise.forward(&nhwc));
        assert_eq!(
            packed.stride()[1],
            1,
            "output strides {:?}",
            packed.stride()
        );
        let err = (&planar - &packed).abs().max().double_value(&[]);
        assert!(err < 1e-5, "NCHW and NHWC convolutions differ by {err}");
    }

    #[test]
    fn batch_norm_names_shapes_and_kinds() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let _bn = BatchNorm::new(&(vs.root() / "bn"), 4);
        let vars = vs.variables();
        let mut names: Vec<_> = vars.keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "bn.bias",
                "bn.num_batches_tracked",
                "bn.running_mean",
                "bn.running_var",
                "bn.weight"
            ]
        );
        assert_eq!(vars["bn.num_batches_tracked"].kind(), Kind::Int64);
        assert_eq!(vars["bn.num_batches_tracked"].size(), Vec::<i64>::new());
        assert_eq!(vs.trainable_variables().len(), 2);
    }

    #[test]
    fn batch_norm_counts_batches_and_matches_formula() {
        tch::set_num_threads(1);
        let vs = VarStore::new(Device::Cpu);
        let bn = BatchNorm::new(&vs.root(), 3);
        let x = Tensor::randn([4, 3, 2, 2], (Kind::Float, Device::Cpu));
        let y = bn.forward_t(&x, true);
        assert_eq!(bn.num_batches_tracked.int64_value(&[]), 1);
        // Train mode: per-channel batch statistics (biased variance), weight 1 bias 0.
        let mean = x.mean_dim([0i64, 2, 3].as_slice(), true, Kind::Float);
        let var = x.var_dim([0i64, 2, 3].as_slice(), false, true);
        let expected = (&x - &mean) / (var + 1e-5).sqrt();
        assert!(y.allclose(&expected, 1e-4, 1e-5, false));
        // Running mean moved 10 % towards the batch mean.
        assert!(bn
            .running_mean
            .allclose(&(mean.flatten(0, -1) * 0.1), 1e-5, 1e-6, false));
        let _ = bn.forward_t(&x, false);
        assert_eq!(
            bn.num_batches_tracked.int64_value(&[]),
            1,
            "eval passes are not counted"
        );
    }

    #[test]
    fn relu6_grad_mask() {
        let x = Tensor::from_slice(&[-1.0f32, 0.0, 0.5, 6.0, 7.0]);
        let m = Activation::Relu6.grad_mask(&x);
        assert_eq!(
            Vec::<f32>::try_from(&m).unwrap(),
            vec![0.0, 0.0, 1.0, 0.0, 0.0]
        );
        let m = Activation::Relu.grad_mask(&x);
        assert_eq!(
            Vec::<f32>::try_from(&m).unwrap(),
            vec![0.0, 0.0, 1.0, 1.0, 1.0]
        );
    }
}
