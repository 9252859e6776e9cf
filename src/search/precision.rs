//! Precision@1, the one definition that the per-epoch "test accuracy" of training
//! and the `metrics.json` of evaluation both use.
//!
//! **Lone queries.** A query is *lone* when no reference carries its label (no
//! reference other than itself, when a set is searched against itself: the caller
//! then counts references without the query). Its nearest neighbour cannot be right,
//! so, as pytorch-metric-learning's `AccuracyCalculator` does, lone queries are left
//! out of the mean instead of being counted as misses; when every query is lone
//! (or there is none) precision@1 is 0. docs/REFERENCE.md, "Precision@1", has the
//! definition and its source.

use super::distance::Distance;
use super::knn::k_nearest;
use anyhow::{bail, Context, Result};
use tch::{Device, Tensor};

/// Number of references per label, indexed by label (`counts[label]`).
pub fn label_counts(reference_labels: &[usize]) -> Vec<usize> {
    let len = reference_labels.iter().max().map_or(0, |&m| m + 1);
    let mut counts = vec![0; len];
    for &label in reference_labels {
        counts[label] += 1;
    }
    counts
}

/// True when a query of class `label` is lone: `reference_counts[label]` (how many
/// references carry each label; labels past its end have none) is 0.
pub fn is_lone(label: usize, reference_counts: &[usize]) -> bool {
    reference_counts.get(label).copied().unwrap_or(0) == 0
}

/// Precision@1 from labels: the share of non-lone queries `i` whose nearest
/// reference's label `nearest_labels[i]` is their own label `query_labels[i]`
/// (the two slices have one entry per query). 0 when no query is left.
pub fn precision_at_1_of_labels(
    query_labels: &[usize],
    nearest_labels: &[usize],
    reference_counts: &[usize],
) -> f64 {
    let (hits, evaluated) = query_labels
        .iter()
        .zip(nearest_labels)
        .filter(|(&label, _)| !is_lone(label, reference_counts))
        .fold((0usize, 0usize), |(h, n), (q, r)| {
            (h + (q == r) as usize, n + 1)
        });
    if evaluated == 0 {
        0.0
    } else {
        hits as f64 / evaluated as f64
    }
}

/// Precision@1 of `queries` `[n, d]` with labels `query_labels` `[n]` (int64) against
/// `references` `[m, d]` with labels `reference_labels` `[m]`, by exact search with
/// `distance`; lone queries left out (module doc).
pub fn precision_at_1(
    queries: &Tensor,
    query_labels: &Tensor,
    references: &Tensor,
    reference_labels: &Tensor,
    distance: Distance,
) -> Result<f64> {
    let query_labels = labels(query_labels, "query labels")?;
    let reference_labels = labels(reference_labels, "reference labels")?;
    if query_labels.is_empty() || reference_labels.is_empty() {
        return Ok(0.0);
    }
    let (nearest, _) = k_nearest(queries, references, 1, distance);
    let nearest: Vec<i64> = Vec::try_from(nearest.reshape([-1]).to_device(Device::Cpu))
        .context("reading the nearest neighbours' indices")?;
    let nearest_labels = nearest
        .iter()
        .map(|&j| reference_labels[j as usize])
        .collect::<Vec<_>>();
    Ok(precision_at_1_of_labels(
        &query_labels,
        &nearest_labels,
        &label_counts(&reference_labels),
    ))
}

/// A label tensor as class indices.
fn labels(t: &Tensor, what: &str) -> Result<Vec<usize>> {
    let raw: Vec<i64> = Vec::try_from(t.reshape([-1]).to_device(Device::Cpu))
        .with_context(|| format!("reading the {what}"))?;
    raw.into_iter()
        .map(|l| match usize::try_from(l) {
            Ok(l) => Ok(l),
            Err(_) => bail!("{what}: label {l} is negative"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_computed_case() {
        tch::set_num_threads(1);
        // References at 0, 10 (class 0) and 5 (class 1); queries at 1 (→0, class 0 ✓),
        // 6 (→5, class 1 ✓), 9 (→10, class 1 ✗), 4 (→5, class 0 ✗).
        let refs = Tensor::from_slice(&[0.0f32, 10.0, 5.0]).view([3, 1]);
        let ref_labels = Tensor::from_slice(&[0i64, 0, 1]);
        let q = Tensor::from_slice(&[1.0f32, 6.0, 9.0, 4.0]).view([4, 1]);
        let q_labels = Tensor::from_slice(&[0i64, 1, 1, 0]);
        let p = precision_at_1(&q, &q_labels, &refs, &ref_labels, Distance::Euclidean).unwrap();
        assert_eq!(p, 0.5);
    }

    #[test]
    fn lone_queries_are_left_out_not_counted_as_misses() {
        tch::set_num_threads(1);
        // Classes 0 and 1 have references; class 2 has none, so its query (at 11,
        // nearest to the class-0 reference at 10) is lone. Counting it as a miss
        // would give 2/3; PML's rule leaves it out: 2/2.
        let refs = Tensor::from_slice(&[0.0f32, 10.0, 5.0]).view([3, 1]);
        let ref_labels = Tensor::from_slice(&[0i64, 0, 1]);
        let q = Tensor::from_slice(&[1.0f32, 6.0, 11.0]).view([3, 1]);
        let q_labels = Tensor::from_slice(&[0i64, 1, 2]);
        let p = precision_at_1(&q, &q_labels, &refs, &ref_labels, Distance::Euclidean).unwrap();
        assert_eq!(p, 1.0);
        assert_eq!(
            precision_at_1_of_labels(&[0, 1, 2], &[0, 1, 0], &[2, 1]),
            1.0
        );
        // A lone query's label may lie inside the counts with a count of 0.
        assert!(is_lone(1, &[3, 0, 2]) && is_lone(7, &[3, 0, 2]) && !is_lone(2, &[3, 0, 2]));
        // Only lone queries: 0, as PML.
        let lone = Tensor::from_slice(&[2i64, 2, 2]);
        let p = precision_at_1(&q, &lone, &refs, &ref_labels, Distance::Euclidean).unwrap();
        assert_eq!(p, 0.0);
    }

    #[test]
    fn negative_labels_are_an_error_naming_them() {
        tch::set_num_threads(1);
        let x = Tensor::from_slice(&[0.0f32, 1.0]).view([2, 1]);
        let err = precision_at_1(
            &x,
            &Tensor::from_slice(&[0i64, -3]),
            &x,
            &Tensor::from_slice(&[0i64, 1]),
            Distance::Cosine,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("query labels: label -3"),
            "{err:#}"
        );
    }
}
