//! Dynamic loss scaling for mixed-precision training (`--amp`): half-precision
//! gradients underflow to 0 below about 6e-8, so the loss is multiplied by a large
//! scale before the backward pass and the gradients divided by it after. A step whose
//! gradients overflow is skipped and the scale halved; after a run of good steps it
//! doubles again (the rule of PyTorch's `GradScaler`, with its defaults).

/// The scale a run starts with.
pub const INITIAL_SCALE: f64 = 65536.0;
/// Good steps in a row before the scale doubles.
pub const GROWTH_INTERVAL: usize = 2000;

/// The current loss scale and the good steps since it last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScale {
    pub scale: f64,
    good_steps: usize,
}

impl Default for LossScale {
    fn default() -> Self {
        LossScale {
            scale: INITIAL_SCALE,
            good_steps: 0,
        }
    }
}

impl LossScale {
    /// Records whether the unscaled gradients were all finite; returns whether the
    /// optimiser may step (false: skip this batch, the scale is halved).
    pub fn update(&mut self, gradients_finite: bool) -> bool {
        if !gradients_finite {
            self.scale /= 2.0;
            self.good_steps = 0;
            return false;
        }
        self.good_steps += 1;
        if self.good_steps == GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_halves_and_a_run_of_good_steps_doubles() {
        let mut s = LossScale::default();
        assert!(!s.update(false));
        assert_eq!(s.scale, INITIAL_SCALE / 2.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            assert!(s.update(true));
        }
        assert_eq!(s.scale, INITIAL_SCALE / 2.0, "not yet");
        assert!(s.update(true));
        assert_eq!(s.scale, INITIAL_SCALE);
        // An overflow resets the count of good steps.
        for _ in 0..10 {
            s.update(true);
        }
        s.update(false);
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(true);
        }
        assert_eq!(s.scale, INITIAL_SCALE / 2.0);
    }
}
