//! ROAD, RemOve And Debias (Rong et al. 2022; docs/REFERENCE.md, "Faithfulness: ROAD"):
//! the pixels at or above a percentile of the map (most relevant first, MoRF) or of its
//! complement (least relevant first, LeRF) are removed and filled in by noisy linear
//! imputation, so the removal leaves no mask shape the network could read.
//!
//! Imputation, as pytorch-grad-cam's `NoisyLinearImputer` defines it: every removed pixel
//! equals the weighted mean of its in-image 8-neighbours (weight 1/6 for the four direct
//! neighbours, 1/12 for the diagonals), known neighbours entering as constants; the
//! sparse symmetric system is solved per channel (here by conjugate gradients, where the
//! reference calls a direct sparse solver), then Gaussian noise of a fixed standard
//! deviation is added to the imputed values.

use super::ImageScore;
use crate::data::rng::Rng;
use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// Neighbour offsets (row, column) and weights of the imputation.
const NEIGHBOURS: [((i64, i64), f64); 8] = [
    ((1, 1), 1.0 / 12.0),
    ((0, 1), 1.0 / 6.0),
    ((-1, 1), 1.0 / 12.0),
    ((1, -1), 1.0 / 12.0),
    ((0, -1), 1.0 / 6.0),
    ((-1, -1), 1.0 / 12.0),
    ((1, 0), 1.0 / 6.0),
    ((-1, 0), 1.0 / 6.0),
];

/// Conjugate gradients stop when the residual is this share of the right-hand side.
const CG_TOLERANCE: f64 = 1e-9;

/// ROAD scores of one map.
pub struct Road {
    /// Scores after most-relevant-first removal, per percentile.
    pub morf: Vec<f64>,
    /// Scores after least-relevant-first removal, per percentile.
    pub lerf: Vec<f64>,
    /// Mean over the percentiles of (LeRF − MoRF)/2 (pytorch-grad-cam's `ROADCombined`).
    pub combined: f64,
}

/// The p-th percentile (0–100) of `values`, linearly interpolated (numpy's default).
pub fn percentile(values: &[f32], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
}

/// Pixels removed at percentile `p`: those whose value is at least the percentile.
pub fn removed_at(values: &[f32], p: f64) -> Vec<bool> {
    let t = percentile(values, p);
    values.iter().map(|&v| v as f64 >= t).collect()
}

/// `image` `[3, H, W]` with the `removed` pixels imputed (see the module documentation),
/// plus Gaussian noise of standard deviation `noise` drawn from `rng`.
pub fn impute(image: &Tensor, removed: &[bool], noise: f64, rng: &mut Rng) -> Result<Tensor> {
    let (c, h, w) = image.size3()?;
    let n = (h * w) as usize;
    if removed.len() != n {
        bail!("internal error: a mask of {} pixels for {n}", removed.len());
    }
    let values: Vec<f32> = Vec::try_from(image.to_kind(Kind::Float).flatten(0, -1))?;
    let unknown: Vec<usize> = (0..n).filter(|&p| removed[p]).collect();
    let mut slot = vec![usize::MAX; n];
    for (i, &p) in unknown.iter().enumerate() {
        slot[p] = i;
    }
    let system = System::new(&unknown, &slot, removed, h, w);
    let mut out = values.clone();
    for ch in 0..c as usize {
        let plane = &values[ch * n..(ch + 1) * n];
        let x = system.solve(&system.rhs(plane));
        for (i, &p) in unknown.iter().enumerate() {
            out[ch * n + p] = (x[i] + noise * rng.normal()) as f32;
        }
    }
    Ok(Tensor::from_slice(&out).view([c, h, w]))
}

/// The imputation system M x = b over the removed pixels: M = diag(S) − W, S the summed
/// weight of each pixel's in-image neighbours, W the weights between removed pixels.
struct System {
    /// Per removed pixel: S.
    diagonal: Vec<f64>,
    /// Per removed pixel: (removed neighbour's slot, weight).
    coupled: Vec<Vec<(usize, f64)>>,
    /// Per removed pixel: (known neighbour's pixel, weight).
    known: Vec<Vec<(usize, f64)>>,
}

impl System {
    fn new(unknown: &[usize], slot: &[usize], removed: &[bool], h: i64, w: i64) -> System {
        let mut s = System {
            diagonal: Vec::with_capacity(unknown.len()),
            coupled: Vec::with_capacity(unknown.len()),
            known: Vec::with_capacity(unknown.len()),
        };
        for &p in unknown {
            let (r, c) = ((p as i64) / w, (p as i64) % w);
            let (mut sum, mut coupled, mut known) = (0.0, Vec::new(), Vec::new());
            for ((dr, dc), weight) in NEIGHBOURS {
                let (rr, cc) = (r + dr, c + dc);
                if rr < 0 || cc < 0 || rr >= h || cc >= w {
                    continue;
                }
                let q = (rr * w + cc) as usize;
                sum += weight;
                if removed[q] {
                    coupled.push((slot[q], weight));
                } else {
                    known.push((q, weight));
                }
            }
            s.diagonal.push(sum);
            s.coupled.push(coupled);
            s.known.push(known);
        }
        s
    }

    fn rhs(&self, plane: &[f32]) -> Vec<f64> {
        self.known
            .iter()
            .map(|k| k.iter().map(|&(q, w)| w * plane[q] as f64).sum())
            .collect()
    }

    fn apply(&self, x: &[f64]) -> Vec<f64> {
        (0..x.len())
            .map(|i| {
                self.diagonal[i] * x[i]
                    - self.coupled[i].iter().map(|&(j, w)| w * x[j]).sum::<f64>()
            })
            .collect()
    }

    /// Conjugate gradients from zero (M is symmetric positive semi-definite; a removed
    /// region touching no known pixel has b = 0 there and stays at 0).
    fn solve(&self, b: &[f64]) -> Vec<f64> {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut x = vec![0.0; b.len()];
        let mut r = b.to_vec();
        let mut p = r.clone();
        let mut rr = dot(&r, &r);
        let stop = CG_TOLERANCE * CG_TOLERANCE * rr.max(f64::MIN_POSITIVE);
        for _ in 0..(4 * b.len()).max(1) {
            if rr <= stop {
                break;
            }
            let mp = self.apply(&p);
            let pmp = dot(&p, &mp);
            if pmp <= 0.0 {
                break;
            }
            let alpha = rr / pmp;
            for i in 0..x.len() {
                x[i] += alpha * p[i];
                r[i] -= alpha * mp[i];
            }
            let next = dot(&r, &r);
            let beta = next / rr;
            rr = next;
            for i in 0..p.len() {
                p[i] = r[i] + beta * p[i];
            }
        }
        x
    }
}

/// ROAD of `image` `[3, H, W]` for per-pixel `relevance` at `percentiles`, the
/// imputations of both orders scored in one batch.
pub fn road(
    image: &Tensor,
    relevance: &[f32],
    percentiles: &[f64],
    noise: f64,
    rng: &mut Rng,
    score: &ImageScore<'_>,
) -> Result<Road> {
    if percentiles.is_empty() {
        return Ok(Road {
            morf: Vec::new(),
            lerf: Vec::new(),
            combined: f64::NAN,
        });
    }
    let complement: Vec<f32> = relevance.iter().map(|v| 1.0 - v).collect();
    let mut images = Vec::with_capacity(2 * percentiles.len());
    for values in [relevance, &complement[..]] {
        for &p in percentiles {
            images.push(impute(image, &removed_at(values, p), noise, rng)?);
        }
    }
    let scores = score(&Tensor::stack(&images, 0))?;
    if scores.len() != images.len() {
        bail!(
            "internal error: {} scores for {} images",
            scores.len(),
            images.len()
        );
    }
    let (morf, lerf) = scores.split_at(percentiles.len());
    let combined = morf
        .iter()
        .zip(lerf)
        .map(|(m, l)| (l - m) / 2.0)
        .sum::<f64>()
        / percentiles.len() as f64;
    Ok(Road {
        morf: morf.to_vec(),
        lerf: lerf.to_vec(),
        combined,
    })
}
