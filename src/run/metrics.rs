//! `phase-P/metrics.json`: everything `dmlviz eval` measured on one phase, written by
//! `eval::run_eval`, read by the report and the study.

use super::record::{f64_or_nan, legacy_schema, nan};
use crate::config::Phase;
use serde::{Deserialize, Serialize};

/// `metrics.json` of a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseMetrics {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// The phase evaluated.
    pub phase: Phase,
    /// Nearest-neighbour metrics of the test images against the training images.
    pub retrieval: RetrievalMetrics,
    /// k-means clustering metrics of the test images.
    #[serde(default)]
    pub clustering: ClusteringMetrics,
    /// Accuracy of the loss's own class logits (ArcFace, SubCenterArcFace, ProxyNCA,
    /// classifier), beside the kNN accuracy; `None` for losses without class parameters.
    #[serde(default)]
    pub logits_accuracy: Option<f64>,
    /// precision@1 over the held-out classes' test images (phase-seen).
    #[serde(default)]
    pub unseen_precision_at_1: Option<f64>,
    /// Every class, in class-index order.
    #[serde(default)]
    pub classes: Vec<ClassRow>,
}

impl PhaseMetrics {
    /// Majority-vote accuracy at `k`, when it was computed.
    pub fn majority_vote_at(&self, k: usize) -> Option<f64> {
        self.retrieval
            .majority_vote_accuracy
            .iter()
            .find(|a| a.k == k)
            .map(|a| a.value)
    }
}

/// One class's row of `metrics.json` (and of the `*_classes_metrics` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    /// Class name.
    pub class: String,
    /// Test images (queries).
    #[serde(default)]
    pub test_count: usize,
    /// Training images (references).
    #[serde(default)]
    pub train_count: usize,
    /// precision@1 of the class's test images.
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub precision_at_1: f64,
}

/// One class's share of correctly handled queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAccuracy {
    /// The class label.
    pub label: usize,
    /// Number of (non-lone) queries of the class.
    pub queries: usize,
    /// Mean score over those queries.
    #[serde(deserialize_with = "f64_or_nan")]
    pub accuracy: f64,
}

/// A metric value at one neighbourhood size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtK {
    /// Neighbourhood size.
    pub k: usize,
    /// The metric's value.
    #[serde(deserialize_with = "f64_or_nan")]
    pub value: f64,
}

/// Per-class accuracies at one neighbourhood size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerClassAtK {
    /// Neighbourhood size.
    pub k: usize,
    /// One entry per non-lone class, ascending by label.
    pub classes: Vec<ClassAccuracy>,
}

/// Every retrieval metric of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// All queries, lone ones included.
    #[serde(default)]
    pub queries: usize,
    /// Queries that take part in the metrics (`queries − lone_queries`).
    #[serde(default)]
    pub evaluated_queries: usize,
    /// Queries whose label has no reference: left out, as PML does.
    #[serde(default)]
    pub lone_queries: usize,
    /// Distinct labels of the lone queries.
    #[serde(default)]
    pub lone_labels: Vec<usize>,
    /// Neighbours per query the metrics were computed from (MRR depends on it).
    #[serde(default)]
    pub k: usize,
    /// Precision@1 (= Recall@1).
    #[serde(deserialize_with = "f64_or_nan")]
    pub precision_at_1: f64,
    /// Recall@k (DML literature), one entry per requested k.
    #[serde(default)]
    pub recall_at_k: Vec<AtK>,
    /// R-precision (PML).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub r_precision: f64,
    /// MAP@R (PML).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub map_at_r: f64,
    /// Mean reciprocal rank within the `k` neighbours (PML).
    #[serde(default = "nan", deserialize_with = "f64_or_nan")]
    pub mean_reciprocal_rank: f64,
    /// Majority-vote accuracy, one entry per requested k.
    #[serde(default)]
    pub majority_vote_accuracy: Vec<AtK>,
    /// Precision@1 per class.
    #[serde(default)]
    pub per_class_precision_at_1: Vec<ClassAccuracy>,
    /// Majority-vote accuracy per class, one entry per requested k.
    #[serde(default)]
    pub per_class_majority_vote: Vec<PerClassAtK>,
}

/// NMI and AMI of k-means clusters of the query embeddings against their labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusteringMetrics {
    /// Number of queries clustered.
    #[serde(default)]
    pub queries: usize,
    /// Number of clusters (= distinct query labels).
    #[serde(default)]
    pub clusters: usize,
    /// Normalised mutual information; `None` when not meaningful (see `note`).
    #[serde(default)]
    pub nmi: Option<f64>,
    /// Adjusted mutual information; `None` when not meaningful (see `note`).
    #[serde(default)]
    pub ami: Option<f64>,
    /// k-means inertia of the clustering used.
    #[serde(default, deserialize_with = "f64_or_nan")]
    pub inertia: f64,
    /// Why NMI/AMI are missing: one query per label (as many clusters as queries
    /// makes NMI 1.0 by construction), a single label, or no queries.
    #[serde(default)]
    pub note: Option<String>,
}
