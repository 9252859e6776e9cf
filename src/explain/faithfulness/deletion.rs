//! Deletion and insertion curves (docs/REFERENCE.md, "Faithfulness: deletion and
//! insertion"): the pixels are replaced by a blurred copy of the image (deletion) or
//! revealed on it (insertion) in saliency order, `steps` equal shares at a time, and the
//! score is measured after each share; the area under each curve (trapezoids over the
//! share of pixels, 0 to 1) summarises it.

use super::ImageScore;
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// Side of the Gaussian blur kernel (the RISE reference's `gkern(11, 5)`).
pub const BLUR_KERNEL: i64 = 11;
/// Its standard deviation in pixels.
pub const BLUR_SIGMA: f64 = 5.0;

/// Both curves of one image, `steps + 1` scores each (share 0, 1/steps, …, 1).
pub struct Curves {
    /// Most relevant pixels blurred first.
    pub deletion: Vec<f64>,
    /// Most relevant pixels revealed first on the blurred image.
    pub insertion: Vec<f64>,
}

/// `image` `[3, H, W]` blurred by a separable Gaussian ([`BLUR_KERNEL`], [`BLUR_SIGMA`]),
/// the border replicated.
pub fn blur(image: &Tensor) -> Tensor {
    let r = BLUR_KERNEL / 2;
    let taps: Vec<f32> = (-r..=r)
        .map(|i| (-((i * i) as f64) / (2.0 * BLUR_SIGMA * BLUR_SIGMA)).exp() as f32)
        .collect();
    let total: f32 = taps.iter().sum();
    let k = Tensor::from_slice(&taps.iter().map(|t| t / total).collect::<Vec<_>>());
    let horizontal = k.view([1, 1, 1, BLUR_KERNEL]).repeat([3, 1, 1, 1]);
    let vertical = k.view([1, 1, BLUR_KERNEL, 1]).repeat([3, 1, 1, 1]);
    let x = image.unsqueeze(0).replication_pad2d([r, r, r, r]);
    let x = x.conv2d(&horizontal, None::<Tensor>, [1, 1], [0, 0], [1, 1], 3);
    x.conv2d(&vertical, None::<Tensor>, [1, 1], [0, 0], [1, 1], 3)
        .squeeze_dim(0)
}

/// Masks `[steps + 1, 1, H, W]`: mask k is 1 on the first ⌊k·N/steps⌋ pixels of `order`.
pub fn share_masks(order: &[usize], h: i64, w: i64, steps: usize) -> Tensor {
    let n = order.len();
    let mut rank = vec![0i64; n];
    for (r, &p) in order.iter().enumerate() {
        rank[p] = r as i64;
    }
    let rank = Tensor::from_slice(&rank).view([1, 1, h, w]);
    let counts: Vec<i64> = (0..=steps).map(|k| (k * n / steps) as i64).collect();
    let counts = Tensor::from_slice(&counts).view([-1, 1, 1, 1]);
    rank.lt_tensor(&counts).to_kind(Kind::Float)
}

/// The deletion and insertion curves of `image` `[3, H, W]` for per-pixel `relevance`.
pub fn curves(
    image: &Tensor,
    relevance: &[f32],
    steps: usize,
    score: &ImageScore<'_>,
) -> Result<Curves> {
    if steps == 0 {
        bail!("deletion and insertion need at least one step");
    }
    let (_, h, w) = image.size3()?;
    let order = super::saliency_order(relevance);
    let masks = share_masks(&order, h, w, steps);
    let blurred = blur(image).unsqueeze(0);
    let x = image.unsqueeze(0);
    let deleted = &x * (1.0 - &masks) + &blurred * &masks;
    let inserted = &blurred * (1.0 - &masks) + &x * &masks;
    let both = score(&Tensor::cat(&[deleted, inserted], 0))?;
    if both.len() != 2 * (steps + 1) {
        bail!(
            "internal error: {} scores for {} images",
            both.len(),
            2 * (steps + 1)
        );
    }
    let (deletion, insertion) = both.split_at(steps + 1);
    Ok(Curves {
        deletion: deletion.to_vec(),
        insertion: insertion.to_vec(),
    })
}

/// Trapezoidal area under a curve sampled at equal shares from 0 to 1.
pub fn auc(curve: &[f64]) -> f64 {
    if curve.len() < 2 {
        return curve.first().copied().unwrap_or(f64::NAN);
    }
    let steps = (curve.len() - 1) as f64;
    curve.windows(2).map(|p| (p[0] + p[1]) / 2.0).sum::<f64>() / steps
}
