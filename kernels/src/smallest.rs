//! The one-sided search: query rows against the packed references.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::packed::Packed;
use crate::selection::Selection;
#[cfg(target_arch = "x86_64")]
use crate::packed::tile;
#[cfg(target_arch = "x86_64")]
use crate::selection::Rows;
#[cfg(target_arch = "x86_64")]
use crate::{GROUP_TILES, PANEL, ROWS};

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
