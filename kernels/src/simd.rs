//! Small AVX-512 helpers shared by the packing and the triangle.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) fn vector(x: &[f32; 16]) -> __m512 {
    _mm512_setr_ps(
        x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13],
        x[14], x[15],
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) fn splat(x: f32) -> __m512 {
    _mm512_set1_ps(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) fn lanes(v: __m512) -> [f32; 16] {
    let mut out = [0f32; 16];
    // SAFETY: 16 f32 fit in `out`.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// Lanes `0 .. n` set (`n` clamped to 32).
#[cfg(target_arch = "x86_64")]
pub(crate) fn below(n: usize) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}
