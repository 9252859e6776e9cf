//! Exact k-nearest-neighbour search over embedding tensors.
//!
//! Queries are taken in chunks, so memory stays bounded however large the gallery
//! is: a chunk's scores against every reference fill one buffer of at most
//! `memory_budget` bytes, a product per block of references. Scores are "smaller is
//! nearer":
//!
//! * cosine: `−q̂·r̂` (rows L2-normalised);
//! * Euclidean: `‖r‖² − 2q·r`, as the product of `[−2q, 1]` and `[r, ‖r‖²]` (one
//!   more column instead of a pass adding the norms; `‖q‖²` is the same along a row,
//!   so it is left out).
//!
//! No sort of whole rows. On an AVX-512 CPU with f32 tensors the fused kernel of
//! `dmlviz-kernels` scores a chunk tile by tile in registers and keeps each query's
//! candidates on the fly (a compare per 32 scores, a heap for the few that pass), with
//! no score buffer. Otherwise a chunk's scores fill a buffer and the candidates come
//! from two `topk`s on few values per query (group minima, then the best groups'
//! scores; see `Search::candidates`). Both select only: the results are the same.
//! A self-search (queries are the references, the same tensor, skipping themselves or
//! nothing) takes the kernel's triangle pass for its first round: each pair scored
//! once and offered to both its rows, half the products.
//!
//! **Exactness and ties.** The product's rounding depends on where an entry sits in
//! the tile (two copies of one reference may score a last bit apart), so the scores
//! only *select* candidates. The reported distance is recomputed for the candidates
//! pair by pair, by the same element-wise operations for every pair:
//! `1 − Σ q̂ᵢr̂ᵢ` (cosine) or `√Σ(qᵢ − rᵢ)²` (Euclidean, also more accurate than the
//! expanded form). Results are ordered by (that distance, reference index), so equal
//! distances — duplicated references above all — put the lower index first (a sort
//! by index, then a stable sort by distance, over the few candidates).
//!
//! The candidates are enough: a score differs from its recomputed distance by at most
//! a rounding bound `M` (from the dimension and the norms, `Scorer::margin`), so a
//! true `k`-nearest reference scores at most the `k`-th candidate's score plus `2M`.
//! Each query keeps `k + 8` candidates; when some reference left out could still be
//! within that margin (a crowd of near-ties at the `k`-th place), the query is
//! searched again keeping four times as many, up to the whole gallery.
//!
//! The bound assumes products in the tensors' own precision (on CUDA: TF32 off, as
//! libtorch's default). Works on CPU and CUDA tensors; results live on the queries'
//! device.

use super::distance::{normalize, Distance};
use crate::device::OneTorchThread;
use dmlviz_kernels::Packed;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use tch::{Device, Kind, Tensor};

/// Default bound on a chunk's score buffer, in bytes.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

/// CPU tile: chunks of 512 queries, products of 1024 references (a 2 MB output that
/// stays in cache for its reduction). Measured with `dmlviz bench knn --tile` on 2
/// cores: 256–1024 × 1024–2048 are alike; 4096-wide products or 256-wide ones are
/// 10–50% slower.
const CPU_TILE: Tile = Tile {
    queries: 512,
    references: 1024,
};

/// Candidates kept per query beyond `k` (module doc).
const EXTRA: i64 = 8;

/// References a query must not be matched with (searching a set against itself).
#[derive(Debug, Clone, Copy, Default)]
pub enum Exclude<'a> {
    /// Every reference is a candidate.
    #[default]
    Nothing,
    /// Query `i` is reference `i`: it is never its own neighbour.
    SameIndex,
    /// Per query, the index of the reference to skip (negative: none). Its length
    /// must equal the number of queries.
    Indices(&'a [i64]),
}

impl Exclude<'_> {
    /// The reference query `query` must skip, if any.
    fn of(&self, query: i64) -> Option<i64> {
        match self {
            Exclude::Nothing => None,
            Exclude::SameIndex => Some(query),
            Exclude::Indices(e) => Some(e[query as usize]).filter(|&j| j >= 0),
        }
    }

    fn is_nothing(&self) -> bool {
        matches!(self, Exclude::Nothing)
    }
}

/// How the score matrix is walked: chunks of queries, each scored against every
/// reference (a buffer of `queries × m` scores), one product per block of
/// `references` (rounded up to a multiple of 16) so that its output is still in
/// cache when reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Queries per chunk.
    pub queries: i64,
    /// References per product.
    pub references: i64,
}

impl Tile {
    /// The tile used when [`KnnOptions::tile`] is unset. CPU: chunks of 512 queries
    /// (fewer when `chunk × m` scores would exceed `memory_budget` bytes), products
    /// of 1024 references. Other devices: one product over every reference (fewer,
    /// larger kernels), and as many queries as the budget holds.
    pub fn choose(
        device: Device,
        n_references: i64,
        element_bytes: usize,
        memory_budget: usize,
    ) -> Tile {
        let per_query = whole_groups(n_references.max(1)) * element_bytes.max(1) as i64;
        let fit = (memory_budget as i64 / per_query).max(1);
        if device == Device::Cpu {
            Tile {
                queries: CPU_TILE.queries.min(fit),
                references: CPU_TILE.references.min(whole_groups(n_references.max(1))),
            }
        } else {
            Tile {
                queries: fit,
                references: n_references.max(1),
            }
        }
    }
}

/// Options of [`k_nearest_with`].
#[derive(Debug, Clone, Copy)]
pub struct KnnOptions<'a> {
    /// References each query skips.
    pub exclude: Exclude<'a>,
    /// Bound in bytes on a chunk's scores (`chunk × m`), the bulk of the search's
    /// working memory beyond its inputs and outputs (plus a normalised copy of the
    /// references for cosine). At least one query per chunk, whatever the budget.
    pub memory_budget: usize,
    /// Tile shape; `None`: [`Tile::choose`]. A given tile is used as is, even if its
    /// chunk's scores exceed `memory_budget`.
    pub tile: Option<Tile>,
}

impl Default for KnnOptions<'_> {
    fn default() -> Self {
        KnnOptions {
            exclude: Exclude::Nothing,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            tile: None,
        }
    }
}

/// Indices `[n_queries, k]` (i64) and distances `[n_queries, k]` (the queries' kind)
/// of the `k` nearest references of each query, nearest first; equal distances put
/// the lower reference index first. `k` is clamped to the number of references.
pub fn k_nearest(
    queries: &Tensor,
    references: &Tensor,
    k: i64,
    distance: Distance,
) -> (Tensor, Tensor) {
    k_nearest_with(queries, references, k, distance, &KnnOptions::default())
}

/// [`k_nearest`] with options: self-match exclusion (then `k` is clamped to the number
/// of references − 1), memory budget, tile shape.
pub fn k_nearest_with(
    queries: &Tensor,
    references: &Tensor,
    k: i64,
    distance: Distance,
    options: &KnnOptions,
) -> (Tensor, Tensor) {
    tch::no_grad(|| search(queries, references, k, distance, options, Selector::Fused))
}

/// Unit roundoff of a floating kind.
fn unit_roundoff(kind: Kind) -> f64 {
    match kind {
        Kind::Double => f64::EPSILON / 2.0,
        Kind::Half => 2f64.powi(-11),
        Kind::BFloat16 => 2f64.powi(-8),
        _ => f32::EPSILON as f64 / 2.0,
    }
}

/// The references in the form the products take, and the per-pair distance.
struct Scorer {
    distance: Distance,
    /// `[m, d]` as the distance sees them: L2-normalised (cosine) or as given.
    refs: Tensor,
    /// `[m, d′]`, contiguous, the products' right-hand side: `r̂` (cosine, `refs`
    /// itself) or `[r, ‖r‖²]` (Euclidean: one more column carries the norms, so the
    /// product yields ‖r‖² − 2q·r at once, with no pass adding a bias).
    product: Tensor,
    /// Largest reference norm (Euclidean only; 1 for cosine).
    max_norm: f64,
}

/// A block of queries in the form the products take.
struct Prepared {
    /// The queries as the distance sees them: `q̂` (cosine) or `q` (Euclidean).
    points: Tensor,
    /// The products' left-hand side, `−q̂` (cosine) or `[−2q, 1]` (Euclidean): the
    /// minus signs make "smaller is nearer"; × −2 is exact.
    lhs: Tensor,
    /// `[len, 1]` squared norms (Euclidean only).
    norms: Option<Tensor>,
    /// (reference, row) pairs the rows must skip, sorted by reference: a block finds
    /// its own by binary search instead of scanning every query.
    skip: Vec<(i64, i64)>,
}

/// The (reference, row) pairs that queries `ids` (global indices, one per row) skip.
fn skips(exclude: &Exclude, ids: impl Iterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut skip: Vec<(i64, i64)> = ids
        .enumerate()
        .filter_map(|(row, q)| exclude.of(q).map(|j| (j, row as i64)))
        .collect();
    skip.sort_unstable();
    skip
}

impl Prepared {
    /// The given rows (local indices) only.
    fn rows(&self, rows: &[i64]) -> Prepared {
        let at = Tensor::from_slice(rows).to_device(self.lhs.device());
        Prepared {
            points: self.points.index_select(0, &at),
            lhs: self.lhs.index_select(0, &at),
            norms: self.norms.as_ref().map(|n| n.index_select(0, &at)),
            skip: {
                let mut new_row = vec![-1; self.lhs.size()[0] as usize];
                for (new, &old) in rows.iter().enumerate() {
                    new_row[old as usize] = new as i64;
                }
                self.skip
                    .iter()
                    .filter(|&&(_, row)| new_row[row as usize] >= 0)
                    .map(|&(j, row)| (j, new_row[row as usize]))
                    .collect()
            },
        }
    }
}

impl Scorer {
    /// The same scorer over the same storage, for another thread (tensors are `Send`
    /// but not `Sync`: each thread holds its own handles).
    fn shallow_clone(&self) -> Scorer {
        Scorer {
            distance: self.distance,
            refs: self.refs.shallow_clone(),
            product: self.product.shallow_clone(),
            max_norm: self.max_norm,
        }
    }

    fn new(references: &Tensor, distance: Distance) -> Scorer {
        match distance {
            Distance::Cosine => {
                let refs = normalize(references).contiguous();
                Scorer {
                    distance,
                    product: refs.shallow_clone(),
                    refs,
                    max_norm: 1.0,
                }
            }
            Distance::Euclidean => {
                let norms = references.square().sum_dim_intlist(1, true, None::<Kind>);
                let max_norm = norms.max().to_kind(Kind::Double).double_value(&[]).sqrt();
                let product = Tensor::cat(&[references.shallow_clone(), norms], 1);
                let d = references.size()[1];
                Scorer {
                    distance,
                    refs: product.narrow(1, 0, d),
                    product,
                    max_norm,
                }
            }
        }
    }

    /// Queries `first_id ..` in the products' form.
    fn prepare(&self, queries: &Tensor, first_id: i64, exclude: &Exclude) -> Prepared {
        let skip = skips(exclude, first_id..first_id + queries.size()[0]);
        match self.distance {
            Distance::Cosine => {
                let points = normalize(queries);
                Prepared {
                    lhs: -&points,
                    points,
                    norms: None,
                    skip,
                }
            }
            Distance::Euclidean => Prepared {
                lhs: Tensor::cat(
                    &[
                        queries * -2.0,
                        Tensor::ones([queries.size()[0], 1], (queries.kind(), queries.device())),
                    ],
                    1,
                ),
                points: queries.shallow_clone(),
                norms: Some(queries.square().sum_dim_intlist(1, true, None::<Kind>)),
                skip,
            },
        }
    }

    /// Writes the scores of `q` against references `r0 .. r0 + len` into `out`.
    fn scores_into(&self, out: &Tensor, q: &Prepared, r0: i64, len: i64) {
        let _ = q.lhs.mm_out(out, &self.product.narrow(0, r0, len).tr());
    }

    /// `[len, 1]` (or scalar) bound on |score − distance-as-score| for any reference,
    /// doubled for safety; [`Search::solve`] widens the candidates by twice this. Dot
    /// products of `d` terms in any order err by at most γ_d·Σ|qᵢrᵢ| (γ_d ≈ d·u), the
    /// pairwise sums by as much, plus a few roundings of the final value:
    /// 8(d + 4)·u·scale, scale = (‖q‖ + max‖r‖)² for Euclidean (a squared distance),
    /// 2 for cosine.
    fn margin(&self, q: &Prepared) -> Tensor {
        let d = self.refs.size()[1] as f64;
        let unit = 8.0 * (d + 4.0) * unit_roundoff(self.refs.kind());
        match &q.norms {
            Some(norms) => (norms.sqrt() + self.max_norm).square() * unit,
            None => Tensor::from(2.0 * unit)
                .to_kind(q.lhs.kind())
                .to_device(q.lhs.device()),
        }
    }

    /// Distances `[len, c]` of the prepared queries to references `indices`
    /// `[len, c]`, pair by pair with the same operations for every pair. Euclidean
    /// values are squared (the root is taken on the kept ones only).
    fn exact(&self, q: &Prepared, indices: &Tensor) -> Tensor {
        let (len, c) = (indices.size()[0], indices.size()[1]);
        let rows = self
            .refs
            .index_select(0, &indices.reshape([-1]))
            .view([len, c, -1]);
        let p = q.points.unsqueeze(1);
        match self.distance {
            Distance::Cosine => 1.0 - (p * rows).sum_dim_intlist(-1, false, None::<Kind>),
            Distance::Euclidean => (p - rows).square().sum_dim_intlist(-1, false, None::<Kind>),
        }
    }

    /// The reported distance from [`Scorer::exact`]'s value.
    fn finish(&self, exact: Tensor) -> Tensor {
        match self.distance {
            Distance::Cosine => exact,
            Distance::Euclidean => exact.sqrt(),
        }
    }
}

/// Sets the scores of the pairs in `skip` to +∞ in a block whose columns are
/// references `r0 .. r0 + len`.
fn mask_excluded(scores: &mut Tensor, skip: &[(i64, i64)], r0: i64, len: i64) {
    let from = skip.partition_point(|&(j, _)| j < r0);
    let to = skip.partition_point(|&(j, _)| j < r0 + len);
    if from == to {
        return;
    }
    let rows: Vec<i64> = skip[from..to].iter().map(|&(_, row)| row).collect();
    let cols: Vec<i64> = skip[from..to].iter().map(|&(j, _)| j - r0).collect();
    let device = scores.device();
    let inf = Tensor::from(f64::INFINITY)
        .to_kind(scores.kind())
        .to_device(device);
    let _ = scores.index_put_(
        &[
            Some(Tensor::from_slice(&rows).to_device(device)),
            Some(Tensor::from_slice(&cols).to_device(device)),
        ],
        &inf,
        false,
    );
}

/// Orders candidates by (distance, reference index): a sort by index, then a stable
/// sort by distance.
fn order_ties(distances: &Tensor, indices: &Tensor) -> (Tensor, Tensor) {
    let (indices, by_index) = indices.sort(1, false);
    let distances = distances.gather(1, &by_index, false);
    let (distances, by_distance) = distances.sort_stable(true, 1, false);
    (indices.gather(1, &by_distance, false), distances)
}

/// References per group of the selection's first pass.
const GROUP: i64 = 16;

/// `n` rounded up to a multiple of [`GROUP`].
fn whole_groups(n: i64) -> i64 {
    (n + GROUP - 1) / GROUP * GROUP
}

/// How candidates are selected: `Fused` takes the fused kernel where it applies
/// ([`fused_references`]); `Tensor` always the score buffer (tests compare the two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selector {
    Fused,
    #[cfg_attr(not(test), allow(dead_code))]
    Tensor,
}

/// The products' right-hand side packed for the fused kernel, where it applies: f32
/// CPU tensors, an AVX-512F CPU, and scores far from f32's overflow (the kernel never
/// selects a NaN or infinite score, where `topk` would), by |lhs·rhs| ≤
/// d′·max|lhs|·max|rhs| and max|lhs| ≤ max(2·max|q|, 1) (cosine: `q̂` of a finite `q`
/// is within 1). Made once per search, shared by every chunk and worker.
fn fused_references(queries: &Tensor, scorer: &Scorer, selector: Selector) -> Option<Packed> {
    let product = &scorer.product;
    if selector != Selector::Fused
        || queries.device() != Device::Cpu
        || product.device() != Device::Cpu
        || queries.kind() != Kind::Float
        || product.kind() != Kind::Float
        || !dmlviz_kernels::available()
    {
        return None;
    }
    let (m, d) = (product.size()[0], product.size()[1]);
    let largest = |t: &Tensor| t.abs().max().double_value(&[]);
    let (q, r) = (largest(queries), largest(product));
    // `is_finite` first: NaN inputs give NaN here, which `f64::max` would hide.
    if !(q.is_finite() && r.is_finite() && d as f64 * (2.0 * q).max(1.0) * r < 1e36) {
        return None;
    }
    let rhs = Vec::<f32>::try_from(&product.reshape([-1])).ok()?;
    Packed::new(&rhs, m as usize, d as usize)
}

/// The score buffer and the settings every [`Search::solve`] of one search shares.
struct Search<'s> {
    scorer: &'s Scorer,
    /// The references for the fused kernel; `None`: the buffer path.
    packed: Option<&'s Packed>,
    /// Flat, queries per chunk × `whole_groups(m)`: a chunk's scores against every
    /// reference, reused by every chunk (a fresh allocation costs page faults). Empty
    /// on the fused path, as is `minima`.
    buffer: Tensor,
    /// Flat, a chunk's group minima: `1/GROUP` of the buffer.
    minima: Tensor,
    /// References per product, a multiple of `GROUP`.
    block: i64,
}

impl Search<'_> {
    /// Per query of `q`, its `kept` smallest scores (sorted) and their references,
    /// and a `[len, 1]` bound below which no reference left out scores (+∞ when none
    /// was left out).
    ///
    /// `topk` costs per row about as much as the product over a whole row (it copies
    /// every value into (value, index) pairs), and on short rows its per-row overhead
    /// dominates; so it runs twice per query on few values. Each product's output,
    /// still in cache, is reduced to the minima of its groups of `GROUP` references
    /// (one vectorised pass; a group is strided, see below). The `kept` smallest scores lie in at most
    /// `kept` groups, whose minima are no larger than them, so they lie in the `kept`
    /// groups with the smallest minima (up to ties, which the bound reveals): a `topk`
    /// over the `m / GROUP` minima, then one over those groups' `kept × GROUP` scores.
    ///
    /// With [`Search::packed`], the fused kernel returns the same: the `kept` smallest
    /// of its own scores (rounded otherwise, in the margin), sorted, and as bound the
    /// smallest score it left out.
    fn candidates(&self, q: &Prepared, kept: i64) -> (Tensor, Tensor, Tensor) {
        if let Some(packed) = self.packed {
            return fused_candidates(packed, q, kept);
        }
        let m = self.scorer.refs.size()[0];
        let (padded, groups) = (whole_groups(m), whole_groups(m) / GROUP);
        let len = q.lhs.size()[0];
        let (kind, device) = (q.lhs.kind(), q.lhs.device());
        let scores = self.buffer.narrow(0, 0, len * padded).view([len, padded]);
        if padded > m {
            // The last group's missing references never win.
            let _ = scores.narrow(1, m, padded - m).fill_(f64::INFINITY);
        }
        let grouped = groups >= 4 * kept;
        let minima = self.minima.narrow(0, 0, len * groups).view([len, groups]);
        for r0 in (0..m).step_by(self.block as usize) {
            let width = self.block.min(m - r0);
            let mut block = scores.narrow(1, r0, width);
            self.scorer.scores_into(&block, q, r0, width);
            mask_excluded(&mut block, &q.skip, r0, width);
            if grouped {
                let full = whole_groups(width);
                // Group c of the block: columns r0 + c + t·P, t < GROUP (P = full / GROUP);
                // the minimum runs down the columns of a [GROUP, P] view, vectorised
                // along its rows (a minimum over 16 consecutive floats is much slower).
                let _ = scores
                    .narrow(1, r0, full)
                    .view([len, GROUP, full / GROUP])
                    .amin_out(&minima.narrow(1, r0 / GROUP, full / GROUP), [1], false);
            }
        }
        let none_left = || Tensor::full([len, 1], f64::INFINITY, (kind, device));
        if !grouped {
            let (s, i) = scores.narrow(1, 0, m).topk(kept, 1, false, true);
            let floor = if kept < m {
                s.narrow(1, kept - 1, 1)
            } else {
                none_left()
            };
            return (s, i, floor);
        }
        let (group_min, group) = minima.topk(kept, 1, false, false);
        // Global group g lies in block b = g / (block / GROUP), as its group c; the
        // last block may have fewer groups than the others.
        let per_block = self.block / GROUP;
        let last = (m - 1) / self.block;
        let last_groups = groups - last * per_block;
        let b = group.floor_divide_scalar(per_block);
        let stride = b.eq(last).to_kind(Kind::Int64) * (last_groups - per_block) + per_block;
        let first = &b * self.block + (&group - &b * per_block);
        let members = Tensor::arange(GROUP, (Kind::Int64, device)).view([1, 1, GROUP]);
        let columns =
            (first.unsqueeze(2) + stride.unsqueeze(2) * members).view([len, kept * GROUP]);
        let (s, at) = scores.gather(1, &columns, false).topk(kept, 1, false, true);
        // Left out: the other groups (≥ the largest kept minimum) and the rest of the
        // kept groups (≥ the largest kept score).
        let floor = group_min.amax([1], true).minimum(&s.narrow(1, kept - 1, 1));
        // A padding column can only be kept at +∞ (then never reported); keep it in range.
        (s, columns.gather(1, &at, false).clamp_max(m - 1), floor)
    }

    /// The `k` nearest references of the queries `q` (indices, distances), keeping
    /// `kept` candidates per query (or taking `given` ones, as [`Search::candidates`]
    /// returns them) and retrying the unsure queries with more.
    fn solve(
        &self,
        q: &Prepared,
        k: i64,
        kept: i64,
        given: Option<(Tensor, Tensor, Tensor)>,
    ) -> (Tensor, Tensor) {
        let m = self.scorer.refs.size()[0];
        let (s, i, floor) = given.unwrap_or_else(|| self.candidates(q, kept));
        // Sure when every reference left out scores above the k-th + 2 margins.
        let limit = s.narrow(1, k - 1, 1) + 2.0 * self.scorer.margin(q);
        let sure = floor
            .gt_tensor(&limit)
            .logical_or(&floor.isinf())
            .squeeze_dim(1);
        // Excluded pairs scored +∞ and stay last.
        let exact = self
            .scorer
            .exact(q, &i)
            .masked_fill(&s.isinf(), f64::INFINITY);
        let (indices, distances) = order_ties(&exact, &i);
        let (mut indices, mut distances) = (
            indices.narrow(1, 0, k).contiguous(),
            self.scorer.finish(distances.narrow(1, 0, k)).contiguous(),
        );
        let unsure: Vec<i64> = Vec::try_from(
            &sure
                .logical_not()
                .nonzero()
                .reshape([-1])
                .to_device(Device::Cpu),
        )
        .expect("row indices");
        if !unsure.is_empty() {
            let (ri, rd) = self.solve(&q.rows(&unsure), k, (kept * 4).min(m), None);
            let at = Tensor::from_slice(&unsure).to_device(indices.device());
            let _ = indices.index_copy_(0, &at, &ri);
            let _ = distances.index_copy_(0, &at, &rd);
        }
        (indices, distances)
    }
}

/// [`Search::candidates`] by the fused kernel: one call on the chunk, single-threaded
/// (chunks run on rayon's workers). The excluded reference, when `kept` reaches it,
/// comes back at +∞ as from `topk`.
fn fused_candidates(packed: &Packed, q: &Prepared, kept: i64) -> (Tensor, Tensor, Tensor) {
    let len = q.lhs.size()[0];
    let lhs = Vec::<f32>::try_from(&q.lhs.reshape([-1])).expect("f32 queries");
    let mut exclude = vec![-1; len as usize];
    for &(j, row) in &q.skip {
        exclude[row as usize] = j;
    }
    let s = dmlviz_kernels::smallest(&lhs, len as usize, packed, kept as usize, &exclude);
    selection_tensors(&s)
}

/// A kernel's selection as [`Search::candidates`] returns it.
fn selection_tensors(s: &dmlviz_kernels::Selection) -> (Tensor, Tensor, Tensor) {
    let (len, kept) = (s.floors.len() as i64, s.kept as i64);
    debug_assert!(s.indices.iter().all(|&j| j >= 0), "kept ≤ m");
    (
        Tensor::from_slice(&s.scores).view([len, kept]),
        Tensor::from_slice(&s.indices).view([len, kept]),
        Tensor::from_slice(&s.floors).view([len, 1]),
    )
}

/// Whether `queries` is `references` (same storage, shape and strides), searched with
/// no exclusion or each query skipping itself: then every pair's score serves both
/// its rows, and [`triangle`] scores each pair once. Returns whether queries skip
/// themselves.
fn self_search(queries: &Tensor, references: &Tensor, exclude: &Exclude) -> Option<bool> {
    let exclude_self = match exclude {
        Exclude::Nothing => false,
        Exclude::SameIndex => true,
        Exclude::Indices(_) => return None,
    };
    (queries.data_ptr() == references.data_ptr()
        && queries.size() == references.size()
        && queries.stride() == references.stride())
    .then_some(exclude_self)
}

/// The first round's candidates of a self-search, every pair scored once
/// ([`dmlviz_kernels::Triangle`]): blocks of rows from a shared counter, one state
/// per worker, merged by [`dmlviz_kernels::gather`] chunk by chunk.
fn triangle<'p>(
    packed: &'p Packed,
    kept: i64,
    exclude_self: bool,
    distance: Distance,
    workers: usize,
) -> Vec<dmlviz_kernels::Triangle<'p>> {
    let norms = distance == Distance::Euclidean;
    let blocks = dmlviz_kernels::Triangle::blocks(packed);
    let counter = AtomicUsize::new(0);
    let work = || {
        let mut part = dmlviz_kernels::Triangle::new(packed, kept as usize, exclude_self, norms);
        loop {
            let b = counter.fetch_add(1, Ordering::Relaxed);
            if b >= blocks {
                break part;
            }
            part.run(b);
        }
    };
    if workers <= 1 || blocks <= 1 {
        vec![work()]
    } else {
        (0..workers).into_par_iter().map(|_| work()).collect()
    }
}

fn search(
    queries: &Tensor,
    references: &Tensor,
    k: i64,
    distance: Distance,
    options: &KnnOptions,
    selector: Selector,
) -> (Tensor, Tensor) {
    let (n, m) = (queries.size()[0], references.size()[0]);
    let (kind, device) = (queries.kind(), queries.device());
    if let Exclude::Indices(e) = options.exclude {
        assert_eq!(
            e.len() as i64,
            n,
            "Exclude::Indices needs one entry per query"
        );
    }
    let k = k.max(0).min(if options.exclude.is_nothing() {
        m
    } else {
        (m - 1).max(0)
    });
    if n == 0 || k == 0 {
        return (
            Tensor::zeros([n, k], (Kind::Int64, device)),
            Tensor::zeros([n, k], (kind, device)),
        );
    }
    let scorer = Scorer::new(references, distance);
    let packed = fused_references(queries, &scorer, selector);
    // On the CPU with several libtorch threads, whole query chunks go to rayon's
    // workers, libtorch on one thread in each: a few hundred chunks instead of some
    // tens of thousands of libtorch parallel regions, each ending in a barrier that
    // waits for any thread the OS has descheduled (beside one busy process on 2 cores,
    // 10 000 × 50 000 took 5.8 s that way and 2.1 s this way).
    let workers = if device == Device::Cpu {
        (tch::get_num_threads().max(1) as usize).min(rayon::current_num_threads())
    } else {
        1
    };
    let tile = options.tile.unwrap_or_else(|| {
        // Each worker holds one chunk's scores: the budget is shared.
        let budget = options.memory_budget / workers;
        Tile::choose(device, m, kind.elt_size_in_bytes(), budget)
    });
    let chunk = tile.queries.clamp(1, n);
    let kept = (k + EXTRA).min(m);
    // A self-search's first round over the triangle of pairs (retries as usual).
    let parts = packed
        .as_ref()
        .zip(self_search(queries, references, &options.exclude))
        .map(|(packed, exclude_self)| triangle(packed, kept, exclude_self, distance, workers));
    let starts: Vec<i64> = (0..n).step_by(chunk as usize).collect();
    let block = whole_groups(tile.references.max(1));
    // Chunks are taken one at a time from a shared counter, so a worker the OS holds
    // back takes fewer of them.
    let counter = AtomicUsize::new(0);
    let next = || {
        let c = counter.fetch_add(1, Ordering::Relaxed);
        (c < starts.len()).then_some(c)
    };
    let solve_chunks = |scorer: &Scorer, queries: &Tensor| {
        // The fused kernel needs no score buffer.
        let padded = if packed.is_some() { 0 } else { whole_groups(m) };
        let search = Search {
            scorer,
            packed: packed.as_ref(),
            buffer: Tensor::empty([chunk * padded], (kind, device)),
            minima: Tensor::empty([chunk * padded / GROUP], (kind, device)),
            block,
        };
        let mut solved = Vec::new();
        while let Some(c) = next() {
            let (q0, len) = (starts[c], chunk.min(n - starts[c]));
            let q = scorer.prepare(&queries.narrow(0, q0, len), q0, &options.exclude);
            let given = parts.as_ref().map(|parts| {
                let rows = q0 as usize..(q0 + len) as usize;
                selection_tensors(&dmlviz_kernels::gather(parts, rows))
            });
            solved.push((c, search.solve(&q, k, kept, given)));
        }
        solved
    };
    let mut solved = if workers <= 1 || starts.len() <= 1 {
        solve_chunks(&scorer, queries)
    } else {
        let _one = OneTorchThread::new();
        let handles: Vec<(Scorer, Tensor)> = (0..workers)
            .map(|_| (scorer.shallow_clone(), queries.shallow_clone()))
            .collect();
        handles
            .into_par_iter()
            .flat_map_iter(|(scorer, queries)| {
                // This worker's own OpenMP team size (a per-thread setting); the guard
                // above restores the caller's when all are done.
                tch::set_num_threads(1);
                solve_chunks(&scorer, &queries)
            })
            .collect::<Vec<_>>()
    };
    solved.sort_by_key(|(c, _)| *c);
    let (all_indices, all_distances): (Vec<Tensor>, Vec<Tensor>) =
        solved.into_iter().map(|(_, pair)| pair).unzip();
    (Tensor::cat(&all_indices, 0), Tensor::cat(&all_distances, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force in f64: per query, every (distance, index) sorted, excluded skipped.
    fn brute_force(
        q: &[Vec<f32>],
        r: &[Vec<f32>],
        distance: Distance,
        exclude: &Exclude,
    ) -> Vec<Vec<(f64, usize)>> {
        let norm = |a: &[f32]| a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        q.iter()
            .enumerate()
            .map(|(i, a)| {
                let mut all: Vec<(f64, usize)> = r
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| exclude.of(i as i64) != Some(*j as i64))
                    .map(|(j, b)| {
                        let d = match distance {
                            Distance::Euclidean => a
                                .iter()
                                .zip(b)
                                .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                                .sum::<f64>()
                                .sqrt(),
                            Distance::Cosine => {
                                let dot: f64 =
                                    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
                                1.0 - dot / (norm(a).max(1e-12) * norm(b).max(1e-12))
                            }
                        };
                        (d, j)
                    })
                    .collect();
                all.sort_by(|x, y| x.partial_cmp(y).unwrap());
                all
            })
            .collect()
    }

    /// Checks a search against the brute force. Float rounding may swap two
    /// references whose exact distances differ by less than `tie`, but never two at
    /// exactly equal distance (duplicates): those must come lower index first.
    fn check(
        name: &str,
        q: &Tensor,
        r: &Tensor,
        k: i64,
        distance: Distance,
        options: &KnnOptions,
        tol: f64,
    ) {
        let qv: Vec<Vec<f32>> = Vec::try_from(q).unwrap();
        let rv: Vec<Vec<f32>> = Vec::try_from(r).unwrap();
        let expected = brute_force(&qv, &rv, distance, &options.exclude);
        let (idx, dist) = k_nearest_with(q, r, k, distance, options);
        let kk = expected.first().map_or(0, |e| e.len().min(k as usize));
        assert_eq!(idx.size(), [qv.len() as i64, kk as i64], "{name}: shape");
        assert_eq!(dist.size(), idx.size(), "{name}: shape");
        if qv.is_empty() || kk == 0 {
            return;
        }
        let idx: Vec<Vec<i64>> = Vec::try_from(&idx).unwrap();
        let dist: Vec<Vec<f64>> = Vec::try_from(&dist.to_kind(Kind::Double)).unwrap();
        for (i, e) in expected.iter().enumerate() {
            let exact: std::collections::HashMap<usize, f64> =
                e.iter().map(|&(d, j)| (j, d)).collect();
            let mut seen = std::collections::HashSet::new();
            for rank in 0..kk {
                let (want_d, want_j) = e[rank];
                let got = idx[i][rank] as usize;
                assert!(
                    seen.insert(got),
                    "{name}: query {i} repeats reference {got}"
                );
                let got_exact = *exact
                    .get(&got)
                    .unwrap_or_else(|| panic!("{name}: query {i} got excluded reference {got}"));
                if got != want_j {
                    assert!(got_exact != want_d && (got_exact - want_d).abs() < tol, "{name}: query {i} rank {rank}: got {got} ({got_exact}), want {want_j} ({want_d})");
                }
                assert!(
                    (dist[i][rank] - got_exact).abs() < tol,
                    "{name}: query {i} rank {rank}: distance {} vs {got_exact}",
                    dist[i][rank]
                );
                if rank > 0 {
                    let (a, b) = (dist[i][rank - 1], dist[i][rank]);
                    assert!(
                        a < b || (a == b && idx[i][rank - 1] < idx[i][rank]),
                        "{name}: query {i} rank {rank}: order"
                    );
                }
            }
        }
    }

    /// Random rows with duplicates: every fifth reference repeats an earlier one.
    fn with_duplicates(n: i64, d: i64) -> Tensor {
        let r = Tensor::randn([n, d], (Kind::Float, Device::Cpu));
        for j in (5..n).step_by(5) {
            r.get(j).copy_(&r.get(j / 2 - 1));
        }
        r
    }

    /// Tiles small enough that queries and references both span several of them.
    const SMALL: Tile = Tile {
        queries: 7,
        references: 11,
    };

    #[test]
    fn equals_brute_force_with_ties_and_tiles() {
        tch::set_num_threads(1);
        tch::manual_seed(3);
        let q = Tensor::randn([37, 6], (Kind::Float, Device::Cpu));
        let r = with_duplicates(50, 6);
        for distance in [Distance::Euclidean, Distance::Cosine] {
            for tile in [
                None,
                Some(SMALL),
                Some(Tile {
                    queries: 1,
                    references: 1,
                }),
            ] {
                let options = KnnOptions {
                    tile,
                    ..Default::default()
                };
                for k in [1, 3, 10] {
                    check(
                        &format!("{distance:?} {tile:?} k={k}"),
                        &q,
                        &r,
                        k,
                        distance,
                        &options,
                        1e-4,
                    );
                }
            }
        }
    }

    #[test]
    fn chunks_on_rayon_workers_equal_one_thread() {
        // With two libtorch threads the query chunks go to rayon's workers (libtorch on
        // one thread in each); the answer must be the one-thread answer, bit for bit,
        // with every kind of exclusion, and the caller's thread count must come back.
        tch::manual_seed(11);
        let x = with_duplicates(300, 8);
        let skip: Vec<i64> = (0..300)
            .map(|i| if i % 3 == 0 { -1 } else { 299 - i })
            .collect();
        for distance in [Distance::Euclidean, Distance::Cosine] {
            for exclude in [
                Exclude::Nothing,
                Exclude::SameIndex,
                Exclude::Indices(&skip),
            ] {
                let options = KnnOptions {
                    exclude,
                    tile: Some(SMALL),
                    ..Default::default()
                };
                tch::set_num_threads(1);
                let (one_i, one_d) = k_nearest_with(&x, &x, 5, distance, &options);
                tch::set_num_threads(2);
                let (two_i, two_d) = k_nearest_with(&x, &x, 5, distance, &options);
                assert_eq!(tch::get_num_threads(), 2, "thread count not restored");
                assert!(
                    one_i.equal(&two_i),
                    "{distance:?} {exclude:?}: indices differ"
                );
                assert!(
                    one_d.equal(&two_d),
                    "{distance:?} {exclude:?}: distances differ"
                );
            }
        }
        tch::set_num_threads(1);
    }

    #[test]
    fn large_tiles_take_the_grouped_path() {
        tch::set_num_threads(1);
        tch::manual_seed(8);
        // Tiles of ≥ 64·(k + 8) columns, a multiple of 16: `smallest` groups them.
        let q = Tensor::randn([40, 6], (Kind::Float, Device::Cpu));
        let r = with_duplicates(3000, 6);
        let qi = Tensor::randint_low(-2, 3, [20, 3], (Kind::Float, Device::Cpu));
        let ri = Tensor::randint_low(-2, 3, [2048, 3], (Kind::Float, Device::Cpu));
        for tile in [
            None,
            Some(Tile {
                queries: 16,
                references: 1024,
            }),
        ] {
            let options = KnnOptions {
                tile,
                ..Default::default()
            };
            for distance in [Distance::Euclidean, Distance::Cosine] {
                check(
                    &format!("{distance:?} {tile:?} grouped"),
                    &q,
                    &r,
                    5,
                    distance,
                    &options,
                    1e-4,
                );
            }
            check(
                &format!("integers {tile:?} grouped"),
                &qi,
                &ri,
                6,
                Distance::Euclidean,
                &options,
                1e-6,
            );
            let same = KnnOptions {
                exclude: Exclude::SameIndex,
                tile,
                ..Default::default()
            };
            check(
                &format!("{tile:?} grouped same index"),
                &r.narrow(0, 0, 100),
                &r,
                4,
                Distance::Euclidean,
                &same,
                1e-3,
            );
        }
    }

    #[test]
    fn queries_that_are_references_find_their_duplicates_first() {
        tch::set_num_threads(1);
        tch::manual_seed(4);
        // Queries are references: a self-match is at distance 0, and so are its
        // duplicates, which must then come in index order.
        let r = with_duplicates(40, 5);
        for distance in [Distance::Euclidean, Distance::Cosine] {
            for tile in [None, Some(SMALL)] {
                let plain = KnnOptions {
                    tile,
                    ..Default::default()
                };
                check(
                    &format!("{distance:?} {tile:?} with self"),
                    &r,
                    &r,
                    4,
                    distance,
                    &plain,
                    1e-3,
                );
                let same = KnnOptions {
                    exclude: Exclude::SameIndex,
                    tile,
                    ..Default::default()
                };
                check(
                    &format!("{distance:?} {tile:?} same index"),
                    &r,
                    &r,
                    4,
                    distance,
                    &same,
                    1e-3,
                );
                let (idx, _) = k_nearest_with(&r, &r, 39, distance, &same);
                let idx: Vec<Vec<i64>> = Vec::try_from(&idx).unwrap();
                assert!(
                    idx.iter()
                        .enumerate()
                        .all(|(i, row)| !row.contains(&(i as i64))),
                    "self excluded"
                );
                // Every other query skips a reference of its own choosing; -1 skips none.
                let skip: Vec<i64> = (0..40)
                    .map(|i| if i % 2 == 0 { (i * 3) % 40 } else { -1 })
                    .collect();
                let some = KnnOptions {
                    exclude: Exclude::Indices(&skip),
                    tile,
                    ..Default::default()
                };
                check(
                    &format!("{distance:?} {tile:?} indices"),
                    &r,
                    &r,
                    5,
                    distance,
                    &some,
                    1e-3,
                );
            }
        }
    }

    #[test]
    fn integer_data_has_exact_ties_broken_by_index() {
        tch::set_num_threads(1);
        tch::manual_seed(5);
        // Small integers: every Euclidean score is exact in f32 (only the root rounds),
        // so the many equal distances must come out exactly in index order.
        let q = Tensor::randint_low(-2, 3, [30, 3], (Kind::Float, Device::Cpu));
        let r = Tensor::randint_low(-2, 3, [60, 3], (Kind::Float, Device::Cpu));
        for tile in [None, Some(SMALL)] {
            let options = KnnOptions {
                tile,
                ..Default::default()
            };
            check(
                &format!("integers {tile:?}"),
                &q,
                &r,
                8,
                Distance::Euclidean,
                &options,
                1e-6,
            );
            let (idx, _) = k_nearest_with(&q, &r, 8, Distance::Euclidean, &options);
            let (all, _) = k_nearest_with(&q, &r, 60, Distance::Euclidean, &options);
            assert!(
                idx.equal(&all.narrow(1, 0, 8)),
                "the first k of a longer search"
            );
        }
    }

    #[test]
    fn a_gallery_of_one_repeated_row_comes_back_in_index_order() {
        tch::set_num_threads(1);
        tch::manual_seed(7);
        // Every distance ties: each topk leaves out equals, so the search widens its
        // candidates until they cover the whole gallery.
        let r = Tensor::randn([1, 8], (Kind::Float, Device::Cpu)).repeat([300, 1]);
        let q = Tensor::randn([5, 8], (Kind::Float, Device::Cpu));
        for distance in [Distance::Euclidean, Distance::Cosine] {
            for tile in [None, Some(SMALL)] {
                let (idx, _) = k_nearest_with(
                    &q,
                    &r,
                    12,
                    distance,
                    &KnnOptions {
                        tile,
                        ..Default::default()
                    },
                );
                assert!(
                    idx.equal(&Tensor::arange(12, (Kind::Int64, Device::Cpu)).repeat([5, 1])),
                    "{distance:?} {tile:?}"
                );
                let (idx, _) = k_nearest_with(
                    &r,
                    &r,
                    3,
                    distance,
                    &KnnOptions {
                        exclude: Exclude::SameIndex,
                        tile,
                        ..Default::default()
                    },
                );
                let want: Vec<Vec<i64>> = (0..300)
                    .map(|i| (0..300).filter(|&j| j != i).take(3).collect())
                    .collect();
                assert_eq!(
                    Vec::<Vec<i64>>::try_from(&idx).unwrap(),
                    want,
                    "{distance:?} {tile:?} same index"
                );
                let skip = [1i64, 0, 299, -1, 2];
                let (idx, _) = k_nearest_with(
                    &q,
                    &r,
                    3,
                    distance,
                    &KnnOptions {
                        exclude: Exclude::Indices(&skip),
                        tile,
                        ..Default::default()
                    },
                );
                let want = vec![
                    vec![0, 2, 3],
                    vec![1, 2, 3],
                    vec![0, 1, 2],
                    vec![0, 1, 2],
                    vec![0, 1, 3],
                ];
                assert_eq!(
                    Vec::<Vec<i64>>::try_from(&idx).unwrap(),
                    want,
                    "{distance:?} {tile:?} indices"
                );
            }
        }
    }

    #[test]
    fn edge_cases() {
        tch::set_num_threads(1);
        tch::manual_seed(6);
        let q = Tensor::randn([9, 4], (Kind::Float, Device::Cpu));
        let r = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        for distance in [Distance::Euclidean, Distance::Cosine] {
            // k beyond the gallery: clamped, every reference in order.
            check(
                &format!("{distance:?} k > m"),
                &q,
                &r,
                50,
                distance,
                &KnnOptions::default(),
                1e-4,
            );
            let (idx, dist) = k_nearest(&q, &r, 50, distance);
            assert_eq!(idx.size(), [9, 5]);
            assert_eq!(dist.kind(), Kind::Float);
            // With exclusion the clamp leaves the excluded one out.
            let (idx, _) = k_nearest_with(
                &r,
                &r,
                50,
                distance,
                &KnnOptions {
                    exclude: Exclude::SameIndex,
                    ..Default::default()
                },
            );
            assert_eq!(idx.size(), [5, 4]);
            // No queries, no references, k = 0.
            let (idx, dist) = k_nearest(&q.narrow(0, 0, 0), &r, 3, distance);
            assert_eq!(
                (idx.size(), dist.size(), idx.kind()),
                (vec![0, 3], vec![0, 3], Kind::Int64)
            );
            let (idx, _) = k_nearest(&q, &r.narrow(0, 0, 0), 3, distance);
            assert_eq!(idx.size(), [9, 0]);
            let (idx, _) = k_nearest(&q, &r, 0, distance);
            assert_eq!(idx.size(), [9, 0]);
        }
        // Double in, double out.
        let (_, dist) = k_nearest(
            &q.to_kind(Kind::Double),
            &r.to_kind(Kind::Double),
            2,
            Distance::Cosine,
        );
        assert_eq!(dist.kind(), Kind::Double);
    }

    /// Clustered rows (tight clusters around 6 centres) where every seventh row
    /// repeats an earlier one.
    fn clustered(n: i64, d: i64) -> Tensor {
        let centres = Tensor::randn([6, d], (Kind::Float, Device::Cpu)) * 3.0;
        let which = Tensor::randint(6, [n], (Kind::Int64, Device::Cpu));
        let x = centres.index_select(0, &which)
            + Tensor::randn([n, d], (Kind::Float, Device::Cpu)) * 0.05;
        for j in (7..n).step_by(7) {
            x.get(j).copy_(&x.get(j / 3));
        }
        x
    }

    #[test]
    fn fused_kernel_equals_the_tensor_path_bit_for_bit() {
        tch::set_num_threads(1);
        tch::manual_seed(12);
        let fused = dmlviz_kernels::available();
        if !fused {
            eprintln!("no AVX-512F: both runs take the tensor path");
        }
        for d in [16, 129] {
            let x = clustered(400, d);
            let q = clustered(150, d);
            let skip: Vec<i64> = (0..150)
                .map(|i| if i % 4 == 0 { -1 } else { (i * 11) % 400 })
                .collect();
            for distance in [Distance::Euclidean, Distance::Cosine] {
                let scorer = Scorer::new(&x, distance);
                assert_eq!(
                    fused_references(&x, &scorer, Selector::Fused).is_some(),
                    fused,
                    "the fused path applies"
                );
                for tile in [
                    None,
                    Some(SMALL),
                    Some(Tile {
                        queries: 64,
                        references: 160,
                    }),
                ] {
                    for k in [1, 5, 30] {
                        let runs: [(&Tensor, Exclude); 3] = [
                            (&x, Exclude::SameIndex),
                            (&q, Exclude::Nothing),
                            (&q, Exclude::Indices(&skip)),
                        ];
                        for (queries, exclude) in runs {
                            let options = KnnOptions {
                                exclude,
                                tile,
                                ..Default::default()
                            };
                            let name = format!("d={d} {distance:?} {tile:?} k={k} {exclude:?}");
                            let (fi, fd) = tch::no_grad(|| {
                                search(queries, &x, k, distance, &options, Selector::Fused)
                            });
                            let (ti, td) = tch::no_grad(|| {
                                search(queries, &x, k, distance, &options, Selector::Tensor)
                            });
                            assert!(fi.equal(&ti), "{name}: indices differ");
                            // Bit for bit: equal as integers.
                            let bits = |t: &Tensor| {
                                Vec::<f32>::try_from(&t.reshape([-1]))
                                    .unwrap()
                                    .iter()
                                    .map(|v| v.to_bits())
                                    .collect::<Vec<u32>>()
                            };
                            assert_eq!(bits(&fd), bits(&td), "{name}: distances differ");
                        }
                    }
                }
            }
        }
        // Non-finite inputs or scores keep the tensor path (topk selects NaN and ∞
        // scores): NaN queries, and finite ones whose products overflow.
        let scorer = Scorer::new(
            &Tensor::randn([10, 4], (Kind::Float, Device::Cpu)),
            Distance::Euclidean,
        );
        let nan = Tensor::full([3, 4], f64::NAN, (Kind::Float, Device::Cpu));
        assert!(fused_references(&nan, &scorer, Selector::Fused).is_none());
        assert!(fused_references(
            &(nan.nan_to_num(0.0, None, None) + 1e38),
            &scorer,
            Selector::Fused
        )
        .is_none());
    }

    #[test]
    fn triangle_self_search_equals_the_tensor_path_bit_for_bit() {
        tch::manual_seed(13);
        let fused = dmlviz_kernels::available();
        if !fused {
            eprintln!("no AVX-512F: both runs take the tensor path");
        }
        // Two rayon workers, as on the 2-core machine (each worker keeps its own
        // state for every row, merged per chunk).
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let bits = |t: &Tensor| {
            Vec::<f32>::try_from(&t.reshape([-1]))
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<u32>>()
        };
        // Tensors are not `Sync`: the whole run inside the pool.
        two.install(|| {
            // Two of the triangle's blocks of rows (516 each).
            for d in [16, 129] {
                let x = clustered(700, d);
                for distance in [Distance::Euclidean, Distance::Cosine] {
                    let scorer = Scorer::new(&x, distance);
                    assert_eq!(
                        fused_references(&x, &scorer, Selector::Fused).is_some(),
                        fused,
                        "the fused path applies"
                    );
                    for exclude in [Exclude::SameIndex, Exclude::Nothing] {
                        assert!(self_search(&x, &x, &exclude).is_some(), "a self-search");
                        for k in [1, 5, 15, 30] {
                            // The tensor path's answer does not depend on the tile.
                            tch::set_num_threads(1);
                            let plain = KnnOptions {
                                exclude,
                                ..Default::default()
                            };
                            let (ti, td) = tch::no_grad(|| {
                                search(&x, &x, k, distance, &plain, Selector::Tensor)
                            });
                            for tile in [
                                None,
                                Some(SMALL),
                                Some(Tile {
                                    queries: 64,
                                    references: 160,
                                }),
                            ] {
                                let options = KnnOptions { tile, ..plain };
                                let name = format!("d={d} {distance:?} {tile:?} k={k} {exclude:?}");
                                for threads in [1, 2] {
                                    tch::set_num_threads(threads);
                                    let (fi, fd) = tch::no_grad(|| {
                                        search(&x, &x, k, distance, &options, Selector::Fused)
                                    });
                                    assert!(
                                        fi.equal(&ti),
                                        "{name} threads={threads}: indices differ"
                                    );
                                    assert_eq!(
                                        bits(&fd),
                                        bits(&td),
                                        "{name} threads={threads}: distances differ"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        });
        tch::set_num_threads(1);
        // A copy, a view of part, or other exclusions: not a self-search.
        let x = clustered(50, 4);
        assert!(self_search(&x, &x.copy(), &Exclude::SameIndex).is_none());
        assert!(self_search(&x.narrow(0, 0, 40), &x, &Exclude::SameIndex).is_none());
        assert!(self_search(&x, &x, &Exclude::Indices(&[0; 50])).is_none());
    }

    #[test]
    fn budget_bounds_the_tile() {
        let t = Tile::choose(Device::Cpu, 50_000, 4, DEFAULT_MEMORY_BUDGET);
        assert_eq!(t, CPU_TILE);
        let t = Tile::choose(Device::Cpu, 50_000, 4, 1 << 20);
        assert!(t.queries * whole_groups(50_000) * 4 <= 1 << 20 && t.queries >= 1);
        let t = Tile::choose(Device::Cuda(0), 50_000, 4, DEFAULT_MEMORY_BUDGET);
        assert_eq!(t.references, 50_000);
        assert!(t.queries * whole_groups(50_000) * 4 <= DEFAULT_MEMORY_BUDGET as i64);
        // A tiny budget still makes progress, one query at a time.
        assert_eq!(
            Tile::choose(Device::Cpu, 10, 4, 1),
            Tile {
                queries: 1,
                references: 16
            }
        );
    }
}
