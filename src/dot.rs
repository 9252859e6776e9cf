//! The dot product of `f64` slices that the numerical loops share (the Lanczos basis of
//! the spectral start, the Cholesky factor of the ROAD imputation).

/// `a · b` in eight interleaved partial sums: one running sum waits for each addition
/// before the next (about 4 cycles a term), eight keep the multiply-add units busy and
/// let the compiler vectorise. The sum is over the shorter slice.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut partial = [0f64; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            partial[l] += x[l] * y[l];
        }
    }
    partial.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::dot;

    #[test]
    fn equals_the_plain_sum_for_every_length_around_the_lanes() {
        for n in 0..20 {
            let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
            let b: Vec<f64> = (0..n).map(|i| 1.0 + (i % 3) as f64).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            // Small integers and halves: every partial sum is exact.
            assert_eq!(dot(&a, &b), plain, "length {n}");
        }
    }
}
