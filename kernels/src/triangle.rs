//! The self-search: the packed references against themselves, each pair scored once.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::packed::Packed;
use crate::selection::Selection;
#[cfg(target_arch = "x86_64")]
use crate::packed::tile;
#[cfg(target_arch = "x86_64")]
use crate::selection::Rows;
#[cfg(target_arch = "x86_64")]
use crate::simd::{below, lanes, splat};
use crate::PANEL;
#[cfg(target_arch = "x86_64")]
use crate::{GROUP_TILES, ROWS};

/// Rows per block of a [`Triangle`] pass: the tiles of one group.
#[cfg(target_arch = "x86_64")]
const BLOCK_ROWS: usize = GROUP_TILES * ROWS;

/// One worker's share of a self-search, where the queries are the packed references
/// themselves: each unordered pair is scored once, in the tile of the lower row's
/// block, and offered to both rows (`[x, ‖x‖²]` scores `‖x_j‖² − 2x_i·x_j` for row
/// `i` and `‖x_i‖² − 2x_i·x_j` for row `j`; cosine's `−x̂_i·x̂_j` serves both). The
/// products `−2x_i[c]·x_j[c]` are exact and summed in component order, so a pair
/// scores the same bits whichever of its rows is the query.
///
/// Every worker keeps state for every row (the column side reaches rows of other
/// workers' blocks); [`gather`] merges the workers' states row by row.
pub struct Triangle<'p> {
    packed: &'p Packed,
    kept: usize,
    exclude_self: bool,
    norms: bool,
    #[cfg(target_arch = "x86_64")]
    rows: Rows,
    /// Per panel, the lane-wise minimum of the column-side scores that failed the
    /// vector compare.
    #[cfg(target_arch = "x86_64")]
    col_low: Vec<[__m512; 2]>,
}

impl<'p> Triangle<'p> {
    /// An empty state over the references of `packed` as queries too, keeping `kept ≥
    /// 1` candidates per row. `norms`: the last component of the packed references
    /// is their squared norm (`[x, ‖x‖²]`, Euclidean); otherwise the rows are `x̂`
    /// (cosine, lhs `−x̂`). `exclude_self`: row `i` skips reference `i`.
    pub fn new(packed: &'p Packed, kept: usize, exclude_self: bool, norms: bool) -> Self {
        assert!(kept >= 1, "kept = 0");
        assert!(
            !norms || packed.d >= 2,
            "norms need a component beside them"
        );
        #[cfg(target_arch = "x86_64")]
        {
            let m = packed.m;
            let padded = m.div_ceil(PANEL) * PANEL;
            // SAFETY: a `Packed` exists only where AVX-512F was detected.
            let inf = unsafe { splat(f32::INFINITY) };
            let mut threshold = vec![f32::INFINITY; padded];
            // Padding lanes never pass the column compare.
            threshold[m..].fill(f32::NEG_INFINITY);
            Triangle {
                packed,
                kept,
                exclude_self,
                norms,
                rows: Rows {
                    kept,
                    values: vec![0.0; m * kept],
                    indices: vec![0; m * kept],
                    count: vec![0; m],
                    threshold,
                    low: vec![f32::INFINITY; m],
                    low_lanes: vec![inf; m],
                },
                col_low: vec![[inf; 2]; padded / PANEL],
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            unreachable!("Packed::new returns None off x86-64")
        }
    }

    /// Blocks of rows to [`Triangle::run`], each once, by any worker: block `b` costs
    /// about `m − b·BLOCK` columns, so taking them in order from a shared counter
    /// balances the workers.
    pub fn blocks(packed: &Packed) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            packed.m.div_ceil(BLOCK_ROWS)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            unreachable!("Packed::new returns None off x86-64")
        }
    }

    /// Scores block `block`'s rows against every reference from the block on.
    pub fn run(&mut self, block: usize) {
        assert!(block < Self::blocks(self.packed), "block {block}");
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Packed` exists only where AVX-512F was detected.
        unsafe {
            triangle_block(self, block)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn triangle_block(tri: &mut Triangle, block: usize) {
    let packed = tri.packed;
    let (m, dp) = (packed.m, packed.d);
    let (dot, scale) = if tri.norms {
        (dp - 1, -2.0)
    } else {
        (dp, -1.0)
    };
    let r0 = block * BLOCK_ROWS;
    let r1 = (r0 + BLOCK_ROWS).min(m);
    let tiles = (r1 - r0).div_ceil(ROWS);
    // The block's rows as lhs (−2x or −x̂, exact), component-major per tile, taken
    // from the panels so both sides are the same numbers; and their norms.
    let mut a = vec![[0f32; ROWS]; tiles * dot];
    let mut norms = vec![0f32; tiles * ROWS];
    for i in r0..r1 {
        let (p, l) = (i / PANEL, i % PANEL);
        let (t, r) = ((i - r0) / ROWS, (i - r0) % ROWS);
        for c in 0..dot {
            a[t * dot + c][r] = scale * lanes(packed.panels[p * dp + c][l / 16])[l % 16];
        }
        if tri.norms {
            norms[i - r0] = lanes(packed.panels[p * dp + dot][l / 16])[l % 16];
        }
    }
    let inf = _mm512_set1_ps(f32::INFINITY);
    let zero = _mm512_setzero_ps();
    let rows = &mut tri.rows;
    for p in r0 / PANEL..m.div_ceil(PANEL) {
        let b = &packed.panels[p * dp..p * dp + dot];
        let bias = if tri.norms {
            packed.panels[p * dp + dot]
        } else {
            [zero; 2]
        };
        let j0 = p * PANEL;
        let padding = if m - j0 >= PANEL { 0 } else { !below(m - j0) };
        for t in 0..tiles {
            let i0 = r0 + t * ROWS;
            if j0 + PANEL <= i0 {
                // Every pair below the diagonal: scored in the other rows' block.
                continue;
            }
            let diagonal = j0 < i0 + ROWS;
            let scores = tile(&a[t * dot..(t + 1) * dot], b);
            let mut column = [inf; 2];
            // The column-side scores (+∞ where not offered), for the rare lanes that
            // pass.
            let mut cols = [[inf; 2]; ROWS];
            for (r, acc) in scores.iter().enumerate() {
                let i = i0 + r;
                if i >= r1 {
                    break;
                }
                let (mut s0, mut s1) = (acc[0], acc[1]);
                let (mut c0, mut c1) = (acc[0], acc[1]);
                if tri.norms {
                    s0 = _mm512_add_ps(s0, bias[0]);
                    s1 = _mm512_add_ps(s1, bias[1]);
                    let n = _mm512_set1_ps(norms[i - r0]);
                    c0 = _mm512_add_ps(c0, n);
                    c1 = _mm512_add_ps(c1, n);
                }
                // Row side: references j ≥ i (j > i when excluding self).
                let mut out = padding;
                if diagonal {
                    let from = (i + tri.exclude_self as usize).saturating_sub(j0);
                    out |= below(from);
                    // Column side: j > i only, so a pair reaches each row once.
                    let col_out = below((i + 1).saturating_sub(j0));
                    c0 = _mm512_mask_mov_ps(c0, col_out as u16, inf);
                    c1 = _mm512_mask_mov_ps(c1, (col_out >> 16) as u16, inf);
                }
                column[0] = _mm512_min_ps(column[0], c0);
                column[1] = _mm512_min_ps(column[1], c1);
                cols[r] = [c0, c1];
                rows.take_panel(i, [s0, s1], out, j0);
            }
            // Column side: one compare per reference for the tile's rows.
            // SAFETY: `threshold` is padded to whole panels.
            let (t0, t1) = unsafe {
                let at = rows.threshold.as_ptr().add(j0);
                (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)))
            };
            let k0 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(column[0], t0);
            let k1 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(column[1], t1);
            let low = &mut tri.col_low[p];
            if k0 | k1 == 0 {
                low[0] = _mm512_min_ps(low[0], column[0]);
                low[1] = _mm512_min_ps(low[1], column[1]);
                continue;
            }
            // Rare: per row, the scores below their reference's threshold are offered
            // one by one, the others lower the lanes' floors. (Rows past the block's
            // end hold +∞.)
            for (r, [c0, c1]) in cols.into_iter().enumerate() {
                let m0 = _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(k0, c0, t0);
                let m1 = _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(k1, c1, t1);
                low[0] = _mm512_mask_min_ps(low[0], !m0, low[0], c0);
                low[1] = _mm512_mask_min_ps(low[1], !m1, low[1], c1);
                let mut bits = m0 as u32 | (m1 as u32) << 16;
                if bits == 0 {
                    continue;
                }
                let mut lanes = [0f32; PANEL];
                // SAFETY: 32 f32 fit in `lanes`.
                unsafe {
                    _mm512_storeu_ps(lanes.as_mut_ptr(), c0);
                    _mm512_storeu_ps(lanes.as_mut_ptr().add(16), c1);
                }
                while bits != 0 {
                    let l = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    rows.offer(j0 + l, lanes[l], (i0 + r) as u32);
                }
            }
        }
    }
}

/// The merged candidates of rows `rows` over every worker's [`Triangle`] (each
/// pair was offered to one of them): per row, the `kept` smallest of the workers'
/// candidates, and as floor the smallest of their floors and of the candidates the
/// merge leaves out.
pub fn gather(parts: &[Triangle], rows: std::ops::Range<usize>) -> Selection {
    let first = parts.first().expect("one part at least");
    let (kept, m) = (first.kept, first.packed.m);
    assert!(rows.end <= m, "rows {rows:?} of {m}");
    let len = rows.len();
    let mut selection = Selection {
        kept,
        scores: Vec::with_capacity(len * kept),
        indices: Vec::with_capacity(len * kept),
        floors: Vec::with_capacity(len),
    };
    #[cfg(target_arch = "x86_64")]
    {
        let mut pairs: Vec<(f32, u32)> = Vec::with_capacity(kept * parts.len());
        for row in rows {
            pairs.clear();
            let mut floor = f32::INFINITY;
            for part in parts {
                let r = &part.rows;
                let heap = row * kept..row * kept + r.count[row];
                pairs.extend(
                    r.values[heap.clone()]
                        .iter()
                        .copied()
                        .zip(r.indices[heap].iter().copied()),
                );
                // SAFETY: a `Packed` exists only where AVX-512F was detected.
                let (lane_low, col) = unsafe {
                    (
                        _mm512_reduce_min_ps(r.low_lanes[row]),
                        lanes(part.col_low[row / PANEL][(row % PANEL) / 16])[row % 16],
                    )
                };
                floor = floor.min(r.low[row]).min(lane_low).min(col);
            }
            pairs.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            if let Some(&(v, _)) = pairs.get(kept) {
                floor = floor.min(v);
            }
            pairs.truncate(kept);
            selection.scores.extend(pairs.iter().map(|p| p.0));
            selection.indices.extend(pairs.iter().map(|p| p.1 as i64));
            let filled = pairs.len();
            selection.indices.extend((filled..kept).map(|slot| {
                if slot == filled && first.exclude_self {
                    row as i64
                } else {
                    -1
                }
            }));
            selection
                .scores
                .resize(selection.indices.len(), f32::INFINITY);
            selection.floors.push(floor);
        }
    }
    selection
}
