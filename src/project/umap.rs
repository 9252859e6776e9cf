//! UMAP through `umap-rs` 0.4.5, set up as umap-learn does it:
//!
//! * the kNN graph comes from our exact search ([`crate::search::knn`]) in the run's
//!   distance, each point's own index first at distance 0 (umap-learn counts the point
//!   among its `n_neighbors`);
//! * the curve parameters `a`, `b` are fitted here by Levenberg–Marquardt, as scipy's
//!   `curve_fit` does in umap-learn (umap-rs's own fit stops short of them);
//! * the initial layout is spectral ([`super::spectral`]) or PCA, scaled to a
//!   largest coordinate of 10 with noise of 1e-4;
//! * the layout is optimised by one of two engines ([`UmapSgd`]):
//!   - [`UmapSgd::Ours`] (default): umap-learn's `optimize_layout_euclidean` epoch loop
//!     written here over umap-rs's graph — the same edge filtering (weights below
//!     `max / epochs` dropped), sampling schedule, gradients (`−2ab·d^{2(b−1)} / (1 +
//!     a·d^{2b})` attractive, `2γb / ((0.001 + d²)(1 + a·d^{2b}))` repulsive, clipped at
//!     ±4) and linear learning-rate decay, seeded: negative samples come from
//!     per-item seeded generators, drawn by multiply-shift ([`Rng::below_fast`]; a
//!     64-bit modulo per draw took an eighth of the SGD's time), their `d^{2b}` eight at a
//!     time ([`super::pow_lanes`]). Threads work on their own copies of the layout,
//!     merged every few hundred thousand edges (`optimize_layout`); one thread is
//!     reproducible;
//!   - [`UmapSgd::UmapRs`]: umap-rs's own optimiser through its generic-metric path with
//!     a 2-D Euclidean output metric. (Its Euclidean fast path divides the attractive
//!     gradient by `a·d^{2b}·d² + 1` instead of `a·d^{2b} + 1` and scatters clusters.)
//!     Profiled on 2 000 × 128 points: 94 % of UMAP's time is this path's SGD (an
//!     `ndarray` allocated per distance, two distances per positive sample), 18 s
//!     against umap-learn's 2.9 s in all — hence our engine. Not reproducible: umap-rs
//!     draws negative samples from the thread's random generator.
//!
//! Input is validated first ([`super::input::validate`]): umap-rs panics on bad input.

use super::input::{pca, validate, Matrix};
use super::pow_lanes::{pow_lanes, LANES};
use super::spectral::{spectral_layout, Graph};
use crate::data::rng::Rng;
use crate::progress::Progress;
use crate::search::knn::{k_nearest_with, Exclude, KnnOptions};
use crate::search::Distance;
use anyhow::{bail, ensure, Result};
use ndarray::{Array1, Array2, ArrayView1};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use umap_rs::{
    GraphParams, LearnedManifold, ManifoldParams, Metric, MetricType, OptimizationParams,
    Optimizer, Umap, UmapConfig,
};

/// How the layout starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UmapInit {
    /// Laplacian eigenmaps of the neighbour graph (umap-learn's default).
    Spectral,
    /// The first two principal components.
    Pca,
}

/// Which optimiser lays out the graph (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UmapSgd {
    /// umap-learn's epoch loop, written here: fast and seeded.
    Ours,
    /// umap-rs's optimiser, generic-metric path.
    UmapRs,
}

/// UMAP parameters; the defaults are umap-learn's.
#[derive(Debug, Clone, Serialize)]
pub struct UmapParams {
    /// Neighbours per point, the point itself included (15).
    pub n_neighbors: usize,
    /// Smallest distance between points in the layout (0.1).
    pub min_dist: f32,
    /// Scale of the layout (1.0).
    pub spread: f32,
    /// Initial SGD learning rate, decaying linearly to 0 (1.0).
    pub learning_rate: f32,
    /// Negative samples per positive sample (5).
    pub negative_sample_rate: usize,
    /// Epochs; `None`: 500 up to 10 000 points, else 200 (umap-learn).
    pub n_epochs: Option<usize>,
    /// Initial layout (spectral).
    pub init: UmapInit,
    /// Seed of the initial layout's noise and random parts, and of our SGD's negative samples.
    pub seed: u64,
    /// Optimiser.
    pub sgd: UmapSgd,
}

impl Default for UmapParams {
    fn default() -> Self {
        UmapParams {
            n_neighbors: 15,
            min_dist: 0.1,
            spread: 1.0,
            learning_rate: 1.0,
            negative_sample_rate: 5,
            n_epochs: None,
            init: UmapInit::Spectral,
            seed: 42,
            sgd: UmapSgd::Ours,
        }
    }
}

impl UmapParams {
    /// The epochs a run on `n` points does.
    pub fn epochs_for(&self, n: usize) -> usize {
        self.n_epochs.unwrap_or(if n <= 10_000 { 500 } else { 200 })
    }
}

/// Euclidean distance in the layout, reported as a *generic* metric so umap-rs takes
/// its correct generic gradient path (module doc).
#[derive(Debug, Clone, Copy)]
struct PlaneMetric;

impl Metric for PlaneMetric {
    fn metric_type(&self) -> MetricType {
        MetricType::Generic
    }

    fn distance(&self, a: ArrayView1<f32>, b: ArrayView1<f32>) -> (f32, Array1<f32>) {
        let diff: Array1<f32> = &a - &b;
        let d = diff.iter().map(|v| v * v).sum::<f32>().sqrt();
        // umap-learn's euclidean_grad: (x − y) / (1e-6 + d).
        (d, diff / (d + 1e-6))
    }
}

/// `a`, `b` of the layout's similarity curve `1 / (1 + a·x^{2b})`, fitted by least squares
/// to `1` below `min_dist` and `exp(−(x − min_dist)/spread)` above, on 300 points of
/// `[0, 3·spread]` (umap-learn `find_ab_params`, Levenberg–Marquardt from `(1, 1)`).
pub fn find_ab_params(spread: f32, min_dist: f32) -> (f32, f32) {
    let (spread, min_dist) = (spread as f64, min_dist as f64);
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let residuals = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| (1.0 / (1.0 + a * x.powf(2.0 * b)) - y).powi(2))
            .sum()
    };
    let (mut a, mut b, mut lambda) = (1.0f64, 1.0f64, 1e-3);
    let mut cost = residuals(a, b);
    for _ in 0..500 {
        // Normal equations JᵀJ δ = −Jᵀr.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            let p = if x > 0.0 { x.powf(2.0 * b) } else { 0.0 };
            let f = 1.0 / (1.0 + a * p);
            let r = f - y;
            let da = -p * f * f;
            let db = if x > 0.0 {
                -2.0 * a * p * x.ln() * f * f
            } else {
                0.0
            };
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let (m11, m22) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
        let det = m11 * m22 - jab * jab;
        if det.abs() < 1e-300 {
            break;
        }
        let da = (-ga * m22 + gb * jab) / det;
        let db = (-gb * m11 + ga * jab) / det;
        let trial = residuals(a + da, b + db);
        if trial < cost {
            a += da;
            b += db;
            let improvement = cost - trial;
            cost = trial;
            lambda = (lambda / 10.0).max(1e-12);
            if improvement < 1e-15 * cost.max(1e-300) {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    (a as f32, b as f32)
}

/// Each point's `k` nearest points, itself first at distance 0 (umap-learn's layout
/// of a kNN graph): `[n, k]` indices and distances. The search runs on `device`
/// (`--device`; the exact search is the same on every device).
pub fn knn_graph(
    points: &Matrix,
    k: usize,
    distance: Distance,
    device: tch::Device,
) -> Result<(Array2<u32>, Array2<f32>)> {
    let n = points.rows;
    ensure!(k >= 2 && k <= n, "{k} neighbours for {n} points");
    let options = KnnOptions {
        exclude: Exclude::SameIndex,
        ..Default::default()
    };
    let x = crate::device::onto(&points.to_tensor(), device);
    let (idx, dist) = k_nearest_with(&x, &x, (k - 1) as i64, distance, &options);
    let cpu = tch::Device::Cpu;
    let idx = Vec::<i64>::try_from(&idx.to_device(cpu).view([-1]))?;
    let dist = Vec::<f32>::try_from(&dist.to_device(cpu).to_kind(tch::Kind::Float).view([-1]))?;
    let mut indices = Array2::<u32>::zeros((n, k));
    let mut dists = Array2::<f32>::zeros((n, k));
    for i in 0..n {
        indices[(i, 0)] = i as u32;
        for c in 1..k {
            indices[(i, c)] = idx[i * (k - 1) + c - 1] as u32;
            // Cosine distances of near-copies can round below 0.
            dists[(i, c)] = dist[i * (k - 1) + c - 1].max(0.0);
        }
    }
    Ok((indices, dists))
}

/// Scales a layout to a largest coordinate of 10 and adds noise of standard
/// deviation 1e-4 (umap-learn `noisy_scale_coords`).
fn noisy_scale(layout: &mut [f32], rng: &mut Rng) {
    let max = layout.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { 10.0 / max } else { 1.0 };
    for v in layout.iter_mut() {
        *v = *v * scale + (super::normal(rng) * 1e-4) as f32;
    }
}

/// The 2-D UMAP layout of `points` (row-major, one point per row), with `distance`
/// between input points, computed on the CPU.
pub fn umap(points: &Matrix, distance: Distance, params: &UmapParams) -> Result<Matrix> {
    umap_on(
        points,
        distance,
        params,
        tch::Device::Cpu,
        &Progress::hidden(),
    )
}

/// [`umap`] with its kNN graph searched on `device` (`--device`); the rest of UMAP
/// (fuzzy graph, spectral start, SGD) runs on the CPU. `bar` names each stage.
pub fn umap_on(
    points: &Matrix,
    distance: Distance,
    params: &UmapParams,
    device: tch::Device,
    bar: &Progress,
) -> Result<Matrix> {
    validate(points, params.n_neighbors, "UMAP input")?;
    check_params(params)?;
    let n = points.rows;
    bar.stage(format!("UMAP: kNN graph of {n} points"));
    let (indices, dists) = knn_graph(points, params.n_neighbors, distance, device)?;
    let (a, b) = find_ab_params(params.spread, params.min_dist);
    let epochs = params.epochs_for(n);
    ensure!(epochs >= 1, "UMAP needs at least one epoch");
    let config = UmapConfig {
        n_components: 2,
        manifold: ManifoldParams {
            min_dist: params.min_dist,
            spread: params.spread,
            a: Some(a),
            b: Some(b),
        },
        graph: GraphParams {
            n_neighbors: params.n_neighbors,
            ..Default::default()
        },
        optimization: OptimizationParams {
            n_epochs: Some(epochs),
            learning_rate: params.learning_rate,
            negative_sample_rate: params.negative_sample_rate,
            repulsion_strength: 1.0,
        },
    };
    let umap = Umap::with_metrics(config.clone(), Box::new(PlaneMetric), Box::new(PlaneMetric));
    // umap-rs reads only the number of rows of its data argument.
    let shape_only = Array2::<f32>::zeros((n, 0));
    bar.stage("UMAP: fuzzy graph".into());
    let manifold = umap.learn_manifold(shape_only.view(), indices.view(), dists.view());
    bar.stage("UMAP: initial layout".into());
    let mut rng = Rng::new(params.seed);
    let mut init = match params.init {
        UmapInit::Spectral => with_graph(&manifold, |g| {
            spectral_layout(g, 2, &points.data, points.cols, params.seed)
        }),
        UmapInit::Pca => pca(points, 2)?.data,
    };
    if init.len() != n * 2 {
        // PCA of 1-D input: pad the second coordinate.
        init = (0..n)
            .flat_map(|i| [init.get(i).copied().unwrap_or(0.0), 0.0])
            .collect();
    }
    noisy_scale(&mut init, &mut rng);
    bar.stage(format!("UMAP: optimisation, {epochs} epochs"));
    let embedding: Vec<f32> = match params.sgd {
        UmapSgd::Ours => with_graph(&manifold, |g| {
            optimize_layout(init, g, epochs, a, b, params)
        }),
        UmapSgd::UmapRs => {
            let init = Array2::from_shape_vec((n, 2), init)?;
            let mut optimizer =
                Optimizer::new(manifold, init, epochs, &config, MetricType::Generic);
            optimizer.step_epochs(epochs, &PlaneMetric);
            optimizer
                .into_fitted(config)
                .into_embedding()
                .iter()
                .copied()
                .collect()
        }
    };
    let data = embedding;
    if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
        bail!(
            "UMAP produced a non-finite coordinate for point {} (a vertex without neighbours?)",
            pos / 2
        );
    }
    Matrix::new(n, 2, data)
}

/// Refuses parameters umap-learn would refuse (or silently misuse).
fn check_params(params: &UmapParams) -> Result<()> {
    ensure!(
        params.n_neighbors >= 2,
        "UMAP needs n_neighbors ≥ 2, got {}",
        params.n_neighbors
    );
    ensure!(
        params.min_dist >= 0.0 && params.min_dist <= params.spread && params.spread > 0.0,
        "UMAP needs 0 ≤ min_dist ≤ spread, got min_dist {} and spread {}",
        params.min_dist,
        params.spread
    );
    ensure!(
        params.learning_rate > 0.0 && params.negative_sample_rate >= 1,
        "UMAP needs a positive learning rate and negative sample rate"
    );
    Ok(())
}

/// umap-learn's gradient clip.
fn clip(v: f32) -> f32 {
    v.clamp(-4.0, 4.0)
}

/// The summed moves of a point away from up to [`LANES`] negative samples at offsets
/// `(dx, dy)` from it: umap-learn's repulsive gradient `2γb / ((0.001 + d²)(1 + a·d^{2b}))`
/// (γ = 1, its default repulsion strength) times the offset, clipped per coordinate and
/// scaled by the learning rate `alpha`. A lane at distance 0 moves nothing.
#[inline(always)]
fn repulsive_moves(dx: &[f32; LANES], dy: &[f32; LANES], a: f32, b: f32, alpha: f32) -> (f32, f32) {
    let mut d2 = [0f32; LANES];
    for l in 0..LANES {
        d2[l] = dx[l] * dx[l] + dy[l] * dy[l];
    }
    let p = pow_lanes(&d2, b);
    let (mut mx, mut my) = ([0f32; LANES], [0f32; LANES]);
    for l in 0..LANES {
        let coeff = 2.0 * b / ((0.001 + d2[l]) * (a * p[l] + 1.0));
        let coeff = if d2[l] > 0.0 { coeff } else { 0.0 };
        mx[l] = clip(coeff * dx[l]) * alpha;
        my[l] = clip(coeff * dy[l]) * alpha;
    }
    (mx.iter().sum(), my.iter().sum())
}

/// The edges the SGD samples, with their schedules: both directions of the symmetric
/// graph, weights below `max / epochs` dropped (umap-learn `make_epochs_per_sample`).
struct Edges {
    head: Vec<u32>,
    tail: Vec<u32>,
    epochs_per_sample: Vec<f64>,
}

impl Edges {
    fn of(graph: &Graph, epochs: usize) -> Edges {
        let max = graph.weights.iter().copied().fold(0f32, f32::max);
        let threshold = max / epochs as f32;
        let mut edges = Edges {
            head: Vec::new(),
            tail: Vec::new(),
            epochs_per_sample: Vec::new(),
        };
        for i in 0..graph.indptr.len() - 1 {
            for e in graph.indptr[i]..graph.indptr[i + 1] {
                let w = graph.weights[e];
                if w >= threshold && w > 0.0 {
                    edges.head.push(i as u32);
                    edges.tail.push(graph.indices[e]);
                    edges.epochs_per_sample.push(max as f64 / w as f64);
                }
            }
        }
        edges
    }
}

/// Rescales each coordinate of a 2-D layout to [0, 10] (umap-learn before its SGD).
fn rescale_to_ten(y: &mut [f32]) {
    let n = y.len() / 2;
    for c in 0..2 {
        let (lo, hi) = (0..n)
            .map(|i| y[2 * i + c])
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| {
                (l.min(v), h.max(v))
            });
        let range = hi - lo;
        for i in 0..n {
            y[2 * i + c] = if range > 0.0 {
                10.0 * (y[2 * i + c] - lo) / range
            } else {
                0.0
            };
        }
    }
}

/// Edges per work item of the SGD ([`optimize_layout`]): small enough that the threads
/// finish an epoch together, large enough that claiming an item costs nothing beside
/// its work.
const EDGES_PER_ITEM: usize = 8192;

/// Items between two merges of the threads' copies (about 260 000 edges): 10 000 points
/// merge once an epoch, 70 000 points six times, so that a thread never sees the
/// other's moves much later than umap-learn's threads would (one epoch late, the
/// 70 000-point layout's trustworthiness was 0.0027 below umap-learn's).
const ITEMS_PER_ROUND: usize = 32;

/// One work item's schedule: per edge, the epochs of its next positive and negative
/// samples.
struct ItemSchedule {
    next_sample: Vec<f64>,
    next_negative: Vec<f64>,
}

/// umap-learn's `optimize_layout_euclidean` (2-D, moving both ends of an edge) from
/// `init`, which is first rescaled to [0, 10] per coordinate.
///
/// Parallel over the threads of the current rayon pool, each on its own copy of the
/// layout. Within an epoch the threads claim items of [`EDGES_PER_ITEM`] edges from one
/// counter and move points in their own copy only; after every [`ITEMS_PER_ROUND`] items
/// (a round) every thread's moves are added to the shared layout, which each copy then
/// takes up. umap-learn's threads share one layout ("Hogwild"): tried that way here,
/// every read of a point the other core had just moved waited for its cache line, and
/// two threads ran the SGD of 10 000 points only 1.2× faster than one. A thread sees
/// the other's moves up to a round late instead, as synchronous data-parallel SGD does.
/// Each item draws from its own generator seeded by (seed, epoch, item), and the merge
/// adds the copies in thread order, but which thread takes which item varies, so only a
/// one-thread result is reproducible (as in umap-learn).
fn optimize_layout(
    mut y: Vec<f32>,
    graph: &Graph,
    epochs: usize,
    a: f32,
    b: f32,
    params: &UmapParams,
) -> Vec<f32> {
    rescale_to_ten(&mut y);
    let n = y.len() / 2;
    let edges = Edges::of(graph, epochs);
    let neg_rate = params.negative_sample_rate as f64;
    let epochs_per_negative: Vec<f64> = edges
        .epochs_per_sample
        .iter()
        .map(|e| e / neg_rate)
        .collect();
    let items: Vec<Mutex<ItemSchedule>> = edges
        .epochs_per_sample
        .chunks(EDGES_PER_ITEM)
        .zip(epochs_per_negative.chunks(EDGES_PER_ITEM))
        .map(|(sample, negative)| {
            Mutex::new(ItemSchedule {
                next_sample: sample.to_vec(),
                next_negative: negative.to_vec(),
            })
        })
        .collect();
    let two_ab = 2.0 * a * b;
    let step = |epoch: usize, item: usize, schedule: &mut ItemSchedule, y: &mut [f32]| {
        let alpha = params.learning_rate * (1.0 - epoch as f32 / epochs as f32);
        let now = epoch as f64;
        let mut rng = Rng::new(
            params.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (item as u64) << 40,
        );
        let first = item * EDGES_PER_ITEM;
        for (o, (ns, nn)) in schedule
            .next_sample
            .iter_mut()
            .zip(schedule.next_negative.iter_mut())
            .enumerate()
        {
            if *ns > now {
                continue;
            }
            let e = first + o;
            let (j, k) = (2 * edges.head[e] as usize, 2 * edges.tail[e] as usize);
            let (dx, dy) = (y[j] - y[k], y[j + 1] - y[k + 1]);
            let d2 = dx * dx + dy * dy;
            if d2 > 0.0 {
                // One powf: d^{2(b−1)} = d^{2b} / d².
                let p = d2.powf(b);
                let coeff = -two_ab * (p / d2) / (a * p + 1.0);
                let (gx, gy) = (clip(coeff * dx) * alpha, clip(coeff * dy) * alpha);
                y[j] += gx;
                y[j + 1] += gy;
                y[k] -= gx;
                y[k + 1] -= gy;
            }
            *ns += edges.epochs_per_sample[e];
            let negatives = ((now - *nn) / epochs_per_negative[e]) as usize;
            // The negatives all push from the head's position after its positive
            // move, and their moves are summed, where umap-learn applies each
            // before computing the next: one after another, every negative waits
            // for the previous one's powf and division, a latency chain: summed,
            // the SGD of 10 000 points took 1.99 s instead of 3.39 s, with the same
            // trustworthiness. Each move is at most 4α.
            let (xj, zj) = (y[j], y[j + 1]);
            let (mut sx, mut sy) = (0.0f32, 0.0f32);
            let mut left = negatives;
            while left > 0 {
                let count = left.min(LANES);
                // Unused lanes stay at distance 0, which moves nothing.
                let (mut dx, mut dy) = ([0f32; LANES], [0f32; LANES]);
                for l in 0..count {
                    let k = 2 * rng.below_fast(n as u64) as usize;
                    dx[l] = xj - y[k];
                    dy[l] = zj - y[k + 1];
                }
                let (mx, my) = repulsive_moves(&dx, &dy, a, b, alpha);
                sx += mx;
                sy += my;
                left -= count;
            }
            y[j] += sx;
            y[j + 1] += sy;
            *nn += negatives as f64 * epochs_per_negative[e];
        }
    };
    let threads = rayon::current_num_threads().clamp(1, items.len().max(1));
    let mut copies = if threads > 1 {
        vec![y.clone(); threads]
    } else {
        Vec::new()
    };
    let rounds: Vec<std::ops::Range<usize>> = (0..items.len())
        .step_by(ITEMS_PER_ROUND)
        .map(|first| first..(first + ITEMS_PER_ROUND).min(items.len()))
        .collect();
    for epoch in 0..epochs {
        for round in &rounds {
            let claimed = AtomicUsize::new(round.start);
            let work = |copy: &mut Vec<f32>| loop {
                let item = claimed.fetch_add(1, Ordering::Relaxed);
                if item >= round.end {
                    break;
                }
                let mut schedule = items[item].lock().expect("an SGD thread panicked");
                step(epoch, item, &mut schedule, copy);
            };
            if threads == 1 {
                work(&mut y);
            } else {
                copies.par_iter_mut().for_each(work);
                merge_copies(&mut y, &mut copies);
            }
        }
    }
    y
}

/// Coordinates per stretch of [`merge_copies`]' parallel pass (64 KB of each copy).
const MERGE_STRETCH: usize = 16_384;

/// The end of a parallel round: every copy started the round equal to `y`; `y` takes up
/// all their moves (`y + Σ (copy − y)`, summed in copy order) and every copy then
/// equals `y` again.
fn merge_copies(y: &mut [f32], copies: &mut [Vec<f32>]) {
    let mut stretches: Vec<(&mut [f32], Vec<&mut [f32]>)> = y
        .chunks_mut(MERGE_STRETCH)
        .map(|s| (s, Vec::new()))
        .collect();
    for copy in copies.iter_mut() {
        for (stretch, part) in stretches.iter_mut().zip(copy.chunks_mut(MERGE_STRETCH)) {
            stretch.1.push(part);
        }
    }
    stretches.par_iter_mut().for_each(|(shared, parts)| {
        for (i, s) in shared.iter_mut().enumerate() {
            let moved: f32 = parts.iter().map(|p| p[i] - *s).sum();
            *s += moved;
        }
        for part in parts.iter_mut() {
            part.copy_from_slice(shared);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_copies_take_up_every_threads_moves() {
        // Longer than one stretch, so the parallel pass's pieces are checked too.
        let n = MERGE_STRETCH + 5;
        let mut y: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut copies = vec![y.clone(), y.clone()];
        copies[0][1] += 0.5;
        copies[1][1] -= 2.0;
        copies[1][n - 1] += 3.0;
        let mut expected = y.clone();
        expected[1] -= 1.5;
        expected[n - 1] += 3.0;
        merge_copies(&mut y, &mut copies);
        assert_eq!(y, expected);
        assert!(copies.iter().all(|c| *c == expected));
    }

    #[test]
    fn curve_parameters_match_umap_learn() {
        // umap-learn 0.5: find_ab_params(1.0, 0.1) = (1.5769434603113077, 0.8950608779109733).
        let (a, b) = find_ab_params(1.0, 0.1);
        assert!(
            (a - 1.5769).abs() < 2e-3 && (b - 0.8951).abs() < 1e-3,
            "a = {a}, b = {b}"
        );
        // A larger min_dist flattens the curve's top: smaller a, larger b.
        let (a5, b5) = find_ab_params(1.0, 0.5);
        assert!(a5 < a && b5 > b, "a = {a5}, b = {b5}");
    }

    #[test]
    fn graph_starts_with_the_point_itself() {
        tch::set_num_threads(1);
        let m = Matrix::new(5, 1, vec![0.0, 1.0, 3.0, 6.0, 10.0]).unwrap();
        let (idx, dist) = knn_graph(&m, 3, Distance::Euclidean, tch::Device::Cpu).unwrap();
        // 0 and 3 tie at distance 3: the lower index first.
        assert_eq!(idx.row(2).to_vec(), vec![2, 1, 0]);
        assert_eq!(dist.row(2).to_vec(), vec![0.0, 2.0, 3.0]);
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::project::clustered_points;
    use crate::project::quality::{knn_label_agreement, trustworthiness};

    #[test]
    fn clustered_data_is_laid_out_trustworthily() {
        tch::set_num_threads(1);
        let (points, labels) = clustered_points(300, 16, 6, 0.5, 7);
        for (init, sgd) in [
            (UmapInit::Spectral, UmapSgd::Ours),
            (UmapInit::Pca, UmapSgd::Ours),
            (UmapInit::Spectral, UmapSgd::UmapRs),
        ] {
            let params = UmapParams {
                n_epochs: Some(200),
                init,
                sgd,
                ..Default::default()
            };
            let layout = umap(&points, Distance::Euclidean, &params).unwrap();
            let t = trustworthiness(&points, &layout, 15, Distance::Euclidean).unwrap();
            assert!(t > 0.9, "{init:?} {sgd:?}: trustworthiness {t}");
            assert!(knn_label_agreement(&layout, &labels, 15).unwrap() > 0.95);
            if sgd == UmapSgd::Ours {
                // Reproducible on one thread (several interleave, as umap-learn's do).
                let one = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap();
                let run = || one.install(|| umap(&points, Distance::Euclidean, &params).unwrap());
                assert_eq!(run(), run(), "not reproducible");
            }
        }
    }

    /// Two threads, each on its own copy of the layout merged every round, lay out as
    /// trustworthily as one thread on one layout (2 000 points: several work items).
    #[test]
    fn parallel_copies_lay_out_as_well_as_one_thread() {
        tch::set_num_threads(1);
        let (points, labels) = clustered_points(2000, 16, 8, 0.6, 11);
        let params = UmapParams {
            n_epochs: Some(200),
            ..Default::default()
        };
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let layout = pool.install(|| umap(&points, Distance::Euclidean, &params).unwrap());
            (
                trustworthiness(&points, &layout, 15, Distance::Euclidean).unwrap(),
                knn_label_agreement(&layout, &labels, 15).unwrap(),
            )
        };
        let ((t1, k1), (t2, k2)) = (on(1), on(2));
        assert!(t1 > 0.9, "one thread: trustworthiness {t1}");
        assert!(t2 > t1 - 0.01, "two threads {t2} against one {t1}");
        assert!(
            k2 > k1 - 0.02,
            "label agreement: two threads {k2}, one {k1}"
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let (mut points, _) = clustered_points(15, 4, 2, 0.5, 1);
        let err = umap(&points, Distance::Euclidean, &UmapParams::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("15 points") && err.contains("more than 15"),
            "{err}"
        );
        points.data[9] = f32::NAN;
        let params = UmapParams {
            n_neighbors: 5,
            ..Default::default()
        };
        assert!(umap(&points, Distance::Euclidean, &params)
            .unwrap_err()
            .to_string()
            .contains("row 2"));
    }
}

/// Calls `f` with the manifold's fuzzy graph as the CSR view our spectral layout and
/// optimiser read.
fn with_graph<R>(manifold: &LearnedManifold, f: impl FnOnce(&Graph) -> R) -> R {
    let graph = manifold.graph();
    let indptr = graph.indptr();
    f(&Graph {
        indptr: indptr.raw_storage(),
        indices: graph.indices(),
        weights: graph.data(),
    })
}
