//! Average drop and increase in similarity (docs/REFERENCE.md, "Faithfulness: average
//! drop and increase"): the image is multiplied by its map (pytorch-grad-cam's
//! `CamMultImageConfidenceChange`, on the network's normalised input), so only the map's
//! region is kept, and its score O is compared with the original score Y.

use super::ImageScore;
use anyhow::{Context, Result};
use tch::Tensor;

/// Drop and increase of one map.
pub struct RegionDrop {
    /// max(0, Y − O) / |Y| (0 when Y is 0).
    pub drop: f64,
    /// 1 when O > Y, else 0.
    pub increase: f64,
}

/// The drop and increase of `image` `[3, H, W]` kept where `relevance` (in [0, 1]) is,
/// against the original score `original`.
pub fn region_drop(
    image: &Tensor,
    relevance: &[f32],
    original: f64,
    score: &ImageScore<'_>,
) -> Result<RegionDrop> {
    let (_, h, w) = image.size3()?;
    let map = Tensor::from_slice(relevance).view([1, h, w]);
    let kept = score(&(image * map).unsqueeze(0))?;
    let o = *kept.first().context("internal error: no score")?;
    Ok(drop_and_increase(original, o))
}

/// The drop and increase of a kept-region score `kept` against `original`.
pub fn drop_and_increase(original: f64, kept: f64) -> RegionDrop {
    let drop = if original == 0.0 {
        0.0
    } else {
        (original - kept).max(0.0) / original.abs()
    };
    RegionDrop {
        drop,
        increase: if kept > original { 1.0 } else { 0.0 },
    }
}
