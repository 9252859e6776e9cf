//! ROAD, RemOve And Debias (Rong et al. 2022; docs/REFERENCE.md, "Faithfulness: ROAD"):
//! the pixels at or above a percentile of the map (most relevant first, MoRF) or of its
//! complement (least relevant first, LeRF) are removed and filled in by noisy linear
//! imputation, so the removal leaves no mask shape the network could read.
//!
//! Imputation, as pytorch-grad-cam's `NoisyLinearImputer` defines it: every removed pixel
//! equals the weighted mean of its in-image 8-neighbours (weight 1/6 for the four direct
//! neighbours, 1/12 for the diagonals), known neighbours entering as constants; the
//! sparse symmetric system is solved per channel (here by a skyline Cholesky
//! factorisation shared by the channels, where the reference calls a general direct
//! sparse solver), then Gaussian noise of a fixed standard deviation is added to the
//! imputed values.

use super::ImageScore;
use crate::data::rng::Rng;
use crate::dot::dot;
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
    let planes = Planes::of(image)?;
    let solved = planes.solve(removed)?;
    Ok(planes.with(&solved, noise, rng))
}

/// An image's channels as flat planes, the pixels the imputation reads.
struct Planes {
    values: Vec<f32>,
    channels: usize,
    h: i64,
    w: i64,
}

/// The noise-free imputed values of one mask: per removed pixel (in raster order) the
/// value of each channel, channel after channel (`values[ch * unknown.len() + i]`).
struct Solved {
    unknown: Vec<usize>,
    values: Vec<f64>,
}

impl Planes {
    fn of(image: &Tensor) -> Result<Planes> {
        let (c, h, w) = image.size3()?;
        let values = Vec::try_from(image.to_kind(Kind::Float).flatten(0, -1))?;
        Ok(Planes {
            values,
            channels: c as usize,
            h,
            w,
        })
    }

    fn pixels(&self) -> usize {
        (self.h * self.w) as usize
    }

    /// Every channel's system solved for the `removed` pixels (one factorisation of the
    /// shared matrix serves all channels).
    fn solve(&self, removed: &[bool]) -> Result<Solved> {
        let n = self.pixels();
        if removed.len() != n {
            bail!("internal error: a mask of {} pixels for {n}", removed.len());
        }
        let unknown: Vec<usize> = (0..n).filter(|&p| removed[p]).collect();
        let system = System::new(&unknown, removed, self.h, self.w);
        let values = system.solve(system.rhs(&self.values, n, self.channels))?;
        Ok(Solved { unknown, values })
    }

    /// The image with `solved`'s pixels filled in, noise drawn channel by channel.
    fn with(&self, solved: &Solved, noise: f64, rng: &mut Rng) -> Tensor {
        let (n, c) = (self.pixels(), self.channels);
        let mut out = self.values.clone();
        for ch in 0..c {
            for (i, &p) in solved.unknown.iter().enumerate() {
                let x = solved.values[ch * solved.unknown.len() + i];
                out[ch * n + p] = (x + noise * rng.normal()) as f32;
            }
        }
        Tensor::from_slice(&out).view([c as i64, self.h, self.w])
    }
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
    fn new(unknown: &[usize], removed: &[bool], h: i64, w: i64) -> System {
        let mut slot = vec![usize::MAX; removed.len()];
        for (i, &p) in unknown.iter().enumerate() {
            slot[p] = i;
        }
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

    /// b for every channel of `planes` (`channels` planes of `n` pixels), channel after
    /// channel.
    fn rhs(&self, planes: &[f32], n: usize, channels: usize) -> Vec<f64> {
        let mut b = vec![0.0; self.diagonal.len() * channels];
        for (i, row) in self.known.iter().enumerate() {
            for ch in 0..channels {
                let plane = &planes[ch * n..(ch + 1) * n];
                b[ch * self.diagonal.len() + i] =
                    row.iter().map(|&(q, w)| w * plane[q] as f64).sum();
            }
        }
        b
    }

    /// x for the right-hand sides `b` of `channels` channels (channel after channel), by
    /// one Cholesky factor of M ([`Skyline`]). With every pixel removed M is singular,
    /// but then b = 0 and x = 0 (what the noise is added to).
    fn solve(&self, mut b: Vec<f64>) -> Result<Vec<f64>> {
        if self.known.iter().all(Vec::is_empty) {
            return Ok(vec![0.0; b.len()]);
        }
        let factor = Skyline::cholesky(self)?;
        for plane in b.chunks_mut(self.diagonal.len().max(1)) {
            factor.solve_in_place(plane);
        }
        Ok(b)
    }
}

/// The lower Cholesky factor L of M (M = L Lᵀ) in skyline storage: row i keeps columns
/// `first[i]..=i`, from its leftmost coupling on. Cholesky fills in nothing left of a
/// row's first entry, and in raster order a pixel's couplings lie at most one image row
/// back, so a row holds about one image row of values. Like the reference's direct
/// sparse solver, and unlike an iterative one, the solution is exact up to rounding.
struct Skyline {
    first: Vec<usize>,
    /// Row i's values start at `start[i]` in `values`.
    start: Vec<usize>,
    values: Vec<f64>,
}

impl Skyline {
    fn cholesky(m: &System) -> Result<Skyline> {
        let n = m.diagonal.len();
        let first: Vec<usize> = (0..n)
            .map(|i| m.coupled[i].iter().map(|&(j, _)| j).fold(i, usize::min))
            .collect();
        let mut start = Vec::with_capacity(n + 1);
        start.push(0);
        for i in 0..n {
            start.push(start[i] + i - first[i] + 1);
        }
        let mut l = Skyline {
            values: vec![0.0; start[n]],
            first,
            start,
        };
        for i in 0..n {
            let at = l.start[i] - l.first[i];
            l.values[at + i] = m.diagonal[i];
            for &(j, w) in &m.coupled[i] {
                if j < i {
                    l.values[at + j] = -w;
                }
            }
            for j in l.first[i]..=i {
                // M[i][j] − Σₖ L[i][k] L[j][k] over the columns both rows hold.
                let from = l.first[i].max(l.first[j]);
                let ri = &l.values[at + from..at + j];
                let aj = l.start[j] - l.first[j];
                let rj = &l.values[aj + from..aj + j];
                let s = l.values[at + j] - dot(ri, rj);
                l.values[at + j] = if j < i {
                    s / l.values[aj + j]
                } else if s > 0.0 {
                    s.sqrt()
                } else {
                    // M is an irreducibly diagonally dominant M-matrix on every removed
                    // region that touches a known pixel, hence positive definite.
                    bail!("internal error: the imputation matrix is not positive definite");
                };
            }
        }
        Ok(l)
    }

    /// `b` ← M⁻¹ b: L y = b forward, then Lᵀ x = y backward (column by column, so both
    /// read rows contiguously).
    fn solve_in_place(&self, b: &mut [f64]) {
        let n = self.first.len();
        for i in 0..n {
            let at = self.start[i] - self.first[i];
            let row = &self.values[at + self.first[i]..at + i];
            b[i] = (b[i] - dot(row, &b[self.first[i]..i])) / self.values[at + i];
        }
        for i in (0..n).rev() {
            let at = self.start[i] - self.first[i];
            b[i] /= self.values[at + i];
            let xi = b[i];
            for (y, l) in b[self.first[i]..i]
                .iter_mut()
                .zip(&self.values[at + self.first[i]..at + i])
            {
                *y -= l * xi;
            }
        }
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
    // One solve per mask; on rayon's two threads they took as long (libgomp's waiting
    // threads compete for the cores between libtorch's calls).
    let planes = Planes::of(image)?;
    let mut images = Vec::with_capacity(2 * percentiles.len());
    for values in [relevance, &complement[..]] {
        for &p in percentiles {
            let solved = planes.solve(&removed_at(values, p))?;
            images.push(planes.with(&solved, noise, rng));
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
