//! The study's measurements, read back from its run directories: one record per
//! (dataset, row, seed), and mean ± spread over seeds.

use super::grid::StudyMetric;
use crate::config::Phase;
use crate::run::comparison::PrecisionDrop;
use crate::run::cost::PhaseCost;
use crate::run::metrics::PhaseMetrics;
use crate::run::record::read_record;
use crate::run::trust::TrustTable;
use crate::run::RunDir;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What one finished experiment of the grid measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub dataset: String,
    pub row: String,
    pub seed: u64,
    pub run: PathBuf,
    /// precision@1 on all classes, model trained on all classes.
    pub precision_at_1: f64,
    /// precision@1 on all classes of the model trained without the held-out classes.
    pub precision_at_1_seen_model: Option<f64>,
    /// precision@1 on the held-out classes' test images, model that never saw them.
    pub unseen_precision_at_1: Option<f64>,
    pub precision_drop_unseen: Option<f64>,
    pub precision_drop_all: Option<f64>,
    /// Accuracy of the loss's own class logits (phase-all), where it has them.
    pub logits_accuracy: Option<f64>,
    /// Majority vote of the 10 nearest (phase-all).
    pub majority_vote_accuracy: Option<f64>,
    pub cost: Option<PhaseCost>,
    /// Title of the most faithful saliency method of the phase-all model
    /// ([`crate::run::trust::TrustTable::most_faithful`]), when its trust table exists.
    #[serde(default)]
    pub most_faithful: Option<String>,
}

impl RunResult {
    /// The value of a study metric, if measured.
    pub fn metric(&self, m: StudyMetric) -> Option<f64> {
        match m {
            StudyMetric::PrecisionAt1 => Some(self.precision_at_1),
            StudyMetric::PrecisionDropUnseen => self.precision_drop_unseen,
            StudyMetric::PrecisionDropAll => self.precision_drop_all,
        }
    }
}

/// Reads an evaluated run directory; `None` while its phase-all metrics are missing.
pub fn read_run(dataset: &str, row: &str, seed: u64, run: &Path) -> Result<Option<RunResult>> {
    let dir = RunDir::new(run);
    let Some(all) = read_record::<PhaseMetrics>(&dir.phase(Phase::All).metrics())? else {
        return Ok(None);
    };
    let seen = read_record::<PhaseMetrics>(&dir.phase(Phase::Seen).metrics())?;
    let drop = read_record::<PrecisionDrop>(&dir.precision_drop())?;
    let cost = read_record::<PhaseCost>(&dir.phase(Phase::All).cost())?;
    let trust = read_record::<TrustTable>(&dir.phase(Phase::All).trust())?;
    let finite = |v: f64| Some(v).filter(|v| v.is_finite());
    Ok(Some(RunResult {
        dataset: dataset.into(),
        row: row.into(),
        seed,
        run: run.to_path_buf(),
        precision_at_1: all.retrieval.precision_at_1,
        precision_at_1_seen_model: seen.as_ref().map(|s| s.retrieval.precision_at_1),
        unseen_precision_at_1: seen.as_ref().and_then(|s| s.unseen_precision_at_1),
        precision_drop_unseen: drop
            .as_ref()
            .and_then(|d| finite(d.precision_drop_unseen_classes)),
        precision_drop_all: drop
            .as_ref()
            .and_then(|d| finite(d.precision_drop_all_classes)),
        logits_accuracy: all.logits_accuracy,
        // The study uses k = 10 (the reference's "top 10 closest samples").
        majority_vote_accuracy: all.majority_vote_at(10),
        cost,
        most_faithful: trust
            .as_ref()
            .and_then(|t| t.most_faithful())
            .map(|r| r.title.clone()),
    }))
}

/// Mean and sample standard deviation over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 with one value.
    pub std: f64,
    pub n: usize,
}

impl Stat {
    /// The statistics of `values` (`None` when empty).
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Stat { mean, std, n })
    }

    /// "0.512 ± 0.013 (3 seeds)" or "0.512 (1 seed)".
    pub fn display(&self) -> String {
        if self.n > 1 {
            format!("{:.3} ± {:.3} ({} seeds)", self.mean, self.std, self.n)
        } else {
            format!("{:.3} (1 seed)", self.mean)
        }
    }
}

/// Every measured run of the study.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StudyResults {
    pub runs: Vec<RunResult>,
}

impl StudyResults {
    /// The metric's values over the seeds of a row.
    pub fn values(&self, dataset: &str, row: &str, metric: StudyMetric) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| r.dataset == dataset && r.row == row)
            .filter_map(|r| r.metric(metric))
            .collect()
    }

    /// Mean ± spread of the metric over the seeds of a row.
    pub fn stat(&self, dataset: &str, row: &str, metric: StudyMetric) -> Option<Stat> {
        Stat::of(&self.values(dataset, row, metric))
    }

    /// The runs of a row (all seeds).
    pub fn of_row<'a>(
        &'a self,
        dataset: &'a str,
        row: &'a str,
    ) -> impl Iterator<Item = &'a RunResult> + 'a {
        self.runs
            .iter()
            .filter(move |r| r.dataset == dataset && r.row == row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_matches_hand_computation() {
        let s = Stat::of(&[0.5, 0.6, 0.7]).unwrap();
        assert!((s.mean - 0.6).abs() < 1e-12);
        assert!((s.std - 0.1).abs() < 1e-12);
        assert_eq!(Stat::of(&[0.4]).unwrap().std, 0.0);
        assert!(Stat::of(&[]).is_none());
        assert_eq!(
            Stat::of(&[0.5, 0.7]).unwrap().display(),
            "0.600 ± 0.141 (2 seeds)"
        );
    }

    #[test]
    fn a_run_without_metrics_is_not_a_result_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_run("d", "r", 1, dir.path()).unwrap().is_none());
        std::fs::create_dir_all(dir.path().join("phase-all")).unwrap();
        std::fs::write(
            dir.path().join("phase-all/metrics.json"),
            "{\"retrieval\":{}}",
        )
        .unwrap();
        let err = format!("{:#}", read_run("d", "r", 1, dir.path()).unwrap_err());
        assert!(
            err.contains("metrics.json") && err.contains("precision_at_1"),
            "{err}"
        );
    }
}
