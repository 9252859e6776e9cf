//! `phase-P/tables/`: the reference experiments' tables of a phase (`<prefix>_metrics.csv`,
//! `<prefix>_classification_report.{json,csv}`, `confusion_matrix.{json,csv}`,
//! `sub_center_outliers.csv`), and the one JSON record the report reads back, the
//! confusion matrix. Written by `dmlviz eval`.

use super::record::legacy_schema;
use crate::config::Phase;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Table prefix of a phase, as the reference names its tables.
pub fn table_prefix(phase: Phase) -> &'static str {
    match phase {
        Phase::All => "all_classes",
        Phase::Seen => "limited_classes",
    }
}

/// `<prefix>_metrics.csv`: one row per class (class, counts, precision@1).
pub fn class_metrics_csv(phase: Phase) -> String {
    format!("{}_metrics.csv", table_prefix(phase))
}

/// `<prefix>_classification_report.<ext>` (`json`: scikit-learn's dict; `csv`).
pub fn classification_report(phase: Phase, ext: &str) -> String {
    format!("{}_classification_report.{ext}", table_prefix(phase))
}

/// `confusion_matrix.json`, the [`ConfusionMatrix`] record.
pub const CONFUSION_JSON: &str = "confusion_matrix.json";
/// `confusion_matrix.csv`, the same counts with class names.
pub const CONFUSION_CSV: &str = "confusion_matrix.csv";
/// SubCenterArcFace's training images far from their class's dominant sub-centre.
pub const SUB_CENTER_OUTLIERS_CSV: &str = "sub_center_outliers.csv";

/// `tables/confusion_matrix.json`: counts of true (rows) against predicted (columns)
/// classes, over `labels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// Row and column labels: every label in the true or predicted labels, ascending.
    pub labels: Vec<usize>,
    /// Counts, rows true, columns predicted.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// The matrix of `counts` over `labels`, at the current schema version.
    pub fn new(labels: Vec<usize>, counts: Vec<Vec<usize>>) -> ConfusionMatrix {
        ConfusionMatrix {
            schema_version: super::record::SCHEMA_VERSION,
            labels,
            counts,
        }
    }

    /// Reads `confusion_matrix.json` at `path` and checks its counts are square over
    /// its labels; errors name the file.
    pub fn read(path: &Path) -> Result<ConfusionMatrix> {
        let Some(m) = super::record::read_record::<ConfusionMatrix>(path)? else {
            bail!("{}: not found", path.display());
        };
        let n = m.labels.len();
        if m.counts.len() != n || m.counts.iter().any(|r| r.len() != n) {
            bail!("{}: counts are not {n}×{n} like labels", path.display());
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_of_the_wrong_shape_is_rejected_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFUSION_JSON);
        std::fs::write(&path, r#"{"labels":[0,1],"counts":[[1]]}"#).unwrap();
        let err = format!("{:#}", ConfusionMatrix::read(&path).unwrap_err());
        assert!(
            err.contains("confusion_matrix.json") && err.contains("2×2"),
            "{err}"
        );
    }

    #[test]
    fn a_legacy_matrix_reads_as_version_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFUSION_JSON);
        std::fs::write(&path, r#"{"labels":[3],"counts":[[2]],"later":true}"#).unwrap();
        let m = ConfusionMatrix::read(&path).unwrap();
        assert_eq!(
            (m.schema_version, m.labels, m.counts),
            (1, vec![3], vec![vec![2]])
        );
    }
}
