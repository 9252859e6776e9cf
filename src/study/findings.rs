//! Verdicts on the reference's findings: each claim of `findings.toml` is checked
//! against our measurements, with the run-to-run spread as the noise level.
//!
//! An effect counts when the difference of means exceeds twice its standard error
//! (from the seeds' spread; a row with one seed borrows the baseline's spread, as it
//! runs on the same data and protocol) and at least [`MIN_EFFECT`].

use super::grid::{Expectation, Finding, StudyGrid};
use super::results::{Stat, StudyResults};
use serde::Serialize;

/// Smallest difference (2 points of precision@1) that counts as an effect, however
/// small the measured spread: a handful of test images moves P@1 by that much.
pub const MIN_EFFECT: f64 = 0.02;

/// The verdict on one finding, on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "snake_case")]
pub enum Verdict {
    Holds,
    DoesNotHold,
    /// The claim cannot be tested here (with the reason).
    NotTestable(String),
    /// The runs it needs have not finished yet.
    Pending,
}

impl Verdict {
    /// The verdict in words.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::NotTestable(_) => "not testable here",
            Verdict::Pending => "pending",
        }
    }
}

/// A finding judged on one dataset, with the numbers behind the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub dataset: String,
    pub row: String,
    pub against: Option<String>,
    pub value: Option<Stat>,
    pub against_value: Option<Stat>,
    /// Row minus comparison (or the row's own value for `positive`).
    pub difference: Option<f64>,
    /// The smallest difference that counts as an effect here.
    pub margin: Option<f64>,
    pub verdict: Verdict,
    /// One sentence saying why.
    pub explanation: String,
}

/// The margin an effect must exceed: max([`MIN_EFFECT`], 2 standard errors).
/// `noise` is the spread used for a side measured with a single seed.
pub fn effect_margin(a: &Stat, b: Option<&Stat>, noise: f64) -> f64 {
    let var = |s: &Stat| {
        if s.n > 1 {
            s.std.powi(2) / s.n as f64
        } else {
            noise.powi(2)
        }
    };
    let se = (var(a) + b.map_or(0.0, var)).sqrt();
    (2.0 * se).max(MIN_EFFECT)
}

/// Judges a finding given its row's and comparison's statistics; `noise` is the
/// baseline's seed spread (0 when it has one seed).
pub fn judge(
    expect: Expectation,
    value: Option<Stat>,
    against: Option<Stat>,
    noise: f64,
) -> (Verdict, Option<f64>, Option<f64>, String) {
    if expect == Expectation::Qualitative {
        return (
            Verdict::NotTestable("a qualitative claim: the numbers are shown, no verdict".into()),
            None,
            None,
            "qualitative claim".into(),
        );
    }
    let Some(v) = value else {
        return (
            Verdict::Pending,
            None,
            None,
            "the row has not finished".into(),
        );
    };
    if expect == Expectation::Positive {
        return judge_positive(&v, noise);
    }
    let Some(a) = against else {
        return (
            Verdict::Pending,
            None,
            None,
            "the comparison row has not finished".into(),
        );
    };
    judge_comparison(expect, &v, &a, noise)
}

/// A `positive` finding: the row's own value against the margin.
fn judge_positive(v: &Stat, noise: f64) -> (Verdict, Option<f64>, Option<f64>, String) {
    let margin = effect_margin(v, None, noise);
    let holds = v.mean > margin;
    let why = format!(
        "{:.3} {} the margin {:.3}",
        v.mean,
        if holds { "exceeds" } else { "does not exceed" },
        margin
    );
    let verdict = if holds {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    (verdict, Some(v.mean), Some(margin), why)
}

/// A comparison finding (increase, decrease, no effect): the row minus the other row,
/// against the margin.
fn judge_comparison(
    expect: Expectation,
    v: &Stat,
    a: &Stat,
    noise: f64,
) -> (Verdict, Option<f64>, Option<f64>, String) {
    let diff = v.mean - a.mean;
    let margin = effect_margin(v, Some(a), noise);
    let effect = if diff > margin {
        1
    } else if diff < -margin {
        -1
    } else {
        0
    };
    let holds = match expect {
        Expectation::Increase => effect == 1,
        Expectation::Decrease => effect == -1,
        Expectation::NoEffect => effect == 0,
        Expectation::Positive | Expectation::Qualitative => {
            unreachable!("judge decides these before comparing")
        }
    };
    let measured = match effect {
        1 => "an increase",
        -1 => "a decrease",
        _ => "no effect beyond the noise",
    };
    let why = format!(
        "{:+.1} points (margin ±{:.1}): {measured}",
        diff * 100.0,
        margin * 100.0
    );
    (
        if holds {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        Some(diff),
        Some(margin),
        why,
    )
}

/// Judges every finding on every dataset of the grid.
pub fn judge_all(grid: &StudyGrid, results: &StudyResults) -> Vec<(usize, Judgement)> {
    let mut out = Vec::new();
    for dataset in grid.datasets() {
        let noise = results
            .stat(
                &dataset,
                &grid.settings.baseline,
                super::grid::StudyMetric::PrecisionAt1,
            )
            .map_or(0.0, |s| s.std);
        for (i, f) in grid.findings.iter().enumerate() {
            out.push((
                i,
                judge_one(f, &dataset, &grid.settings.baseline, results, noise),
            ));
        }
    }
    out
}

fn judge_one(
    f: &Finding,
    dataset: &str,
    baseline: &str,
    results: &StudyResults,
    noise: f64,
) -> Judgement {
    let against = match f.expect {
        Expectation::Positive | Expectation::Qualitative => None,
        _ => Some(f.against.clone().unwrap_or_else(|| baseline.to_string())),
    };
    let value = results.stat(dataset, &f.row, f.metric);
    let against_value = against
        .as_ref()
        .and_then(|a| results.stat(dataset, a, f.metric));
    let (verdict, difference, margin, explanation) = judge(f.expect, value, against_value, noise);
    Judgement {
        dataset: dataset.into(),
        row: f.row.clone(),
        against,
        value,
        against_value,
        difference,
        margin,
        verdict,
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(mean: f64, std: f64, n: usize) -> Option<Stat> {
        Some(Stat { mean, std, n })
    }

    #[test]
    fn margin_is_two_standard_errors_with_a_floor() {
        // se = sqrt(0.03²/3 + 0.03²/3) = 0.0245 → margin 0.049.
        let m = effect_margin(&s(0.5, 0.03, 3).unwrap(), s(0.4, 0.03, 3).as_ref(), 0.0);
        assert!((m - 2.0 * (2.0f64 * 0.0009 / 3.0).sqrt()).abs() < 1e-12);
        // Single seeds borrow the noise; no noise → the floor.
        assert_eq!(
            effect_margin(&s(0.5, 0.0, 1).unwrap(), s(0.4, 0.0, 1).as_ref(), 0.0),
            MIN_EFFECT
        );
        let m = effect_margin(&s(0.5, 0.0, 1).unwrap(), s(0.4, 0.02, 3).as_ref(), 0.02);
        assert!((m - 2.0 * (0.0004f64 + 0.0004 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn verdicts_follow_the_expected_direction() {
        let up = judge(
            Expectation::Increase,
            s(0.60, 0.01, 3),
            s(0.50, 0.01, 3),
            0.01,
        );
        assert_eq!(up.0, Verdict::Holds);
        assert!((up.1.unwrap() - 0.10).abs() < 1e-12);
        assert_eq!(
            judge(
                Expectation::Decrease,
                s(0.60, 0.01, 3),
                s(0.50, 0.01, 3),
                0.01
            )
            .0,
            Verdict::DoesNotHold
        );
        // 1 point apart with a 2-point floor: no effect.
        assert_eq!(
            judge(Expectation::NoEffect, s(0.51, 0.0, 1), s(0.50, 0.0, 1), 0.0).0,
            Verdict::Holds
        );
        assert_eq!(
            judge(Expectation::Increase, s(0.51, 0.0, 1), s(0.50, 0.0, 1), 0.0).0,
            Verdict::DoesNotHold
        );
        // A noisy baseline swallows a 5-point difference (margin 2·sqrt(2)·0.03 ≈ 8.5 points).
        assert_eq!(
            judge(
                Expectation::Increase,
                s(0.55, 0.0, 1),
                s(0.50, 0.0, 1),
                0.03
            )
            .0,
            Verdict::DoesNotHold
        );
        assert_eq!(
            judge(Expectation::Positive, s(0.10, 0.0, 1), None, 0.0).0,
            Verdict::Holds
        );
        assert_eq!(
            judge(Expectation::Positive, s(0.01, 0.0, 1), None, 0.0).0,
            Verdict::DoesNotHold
        );
        assert_eq!(
            judge(Expectation::Increase, None, s(0.5, 0.0, 1), 0.0).0,
            Verdict::Pending
        );
        assert_eq!(
            judge(Expectation::Increase, s(0.5, 0.0, 1), None, 0.0).0,
            Verdict::Pending
        );
        assert!(matches!(
            judge(Expectation::Qualitative, s(0.5, 0.0, 1), None, 0.0).0,
            Verdict::NotTestable(_)
        ));
    }
}
