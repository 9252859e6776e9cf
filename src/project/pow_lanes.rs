//! `x^b` for [`LANES`] values at once, as `exp2(b · log2 x)` with short polynomials.
//!
//! glibc's `powf` is one call per value; in UMAP's SGD (five negative samples per
//! positive one, each needing `d^{2b}`) those calls were a third of the time. Written
//! over fixed arrays with bit manipulation and no calls, so that the compiler turns each
//! loop into a few vector instructions on any target (SSE2 on baseline x86-64, NEON on
//! ARM), with no `unsafe` and no run-time dispatch.

/// Values per call (two SSE or one AVX register of f32).
pub const LANES: usize = 8;

/// `1.5 · 2^23`: adding it rounds an f32 below `2^22` in magnitude to an integer and
/// leaves that integer in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

/// `x^b` per lane for positive normal `x` with `|b · log2 x| < 126`; relative error
/// about `1e-7 · (1 + |b · log2 x|)`, against `powf`'s correctly rounded result.
/// Smaller `x` is treated as the smallest normal f32 (callers mask out `x = 0`).
pub fn pow_lanes(x: &[f32; LANES], b: f32) -> [f32; LANES] {
    let mut out = [0f32; LANES];
    for (o, &v) in out.iter_mut().zip(x) {
        *o = exp2(b * log2(v.max(f32::MIN_POSITIVE)));
    }
    out
}

/// `log2 x` for positive normal `x`: `x = 2^e · m` with `m` in `[√½, √2)`, and
/// `ln m = 2 atanh(t)`, `t = (m − 1)/(m + 1)`, `|t| ≤ 0.172`, by its odd series to `t⁹`
/// (the next term is below 4e-10).
#[inline(always)]
fn log2(x: f32) -> f32 {
    // Integer steps wrap instead of being overflow-checked (they cannot overflow), which
    // would stop the loop from being vectorised in a debug-assertions build.
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = m > std::f32::consts::SQRT_2;
    m = if high { 0.5 * m } else { m };
    e = e.wrapping_add(high as i32).wrapping_sub(127);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = 1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0))));
    e as f32 + 2.0 * std::f32::consts::LOG2_E * t * series
}

/// `2^y` for `|y| < 126`: `y = i + f` with `i` the nearest integer, `|f| ≤ ½`, and
/// `2^f = e^{f ln 2}` by its Taylor polynomial to degree 6 (remainder below 1.2e-7).
#[inline(always)]
fn exp2(y: f32) -> f32 {
    let y = y.clamp(-126.0, 126.0);
    let shifted = y + ROUNDER;
    let i = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    let f = (y - (shifted - ROUNDER)) * std::f32::consts::LN_2;
    let poly = 1.0
        + f * (1.0
            + f * (1.0 / 2.0
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    poly * f32::from_bits(i.wrapping_add(127).wrapping_shl(23))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest relative error against `f64` powers over `x` from 1e-6 to 1e6 (a dense
    /// logarithmic sweep, mantissas varied) for UMAP's exponents and a few others.
    #[test]
    fn matches_the_exact_power_within_its_bound() {
        for b in [0.79f32, 0.8956, 1.0, 1.929, 0.5, 0.1] {
            let mut worst = 0f64;
            let mut x = 1e-6f32;
            while x < 1e6 {
                let mut lanes = [0f32; LANES];
                for (l, v) in lanes.iter_mut().enumerate() {
                    *v = x * (1.0 + 0.0917 * l as f32);
                }
                let got = pow_lanes(&lanes, b);
                for (g, v) in got.iter().zip(&lanes) {
                    let exact = (*v as f64).powf(b as f64);
                    let bound = 1e-7 * (1.0 + (b as f64 * (*v as f64).log2()).abs());
                    let err = (*g as f64 - exact).abs() / exact;
                    assert!(err < 2.0 * bound, "{v}^{b}: {g} against {exact}");
                    worst = worst.max(err);
                }
                x *= 1.37;
            }
            assert!(worst > 0.0, "the sweep compared nothing for b = {b}");
        }
    }

    #[test]
    fn exact_at_powers_of_two_and_one() {
        let got = pow_lanes(&[1.0, 2.0, 4.0, 0.5, 0.25, 8.0, 16.0, 1024.0], 1.0);
        assert_eq!(got, [1.0, 2.0, 4.0, 0.5, 0.25, 8.0, 16.0, 1024.0]);
        let root = pow_lanes(&[4.0; LANES], 0.5);
        assert!(root.iter().all(|r| (r - 2.0).abs() < 1e-6), "{root:?}");
    }

    #[test]
    fn tiny_and_zero_inputs_stay_finite() {
        let got = pow_lanes(&[0.0, 1e-45, 1e-38, 1e-30, 0.0, 0.0, 0.0, 0.0], 0.9);
        assert!(got.iter().all(|v| v.is_finite() && *v >= 0.0), "{got:?}");
    }
}
