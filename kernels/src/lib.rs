//! The fused score-and-select CPU kernel of dmlviz's exact kNN search
//! (`dmlviz::search::knn`): per query row, the `kept` smallest scores `lhs · rhs`
//! against every reference, with their indices, and the floor (the smallest score
//! left out), computed without a buffer of scores.
//!
//! The references are packed once into panels of [`PANEL`] (32 references × `d`,
//! component-major). A tile of 12 query rows × one panel is accumulated in 24 AVX-512
//! registers, each score one chain of f32 FMAs over its `d` components in order (so
//! a pair scores the same wherever it sits). Then each row compares its 32 fresh
//! scores with its threshold, the largest of its current candidates (+∞ until it holds
//! `kept`): usually none passes, and the scores only lower the row's running minimum
//! of what was left out; the few that pass enter the row's max-heap of candidates,
//! whose evicted top joins that minimum.
//!
//! [`Triangle`] searches the packed references against themselves, each pair once.
//!
//! Its own crate so that it is built optimised whatever dmlviz's own profile is.
//! Off x86-64, or on a CPU without AVX-512F, [`Packed::new`] returns `None` and the
//! caller keeps its own path.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// References per panel (two AVX-512 registers of f32).
pub const PANEL: usize = 32;

/// Query rows per tile: 12 × 2 accumulators leave 8 of the 32 registers for the
/// panel's two vectors and the broadcasts.
#[cfg(target_arch = "x86_64")]
const ROWS: usize = 12;

/// Tiles of rows walked per panel: the panel (16 KB at d = 128) stays in L1 while
/// the rows' packed queries (about 256 KB) come from L2; larger chunks are taken in
/// groups of this many tiles.
#[cfg(target_arch = "x86_64")]
const GROUP_TILES: usize = 43;

/// Whether this CPU runs the kernel (x86-64 with AVX-512F).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The products' right-hand side `[m, d]` in panels, made once per search and
/// shared by every chunk of queries (and thread).
pub struct Packed {
    m: usize,
    d: usize,
    /// Panel `p`, component `c` at `p·d + c`: references `32p .. 32p + 32` (zeros
    /// beyond `m`).
    #[cfg(target_arch = "x86_64")]
    panels: Vec<[__m512; 2]>,
}

impl Packed {
    /// Packs `rhs`, `[m, d]` row-major; `None` where the kernel does not run
    /// ([`available`]). Needs `m ≥ 1`, `d ≥ 1`, `m < 2³²`.
    pub fn new(rhs: &[f32], m: usize, d: usize) -> Option<Packed> {
        assert!(m >= 1 && d >= 1, "{m} references of dimension {d}");
        assert_eq!(rhs.len(), m * d, "rhs is not [m, d]");
        assert!(u32::try_from(m).is_ok(), "{m} references");
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: AVX-512F was detected just above.
            let panels = unsafe { pack(rhs, m, d) };
            return Some(Packed { m, d, panels });
        }
        None
    }

    /// References `m`.
    pub fn references(&self) -> usize {
        self.m
    }

    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.d
    }
}

/// Per query row: its `kept` candidates and its floor.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Candidates per row.
    pub kept: usize,
    /// `[len, kept]` row-major: each row's smallest scores, ascending (equal scores by
    /// index), then +∞ in the slots left when fewer than `kept` references remain.
    pub scores: Vec<f32>,
    /// `[len, kept]`: their references; in the +∞ slots, the row's excluded reference
    /// first (so `kept = m` lists every reference once), then −1.
    pub indices: Vec<i64>,
    /// `[len]`: the smallest score among the references a row left out (not the
    /// excluded one); +∞ when none was left out.
    pub floors: Vec<f32>,
}

/// Per row of `lhs` (`[len, d]` row-major), the `kept ≥ 1` smallest scores `lhs ·
/// rhs` over the packed references, skipping reference `exclude[row]` where that is
/// in range (negative: none; an empty `exclude`: none for every row).
///
/// Scores are sums of f32 FMAs in component order; they must be finite (a NaN or
/// infinite score is never a candidate), which the caller ensures by bounding the
/// inputs' magnitudes. Single-threaded: callers run chunks in parallel.
pub fn smallest(
    lhs: &[f32],
    len: usize,
    packed: &Packed,
    kept: usize,
    exclude: &[i64],
) -> Selection {
    assert!(kept >= 1, "kept = 0");
    assert_eq!(lhs.len(), len * packed.d, "lhs is not [len, d]");
    assert!(
        exclude.is_empty() || exclude.len() == len,
        "one exclusion per row"
    );
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a `Packed` exists only where AVX-512F was detected (`Packed::new`).
        unsafe { select(lhs, len, packed, kept, exclude) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        unreachable!("Packed::new returns None off x86-64")
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn vector(x: &[f32; 16]) -> __m512 {
    _mm512_setr_ps(
        x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13],
        x[14], x[15],
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pack(rhs: &[f32], m: usize, d: usize) -> Vec<[__m512; 2]> {
    let panels = m.div_ceil(PANEL);
    let mut out = Vec::with_capacity(panels * d);
    let mut lanes = [[0f32; 16]; 2];
    for p in 0..panels {
        for c in 0..d {
            for (l, x) in lanes.as_flattened_mut().iter_mut().enumerate() {
                let j = p * PANEL + l;
                *x = if j < m { rhs[j * d + c] } else { 0.0 };
            }
            out.push([vector(&lanes[0]), vector(&lanes[1])]);
        }
    }
    out
}

/// Scores of a tile: `a` is 12 rows' components, component-major; `b` a panel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn tile(a: &[[f32; ROWS]], b: &[[__m512; 2]]) -> [[__m512; 2]; ROWS] {
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    for (ac, bc) in a.iter().zip(b) {
        for (sum, &x) in acc.iter_mut().zip(ac) {
            let x = _mm512_set1_ps(x);
            sum[0] = _mm512_fmadd_ps(x, bc[0], sum[0]);
            sum[1] = _mm512_fmadd_ps(x, bc[1], sum[1]);
        }
    }
    acc
}

/// Every row's candidates (a max-heap of `kept` slots) and what it left out.
#[cfg(target_arch = "x86_64")]
struct Rows {
    kept: usize,
    /// `[len, kept]` heaps: the largest candidate first.
    values: Vec<f32>,
    indices: Vec<u32>,
    count: Vec<usize>,
    /// The heap's top once full, +∞ before: a score passes when below it.
    threshold: Vec<f32>,
    /// Minimum of the scores left out one by one (rejected after passing the
    /// vector compare, or evicted).
    low: Vec<f32>,
    /// Lane-wise minimum of the scores rejected by the vector compare.
    low_lanes: Vec<__m512>,
}

#[cfg(target_arch = "x86_64")]
impl Rows {
    /// Offers reference `j` at score `v` to row `row`.
    fn offer(&mut self, row: usize, v: f32, j: u32) {
        let kept = self.kept;
        let heap = row * kept..(row + 1) * kept;
        let (values, indices) = (&mut self.values[heap.clone()], &mut self.indices[heap]);
        let count = self.count[row];
        if count < kept {
            let mut at = count;
            while at > 0 {
                let parent = (at - 1) / 2;
                if values[parent] >= v {
                    break;
                }
                values[at] = values[parent];
                indices[at] = indices[parent];
                at = parent;
            }
            values[at] = v;
            indices[at] = j;
            self.count[row] = count + 1;
            if count + 1 == kept {
                self.threshold[row] = values[0];
            }
        } else if v < values[0] {
            self.low[row] = self.low[row].min(values[0]);
            let mut at = 0;
            loop {
                let left = 2 * at + 1;
                if left >= kept {
                    break;
                }
                let right = left + 1;
                let child = if right < kept && values[right] > values[left] {
                    right
                } else {
                    left
                };
                if values[child] <= v {
                    break;
                }
                values[at] = values[child];
                indices[at] = indices[child];
                at = child;
            }
            values[at] = v;
            indices[at] = j;
            self.threshold[row] = values[0];
        } else {
            self.low[row] = self.low[row].min(v);
        }
    }

    /// One row's 32 fresh scores of the panel at `j0`: the lanes set in `out` (padding,
    /// the excluded reference) count as +∞; the rest either pass the row's threshold
    /// and are offered, or lower the running minimum of what was left out.
    #[target_feature(enable = "avx512f")]
    fn take_panel(&mut self, row: usize, scores: [__m512; 2], out: u32, j0: usize) {
        let [mut s0, mut s1] = scores;
        if out != 0 {
            let inf = _mm512_set1_ps(f32::INFINITY);
            s0 = _mm512_mask_mov_ps(s0, out as u16, inf);
            s1 = _mm512_mask_mov_ps(s1, (out >> 16) as u16, inf);
        }
        let limit = _mm512_set1_ps(self.threshold[row]);
        let k0 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(s0, limit);
        let k1 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(s1, limit);
        let low = self.low_lanes[row];
        if k0 | k1 == 0 {
            self.low_lanes[row] = _mm512_min_ps(low, _mm512_min_ps(s0, s1));
        } else {
            let low = _mm512_mask_min_ps(low, !k0, low, s0);
            self.low_lanes[row] = _mm512_mask_min_ps(low, !k1, low, s1);
            self.offer_lanes(row, s0, k0, j0);
            self.offer_lanes(row, s1, k1, j0 + 16);
        }
    }

    /// Offers the lanes of `s` set in `passed` (references `j0 + lane`).
    #[target_feature(enable = "avx512f")]
    fn offer_lanes(&mut self, row: usize, s: __m512, passed: u16, j0: usize) {
        let mut bits = passed;
        while bits != 0 {
            let lane = bits.trailing_zeros();
            bits &= bits - 1;
            let v = _mm512_cvtss_f32(_mm512_permutexvar_ps(_mm512_set1_epi32(lane as i32), s));
            self.offer(row, v, (j0 + lane as usize) as u32);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn select(lhs: &[f32], len: usize, packed: &Packed, kept: usize, exclude: &[i64]) -> Selection {
    let (m, d) = (packed.m, packed.d);
    let tiles = len.div_ceil(ROWS);
    // The queries component-major per tile of rows (zero rows pad the last).
    let mut a = vec![[0f32; ROWS]; tiles * d];
    for (row, q) in lhs.chunks_exact(d).enumerate() {
        for (c, &x) in q.iter().enumerate() {
            a[(row / ROWS) * d + c][row % ROWS] = x;
        }
    }
    // usize::MAX: none (never within a panel).
    let excluded: Vec<usize> = (0..len)
        .map(|row| {
            exclude
                .get(row)
                .and_then(|&j| usize::try_from(j).ok())
                .filter(|&j| j < m)
                .unwrap_or(usize::MAX)
        })
        .collect();
    let inf = _mm512_set1_ps(f32::INFINITY);
    let mut rows = Rows {
        kept,
        values: vec![0.0; len * kept],
        indices: vec![0; len * kept],
        count: vec![0; len],
        threshold: vec![f32::INFINITY; len],
        low: vec![f32::INFINITY; len],
        low_lanes: vec![inf; len],
    };
    let panels = m.div_ceil(PANEL);
    for group in (0..tiles).step_by(GROUP_TILES) {
        let group = group..(group + GROUP_TILES).min(tiles);
        for p in 0..panels {
            let b = &packed.panels[p * d..(p + 1) * d];
            let j0 = p * PANEL;
            // Lanes past the last reference.
            let padding = if m - j0 >= PANEL {
                0
            } else {
                !((1u32 << (m - j0)) - 1)
            };
            for t in group.clone() {
                let scores = tile(&a[t * d..(t + 1) * d], b);
                for (r, [s0, s1]) in scores.into_iter().enumerate() {
                    let row = t * ROWS + r;
                    if row >= len {
                        break;
                    }
                    // Padding and the excluded reference score +∞: never pass, never
                    // lower the floor.
                    let mut out = padding;
                    let e = excluded[row].wrapping_sub(j0);
                    if e < PANEL {
                        out |= 1 << e;
                    }
                    rows.take_panel(row, [s0, s1], out, j0);
                }
            }
        }
    }
    let mut selection = Selection {
        kept,
        scores: Vec::with_capacity(len * kept),
        indices: Vec::with_capacity(len * kept),
        floors: Vec::with_capacity(len),
    };
    let mut pairs = Vec::with_capacity(kept);
    for row in 0..len {
        let heap = row * kept..row * kept + rows.count[row];
        pairs.clear();
        pairs.extend(rows.values[heap.clone()].iter().zip(&rows.indices[heap]));
        pairs.sort_unstable_by(|x, y| x.0.total_cmp(y.0).then(x.1.cmp(y.1)));
        selection.scores.extend(pairs.iter().map(|p| *p.0));
        selection.indices.extend(pairs.iter().map(|p| *p.1 as i64));
        let mut rest = (pairs.len()..kept).map(|slot| {
            if slot == pairs.len() && excluded[row] < m {
                excluded[row] as i64
            } else {
                -1
            }
        });
        selection.indices.extend(&mut rest);
        selection
            .scores
            .resize(selection.indices.len(), f32::INFINITY);
        selection
            .floors
            .push(rows.low[row].min(_mm512_reduce_min_ps(rows.low_lanes[row])));
    }
    selection
}

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
fn splat(x: f32) -> __m512 {
    _mm512_set1_ps(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn lanes(v: __m512) -> [f32; 16] {
    let mut out = [0f32; 16];
    // SAFETY: 16 f32 fit in `out`.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// Lanes `0 .. n` set (`n` clamped to 32).
#[cfg(target_arch = "x86_64")]
fn below(n: usize) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependencies).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }

        /// An integer in −2 ..= 2.
        fn small(&mut self) -> f32 {
            ((self.next() + 1.0) * 2.5).floor().clamp(0.0, 4.0) - 2.0
        }
    }

    /// Every score in f64, per row: (score, reference) sorted, the excluded one left
    /// out.
    fn brute_force(lhs: &[f32], rhs: &[f32], d: usize, exclude: &[i64]) -> Vec<Vec<(f64, usize)>> {
        lhs.chunks_exact(d)
            .enumerate()
            .map(|(row, q)| {
                let mut all: Vec<(f64, usize)> = rhs
                    .chunks_exact(d)
                    .enumerate()
                    .filter(|&(j, _)| exclude.get(row) != Some(&(j as i64)))
                    .map(|(j, r)| (q.iter().zip(r).map(|(&x, &y)| x as f64 * y as f64).sum(), j))
                    .collect();
                all.sort_by(|x, y| x.partial_cmp(y).unwrap());
                all
            })
            .collect()
    }

    /// Checks the kernel against the brute force: with `exact` (small integers, every
    /// f32 product and sum exact) value for value; otherwise up to `tol`.
    fn check(
        name: &str,
        lhs: &[f32],
        rhs: &[f32],
        d: usize,
        kept: usize,
        exclude: &[i64],
        exact: bool,
    ) {
        let (len, m) = (lhs.len() / d, rhs.len() / d);
        let Some(packed) = Packed::new(rhs, m, d) else {
            eprintln!("no AVX-512F: {name} not run");
            return;
        };
        let got = smallest(lhs, len, &packed, kept, exclude);
        check_selection(name, &got, lhs, rhs, d, kept, exclude, exact);
    }

    /// [`check`] of a given selection.
    #[allow(clippy::too_many_arguments)]
    fn check_selection(
        name: &str,
        got: &Selection,
        lhs: &[f32],
        rhs: &[f32],
        d: usize,
        kept: usize,
        exclude: &[i64],
        exact: bool,
    ) {
        let (len, m) = (lhs.len() / d, rhs.len() / d);
        let want = brute_force(lhs, rhs, d, exclude);
        let tol = if exact { 0.0 } else { 1e-5 * d as f64 };
        assert_eq!(got.scores.len(), len * kept, "{name}");
        assert_eq!(got.indices.len(), len * kept, "{name}");
        assert_eq!(got.floors.len(), len, "{name}");
        for (row, w) in want.iter().enumerate() {
            let scores = &got.scores[row * kept..(row + 1) * kept];
            let indices = &got.indices[row * kept..(row + 1) * kept];
            let filled = kept.min(w.len());
            let score_of: std::collections::HashMap<usize, f64> =
                w.iter().map(|&(s, j)| (j, s)).collect();
            let mut seen = std::collections::HashSet::new();
            for slot in 0..filled {
                let j = indices[slot] as usize;
                assert!(seen.insert(j), "{name}: row {row} repeats {j}");
                let s = *score_of
                    .get(&j)
                    .unwrap_or_else(|| panic!("{name}: row {row} got {j}"));
                assert!(
                    (scores[slot] as f64 - s).abs() <= tol,
                    "{name}: row {row} slot {slot}: {} vs {s}",
                    scores[slot]
                );
                if slot > 0 {
                    let (a, b) = (scores[slot - 1], scores[slot]);
                    assert!(
                        a < b || (a == b && indices[slot - 1] < indices[slot]),
                        "{name}: row {row} slot {slot}: order"
                    );
                }
                // The slot-th smallest, up to rounding.
                assert!(
                    (scores[slot] as f64 - w[slot].0).abs() <= 2.0 * tol,
                    "{name}: row {row} slot {slot}: {} is not the smallest {}",
                    scores[slot],
                    w[slot].0
                );
            }
            let excluded = exclude
                .get(row)
                .copied()
                .filter(|&j| j >= 0 && (j as usize) < m);
            for slot in filled..kept {
                assert_eq!(scores[slot], f32::INFINITY, "{name}: row {row} slot {slot}");
                let want_index = match excluded {
                    Some(j) if slot == filled => j,
                    _ => -1,
                };
                assert_eq!(indices[slot], want_index, "{name}: row {row} slot {slot}");
            }
            // The floor is the smallest score left out (not the excluded one).
            let left_out = w
                .iter()
                .filter(|(_, j)| !seen.contains(j))
                .map(|&(s, _)| s)
                .fold(f64::INFINITY, f64::min);
            let floor = got.floors[row] as f64;
            assert!(
                floor == left_out || (floor - left_out).abs() <= tol,
                "{name}: row {row} floor {floor} vs {left_out}"
            );
            if exact {
                assert!(
                    w.len() <= filled || floor == w[filled].0,
                    "{name}: row {row} floor"
                );
            }
        }
    }

    fn data(g: &mut Lcg, n: usize, d: usize, small: bool) -> Vec<f32> {
        (0..n * d)
            .map(|_| if small { g.small() } else { g.next() })
            .collect()
    }

    #[test]
    fn random_data_every_shape() {
        let mut g = Lcg(1);
        for d in [1, 3, 16, 17, 128, 129] {
            for m in [1, 2, 31, 32, 33, 95, 200] {
                for len in [1, 11, 12, 13, 30] {
                    let lhs = data(&mut g, len, d, false);
                    let rhs = data(&mut g, m, d, false);
                    for kept in [1, 3, 18, m, m + 3] {
                        let none: Vec<i64> = vec![];
                        check(
                            &format!("d={d} m={m} len={len} kept={kept}"),
                            &lhs,
                            &rhs,
                            d,
                            kept,
                            &none,
                            false,
                        );
                        let some: Vec<i64> = (0..len as i64)
                            .map(|row| {
                                if row % 3 == 1 {
                                    -1
                                } else {
                                    (row * 7) % (m as i64 + 1)
                                }
                            })
                            .collect();
                        check(
                            &format!("d={d} m={m} len={len} kept={kept} excluded"),
                            &lhs,
                            &rhs,
                            d,
                            kept,
                            &some,
                            false,
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tied_integer_data_is_exact() {
        // Small integers: every score is exact in f32, and many tie.
        let mut g = Lcg(2);
        for d in [1, 2, 5, 33] {
            for m in [7, 64, 100, 1000] {
                let len = 40;
                let lhs = data(&mut g, len, d, true);
                let rhs = data(&mut g, m, d, true);
                let same: Vec<i64> = (0..len as i64).collect();
                for kept in [1, 4, 18, 50] {
                    let kept = kept.min(m);
                    check(
                        &format!("ties d={d} m={m} kept={kept}"),
                        &lhs,
                        &rhs,
                        d,
                        kept,
                        &[],
                        true,
                    );
                    check(
                        &format!("ties d={d} m={m} kept={kept} same"),
                        &lhs,
                        &rhs,
                        d,
                        kept,
                        &same,
                        true,
                    );
                }
            }
        }
    }

    /// The triangle self-search of `x` (`[m, d]`) with `parts` workers taking blocks
    /// in turn, checked against the brute force on the lhs and rhs it stands for.
    fn check_triangle(name: &str, x: &[f32], d: usize, kept: usize, norms: bool, exact: bool) {
        let m = x.len() / d;
        let (lhs, rhs): (Vec<f32>, Vec<f32>) = if norms {
            let mut lhs = Vec::new();
            let mut rhs = Vec::new();
            for r in x.chunks_exact(d) {
                lhs.extend(r.iter().map(|v| -2.0 * v));
                lhs.push(1.0);
                rhs.extend(r);
                rhs.push(r.iter().map(|v| v * v).sum());
            }
            (lhs, rhs)
        } else {
            (x.iter().map(|v| -v).collect(), x.to_vec())
        };
        let dp = d + norms as usize;
        let Some(packed) = Packed::new(&rhs, m, dp) else {
            eprintln!("no AVX-512F: {name} not run");
            return;
        };
        let blocks = Triangle::blocks(&packed);
        for exclude_self in [false, true] {
            let kept = if exclude_self {
                kept.min(m - 1).max(1)
            } else {
                kept.min(m)
            };
            let exclude: Vec<i64> = if exclude_self {
                (0..m as i64).collect()
            } else {
                vec![]
            };
            for workers in [1, 2, 3] {
                let mut parts: Vec<Triangle> = (0..workers)
                    .map(|_| Triangle::new(&packed, kept, exclude_self, norms))
                    .collect();
                for b in 0..blocks {
                    parts[(b * 7 + 1) % workers].run(b);
                }
                let name = format!("{name} kept={kept} self={exclude_self} workers={workers}");
                let all = gather(&parts, 0..m);
                check_selection(&name, &all, &lhs, &rhs, dp, kept, &exclude, exact);
                // A range of rows is the same rows of the whole.
                let (a, b) = (m / 3, m - m / 4);
                let some = gather(&parts, a..b);
                assert_eq!(some.scores, all.scores[a * kept..b * kept], "{name}");
                assert_eq!(some.indices, all.indices[a * kept..b * kept], "{name}");
                assert_eq!(some.floors, all.floors[a..b], "{name}");
                // The same scores, bit for bit, as the one-sided kernel's (the floor
                // too; the candidates may differ among ties).
                let one = smallest(&lhs, m, &packed, kept, &exclude);
                assert_eq!(one.floors.len(), all.floors.len());
                for row in 0..m {
                    let r = row * kept..(row + 1) * kept;
                    assert_eq!(
                        one.scores[r.clone()],
                        all.scores[r],
                        "{name}: row {row} scores"
                    );
                    assert_eq!(one.floors[row], all.floors[row], "{name}: row {row} floor");
                }
            }
        }
    }

    #[test]
    fn triangle_equals_brute_force() {
        let mut g = Lcg(4);
        for d in [1, 3, 16, 33, 128] {
            for m in [1, 2, 11, 12, 13, 31, 32, 33, 100, 517, 1100] {
                let x = data(&mut g, m, d, false);
                for kept in [1, 5, 22, 40] {
                    for norms in [false, true] {
                        // Large cases at few settings (the brute force is slow).
                        if (m == 1 && kept > 1) || (m * d > 20_000 && kept % 2 == 1) {
                            continue;
                        }
                        check_triangle(
                            &format!("d={d} m={m} norms={norms}"),
                            &x,
                            d,
                            kept,
                            norms,
                            false,
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn triangle_with_tied_integers_is_exact() {
        let mut g = Lcg(5);
        for d in [1, 2, 5] {
            for m in [7, 64, 600] {
                let mut x = data(&mut g, m, d, true);
                // Duplicated rows.
                for j in (3..m).step_by(3) {
                    let (src, dst) = x.split_at_mut(j * d);
                    dst[..d].copy_from_slice(&src[(j / 2) * d..(j / 2) * d + d]);
                }
                for kept in [1, 4, 18] {
                    for norms in [false, true] {
                        check_triangle(
                            &format!("ties d={d} m={m} norms={norms}"),
                            &x,
                            d,
                            kept,
                            norms,
                            true,
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn one_repeated_reference() {
        // Every score ties: the kept ones are some `kept` of them, the floor their value.
        let mut g = Lcg(3);
        let d = 9;
        let r = data(&mut g, 1, d, false);
        let rhs: Vec<f32> = r.iter().cycle().take(300 * d).copied().collect();
        let lhs = data(&mut g, 5, d, false);
        let packed = Packed::new(&rhs, 300, d);
        if let Some(packed) = packed {
            let got = smallest(&lhs, 5, &packed, 12, &[0, -1, 299, 5, 7]);
            for row in 0..5 {
                let s = &got.scores[row * 12..row * 12 + 12];
                assert!(s.iter().all(|&x| x == s[0]), "row {row}");
                assert_eq!(got.floors[row], s[0], "row {row}");
            }
        }
        check("repeated", &lhs, &rhs, d, 12, &[0, -1, 299, 5, 7], false);
        check(
            "repeated all",
            &lhs,
            &rhs,
            d,
            300,
            &[0, -1, 299, 5, 7],
            false,
        );
    }
}
