//! Barnes–Hut t-SNE with openTSNE's defaults, in Rust with rayon.
//!
//! Why not `linfa-tsne` 0.8 (bhtsne 0.4): it fixes the learning rate at 200, starts
//! from random noise (no PCA initialisation), builds its neighbour lists with a
//! single-threaded vantage-point tree over the raw dimensions and takes its randomness
//! from the thread's generator (not reproducible). openTSNE's defaults need all of
//! those changed, so the optimisation is written here:
//!
//! * affinities: each point's `k = min(n − 1, ⌊3·perplexity⌋)` nearest neighbours
//!   (exact search, [`crate::search::knn`]), Gaussian kernels on squared distances
//!   calibrated by bisection to the perplexity (entropy in nats), symmetrised
//!   `P = (P + Pᵀ) / ΣP`; a perplexity above `(n − 1)/3` is lowered to it (openTSNE
//!   does the same, with a warning);
//! * initial layout: PCA, scaled so the first coordinate has standard deviation 1e-4;
//! * 250 iterations with exaggeration 12 and momentum 0.5, then 500 with exaggeration
//!   1 and momentum 0.8; learning rate `max(n / exaggeration, 50)` ("auto"); gains
//!   (+0.2 / ×0.8, at least 0.01); each point's step clipped to norm 5; gradient without
//!   the factor 4 (openTSNE's convention, matching its learning rate);
//! * repulsion by Barnes–Hut on a quadtree, a cell summarised when
//!   `width / distance < θ` (θ = 0.5), or by FFT-accelerated interpolation
//!   ([`super::tsne_fft`], FIt-SNE) from [`FFT_FROM_POINTS`] points on
//!   ([`TsneMethod::Auto`]); attraction exact over the sparse `P`.
//!
//! Deterministic: no randomness after the PCA initialisation, and the parallel loops
//! write disjoint rows and sum in a fixed order.

use super::input::{pca, validate, Matrix};
use crate::search::knn::{k_nearest_with, Exclude, KnnOptions};
use crate::search::Distance;
use anyhow::{ensure, Result};
use rayon::prelude::*;
use serde::Serialize;

/// Which implementation lays the points out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TsneEngine {
    /// This module: openTSNE's defaults, PCA start, multi-threaded, reproducible.
    #[default]
    Ours,
    /// linfa-tsne ([`super::tsne_linfa`]): random start, single-threaded, not reproducible.
    Linfa,
}

impl TsneEngine {
    /// The engine's name, as `--tsne-engine` and `<method>.json` spell it.
    pub fn name(self) -> &'static str {
        match self {
            TsneEngine::Ours => "ours",
            TsneEngine::Linfa => "linfa",
        }
    }

    /// The 2-D layout of `points` by this engine.
    pub fn layout(self, points: &Matrix, params: &TsneParams) -> Result<TsneLayout> {
        match self {
            TsneEngine::Ours => tsne(points, params),
            TsneEngine::Linfa => super::tsne_linfa::tsne_linfa(points, params),
        }
    }
}

/// How our engine computes the repulsion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TsneMethod {
    /// Barnes–Hut below [`FFT_FROM_POINTS`] points, FFT interpolation from there on.
    #[default]
    Auto,
    /// Barnes–Hut on a quadtree (θ from [`TsneParams::theta`]; θ = 0: every pair).
    Bh,
    /// FFT-accelerated interpolation ([`super::tsne_fft`]).
    Fft,
}

/// Where [`TsneMethod::Auto`] switches from Barnes–Hut to FFT interpolation: below it
/// the FFT's fixed grid of at least 150 × 150 nodes costs more than the tree walk.
/// Measured with `dmlviz bench project --method tsne-bh --method tsne-fft` (2 threads,
/// under load): FFT 3× slower at 2 000 points, level at 5 000, faster at 10 000.
pub const FFT_FROM_POINTS: usize = 5000;

impl TsneMethod {
    /// The method's name, as `--tsne-method` and `<method>.json` spell it.
    pub fn name(self) -> &'static str {
        match self {
            TsneMethod::Auto => "auto",
            TsneMethod::Bh => "bh",
            TsneMethod::Fft => "fft",
        }
    }

    /// The method that runs on `n` points: `Auto` resolved, the others as they are.
    pub fn resolve(self, n: usize) -> TsneMethod {
        match self {
            TsneMethod::Auto if n >= FFT_FROM_POINTS => TsneMethod::Fft,
            TsneMethod::Auto => TsneMethod::Bh,
            other => other,
        }
    }
}

/// t-SNE parameters; the defaults are openTSNE's.
#[derive(Debug, Clone, Serialize)]
pub struct TsneParams {
    /// Effective number of neighbours (30).
    pub perplexity: f64,
    /// Factor on the attraction during the first phase (12).
    pub early_exaggeration: f64,
    /// Iterations of the first phase (250).
    pub early_exaggeration_iter: usize,
    /// Iterations of the second phase (500).
    pub n_iter: usize,
    /// Barnes–Hut opening angle (0.5); 0 computes every pair exactly.
    pub theta: f64,
    /// Learning rate; `None`: `max(n / exaggeration, 50)` per phase.
    pub learning_rate: Option<f64>,
    /// Barnes–Hut, FFT interpolation, or either by the number of points (our engine only).
    pub method: TsneMethod,
}

impl Default for TsneParams {
    fn default() -> Self {
        TsneParams {
            perplexity: 30.0,
            early_exaggeration: 12.0,
            early_exaggeration_iter: 250,
            n_iter: 500,
            theta: 0.5,
            learning_rate: None,
            method: TsneMethod::Auto,
        }
    }
}

/// A t-SNE layout and the perplexity it used.
#[derive(Debug, Clone)]
pub struct TsneLayout {
    /// `[n, 2]` coordinates.
    pub layout: Matrix,
    /// The perplexity after lowering to `(n − 1)/3` where needed.
    pub perplexity: f64,
}

/// Symmetric affinities in CSR form.
struct Affinities {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

/// Conditional probabilities of one point's neighbours (squared distances `d2`) at the
/// given perplexity, by bisection on the precision β (tolerance 1e-8, 200 steps).
fn conditional_row(d2: &[f64], perplexity: f64, out: &mut [f64]) {
    let target = perplexity.ln();
    let min = d2.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut beta, mut lo, mut hi) = (1.0f64, 0.0f64, f64::INFINITY);
    for _ in 0..200 {
        let mut sum = 0.0;
        let mut weighted = 0.0;
        for (o, &d) in out.iter_mut().zip(d2) {
            *o = (-(d - min) * beta).exp();
            sum += *o;
            weighted += (d - min) * *o;
        }
        // H = ln Σ + β·Σ d·p / Σ (shifted distances: the shift cancels).
        let entropy = sum.ln() + beta * weighted / sum;
        if (entropy - target).abs() < 1e-8 {
            break;
        }
        if entropy > target {
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = (beta + lo) / 2.0;
        }
    }
    let sum: f64 = out.iter().sum();
    out.iter_mut()
        .for_each(|o| *o /= sum.max(f64::MIN_POSITIVE));
}

fn affinities(points: &Matrix, perplexity: f64) -> Result<Affinities> {
    let n = points.rows;
    let k = (n - 1).min((3.0 * perplexity).floor() as usize).max(1);
    let x = points.to_tensor();
    let options = KnnOptions {
        exclude: Exclude::SameIndex,
        ..Default::default()
    };
    let (idx, dist) = k_nearest_with(&x, &x, k as i64, Distance::Euclidean, &options);
    let idx = Vec::<i64>::try_from(&idx.view([-1]))?;
    let dist = Vec::<f32>::try_from(&dist.to_kind(tch::Kind::Float).view([-1]))?;
    let mut conditional = vec![0f64; n * k];
    conditional
        .par_chunks_mut(k)
        .enumerate()
        .for_each(|(i, row)| {
            let d2: Vec<f64> = dist[i * k..(i + 1) * k]
                .iter()
                .map(|&d| (d as f64).powi(2))
                .collect();
            conditional_row(&d2, perplexity, row);
        });
    // P + Pᵀ as (row, col, value) triplets, merged.
    let mut triplets: Vec<(u32, u32, f64)> = Vec::with_capacity(2 * n * k);
    for i in 0..n {
        for c in 0..k {
            let j = idx[i * k + c] as u32;
            let v = conditional[i * k + c];
            triplets.push((i as u32, j, v));
            triplets.push((j, i as u32, v));
        }
    }
    triplets.par_sort_unstable_by_key(|&(r, c, _)| (r, c));
    let total: f64 = triplets.iter().map(|t| t.2).sum();
    let mut indptr = vec![0usize; n + 1];
    let mut indices = Vec::with_capacity(triplets.len());
    let mut values: Vec<f64> = Vec::with_capacity(triplets.len());
    let mut last: Option<(u32, u32)> = None;
    for (r, c, v) in triplets {
        if last == Some((r, c)) {
            *values.last_mut().unwrap() += v / total;
        } else {
            indices.push(c);
            values.push(v / total);
            indptr[r as usize + 1] += 1;
            last = Some((r, c));
        }
    }
    for i in 0..n {
        indptr[i + 1] += indptr[i];
    }
    Ok(Affinities {
        indptr,
        indices,
        values,
    })
}

/// Quadtree node: a square cell with the number and coordinate sums of its points.
#[derive(Clone, Copy)]
struct Node {
    cx: f64,
    cy: f64,
    half: f64,
    sx: f64,
    sy: f64,
    count: u32,
    /// Index of the first of four children; 0: a leaf.
    child: u32,
    /// A leaf's point (its other points sit at the same place, or at the depth cap).
    point: u32,
}

/// Depth beyond which points share a leaf (duplicates would split forever).
const MAX_DEPTH: usize = 48;

struct QuadTree {
    nodes: Vec<Node>,
}

impl QuadTree {
    fn build(y: &[f64]) -> QuadTree {
        let n = y.len() / 2;
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for i in 0..n {
            x0 = x0.min(y[2 * i]);
            x1 = x1.max(y[2 * i]);
            y0 = y0.min(y[2 * i + 1]);
            y1 = y1.max(y[2 * i + 1]);
        }
        let half = ((x1 - x0).max(y1 - y0) / 2.0) * (1.0 + 1e-9) + 1e-12;
        let root = Node {
            cx: (x0 + x1) / 2.0,
            cy: (y0 + y1) / 2.0,
            half,
            sx: 0.0,
            sy: 0.0,
            count: 0,
            child: 0,
            point: u32::MAX,
        };
        let mut tree = QuadTree {
            nodes: Vec::with_capacity(4 * n),
        };
        tree.nodes.push(root);
        for i in 0..n {
            tree.insert(i as u32, y[2 * i], y[2 * i + 1], y);
        }
        tree
    }

    fn quadrant(node: &Node, x: f64, y: f64) -> u32 {
        (x >= node.cx) as u32 + 2 * (y >= node.cy) as u32
    }

    fn insert(&mut self, p: u32, x: f64, y: f64, coords: &[f64]) {
        let mut at = 0usize;
        let mut depth = 0;
        loop {
            let node = self.nodes[at];
            if node.child == 0 {
                if node.count == 0 {
                    let nd = &mut self.nodes[at];
                    nd.point = p;
                    nd.count = 1;
                    nd.sx = x;
                    nd.sy = y;
                    return;
                }
                let (px, py) = (
                    coords[2 * node.point as usize],
                    coords[2 * node.point as usize + 1],
                );
                if depth >= MAX_DEPTH || (px == x && py == y) {
                    let nd = &mut self.nodes[at];
                    nd.count += 1;
                    nd.sx += x;
                    nd.sy += y;
                    return;
                }
                // Split: the leaf's points move to their quadrant's child.
                let first = self.nodes.len() as u32;
                let h = node.half / 2.0;
                for q in 0..4u32 {
                    let cx = node.cx + if q & 1 == 1 { h } else { -h };
                    let cy = node.cy + if q & 2 == 2 { h } else { -h };
                    self.nodes.push(Node {
                        cx,
                        cy,
                        half: h,
                        sx: 0.0,
                        sy: 0.0,
                        count: 0,
                        child: 0,
                        point: u32::MAX,
                    });
                }
                let moved = (first + Self::quadrant(&node, px, py)) as usize;
                let nd = &mut self.nodes[moved];
                nd.point = node.point;
                nd.count = node.count;
                nd.sx = node.sx;
                nd.sy = node.sy;
                self.nodes[at].child = first;
                self.nodes[at].point = u32::MAX;
            }
            let nd = &mut self.nodes[at];
            nd.count += 1;
            nd.sx += x;
            nd.sy += y;
            at = (nd.child + Self::quadrant(nd, x, y)) as usize;
            depth += 1;
        }
    }

    /// Repulsion on the point at `(x, y)`: `(Σ q²·Δx, Σ q²·Δy, Σ q)` over every other point,
    /// `q = 1/(1 + d²)`, with cells summarised when `width / distance < θ`.
    fn repulsion(&self, x: f64, y: f64, theta2: f64, stack: &mut Vec<u32>) -> (f64, f64, f64) {
        let (mut fx, mut fy, mut z) = (0.0, 0.0, 0.0);
        stack.clear();
        stack.push(0);
        while let Some(at) = stack.pop() {
            let nd = &self.nodes[at as usize];
            if nd.count == 0 {
                continue;
            }
            let count = nd.count as f64;
            let (dx, dy) = (x - nd.sx / count, y - nd.sy / count);
            let d2 = dx * dx + dy * dy;
            let width = 2.0 * nd.half;
            if nd.child == 0 || width * width < theta2 * d2 {
                if nd.child == 0 && d2 < 1e-24 {
                    // The point's own leaf: the others are copies at distance 0 (q = 1, no force).
                    z += count - 1.0;
                    continue;
                }
                let q = 1.0 / (1.0 + d2);
                z += count * q;
                fx += count * q * q * dx;
                fy += count * q * q * dy;
            } else {
                stack.extend(nd.child..nd.child + 4);
            }
        }
        (fx, fy, z)
    }
}

/// PCA start: the first two principal coordinates, interleaved `[x0, y0, x1, y1, …]`,
/// scaled so the first has standard deviation 1e-4.
fn pca_start(points: &Matrix) -> Result<Vec<f64>> {
    let n = points.rows;
    let init = pca(points, 2)?;
    let mut y: Vec<f64> = (0..n)
        .flat_map(|i| {
            [
                init.row(i)[0] as f64,
                init.row(i).get(1).copied().unwrap_or(0.0) as f64,
            ]
        })
        .collect();
    let mean = y.iter().step_by(2).sum::<f64>() / n as f64;
    let std = (y.iter().step_by(2).map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let scale = if std > 0.0 { 1e-4 / std } else { 1.0 };
    y.iter_mut().for_each(|v| *v *= scale);
    Ok(y)
}

/// How one gradient evaluation sums the repulsion.
#[derive(Debug, Clone, Copy)]
enum Repulsion {
    /// Every pair.
    Exact,
    /// Barnes–Hut with the squared opening angle.
    BarnesHut(f64),
    /// FFT-accelerated interpolation.
    Fft,
}

/// The gradient at layout `y` into `grad`: exaggerated attraction over the sparse `P`
/// minus the repulsion normalised by Z. `forces` is scratch space, one row per point:
/// attraction (x, y), repulsion (x, y), share of Z.
fn gradient(
    p: &Affinities,
    y: &[f64],
    exaggeration: f64,
    repulsion: Repulsion,
    forces: &mut [[f64; 5]],
    grad: &mut [f64],
) -> Result<()> {
    let tree = match repulsion {
        Repulsion::BarnesHut(_) => Some(QuadTree::build(y)),
        _ => None,
    };
    let interpolated = match repulsion {
        Repulsion::Fft => Some(super::tsne_fft::fft_repulsion(y)?),
        _ => None,
    };
    // Rows are disjoint, so points run in parallel.
    forces
        .par_iter_mut()
        .enumerate()
        .for_each_init(Vec::new, |stack, (i, f)| {
            let (xi, yi) = (y[2 * i], y[2 * i + 1]);
            let (mut ax, mut ay) = (0.0, 0.0);
            for e in p.indptr[i]..p.indptr[i + 1] {
                let j = p.indices[e] as usize;
                let (dx, dy) = (xi - y[2 * j], yi - y[2 * j + 1]);
                let w = p.values[e] / (1.0 + dx * dx + dy * dy);
                ax += w * dx;
                ay += w * dy;
            }
            let (rx, ry, z) = match (repulsion, &tree, &interpolated) {
                (Repulsion::BarnesHut(theta2), Some(tree), _) => {
                    tree.repulsion(xi, yi, theta2, stack)
                }
                (_, _, Some(rows)) => (rows[i][0], rows[i][1], rows[i][2]),
                _ => exact_repulsion(y, i),
            };
            *f = [ax, ay, rx, ry, z];
        });
    let z: f64 = forces
        .iter()
        .map(|f| f[4])
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    for (i, f) in forces.iter().enumerate() {
        grad[2 * i] = exaggeration * f[0] - f[2] / z;
        grad[2 * i + 1] = exaggeration * f[1] - f[3] / z;
    }
    Ok(())
}

/// One step with momentum and gains (+0.2 / ×0.8, at least 0.01), each point's step
/// clipped to norm 5.
fn descend(
    y: &mut [f64],
    update: &mut [f64],
    gains: &mut [f64],
    grad: &[f64],
    lr: f64,
    momentum: f64,
) {
    for i in 0..y.len() / 2 {
        let mut step = [0f64; 2];
        for (c, step_c) in step.iter_mut().enumerate() {
            let k = 2 * i + c;
            gains[k] = if (grad[k] > 0.0) != (update[k] > 0.0) {
                gains[k] + 0.2
            } else {
                gains[k] * 0.8
            };
            gains[k] = gains[k].max(0.01);
            *step_c = momentum * update[k] - lr * gains[k] * grad[k];
        }
        let norm = (step[0] * step[0] + step[1] * step[1]).sqrt();
        if norm > 5.0 {
            step.iter_mut().for_each(|s| *s *= 5.0 / norm);
        }
        for c in 0..2 {
            update[2 * i + c] = step[c];
            y[2 * i + c] += step[c];
        }
    }
}

/// The 2-D t-SNE layout of `points` (Euclidean distances between rows: give unit rows
/// for a cosine embedding).
pub fn tsne(points: &Matrix, params: &TsneParams) -> Result<TsneLayout> {
    validate(points, 3, "t-SNE input")?;
    ensure!(
        params.perplexity > 0.0 && params.theta >= 0.0,
        "t-SNE needs perplexity > 0 and θ ≥ 0"
    );
    ensure!(
        params.learning_rate.is_none_or(|lr| lr > 0.0),
        "t-SNE learning rate must be positive"
    );
    let n = points.rows;
    let perplexity = params.perplexity.min((n - 1) as f64 / 3.0);
    let p = affinities(points, perplexity)?;
    let mut y = pca_start(points)?;

    let mut update = vec![0f64; 2 * n];
    let mut gains = vec![1f64; 2 * n];
    let mut grad = vec![0f64; 2 * n];
    let mut forces = vec![[0f64; 5]; n];
    let repulsion = match params.method.resolve(n) {
        TsneMethod::Fft => Repulsion::Fft,
        _ if params.theta == 0.0 => Repulsion::Exact,
        _ => Repulsion::BarnesHut(params.theta * params.theta),
    };
    let phases = [
        (
            params.early_exaggeration,
            params.early_exaggeration_iter,
            0.5,
        ),
        (1.0, params.n_iter, 0.8),
    ];
    let _one_torch_thread =
        matches!(repulsion, Repulsion::Fft).then(crate::device::OneTorchThread::new);
    for (exaggeration, iterations, momentum) in phases {
        let lr = params
            .learning_rate
            .unwrap_or((n as f64 / exaggeration).max(50.0));
        for _ in 0..iterations {
            gradient(&p, &y, exaggeration, repulsion, &mut forces, &mut grad)?;
            descend(&mut y, &mut update, &mut gains, &grad, lr, momentum);
        }
    }
    let data: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    ensure!(
        data.iter().all(|v| v.is_finite()),
        "t-SNE diverged (non-finite coordinates)"
    );
    Ok(TsneLayout {
        layout: Matrix::new(n, 2, data)?,
        perplexity,
    })
}

/// Every pair, for θ = 0 (and the reference the approximations are tested against).
pub(super) fn exact_repulsion(y: &[f64], i: usize) -> (f64, f64, f64) {
    let (xi, yi) = (y[2 * i], y[2 * i + 1]);
    let (mut fx, mut fy, mut z) = (0.0, 0.0, 0.0);
    for j in 0..y.len() / 2 {
        if j != i {
            let (dx, dy) = (xi - y[2 * j], yi - y[2 * j + 1]);
            let q = 1.0 / (1.0 + dx * dx + dy * dy);
            z += q;
            fx += q * q * dx;
            fy += q * q * dy;
        }
    }
    (fx, fy, z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::clustered_points;
    use crate::project::quality::{knn_label_agreement, trustworthiness};

    #[test]
    fn perplexity_calibration_hits_the_target_entropy() {
        let d2: Vec<f64> = (1..=90).map(|i| (i as f64).sqrt()).collect();
        let mut p = vec![0.0; 90];
        conditional_row(&d2, 30.0, &mut p);
        let entropy: f64 = -p
            .iter()
            .filter(|&&v| v > 0.0)
            .map(|v| v * v.ln())
            .sum::<f64>();
        assert!((entropy - 30f64.ln()).abs() < 1e-6, "{entropy}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn affinities_are_symmetric_and_sum_to_one() {
        tch::set_num_threads(1);
        let (points, _) = clustered_points(40, 4, 3, 0.5, 3);
        let p = affinities(&points, 5.0).unwrap();
        let get = |i: usize, j: usize| {
            (p.indptr[i]..p.indptr[i + 1])
                .find(|&e| p.indices[e] as usize == j)
                .map_or(0.0, |e| p.values[e])
        };
        assert!((p.values.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        for i in 0..40 {
            for e in p.indptr[i]..p.indptr[i + 1] {
                let j = p.indices[e] as usize;
                assert!((p.values[e] - get(j, i)).abs() < 1e-15 && j != i);
            }
        }
    }

    #[test]
    fn barnes_hut_is_close_to_exact_and_handles_duplicates() {
        let mut y: Vec<f64> = (0..200)
            .map(|i| ((i * 37 % 101) as f64 / 10.0).sin() * 5.0 + i as f64 * 0.01)
            .collect();
        // Two copies of point 0.
        y[2] = y[0];
        y[3] = y[1];
        let tree = QuadTree::build(&y);
        let mut stack = Vec::new();
        for i in [0usize, 1, 50] {
            let (bx, by, bz) = tree.repulsion(y[2 * i], y[2 * i + 1], 0.25, &mut stack);
            let (ex, ey, ez) = exact_repulsion(&y, i);
            assert!((bz - ez).abs() < 0.02 * ez, "{bz} vs {ez}");
            assert!(
                (bx - ex).abs() + (by - ey).abs() < 0.05 * (ex.abs() + ey.abs()) + 1e-3,
                "({bx}, {by}) vs ({ex}, {ey})"
            );
        }
        let (_, _, z) = tree.repulsion(y[0], y[1], 0.0, &mut stack);
        assert!((z - exact_repulsion(&y, 0).2).abs() < 1e-9);
    }

    #[test]
    fn clustered_data_is_laid_out_trustworthily_and_reproducibly() {
        tch::set_num_threads(1);
        let (points, labels) = clustered_points(300, 16, 6, 0.5, 7);
        let params = TsneParams {
            early_exaggeration_iter: 100,
            n_iter: 200,
            ..Default::default()
        };
        let a = tsne(&points, &params).unwrap();
        let t = trustworthiness(&points, &a.layout, 15, Distance::Euclidean).unwrap();
        assert!(t > 0.9, "trustworthiness {t}");
        assert!(knn_label_agreement(&a.layout, &labels, 15).unwrap() > 0.95);
        assert_eq!(
            a.layout,
            tsne(&points, &params).unwrap().layout,
            "not deterministic"
        );
        // A small set lowers the perplexity as openTSNE does.
        let (small, _) = clustered_points(31, 4, 2, 0.5, 1);
        assert_eq!(tsne(&small, &params).unwrap().perplexity, 10.0);
    }

    #[test]
    fn fft_repulsion_lays_out_as_trustworthily_as_barnes_hut_and_reproducibly() {
        tch::set_num_threads(1);
        let (points, labels) = clustered_points(600, 16, 6, 0.5, 11);
        let with = |method| TsneParams {
            early_exaggeration_iter: 100,
            n_iter: 250,
            method,
            ..Default::default()
        };
        let trust =
            |layout: &Matrix| trustworthiness(&points, layout, 15, Distance::Euclidean).unwrap();
        let bh = tsne(&points, &with(TsneMethod::Bh)).unwrap().layout;
        let fft = tsne(&points, &with(TsneMethod::Fft)).unwrap().layout;
        let (t_bh, t_fft) = (trust(&bh), trust(&fft));
        assert!(t_fft > t_bh - 0.01, "FFT {t_fft} vs Barnes–Hut {t_bh}");
        assert!(knn_label_agreement(&fft, &labels, 15).unwrap() > 0.95);
        assert_ne!(
            fft, bh,
            "the FFT run must not have fallen back to Barnes–Hut"
        );
        assert_eq!(
            fft,
            tsne(&points, &with(TsneMethod::Fft)).unwrap().layout,
            "FFT layout not deterministic"
        );
        assert_eq!(
            TsneMethod::Auto.resolve(FFT_FROM_POINTS - 1),
            TsneMethod::Bh
        );
        assert_eq!(TsneMethod::Auto.resolve(FFT_FROM_POINTS), TsneMethod::Fft);
        assert_eq!(TsneMethod::Bh.resolve(1_000_000), TsneMethod::Bh);
    }
}
