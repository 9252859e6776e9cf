//! BatchNorm folded into the convolution before it, for evaluation passes.
//!
//! In evaluation a BatchNorm is a fixed per-channel affine map,
//! `y = γ (x − μ) / √(σ² + ε) + β`, so after a bias-free convolution `x = w ∗ z` it
//! equals one convolution with weight `w · s` and bias `β − μ s`, `s = γ / √(σ² + ε)`
//! per output channel. That saves the BatchNorm's pass over every activation (the
//! costly part of a memory-bound network like MobileNetV2 on CPU); the folded weights
//! are made per call, a pass over the weights only.
//!
//! Folding is opt-in and scoped, like `tch::no_grad`: [`with_folded_batch_norms`] turns
//! it on for the current thread while its closure runs, and only evaluation-mode
//! passes (`train == false`) fold. Training passes, and code that never asks (the
//! explanations, the torchvision parity tests), run the BatchNorm as before.

use super::layers::{BatchNorm, Conv2d};
use std::cell::Cell;
use tch::Tensor;

thread_local! {
    static FOLDING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with BatchNorm folding on for evaluation passes on this thread; the
/// previous setting comes back afterwards, even if `f` panics.
pub fn with_folded_batch_norms<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FOLDING.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FOLDING.with(|c| c.replace(true)));
    f()
}

/// Whether evaluation passes on this thread fold their BatchNorms now.
pub fn folding() -> bool {
    FOLDING.with(|c| c.get())
}

/// The weight `[out, in/groups, k, k]` and bias `[out]` of `conv` followed by `bn` in
/// evaluation mode (module doc).
pub fn fold(conv: &Conv2d, bn: &BatchNorm) -> (Tensor, Tensor) {
    let scale = &bn.weight / (&bn.running_var + bn.eps).sqrt();
    let weight = &conv.weight * scale.view([-1, 1, 1, 1]);
    let bias = &bn.bias - &bn.running_mean * &scale;
    (weight, bias)
}

/// `bn(conv(x))`: one folded convolution in an evaluation pass while folding is on,
/// otherwise the convolution and the BatchNorm as they are.
pub fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: &Tensor, train: bool) -> Tensor {
    if train || !folding() {
        return bn.forward_t(&conv.forward(x), train);
    }
    let (weight, bias) = fold(conv, bn);
    x.conv2d(
        &weight,
        Some(&bias),
        [conv.stride; 2],
        [conv.padding; 2],
        [1, 1],
        conv.groups,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, BatchNorm, EmbeddingNet, HeadConfig};
    use tch::{nn::VarStore, Device, Kind};

    /// Gives every BatchNorm of `net` statistics and an affine map far from the identity.
    fn perturb(net: &EmbeddingNet) {
        let bns: Vec<&BatchNorm> = net.backbone.batch_norms();
        assert!(bns.len() > 10);
        tch::no_grad(|| {
            for bn in bns {
                let c = bn.channels();
                let opts = (Kind::Float, Device::Cpu);
                bn.weight
                    .shallow_clone()
                    .copy_(&(Tensor::rand([c], opts) + 0.5));
                bn.bias
                    .shallow_clone()
                    .copy_(&(Tensor::randn([c], opts) * 0.1));
                bn.running_mean
                    .shallow_clone()
                    .copy_(&(Tensor::randn([c], opts) * 0.2));
                bn.running_var
                    .shallow_clone()
                    .copy_(&(Tensor::rand([c], opts) + 0.5));
            }
        });
    }

    #[test]
    fn folded_network_equals_the_unfolded_one() {
        tch::set_num_threads(1);
        tch::manual_seed(21);
        for arch in [Arch::MobileNetV2, Arch::ResNet18] {
            let vs = VarStore::new(Device::Cpu);
            let net = EmbeddingNet::new(&vs.root(), arch, &HeadConfig::default());
            perturb(&net);
            let x = Tensor::randn([3, 3, 64, 64], (Kind::Float, Device::Cpu));
            let plain = tch::no_grad(|| net.forward_with_features(&x, false).1.pooled);
            let folded = tch::no_grad(|| {
                with_folded_batch_norms(|| net.forward_with_features(&x, false).1.pooled)
            });
            assert!(!folding(), "{arch}: the setting is restored");
            let scale = plain.abs().max().double_value(&[]);
            let gap = (&plain - &folded).abs().max().double_value(&[]);
            assert!(scale > 0.1, "{arch}: features not degenerate ({scale})");
            assert!(
                gap <= 1e-4 * scale,
                "{arch}: folded differs by {gap} (scale {scale})"
            );
        }
    }

    #[test]
    fn fold_matches_the_formula_on_one_pair() {
        tch::set_num_threads(1);
        tch::manual_seed(22);
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let conv = Conv2d::new(&(&root / "conv"), 4, 6, 3, 2, 1, 2);
        let mut bn = BatchNorm::new(&(&root / "bn"), 6);
        let opts = (Kind::Float, Device::Cpu);
        tch::no_grad(|| {
            bn.weight
                .shallow_clone()
                .copy_(&(Tensor::rand([6], opts) + 0.5));
            bn.bias.shallow_clone().copy_(&Tensor::randn([6], opts));
            bn.running_mean
                .shallow_clone()
                .copy_(&Tensor::randn([6], opts));
            bn.running_var
                .shallow_clone()
                .copy_(&(Tensor::rand([6], opts) + 0.1));
        });
        let x = Tensor::randn([2, 4, 9, 9], (Kind::Float, Device::Cpu));
        let plain = tch::no_grad(|| conv_bn(&conv, &bn, &x, false));
        let folded = tch::no_grad(|| with_folded_batch_norms(|| conv_bn(&conv, &bn, &x, false)));
        assert_eq!(plain.size(), [2, 6, 5, 5]);
        assert!(folded.allclose(&plain, 1e-5, 1e-5, false));
        // By the formula, element by element, in f64.
        let (w, b) = fold(&conv, &bn);
        let s = Vec::<f64>::try_from(&bn.weight.to_kind(Kind::Double)).unwrap();
        let v = Vec::<f64>::try_from(&bn.running_var.to_kind(Kind::Double)).unwrap();
        let m = Vec::<f64>::try_from(&bn.running_mean.to_kind(Kind::Double)).unwrap();
        let beta = Vec::<f64>::try_from(&bn.bias.to_kind(Kind::Double)).unwrap();
        let b = Vec::<f64>::try_from(&b.to_kind(Kind::Double)).unwrap();
        for c in 0..6 {
            let scale = s[c] / (v[c] + 1e-5).sqrt();
            assert!((b[c] - (beta[c] - m[c] * scale)).abs() < 1e-5, "bias {c}");
            let want = conv.weight.get(c as i64).to_kind(Kind::Double) * scale;
            assert!(w
                .get(c as i64)
                .to_kind(Kind::Double)
                .allclose(&want, 1e-6, 1e-7, false));
        }
        // Training passes never fold: with a frozen BatchNorm (statistics unchanged)
        // the pass is bit for bit the same with folding on.
        bn.set_frozen(true);
        let train_plain = tch::no_grad(|| conv_bn(&conv, &bn, &x, true));
        let train_on = tch::no_grad(|| with_folded_batch_norms(|| conv_bn(&conv, &bn, &x, true)));
        assert!(train_plain.equal(&train_on));
        // Nested scopes restore what was there before each.
        with_folded_batch_norms(|| {
            with_folded_batch_norms(|| assert!(folding()));
            assert!(folding());
        });
        assert!(!folding());
    }
}
