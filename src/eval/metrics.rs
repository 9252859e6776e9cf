//! Retrieval metrics over nearest-neighbour labels, defined as
//! pytorch-metric-learning's `AccuracyCalculator` defines them (precision@1,
//! R-precision, MAP@R, mean reciprocal rank, lone queries), plus the DML
//! literature's Recall@k and majority-vote classification accuracy.
//!
//! Inputs are plain data, gathered once in [`Neighbours`]:
//! - `query_labels[i]`: the label of query `i`;
//! - `knn_labels[i]`: the labels of query `i`'s `k` nearest references,
//!   nearest first (every row has the same length `k`, as a kNN search gives);
//! - `reference_counts[label]`: how many references carry `label` (labels past
//!   the end of the slice have none). [`label_counts`] builds it.
//!
//! Distances are not needed: the order of each row carries them, and ties in
//! majority vote are broken by that order (docs/REFERENCE.md, "The other retrieval
//! metrics").
//!
//! Queries whose label has no reference ("lone" queries) are left out of every
//! metric here, as PML leaves them out, and counted in [`RetrievalMetrics`].
//! When every query is lone each metric is 0, as in PML.

pub use crate::run::metrics::{AtK, ClassAccuracy, PerClassAtK, RetrievalMetrics};
use crate::search::precision;

/// Recall@k values reported by default (the DML literature's CUB/Cars columns).
pub const DEFAULT_RECALL_KS: [usize; 4] = [1, 2, 4, 8];

/// Majority-vote neighbourhood sizes reported by default.
pub const DEFAULT_VOTE_KS: [usize; 4] = [1, 3, 5, 10];

/// Why a metric cannot be computed from the neighbours given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// The inputs disagree with each other (lengths, ragged rows, unknown labels).
    #[error("inconsistent retrieval input: {0}")]
    Inconsistent(String),
    /// Too few neighbours per query for a metric (e.g. R-precision with k < R).
    #[error(
        "{metric} needs {needed} neighbours per query ({why}) but only {available} were given; \
         search with k ≥ {needed}"
    )]
    TooFewNeighbours {
        /// The metric that cannot be computed.
        metric: String,
        /// Neighbours per query it needs.
        needed: usize,
        /// Neighbours per query that were given.
        available: usize,
        /// Where the need comes from (which class, which k).
        why: String,
    },
}

pub use crate::search::precision::label_counts;

/// Turns neighbour indices (as [`crate::search::knn::k_nearest`] returns them,
/// converted to `Vec<Vec<i64>>`) into neighbour labels.
pub fn neighbour_labels(
    indices: &[Vec<i64>],
    reference_labels: &[usize],
) -> Result<Vec<Vec<usize>>, MetricError> {
    indices
        .iter()
        .enumerate()
        .map(|(q, row)| {
            row.iter()
                .map(|&i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| reference_labels.get(i).copied())
                        .ok_or_else(|| {
                            MetricError::Inconsistent(format!(
                                "query {q}: neighbour index {i} outside 0..{}",
                                reference_labels.len()
                            ))
                        })
                })
                .collect()
        })
        .collect()
}

/// The smallest `k` a kNN search needs for every metric here: the largest
/// reference count among the query labels (R-precision, MAP@R) and the largest
/// of `ks` (Recall@k, majority vote), capped at the number of references (a
/// search over all references has every neighbour there is).
pub fn required_k(query_labels: &[usize], reference_counts: &[usize], ks: &[usize]) -> usize {
    let max_r = query_labels
        .iter()
        .map(|&l| reference_counts.get(l).copied().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let total: usize = reference_counts.iter().sum();
    max_r.max(ks.iter().copied().max().unwrap_or(0)).min(total)
}

/// Validated retrieval input: query labels, their neighbours' labels (nearest
/// first) and the reference count of each label. See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Neighbours<'a> {
    query_labels: &'a [usize],
    knn_labels: &'a [Vec<usize>],
    reference_counts: &'a [usize],
    k: usize,
    total_references: usize,
}

impl<'a> Neighbours<'a> {
    /// Checks that the three inputs agree: one row per query, all rows of the
    /// same length `k` ≤ the number of references, at least one neighbour when
    /// there are references, and every neighbour label present in the counts.
    pub fn new(
        query_labels: &'a [usize],
        knn_labels: &'a [Vec<usize>],
        reference_counts: &'a [usize],
    ) -> Result<Self, MetricError> {
        if query_labels.len() != knn_labels.len() {
            return Err(MetricError::Inconsistent(format!(
                "{} query labels but {} neighbour rows",
                query_labels.len(),
                knn_labels.len()
            )));
        }
        let total_references: usize = reference_counts.iter().sum();
        let k = knn_labels.first().map_or(0, Vec::len);
        for (q, row) in knn_labels.iter().enumerate() {
            if row.len() != k {
                return Err(MetricError::Inconsistent(format!(
                    "query {q} has {} neighbours, query 0 has {k}",
                    row.len()
                )));
            }
            // A neighbour label without references means the counts and the
            // search were made from different reference sets.
            if let Some(&bad) = row
                .iter()
                .find(|&&l| reference_counts.get(l).copied().unwrap_or(0) == 0)
            {
                return Err(MetricError::Inconsistent(format!(
                    "query {q}: neighbour label {bad} has no reference in the counts"
                )));
            }
        }
        if k > total_references {
            return Err(MetricError::Inconsistent(format!(
                "{k} neighbours per query but only {total_references} references"
            )));
        }
        if k == 0 && total_references > 0 && !query_labels.is_empty() {
            return Err(MetricError::Inconsistent(
                "no neighbours given (k = 0)".into(),
            ));
        }
        Ok(Neighbours {
            query_labels,
            knn_labels,
            reference_counts,
            k,
            total_references,
        })
    }

    /// Neighbours per query.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of queries, lone ones included.
    pub fn len(&self) -> usize {
        self.query_labels.len()
    }

    /// True when there are no queries.
    pub fn is_empty(&self) -> bool {
        self.query_labels.is_empty()
    }

    /// R of a label: the number of references that carry it.
    pub fn reference_count(&self, label: usize) -> usize {
        self.reference_counts.get(label).copied().unwrap_or(0)
    }

    /// True for a query whose label has no reference (PML's "lone" query).
    pub fn is_lone(&self, query: usize) -> bool {
        precision::is_lone(self.query_labels[query], self.reference_counts)
    }

    /// Indices of the queries that take part in the metrics (not lone).
    pub fn evaluated(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&q| !self.is_lone(q))
    }

    /// Number of lone queries.
    pub fn lone_count(&self) -> usize {
        (0..self.len()).filter(|&q| self.is_lone(q)).count()
    }

    /// Distinct labels of the lone queries, ascending.
    pub fn lone_labels(&self) -> Vec<usize> {
        let mut labels: Vec<usize> = (0..self.len())
            .filter(|&q| self.is_lone(q))
            .map(|q| self.query_labels[q])
            .collect();
        labels.sort_unstable();
        labels.dedup();
        labels
    }

    /// Errors unless every row holds the first `k` neighbours, or all of them.
    fn require(&self, metric: &str, k: usize) -> Result<(), MetricError> {
        let needed = k.min(self.total_references);
        if self.k < needed {
            return Err(MetricError::TooFewNeighbours {
                metric: metric.into(),
                needed,
                available: self.k,
                why: format!("k = {k}"),
            });
        }
        Ok(())
    }

    /// Errors unless every evaluated query has at least R neighbours.
    fn require_r(&self, metric: &str) -> Result<(), MetricError> {
        let worst = self
            .evaluated()
            .map(|q| self.query_labels[q])
            .max_by_key(|&l| (self.reference_count(l), std::cmp::Reverse(l)));
        if let Some(label) = worst {
            let r = self.reference_count(label);
            if r > self.k {
                return Err(MetricError::TooFewNeighbours {
                    metric: metric.into(),
                    needed: r,
                    available: self.k,
                    why: format!("R = {r} references of label {label}"),
                });
            }
        }
        Ok(())
    }

    /// Mean of a per-query score over the evaluated queries (0 when there are none,
    /// as in PML).
    fn mean(&self, score: impl Fn(usize) -> f64) -> f64 {
        let (sum, n) = self
            .evaluated()
            .fold((0.0, 0usize), |(s, n), q| (s + score(q), n + 1));
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    }

    /// Per-class mean of a per-query score, ascending by label (PML's
    /// `return_per_class`).
    fn per_class(&self, score: impl Fn(usize) -> f64) -> Vec<ClassAccuracy> {
        let mut sums: std::collections::BTreeMap<usize, (f64, usize)> = Default::default();
        for q in self.evaluated() {
            let e = sums.entry(self.query_labels[q]).or_default();
            e.0 += score(q);
            e.1 += 1;
        }
        sums.into_iter()
            .map(|(label, (sum, n))| ClassAccuracy {
                label,
                queries: n,
                accuracy: sum / n as f64,
            })
            .collect()
    }

    fn hit(&self, q: usize, rank: usize) -> bool {
        self.knn_labels[q][rank] == self.query_labels[q]
    }
}

/// Precision@1 (PML's `precision_at_1`, the literature's Recall@1, the reference
/// experiments' "test accuracy"): share of non-lone queries whose nearest reference
/// has their label, by [`precision::precision_at_1_of_labels`], the one definition
/// training's per-epoch value uses too.
pub fn precision_at_1(n: &Neighbours) -> Result<f64, MetricError> {
    n.require("precision@1", 1)?;
    let nearest: Vec<usize> = n.knn_labels.iter().map(|row| row[0]).collect();
    Ok(precision::precision_at_1_of_labels(
        n.query_labels,
        &nearest,
        n.reference_counts,
    ))
}

/// Recall@k as the DML literature uses it: share of queries with at least one
/// neighbour of their label among the first `k`. (Not PML's `precision_at_k`,
/// which is the share of the `k` neighbours.)
pub fn recall_at_k(n: &Neighbours, k: usize) -> Result<f64, MetricError> {
    n.require(&format!("Recall@{k}"), k)?;
    Ok(n.mean(|q| (0..k.min(n.k)).any(|r| n.hit(q, r)) as u8 as f64))
}

/// R-precision (PML): with R = the number of references of the query's label,
/// the share of the first R neighbours that carry it. Needs k ≥ R for every
/// query; PML would silently cut R to k, here that is an error.
pub fn r_precision(n: &Neighbours) -> Result<f64, MetricError> {
    n.require_r("R-precision")?;
    Ok(n.mean(|q| {
        let r = n.reference_count(n.query_labels[q]);
        (0..r).filter(|&i| n.hit(q, i)).count() as f64 / r as f64
    }))
}

/// MAP@R (PML's `mean_average_precision_at_r`): (1/R)·Σ_{i≤R} P@i·rel(i) with R
/// as in [`r_precision`]. Same k ≥ R requirement.
pub fn map_at_r(n: &Neighbours) -> Result<f64, MetricError> {
    n.require_r("MAP@R")?;
    Ok(n.mean(|q| average_precision_at(n, q, n.reference_count(n.query_labels[q]))))
}

/// (1/R)·Σ_{i≤R} P@i·rel(i) for one query.
fn average_precision_at(n: &Neighbours, q: usize, r: usize) -> f64 {
    let mut correct = 0usize;
    let mut sum = 0.0;
    for i in 0..r {
        if n.hit(q, i) {
            correct += 1;
            sum += correct as f64 / (i + 1) as f64;
        }
    }
    sum / r as f64
}

/// Mean reciprocal rank (PML): 1/rank of the first neighbour with the query's
/// label among all `k` given, 0 when there is none. Depends on `k`.
pub fn mean_reciprocal_rank(n: &Neighbours) -> Result<f64, MetricError> {
    n.require("mean reciprocal rank", 1)?;
    Ok(n.mean(|q| reciprocal_rank(n, q)))
}

fn reciprocal_rank(n: &Neighbours, q: usize) -> f64 {
    (0..n.k)
        .find(|&r| n.hit(q, r))
        .map_or(0.0, |r| 1.0 / (r + 1) as f64)
}

/// The majority-vote class of one query: the most frequent label among its first
/// `k` neighbours (all of them if fewer); a tie goes to the tied label that
/// appears nearest. `None` when there is no neighbour.
pub fn majority_vote(neighbour_labels: &[usize], k: usize) -> Option<usize> {
    let window = &neighbour_labels[..k.min(neighbour_labels.len())];
    // (label, votes) in order of first appearance, so the first maximum found is
    // the nearest among the tied labels.
    let mut tally: Vec<(usize, usize)> = Vec::new();
    for &label in window {
        match tally.iter_mut().find(|(l, _)| *l == label) {
            Some(entry) => entry.1 += 1,
            None => tally.push((label, 1)),
        }
    }
    let mut best: Option<(usize, usize)> = None;
    for &(label, votes) in &tally {
        if best.is_none_or(|(_, v)| votes > v) {
            best = Some((label, votes));
        }
    }
    best.map(|(label, _)| label)
}

/// Majority-vote predictions at `k` for every query, lone ones included (for the
/// classification report and the confusion matrix); `None` only without
/// neighbours.
pub fn majority_vote_predictions(
    n: &Neighbours,
    k: usize,
) -> Result<Vec<Option<usize>>, MetricError> {
    n.require(&format!("majority vote at k = {k}"), k)?;
    Ok(n.knn_labels
        .iter()
        .map(|row| majority_vote(row, k))
        .collect())
}

/// Majority-vote accuracy at `k`: share of (non-lone) queries whose
/// [`majority_vote`] is their label.
pub fn majority_vote_accuracy(n: &Neighbours, k: usize) -> Result<f64, MetricError> {
    n.require(&format!("majority vote at k = {k}"), k)?;
    Ok(n.mean(|q| (majority_vote(&n.knn_labels[q], k) == Some(n.query_labels[q])) as u8 as f64))
}

/// Precision@1 per class (non-lone classes, ascending by label).
pub fn per_class_precision_at_1(n: &Neighbours) -> Result<Vec<ClassAccuracy>, MetricError> {
    n.require("precision@1", 1)?;
    Ok(n.per_class(|q| n.hit(q, 0) as u8 as f64))
}

/// Majority-vote accuracy at `k` per class (non-lone classes, ascending by label).
pub fn per_class_majority_vote(
    n: &Neighbours,
    k: usize,
) -> Result<Vec<ClassAccuracy>, MetricError> {
    n.require(&format!("majority vote at k = {k}"), k)?;
    Ok(n.per_class(|q| {
        (majority_vote(&n.knn_labels[q], k) == Some(n.query_labels[q])) as u8 as f64
    }))
}

/// Computes every metric. `recall_ks` and `vote_ks` are the neighbourhood sizes
/// for Recall@k and majority vote ([`DEFAULT_RECALL_KS`], [`DEFAULT_VOTE_KS`]);
/// the search must have `k ≥` [`required_k`] of them.
pub fn retrieval_metrics(
    n: &Neighbours,
    recall_ks: &[usize],
    vote_ks: &[usize],
) -> Result<RetrievalMetrics, MetricError> {
    let lone_queries = n.lone_count();
    Ok(RetrievalMetrics {
        queries: n.len(),
        evaluated_queries: n.len() - lone_queries,
        lone_queries,
        lone_labels: n.lone_labels(),
        k: n.k(),
        precision_at_1: precision_at_1(n)?,
        recall_at_k: recall_ks
            .iter()
            .map(|&k| {
                Ok(AtK {
                    k,
                    value: recall_at_k(n, k)?,
                })
            })
            .collect::<Result<_, _>>()?,
        r_precision: r_precision(n)?,
        map_at_r: map_at_r(n)?,
        mean_reciprocal_rank: mean_reciprocal_rank(n)?,
        majority_vote_accuracy: vote_ks
            .iter()
            .map(|&k| {
                Ok(AtK {
                    k,
                    value: majority_vote_accuracy(n, k)?,
                })
            })
            .collect::<Result<_, _>>()?,
        per_class_precision_at_1: per_class_precision_at_1(n)?,
        per_class_majority_vote: vote_ks
            .iter()
            .map(|&k| {
                Ok(PerClassAtK {
                    k,
                    classes: per_class_majority_vote(n, k)?,
                })
            })
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// References: label 0 ×3, label 1 ×2, label 2 ×1 (a class with one reference).
    const COUNTS: [usize; 3] = [3, 2, 1];

    #[test]
    fn hand_computed_metrics() {
        let queries = vec![0, 0, 1, 2];
        let knn = vec![
            vec![0, 1, 0, 0], // P@1 1; R=3: hits at 1,3 → RP 2/3, AP (1 + 2/3)/3; RR 1
            vec![1, 0, 2, 1], // P@1 0; hits at 2 → RP 1/3, AP (1/2)/3; RR 1/2
            vec![0, 0, 1, 1], // P@1 0; R=2: no hit in 2 → RP 0, AP 0; RR 1/3
            vec![1, 0, 0, 1], // P@1 0; R=1 → RP 0, AP 0; no hit at all → RR 0
        ];
        let n = Neighbours::new(&queries, &knn, &COUNTS).unwrap();
        close(precision_at_1(&n).unwrap(), 0.25);
        close(recall_at_k(&n, 1).unwrap(), 0.25);
        close(recall_at_k(&n, 2).unwrap(), 0.5);
        close(recall_at_k(&n, 3).unwrap(), 0.75);
        close(recall_at_k(&n, 4).unwrap(), 0.75);
        close(r_precision(&n).unwrap(), (2.0 / 3.0 + 1.0 / 3.0) / 4.0);
        close(
            map_at_r(&n).unwrap(),
            ((1.0 + 2.0 / 3.0) / 3.0 + 0.5 / 3.0) / 4.0,
        );
        close(
            mean_reciprocal_rank(&n).unwrap(),
            (1.0 + 0.5 + 1.0 / 3.0) / 4.0,
        );
        let per_class = per_class_precision_at_1(&n).unwrap();
        assert_eq!(
            per_class,
            vec![
                ClassAccuracy {
                    label: 0,
                    queries: 2,
                    accuracy: 0.5
                },
                ClassAccuracy {
                    label: 1,
                    queries: 1,
                    accuracy: 0.0
                },
                ClassAccuracy {
                    label: 2,
                    queries: 1,
                    accuracy: 0.0
                },
            ]
        );
    }

    #[test]
    fn class_with_one_reference_found_first() {
        let queries = vec![2];
        let knn = vec![vec![2, 0, 0]];
        let n = Neighbours::new(&queries, &knn, &COUNTS).unwrap();
        close(r_precision(&n).unwrap(), 1.0);
        close(map_at_r(&n).unwrap(), 1.0);
        close(mean_reciprocal_rank(&n).unwrap(), 1.0);
    }

    #[test]
    fn majority_vote_counts_and_breaks_ties_by_nearest() {
        assert_eq!(majority_vote(&[1, 0, 0, 2, 2], 1), Some(1));
        assert_eq!(majority_vote(&[1, 0, 0, 2, 2], 3), Some(0));
        // 0 and 2 tie with two votes; 0 appears nearer.
        assert_eq!(majority_vote(&[1, 0, 0, 2, 2], 5), Some(0));
        // 1 and 2 tie; 2 appears nearer even though 1 is at rank 2.
        assert_eq!(majority_vote(&[2, 1, 1, 2], 4), Some(2));
        // All different: the nearest wins.
        assert_eq!(majority_vote(&[3, 1, 2], 3), Some(3));
        // k beyond the row uses what there is.
        assert_eq!(majority_vote(&[1, 1], 10), Some(1));
        assert_eq!(majority_vote(&[], 3), None);
    }

    #[test]
    fn majority_vote_accuracy_and_per_class() {
        let counts = [5, 5, 5];
        let queries = vec![0, 1, 1, 2];
        let knn = vec![
            vec![1, 0, 0, 2, 2], // k1 ✗, k3 ✓ (0), k5 ✓ (tie 0/2 → 0)
            vec![1, 2, 2, 1, 1], // k1 ✓, k3 ✗ (2), k5 ✓ (1 ×3)
            vec![2, 1, 0, 0, 0], // k1 ✗, k3 ✗ (tie → 2), k5 ✗ (0)
            vec![2, 2, 0, 0, 0], // k1 ✓, k3 ✓, k5 ✗ (0 ×3)
        ];
        let n = Neighbours::new(&queries, &knn, &counts).unwrap();
        close(majority_vote_accuracy(&n, 1).unwrap(), 0.5);
        close(majority_vote_accuracy(&n, 3).unwrap(), 0.5);
        close(majority_vote_accuracy(&n, 5).unwrap(), 0.5);
        let k3 = per_class_majority_vote(&n, 3).unwrap();
        assert_eq!(
            k3,
            vec![
                ClassAccuracy {
                    label: 0,
                    queries: 1,
                    accuracy: 1.0
                },
                ClassAccuracy {
                    label: 1,
                    queries: 2,
                    accuracy: 0.0
                },
                ClassAccuracy {
                    label: 2,
                    queries: 1,
                    accuracy: 1.0
                },
            ]
        );
        let predictions = majority_vote_predictions(&n, 3).unwrap();
        assert_eq!(predictions, vec![Some(0), Some(2), Some(2), Some(2)]);
        // Asking for more neighbours than were searched is an error (15 references).
        assert!(matches!(
            majority_vote_accuracy(&n, 10),
            Err(MetricError::TooFewNeighbours {
                needed: 10,
                available: 5,
                ..
            })
        ));
    }

    #[test]
    fn lone_queries_are_excluded_and_counted() {
        // Label 3 has no reference.
        let queries = vec![0, 3, 1, 3];
        let knn = vec![vec![0, 0, 0], vec![0, 1, 0], vec![0, 1, 1], vec![2, 0, 0]];
        let n = Neighbours::new(&queries, &knn, &COUNTS).unwrap();
        let m = retrieval_metrics(&n, &[1, 2], &[1, 3]).unwrap();
        assert_eq!((m.queries, m.evaluated_queries, m.lone_queries), (4, 2, 2));
        assert_eq!(m.lone_labels, vec![3]);
        close(m.precision_at_1, 0.5);
        assert_eq!(
            m.recall_at_k,
            vec![AtK { k: 1, value: 0.5 }, AtK { k: 2, value: 1.0 }]
        );
        close(m.r_precision, (1.0 + 0.5) / 2.0);
        close(m.map_at_r, (1.0 + 0.25) / 2.0);
        close(m.mean_reciprocal_rank, (1.0 + 0.5) / 2.0);
        assert_eq!(
            m.majority_vote_accuracy,
            vec![AtK { k: 1, value: 0.5 }, AtK { k: 3, value: 1.0 }]
        );
        assert_eq!(m.per_class_precision_at_1.len(), 2);
        // Lone queries still get a prediction for the classification report.
        assert_eq!(majority_vote_predictions(&n, 1).unwrap()[1], Some(0));
        // All lone: every metric is 0, as in PML.
        let lone = vec![3];
        let knn = vec![vec![0, 0, 0]];
        let n = Neighbours::new(&lone, &knn, &COUNTS).unwrap();
        let m = retrieval_metrics(&n, &[1], &[1]).unwrap();
        assert_eq!(
            (m.evaluated_queries, m.precision_at_1, m.map_at_r),
            (0, 0.0, 0.0)
        );
        assert!(m.per_class_precision_at_1.is_empty());
    }

    #[test]
    fn metrics_json_and_the_per_epoch_value_agree_on_lone_queries() {
        use crate::search::knn::k_nearest;
        use crate::search::Distance;
        use tch::Tensor;
        tch::set_num_threads(1);
        // References at 0, 10 (class 0) and 5 (class 1); the class-2 query at 11 is
        // lone. The old per-epoch definition counted it as a miss (2/3).
        let refs = Tensor::from_slice(&[0.0f32, 10.0, 5.0]).view([3, 1]);
        let q = Tensor::from_slice(&[1.0f32, 6.0, 11.0]).view([3, 1]);
        let (ref_labels, q_labels) = ([0usize, 0, 1], [0usize, 1, 2]);
        let per_epoch = crate::search::precision::precision_at_1(
            &q,
            &Tensor::from_slice(&[0i64, 1, 2]),
            &refs,
            &Tensor::from_slice(&[0i64, 0, 1]),
            Distance::Euclidean,
        )
        .unwrap();
        let (idx, _) = k_nearest(&q, &refs, 3, Distance::Euclidean);
        let idx: Vec<Vec<i64>> = Vec::try_from(&idx).unwrap();
        let knn = neighbour_labels(&idx, &ref_labels).unwrap();
        let counts = label_counts(&ref_labels);
        let n = Neighbours::new(&q_labels, &knn, &counts).unwrap();
        let in_metrics_json = precision_at_1(&n).unwrap();
        assert_eq!((per_epoch, in_metrics_json), (1.0, 1.0));
    }

    #[test]
    fn r_larger_than_k_is_an_error_naming_the_shortfall() {
        let queries = vec![2, 0];
        let knn = vec![vec![2, 0], vec![0, 0]];
        let n = Neighbours::new(&queries, &knn, &COUNTS).unwrap();
        let err = r_precision(&n).unwrap_err();
        assert_eq!(
            err,
            MetricError::TooFewNeighbours {
                metric: "R-precision".into(),
                needed: 3,
                available: 2,
                why: "R = 3 references of label 0".into()
            }
        );
        assert!(err.to_string().contains("k ≥ 3"), "{err}");
        assert!(map_at_r(&n).is_err());
        assert!(retrieval_metrics(&n, &[1], &[1]).is_err());
        // Only the query labels matter: without the label-0 query k = 2 is enough.
        let n = Neighbours::new(&queries[..1], &knn[..1], &COUNTS).unwrap();
        close(r_precision(&n).unwrap(), 1.0);
    }

    #[test]
    fn k_equal_to_all_references_suffices_for_larger_ks() {
        let counts = [1, 1];
        let queries = vec![1];
        let knn = vec![vec![0, 1]];
        let n = Neighbours::new(&queries, &knn, &counts).unwrap();
        close(recall_at_k(&n, 8).unwrap(), 1.0);
        close(majority_vote_accuracy(&n, 10).unwrap(), 0.0);
        assert_eq!(required_k(&queries, &counts, &[1, 10]), 2);
    }

    #[test]
    fn inconsistent_inputs_are_rejected() {
        assert!(Neighbours::new(&[0], &[], &COUNTS).is_err());
        assert!(Neighbours::new(&[0, 1], &[vec![0, 1], vec![0]], &COUNTS).is_err());
        assert!(Neighbours::new(&[0], &[vec![5]], &COUNTS).is_err());
        assert!(Neighbours::new(&[0], &[vec![0; 7]], &COUNTS).is_err());
        assert!(Neighbours::new(&[0], &[vec![]], &COUNTS).is_err());
    }

    #[test]
    fn helpers_build_counts_and_labels() {
        assert_eq!(label_counts(&[2, 0, 2, 2]), vec![1, 0, 3]);
        let labels = neighbour_labels(&[vec![3, 0], vec![1, 2]], &[7, 8, 9, 4]).unwrap();
        assert_eq!(labels, vec![vec![4, 7], vec![8, 9]]);
        assert!(neighbour_labels(&[vec![4]], &[7, 8, 9, 4]).is_err());
        assert!(neighbour_labels(&[vec![-1]], &[7]).is_err());
        assert_eq!(required_k(&[0, 1], &COUNTS, &[1, 2]), 3);
        assert_eq!(required_k(&[1, 2], &COUNTS, &[1]), 2);
    }

    #[test]
    fn serialises_to_json() {
        let queries = vec![0];
        // Every reference is a neighbour, so Recall@8 is defined with 6 references.
        let knn = vec![vec![0, 0, 0, 1, 1, 2]];
        let n = Neighbours::new(&queries, &knn, &COUNTS).unwrap();
        let m = retrieval_metrics(&n, &DEFAULT_RECALL_KS, &[1, 3]).unwrap();
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["precision_at_1"], 1.0);
        assert_eq!(json["recall_at_k"][3]["k"], 8);
    }
}
