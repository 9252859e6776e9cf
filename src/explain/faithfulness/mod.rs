//! Faithfulness of a saliency map against the similarity score it explains
//! (docs/REFERENCE.md, "Faithfulness: deletion and insertion", "Faithfulness: ROAD",
//! "Faithfulness: average drop and increase"): the image is perturbed in the map's
//! order and the score is measured again.
//!
//! - [`deletion`]: deletion and insertion curves against a blurred image, and their AUC;
//! - [`road`]: ROAD with noisy linear imputation, most- and least-relevant first;
//! - [`region_drop`]: average drop and increase when only the map's region is kept.
//!
//! Every metric reads a map through [`relevance`] (one value per pixel) and an image
//! scorer ([`ImageScore`]): images `[N, 3, H, W]` → one score each. [`similarity_scorer`]
//! is the scorer of an explained image: cos(f(x), target) (minus cos(f(x), contrast)
//! under `--contrast`), forwards batched.

pub mod deletion;
pub mod region_drop;
pub mod road;

use super::chunk::forward_batched;
use super::map::SaliencyMap;
use super::saliency::Explainable;
use super::target::similarity_score;
use crate::data::rng::Rng;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Scores of perturbed images: `[N, 3, H, W]` → N scores.
pub type ImageScore<'a> = dyn Fn(&Tensor) -> Result<Vec<f64>> + 'a;

/// How finely the metrics sample.
#[derive(Debug, Clone, PartialEq)]
pub struct FaithOptions {
    /// Steps of the deletion and insertion curves (each curve has `steps + 1` points).
    pub steps: usize,
    /// ROAD's percentiles p: the pixels at or above the p-th percentile of the map (most
    /// relevant first) or of 1 − map (least relevant first) are imputed.
    pub road_percentiles: Vec<f64>,
    /// Standard deviation of the noise added to imputed values (pytorch-grad-cam: 0.01).
    pub road_noise: f64,
    /// Seed of the imputation noise.
    pub seed: u64,
}

impl Default for FaithOptions {
    fn default() -> Self {
        FaithOptions {
            steps: 16,
            road_percentiles: vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0],
            road_noise: 0.01,
            seed: 0,
        }
    }
}

/// Every faithfulness score of one map of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    /// The unperturbed image's score.
    pub score: f64,
    /// Scores as the most relevant pixels are blurred away (`steps + 1` points).
    pub deletion_curve: Vec<f64>,
    /// Scores as the most relevant pixels are revealed on the blurred image.
    pub insertion_curve: Vec<f64>,
    /// Area under the deletion curve (lower is more faithful).
    pub deletion_auc: f64,
    /// Area under the insertion curve (higher is more faithful).
    pub insertion_auc: f64,
    /// ROAD: mean over the percentiles of (LeRF − MoRF)/2 (higher is more faithful).
    pub road: f64,
    /// Scores after most-relevant-first imputation, per percentile.
    pub road_morf: Vec<f64>,
    /// Scores after least-relevant-first imputation, per percentile.
    pub road_lerf: Vec<f64>,
    /// max(0, score − score of image × map) / |score| (lower is more faithful).
    pub average_drop: f64,
    /// Whether the score of image × map exceeds the score (1 or 0).
    pub increase: f64,
}

/// One relevance value per pixel (`height·width`, row-major) of a map: the map itself for
/// heat maps; for gradient images (three channels, displayed around 0.5 for a zero
/// gradient) the largest |value − 0.5| over the channels.
pub fn relevance(map: &SaliencyMap) -> Vec<f32> {
    let n = map.height * map.width;
    if map.channels == 1 {
        return map.values.clone();
    }
    (0..n)
        .map(|p| {
            (0..map.channels)
                .map(|c| (map.values[c * n + p] - 0.5).abs())
                .fold(0.0, f32::max)
        })
        .collect()
}

/// Pixel indices from most to least relevant (ties in index order).
pub fn saliency_order(relevance: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..relevance.len()).collect();
    order.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
    order
}

/// Every score of `map` for `image` (`[3, H, W]`, as the network sees it).
pub fn evaluate(
    image: &Tensor,
    map: &SaliencyMap,
    score: &ImageScore<'_>,
    opts: &FaithOptions,
) -> Result<Faithfulness> {
    let (_, h, w) = image.size3().context("an image must be [3, H, W]")?;
    if (map.height as i64, map.width as i64) != (h, w) {
        bail!(
            "a {}×{} map cannot be scored on a {h}×{w} image",
            map.height,
            map.width
        );
    }
    let image = image.detach().to_device(Device::Cpu).to_kind(Kind::Float);
    let rel = relevance(map);
    let original = first(&score(&image.unsqueeze(0))?)?;
    let curves = deletion::curves(&image, &rel, opts.steps, score)?;
    let mut rng = Rng::new(opts.seed);
    let road = road::road(
        &image,
        &rel,
        &opts.road_percentiles,
        opts.road_noise,
        &mut rng,
        score,
    )?;
    let drop = region_drop::region_drop(&image, &rel, original, score)?;
    Ok(Faithfulness {
        score: original,
        deletion_auc: deletion::auc(&curves.deletion),
        insertion_auc: deletion::auc(&curves.insertion),
        deletion_curve: curves.deletion,
        insertion_curve: curves.insertion,
        road: road.combined,
        road_morf: road.morf,
        road_lerf: road.lerf,
        average_drop: drop.drop,
        increase: drop.increase,
    })
}

fn first(scores: &[f64]) -> Result<f64> {
    scores
        .first()
        .copied()
        .context("internal error: the scorer returned no score")
}

/// The scorer of one explained image: `cos(f(x), target)` (minus `cos(f(x), contrast)`
/// when given) for the embeddings f of `net`, in forward passes of `batch_size` images.
pub fn similarity_scorer<'a>(
    net: &'a dyn Explainable,
    device: Device,
    target: &'a Tensor,
    contrast: Option<&'a Tensor>,
    batch_size: usize,
) -> impl Fn(&Tensor) -> Result<Vec<f64>> + 'a {
    move |images: &Tensor| {
        let x = images.to_device(device);
        let (e, _) = forward_batched(net, &x, batch_size)?;
        let t = target.reshape([1, -1]);
        let c = contrast.map(|c| c.reshape([1, -1]));
        let s = similarity_score(&e, &t, c.as_ref());
        Vec::try_from(s.to_kind(Kind::Double).to_device(Device::Cpu))
            .context("reading perturbed images' scores")
    }
}

#[cfg(test)]
mod tests;
