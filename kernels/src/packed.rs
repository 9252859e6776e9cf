//! The references packed into panels of [`PANEL`] for the kernel, and a tile's scores.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use crate::simd::vector;
use crate::available;
#[cfg(target_arch = "x86_64")]
use crate::{PANEL, ROWS};

/// The products' right-hand side `[m, d]` in panels, made once per search and
/// shared by every chunk of queries (and thread).
pub struct Packed {
    pub(crate) m: usize,
    pub(crate) d: usize,
    /// Panel `p`, component `c` at `p·d + c`: references `32p .. 32p + 32` (zeros
    /// beyond `m`).
    #[cfg(target_arch = "x86_64")]
    pub(crate) panels: Vec<[__m512; 2]>,
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
pub(crate) fn tile(a: &[[f32; ROWS]], b: &[[__m512; 2]]) -> [[__m512; 2]; ROWS] {
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
