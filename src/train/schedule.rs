//! Learning-rate schedules: the factor applied to each group's base rate at an epoch.

use crate::config::ScheduleConfig;

/// Factor for epoch `epoch` (0-based) of `epochs`.
pub fn lr_factor(schedule: &ScheduleConfig, epoch: usize, epochs: usize) -> f64 {
    match schedule {
        ScheduleConfig::Constant => 1.0,
        ScheduleConfig::MultiStep { milestones, gamma } => {
            // Milestones are fractions of the run, as the official EPSHN's 50 % / 75 %;
            // torch's MultiStepLR lowers the rate once the epoch reaches the milestone.
            let passed = milestones
                .iter()
                .filter(|&&m| epoch >= (m * epochs as f64).round() as usize)
                .count();
            gamma.powi(passed as i32)
        }
        ScheduleConfig::Cosine => {
            0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_step_drops_at_half_and_three_quarters() {
        let s = ScheduleConfig::MultiStep {
            milestones: vec![0.5, 0.75],
            gamma: 0.1,
        };
        let f: Vec<f64> = (0..8).map(|e| lr_factor(&s, e, 8)).collect();
        let expected = [1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01];
        for (a, b) in f.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{f:?}");
        }
    }

    #[test]
    fn cosine_starts_at_one_and_halves_midway() {
        let s = ScheduleConfig::Cosine;
        assert_eq!(lr_factor(&s, 0, 10), 1.0);
        assert!((lr_factor(&s, 5, 10) - 0.5).abs() < 1e-12);
        assert!(lr_factor(&s, 9, 10) < 0.03);
        assert_eq!(lr_factor(&ScheduleConfig::Constant, 7, 10), 1.0);
    }
}
