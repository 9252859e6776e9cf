//! `phase-P/explanations/trust.json`: which saliency method to trust for this run, per
//! method scored on the explained sample (docs/REFERENCE.md, "Trust table"). Written by
//! `dmlviz explain --samples` beside `explanations.json`, read by the report (the
//! explanation panel) and the study (one line per row).

use super::record::{f64_or_nan, legacy_schema};
use crate::config::Phase;
use serde::{Deserialize, Serialize};

/// The file name inside `explanations/`.
pub const TRUST_FILE: &str = "trust.json";

/// The metrics of a row, with the direction that is better: (key, title, higher is better).
pub const METRICS: [(&str, &str, bool); 6] = [
    ("deletion_auc", "deletion AUC ↓", false),
    ("insertion_auc", "insertion AUC ↑", true),
    ("road", "ROAD ↑", true),
    ("average_drop", "average drop ↓", false),
    ("sanity", "sanity correlation ↓", false),
    ("images_per_second", "images/s ↑", true),
];

/// The name of the baseline method (a map of uniform noise): shown, never marked best.
pub const BASELINE: &str = "random";

/// `explanations/trust.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustTable {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// The phase whose model was scored.
    #[serde(default)]
    pub phase: Option<Phase>,
    /// Images scored.
    #[serde(default)]
    pub images: usize,
    /// Steps of the deletion and insertion curves.
    #[serde(default)]
    pub steps: usize,
    /// ROAD's percentiles.
    #[serde(default)]
    pub road_percentiles: Vec<f64>,
    /// The blocks of the cascade, in the order they were re-initialised (top first).
    #[serde(default)]
    pub sanity_blocks: Vec<String>,
    /// A method passes the sanity check when its final correlation is below this.
    #[serde(default, deserialize_with = "f64_or_nan")]
    pub sanity_pass_below: f64,
    /// One row per method, in page order.
    #[serde(default)]
    pub rows: Vec<TrustRow>,
}

/// A mean over the images and its spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean over the images that had a value (NaN when none).
    #[serde(deserialize_with = "f64_or_nan")]
    pub mean: f64,
    /// Sample standard deviation (NaN below two values).
    #[serde(deserialize_with = "f64_or_nan")]
    pub sd: f64,
    /// Images with a value.
    pub n: usize,
}

impl Stat {
    /// The mean and sample standard deviation of the finite values.
    pub fn of(values: &[f64]) -> Stat {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n == 0 {
            return Stat {
                mean: f64::NAN,
                sd: f64::NAN,
                n,
            };
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = if n < 2 {
            f64::NAN
        } else {
            (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Stat { mean, sd, n }
    }
}

/// One method's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustRow {
    /// The method's key.
    pub method: String,
    /// Its title.
    #[serde(default)]
    pub title: String,
    /// Area under the deletion curve (lower is better).
    pub deletion_auc: Stat,
    /// Area under the insertion curve (higher is better).
    pub insertion_auc: Stat,
    /// ROAD, (LeRF − MoRF)/2 averaged over the percentiles (higher is better).
    pub road: Stat,
    /// Average drop when only the map's region is kept (lower is better).
    pub average_drop: Stat,
    /// Share of images whose score rose when only the map's region was kept.
    pub increase: Stat,
    /// Spearman correlation with the trained map once every block is random (lower is better).
    pub sanity: Stat,
    /// Mean correlation at each depth of the cascade (same order as `sanity_blocks`).
    #[serde(default)]
    pub sanity_curve: Vec<Option<f64>>,
    /// Whether the method passes the sanity check (`None`: not run or nothing to compare).
    #[serde(default)]
    pub sanity_pass: Option<bool>,
    /// Images explained per second (the method's passes and its computation).
    #[serde(default, deserialize_with = "f64_or_nan")]
    pub images_per_second: f64,
    /// The metrics ([`METRICS`] keys) this method is best at among the non-baseline rows.
    #[serde(default)]
    pub best: Vec<String>,
}

impl TrustRow {
    /// The value of metric `key` ([`METRICS`]) used to rank rows.
    pub fn metric(&self, key: &str) -> f64 {
        match key {
            "deletion_auc" => self.deletion_auc.mean,
            "insertion_auc" => self.insertion_auc.mean,
            "road" => self.road.mean,
            "average_drop" => self.average_drop.mean,
            "sanity" => self.sanity.mean,
            "images_per_second" => self.images_per_second,
            _ => f64::NAN,
        }
    }
}

impl TrustTable {
    /// Marks each row's `best` metrics: per metric, the non-baseline rows with the best
    /// finite value (ties all marked).
    pub fn mark_best(&mut self) {
        for row in &mut self.rows {
            row.best.clear();
        }
        for (key, _, higher) in METRICS {
            let sign = if higher { 1.0 } else { -1.0 };
            let best = self
                .rows
                .iter()
                .filter(|r| r.method != BASELINE)
                .map(|r| sign * r.metric(key))
                .filter(|v| v.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            for row in &mut self.rows {
                let v = sign * row.metric(key);
                if row.method != BASELINE && v.is_finite() && v == best {
                    row.best.push(key.to_string());
                }
            }
        }
    }

    /// The most faithful method: the best mean rank over deletion AUC, insertion AUC and
    /// ROAD among the non-baseline rows that pass the sanity check (all non-baseline rows
    /// when none passes or none was checked); ties go to page order.
    pub fn most_faithful(&self) -> Option<&TrustRow> {
        let candidates: Vec<&TrustRow> =
            self.rows.iter().filter(|r| r.method != BASELINE).collect();
        let passing: Vec<&TrustRow> = candidates
            .iter()
            .copied()
            .filter(|r| r.sanity_pass == Some(true))
            .collect();
        let pool = if passing.is_empty() {
            candidates
        } else {
            passing
        };
        let rank = |row: &TrustRow| -> f64 {
            let keys = [
                ("deletion_auc", false),
                ("insertion_auc", true),
                ("road", true),
            ];
            keys.iter()
                .map(|&(key, higher)| {
                    let sign = if higher { -1.0 } else { 1.0 };
                    let v = sign * row.metric(key);
                    // Rows without a value rank last.
                    let better = pool
                        .iter()
                        .filter(|o| {
                            let w = sign * o.metric(key);
                            w.is_finite() && (!v.is_finite() || w < v)
                        })
                        .count();
                    better as f64
                })
                .sum::<f64>()
        };
        pool.iter()
            .copied()
            .fold(None, |best: Option<(&TrustRow, f64)>, row| {
                let r = rank(row);
                match best {
                    Some((_, b)) if b <= r => best,
                    _ => Some((row, r)),
                }
            })
            .map(|(row, _)| row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, deletion: f64, insertion: f64, road: f64, pass: Option<bool>) -> TrustRow {
        let s = |mean| Stat {
            mean,
            sd: 0.0,
            n: 1,
        };
        TrustRow {
            method: method.into(),
            title: method.into(),
            deletion_auc: s(deletion),
            insertion_auc: s(insertion),
            road: s(road),
            average_drop: s(0.5),
            increase: s(0.0),
            sanity: s(0.1),
            sanity_curve: vec![Some(0.9), None],
            sanity_pass: pass,
            images_per_second: 10.0,
            best: Vec::new(),
        }
    }

    #[test]
    fn stats_best_marks_and_the_most_faithful_method() {
        let s = Stat::of(&[1.0, 3.0, f64::NAN]);
        assert_eq!((s.mean, s.n), (2.0, 2));
        assert!((s.sd - 2f64.sqrt()).abs() < 1e-12);
        assert!(Stat::of(&[]).mean.is_nan() && Stat::of(&[1.0]).sd.is_nan());
        let mut t = TrustTable {
            schema_version: 2,
            phase: None,
            images: 1,
            steps: 4,
            road_percentiles: vec![50.0],
            sanity_blocks: vec!["head".into(), "stem".into()],
            sanity_pass_below: 0.5,
            rows: vec![
                row("gradcam", 0.2, 0.8, 0.1, Some(true)),
                row("guided", 0.1, 0.9, 0.3, Some(false)),
                row("vanilla", 0.3, 0.7, 0.2, Some(true)),
                row(BASELINE, 0.0, 1.0, 0.9, Some(true)),
            ],
        };
        t.mark_best();
        // Drop, sanity and speed are equal in every row: ties are all marked; the
        // baseline (best everywhere) never.
        let tied = ["average_drop", "sanity", "images_per_second"];
        assert_eq!(
            t.rows[1].best[..3],
            ["deletion_auc", "insertion_auc", "road"]
        );
        assert_eq!(t.rows[1].best[3..], tied);
        assert_eq!(t.rows[0].best, tied);
        assert!(t.rows[3].best.is_empty());
        // Guided wins every metric but fails the sanity check; of the two that pass,
        // gradcam is beaten once (ROAD), vanilla twice.
        assert_eq!(t.most_faithful().unwrap().method, "gradcam");
        t.rows[2].insertion_auc.mean = 0.95;
        t.rows[2].deletion_auc.mean = 0.1;
        assert_eq!(t.most_faithful().unwrap().method, "vanilla");
        // NaN round-trips as null.
        t.rows[0].road.sd = f64::NAN;
        let back: TrustTable = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert!(back.rows[0].road.sd.is_nan());
        assert_eq!(back.rows[1], t.rows[1]);
    }
}
