//! What a search keeps per query row: the candidates' max-heaps and the floor while
//! it runs (`Rows`), and the sorted result ([`Selection`]).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

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

/// Every row's candidates (a max-heap of `kept` slots) and what it left out.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Rows {
    pub(crate) kept: usize,
    /// `[len, kept]` heaps: the largest candidate first.
    pub(crate) values: Vec<f32>,
    pub(crate) indices: Vec<u32>,
    pub(crate) count: Vec<usize>,
    /// The heap's top once full, +∞ before: a score passes when below it.
    pub(crate) threshold: Vec<f32>,
    /// Minimum of the scores left out one by one (rejected after passing the
    /// vector compare, or evicted).
    pub(crate) low: Vec<f32>,
    /// Lane-wise minimum of the scores rejected by the vector compare.
    pub(crate) low_lanes: Vec<__m512>,
}

#[cfg(target_arch = "x86_64")]
impl Rows {
    /// Offers reference `j` at score `v` to row `row`.
    pub(crate) fn offer(&mut self, row: usize, v: f32, j: u32) {
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
    pub(crate) fn take_panel(&mut self, row: usize, scores: [__m512; 2], out: u32, j0: usize) {
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
