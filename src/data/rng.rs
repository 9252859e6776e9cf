//! A small, fully specified random generator (SplitMix64). Splits, sampling and
//! augmentation draw from it so the same seed gives the same result on any
//! machine and with any crate version (rand's algorithms are not value-stable).

/// SplitMix64 generator (Steele, Lea & Flood 2014).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// An independent generator for a sub-task, fixed by the parent seed and a path of
    /// numbers (e.g. `[epoch, sample]`), so parallel work draws the same numbers
    /// whatever the thread schedule.
    pub fn derive(seed: u64, path: &[u64]) -> Self {
        let mut state = seed;
        for &p in path {
            state = Rng::new(state ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64();
        }
        Rng::new(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.next_f64();
        let v = self.next_f64();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Uniform integer in `0..n` (n > 0) by one multiply and shift (Lemire 2019): no
    /// division, for hot loops such as UMAP's negative sampling; the bias, at most
    /// `n / 2⁶⁴`, is far below anything a layout can show. A different stream from
    /// [`Rng::below`], which stays as it is so that splits and samplers reproduce.
    pub fn below_fast(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_splitmix64_reference_stream() {
        // Reference values of splitmix64.c (Vigna) for seed 0.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = Rng::new(7);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[rng.below(5) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[rng.below_fast(5) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "fast: {counts:?}");
        }
        assert!((0..1000).all(|_| rng.below_fast(1) == 0));
    }

    #[test]
    fn shuffle_is_a_permutation_and_derive_separates_streams() {
        let mut items: Vec<u32> = (0..100).collect();
        Rng::new(42).shuffle(&mut items);
        assert_ne!(items, (0..100).collect::<Vec<_>>());
        let mut sorted = items.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(
            Rng::derive(1, &[0, 1]).next_u64(),
            Rng::derive(1, &[1, 0]).next_u64()
        );
        assert_eq!(
            Rng::derive(1, &[3, 4]).next_u64(),
            Rng::derive(1, &[3, 4]).next_u64()
        );
    }
}
