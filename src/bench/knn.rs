//! Nearest-neighbour search benchmark: [`k_nearest_with`] beside the plain way, one
//! `matmul` over the whole query × reference matrix and one `topk`, on the same data
//! in the same run; both must find the same neighbours.
//!
//! Data: `clusters` Gaussian centres (unit variance per coordinate), each point a
//! centre plus noise of standard deviation 0.5, L2-normalised; queries and references
//! drawn from the same centres (as `scripts/bench-faiss.py` does for FAISS).

use crate::device::{onto, synchronize};
use crate::search::distance::normalize;
use crate::search::knn::{k_nearest_with, KnnOptions, Tile};
use crate::search::Distance;
use anyhow::{ensure, Result};
use serde::Serialize;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What to measure.
#[derive(Debug, Clone)]
pub struct KnnBenchOptions {
    /// Number of queries.
    pub queries: i64,
    /// Number of references (the gallery).
    pub references: i64,
    /// Embedding dimension.
    pub dim: i64,
    /// Neighbours per query.
    pub k: i64,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// Gaussian centres the points are drawn around.
    pub clusters: i64,
    /// Timed runs of each method (the best counts); one untimed warm-up precedes them.
    pub repeats: usize,
    /// Seed of the synthetic data.
    pub seed: i64,
    /// Tile of our search; `None`: its default.
    pub tile: Option<Tile>,
    /// Where the search runs (`--device`).
    pub device: Device,
}

impl Default for KnnBenchOptions {
    fn default() -> Self {
        KnnBenchOptions {
            queries: 10_000,
            references: 50_000,
            dim: 128,
            k: 10,
            threads: 2,
            clusters: 100,
            repeats: 3,
            seed: 0,
            tile: None,
            device: Device::Cpu,
        }
    }
}

/// One distance's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct KnnBenchRow {
    /// "cosine" or "euclidean".
    pub distance: String,
    /// Number of queries.
    pub queries: i64,
    /// Number of references.
    pub references: i64,
    /// Embedding dimension.
    pub dim: i64,
    /// Neighbours per query (clamped to the references).
    pub k: i64,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// Tile of our search, queries × references.
    pub tile: String,
    /// Our search, best of the repeats, seconds.
    pub ours_s: f64,
    /// Whole-matrix matmul + topk, best of the repeats, seconds.
    pub reference_s: f64,
    /// reference ÷ ours: above 1, ours is faster.
    pub speedup: f64,
    /// Share of (query, rank) places where both found the same reference.
    pub same_index_share: f64,
    /// Largest distance gap where they differ (a tie within float rounding when tiny).
    pub max_gap_where_different: f64,
}

/// Distance gap below which two different neighbours count as a tie (rounding of
/// the two computations differs slightly).
const TIE: f64 = 1e-5;

/// `n` L2-normalised points around `centres`.
pub fn clustered(centres: &Tensor, n: i64) -> Tensor {
    let labels = Tensor::randint(centres.size()[0], [n], (Kind::Int64, Device::Cpu));
    let x = centres.index_select(0, &labels)
        + 0.5 * Tensor::randn([n, centres.size()[1]], (Kind::Float, Device::Cpu));
    normalize(&x).contiguous()
}

/// The plain way: every score at once, then one `topk`.
fn whole_matrix(
    queries: &Tensor,
    references: &Tensor,
    k: i64,
    distance: Distance,
) -> (Tensor, Tensor) {
    tch::no_grad(|| match distance {
        Distance::Cosine => {
            let (s, i) = normalize(queries)
                .mm(&normalize(references).tr())
                .topk(k, 1, true, true);
            (i, 1.0 - s)
        }
        Distance::Euclidean => {
            let rr = references
                .square()
                .sum_dim_intlist(1, false, None::<Kind>)
                .unsqueeze(0);
            let qq = queries.square().sum_dim_intlist(1, true, None::<Kind>);
            let (s, i) = rr
                .addmm(&(queries * -2.0), &references.tr())
                .topk(k, 1, false, true);
            (i, (s + qq).clamp_min(0.0).sqrt())
        }
    })
}

fn seconds(device: Device, f: impl FnOnce() -> (Tensor, Tensor)) -> (f64, (Tensor, Tensor)) {
    synchronize(device);
    let start = Instant::now();
    let out = f();
    synchronize(device);
    (start.elapsed().as_secs_f64(), out)
}

/// Measures both distances on `opts.device`.
pub fn run(opts: &KnnBenchOptions) -> Result<Vec<KnnBenchRow>> {
    ensure!(
        opts.queries > 0 && opts.references > 0 && opts.dim > 0 && opts.k > 0,
        "sizes and k must be positive"
    );
    tch::set_num_threads(opts.threads);
    tch::manual_seed(opts.seed);
    let centres = Tensor::randn([opts.clusters.max(1), opts.dim], (Kind::Float, Device::Cpu));
    let references = onto(&clustered(&centres, opts.references), opts.device);
    let queries = onto(&clustered(&centres, opts.queries), opts.device);
    let k = opts.k.min(opts.references);
    let options = KnnOptions {
        tile: opts.tile,
        ..Default::default()
    };
    let tile = opts
        .tile
        .unwrap_or_else(|| Tile::choose(opts.device, opts.references, 4, options.memory_budget));

    let mut rows = Vec::new();
    for distance in [Distance::Cosine, Distance::Euclidean] {
        // Warm-up: thread pool, allocator, lazily loaded kernels.
        let warm = queries.narrow(0, 0, opts.queries.min(256));
        let _ = k_nearest_with(&warm, &references, k, distance, &options);
        let _ = whole_matrix(&warm, &references, k, distance);
        let (mut ours_s, mut reference_s) = (f64::INFINITY, f64::INFINITY);
        let mut last = None;
        // Alternating runs, so a busy machine slows both alike.
        for _ in 0..opts.repeats.max(1) {
            let (t, ours) = seconds(opts.device, || {
                k_nearest_with(&queries, &references, k, distance, &options)
            });
            ours_s = ours_s.min(t);
            let (t, reference) = seconds(opts.device, || {
                whole_matrix(&queries, &references, k, distance)
            });
            reference_s = reference_s.min(t);
            last = Some((ours, reference));
        }
        let ((oi, od), (ri, rd)) = last.expect("at least one repeat");
        let same = oi.eq_tensor(&ri);
        let same_index_share = same
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        let gap = (od.to_kind(Kind::Double) - rd.to_kind(Kind::Double))
            .abs()
            .masked_fill(&same, 0.0);
        let max_gap_where_different = gap.max().double_value(&[]);
        ensure!(
            max_gap_where_different <= TIE,
            "{distance:?}: the two searches disagree beyond ties (distance gap {max_gap_where_different:e})"
        );
        rows.push(KnnBenchRow {
            distance: format!("{distance:?}").to_lowercase(),
            queries: opts.queries,
            references: opts.references,
            dim: opts.dim,
            k,
            threads: opts.threads,
            tile: format!("{}x{}", tile.queries, tile.references),
            ours_s,
            reference_s,
            speedup: reference_s / ours_s,
            same_index_share,
            max_gap_where_different,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_agrees_with_the_whole_matrix() {
        let opts = KnnBenchOptions {
            queries: 300,
            references: 2000,
            dim: 16,
            k: 5,
            threads: 1,
            repeats: 1,
            tile: Some(Tile {
                queries: 64,
                references: 512,
            }),
            ..Default::default()
        };
        let rows = run(&opts).unwrap();
        assert_eq!(rows.len(), 2);
        for r in rows {
            assert!(r.same_index_share > 0.99, "{r:?}");
            assert!(r.ours_s > 0.0 && r.reference_s > 0.0);
        }
    }
}
