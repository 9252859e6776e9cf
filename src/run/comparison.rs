//! `comparison/precision_drop.json`: how much precision@1 the phase-seen model loses
//! against the phase-all model. Written by `dmlviz eval` when both phases exist, read by
//! the report and the study. The two CSV tables beside it are [`super::RunDir::comparison_table`].

use super::record::{f64_or_nan, legacy_schema, nan};
use serde::{Deserialize, Serialize};

/// `comparison/precision_drop.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionDrop {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// Mean over the held-out classes of P@1(all-classes model) − P@1(limited model).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub precision_drop_unseen_classes: f64,
    /// The same mean over every class.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub precision_drop_all_classes: f64,
    /// The held-out classes, by name.
    #[serde(default)]
    pub held_out_classes: Vec<String>,
}
