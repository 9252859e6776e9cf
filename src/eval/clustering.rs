//! Clustering quality of the query embeddings, as PML's `AccuracyCalculator`
//! measures it: k-means with as many clusters as there are query labels, then
//! NMI and AMI between the clusters and the labels, computed exactly as
//! scikit-learn's `normalized_mutual_info_score` and
//! `adjusted_mutual_info_score` (arithmetic-mean normalisation, their default).
//!
//! k-means is our own: greedy k-means++ seeding (scikit-learn's) from [`crate::data::rng::Rng`] (PML
//! uses faiss' random seeding, which is not reproducible across machines),
//! Lloyd iterations and several restarts keeping the lowest inertia.

use crate::data::rng::Rng;
pub use crate::run::metrics::ClusteringMetrics;
use anyhow::{bail, Result};
use rayon::prelude::*;

/// k-means settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansConfig {
    /// Independent k-means++ starts; the one with the lowest inertia is kept.
    pub restarts: usize,
    /// Most Lloyd iterations per start (scikit-learn's default is 300).
    pub max_iterations: usize,
    /// Stop when the summed squared centre shift is at most `tolerance` × the
    /// mean per-dimension variance of the data (scikit-learn's `tol`).
    pub tolerance: f64,
    /// Seed of every start (start `r` draws from `Rng::derive(seed, [r])`).
    pub seed: u64,
}

impl Default for KMeansConfig {
    fn default() -> Self {
        KMeansConfig {
            restarts: 3,
            max_iterations: 300,
            tolerance: 1e-4,
            seed: 0,
        }
    }
}

/// A k-means solution.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Cluster of each point (`0..n_clusters`).
    pub assignments: Vec<usize>,
    /// Cluster centres.
    pub centroids: Vec<Vec<f32>>,
    /// Sum of squared distances of the points to their centres.
    pub inertia: f64,
    /// Lloyd iterations of the kept start.
    pub iterations: usize,
}

/// Clusters `points` (all of one dimension) into `n_clusters` groups.
/// Deterministic for a given `config.seed`, whatever the thread count.
pub fn kmeans(points: &[Vec<f32>], n_clusters: usize, config: &KMeansConfig) -> Result<KMeans> {
    let n = points.len();
    if n_clusters == 0 || n_clusters > n {
        bail!("k-means: {n_clusters} clusters asked for {n} points (need 1 ≤ clusters ≤ points)");
    }
    let dim = points[0].len();
    let mut flat = Vec::with_capacity(n * dim);
    for (i, p) in points.iter().enumerate() {
        if p.len() != dim {
            bail!(
                "k-means: point {i} has {} dimensions, point 0 has {dim}",
                p.len()
            );
        }
        if let Some(v) = p.iter().find(|v| !v.is_finite()) {
            bail!("k-means: point {i} holds the non-finite value {v}");
        }
        flat.extend(p.iter().map(|&v| v as f64));
    }
    if n_clusters == n {
        // Every point its own cluster is the exact optimum (inertia 0).
        return Ok(KMeans {
            assignments: (0..n).collect(),
            centroids: points.to_vec(),
            inertia: 0.0,
            iterations: 0,
        });
    }
    let data = Data { flat, dim };
    let tol = config.tolerance * data.mean_variance();
    let mut best: Option<Solution> = None;
    for restart in 0..config.restarts.max(1) {
        let mut rng = Rng::derive(config.seed, &[restart as u64]);
        let solution = lloyd(
            &data,
            kmeans_plus_plus(&data, n_clusters, &mut rng),
            config.max_iterations,
            tol,
        );
        // Strictly lower: ties keep the earlier start, for determinism.
        if best.as_ref().is_none_or(|b| solution.inertia < b.inertia) {
            best = Some(solution);
        }
    }
    let best = best.expect("at least one start");
    Ok(KMeans {
        assignments: best.assignments,
        centroids: best
            .centroids
            .chunks(dim)
            .map(|c| c.iter().map(|&v| v as f32).collect())
            .collect(),
        inertia: best.inertia,
        iterations: best.iterations,
    })
}

/// Points as one row-major `n × dim` array (f64, so sums over many points keep
/// their precision).
struct Data {
    flat: Vec<f64>,
    dim: usize,
}

impl Data {
    fn len(&self) -> usize {
        self.flat.len() / self.dim.max(1)
    }

    fn point(&self, i: usize) -> &[f64] {
        &self.flat[i * self.dim..(i + 1) * self.dim]
    }

    fn mean_variance(&self) -> f64 {
        let (n, d) = (self.len() as f64, self.dim);
        if d == 0 {
            return 0.0;
        }
        let mut total = 0.0;
        for j in 0..d {
            let mean = (0..self.len()).map(|i| self.flat[i * d + j]).sum::<f64>() / n;
            total += (0..self.len())
                .map(|i| (self.flat[i * d + j] - mean).powi(2))
                .sum::<f64>()
                / n;
        }
        total / d as f64
    }

    /// Nearest centre (lowest index on ties) and squared distance of every point.
    fn assign(&self, centroids: &[f64]) -> Vec<(usize, f64)> {
        let d = self.dim;
        let k = centroids.len().checked_div(d).unwrap_or(1);
        (0..self.len())
            .into_par_iter()
            .map(|i| {
                let p = self.point(i);
                let mut best = (0, f64::INFINITY);
                for c in 0..k {
                    let dist = squared_distance(p, &centroids[c * d..(c + 1) * d]);
                    if dist < best.1 {
                        best = (c, dist);
                    }
                }
                best
            })
            .collect()
    }
}

/// Squared Euclidean distance, with four partial sums so it vectorises.
fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc[0] + acc[1] + acc[2] + acc[3] + tail
}

/// Greedy k-means++ seeding, as scikit-learn's `_kmeans_plusplus`: the first
/// centre uniformly; then `2 + ⌊ln k⌋` candidates drawn with probability ∝
/// squared distance to the nearest centre so far, keeping the candidate that
/// lowers the total squared distance most (plain k-means++ draws one, and lands
/// in poor local optima more often). Returns the centres, row-major.
fn kmeans_plus_plus(data: &Data, k: usize, rng: &mut Rng) -> Vec<f64> {
    let n = data.len();
    let trials = 2 + (k as f64).ln() as usize;
    let first = rng.below(n as u64) as usize;
    let mut centroids = data.point(first).to_vec();
    let mut nearest: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| squared_distance(data.point(i), data.point(first)))
        .collect();
    for _ in 1..k {
        let mut cumulative = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &w in &nearest {
            acc += w;
            cumulative.push(acc);
        }
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let target = rng.next_f64() * acc;
            // First index whose running sum reaches the target (numpy's searchsorted).
            let candidate = cumulative.partition_point(|&c| c < target).min(n - 1);
            let centre = data.point(candidate);
            let merged: Vec<f64> = nearest
                .par_iter()
                .enumerate()
                .map(|(i, &w)| w.min(squared_distance(data.point(i), centre)))
                .collect();
            let potential: f64 = merged.iter().sum();
            if best.as_ref().is_none_or(|b| potential < b.0) {
                best = Some((potential, candidate, merged));
            }
        }
        let (_, chosen, merged) = best.expect("at least two trials");
        nearest = merged;
        centroids.extend_from_slice(data.point(chosen));
    }
    centroids
}

struct Solution {
    assignments: Vec<usize>,
    centroids: Vec<f64>,
    inertia: f64,
    iterations: usize,
}

/// Lloyd iterations from `centroids` until the assignments stop changing, the
/// centres move less than `tol`, or `max_iterations` is reached.
fn lloyd(data: &Data, mut centroids: Vec<f64>, max_iterations: usize, tol: f64) -> Solution {
    let (n, d) = (data.len(), data.dim);
    let k = centroids.len() / d.max(1);
    let mut previous: Option<Vec<usize>> = None;
    let mut iterations = 0;
    for _ in 0..max_iterations {
        iterations += 1;
        let assigned = data.assign(&centroids);
        let assignments: Vec<usize> = assigned.iter().map(|a| a.0).collect();
        if previous.as_ref() == Some(&assignments) {
            break;
        }
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0usize; k];
        for (i, &c) in assignments.iter().enumerate() {
            counts[c] += 1;
            for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(data.point(i)) {
                *s += v;
            }
        }
        // Empty clusters restart at the points farthest from their centres, as
        // scikit-learn relocates them (farthest first, lower index on ties).
        let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
        if !empty.is_empty() {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| assigned[b].1.total_cmp(&assigned[a].1).then(a.cmp(&b)));
            for (&c, &i) in empty.iter().zip(&order) {
                sums[c * d..(c + 1) * d].copy_from_slice(data.point(i));
                counts[c] = 1;
            }
        }
        for c in 0..k {
            for s in &mut sums[c * d..(c + 1) * d] {
                *s /= counts[c] as f64;
            }
        }
        let shift: f64 = (0..k)
            .map(|c| squared_distance(&sums[c * d..(c + 1) * d], &centroids[c * d..(c + 1) * d]))
            .sum();
        centroids = sums;
        previous = Some(assignments);
        if shift <= tol {
            break;
        }
    }
    // Final assignment so the labels match the centres returned.
    let assigned = data.assign(&centroids);
    Solution {
        assignments: assigned.iter().map(|a| a.0).collect(),
        inertia: assigned.iter().map(|a| a.1).sum(),
        centroids,
        iterations,
    }
}

/// k-means on `embeddings` with as many clusters as distinct `labels`, then NMI
/// and AMI against the labels (PML's `NMI` and `AMI`).
pub fn clustering_metrics(
    embeddings: &[Vec<f32>],
    labels: &[usize],
    config: &KMeansConfig,
) -> Result<ClusteringMetrics> {
    if embeddings.len() != labels.len() {
        bail!(
            "clustering: {} embeddings but {} labels",
            embeddings.len(),
            labels.len()
        );
    }
    let mut distinct = labels.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let (queries, clusters) = (labels.len(), distinct.len());
    let missing = |note: String| ClusteringMetrics {
        queries,
        clusters,
        nmi: None,
        ami: None,
        inertia: 0.0,
        note: Some(note),
    };
    if queries == 0 {
        return Ok(missing("no queries".into()));
    }
    if clusters == queries {
        return Ok(missing(format!(
            "one query per label: {clusters} clusters for {queries} queries make NMI 1.0 by construction, so NMI and AMI are not meaningful"
        )));
    }
    if clusters == 1 {
        return Ok(missing("a single label: one cluster makes NMI and AMI 1.0 by construction, so they are not meaningful".into()));
    }
    let result = kmeans(embeddings, clusters, config)?;
    Ok(ClusteringMetrics {
        queries,
        clusters,
        nmi: Some(normalized_mutual_info(labels, &result.assignments)),
        ami: Some(adjusted_mutual_info(labels, &result.assignments)),
        inertia: result.inertia,
        note: None,
    })
}

/// Contingency table of two labellings, sparse: row sums `a` (per class of the
/// first), column sums `b` (per class of the second) and the non-zero cells in
/// row-major order (the order scikit-learn's `sp.find` gives).
#[derive(Debug, Clone, PartialEq)]
pub struct Contingency {
    /// Row sums.
    pub a: Vec<u64>,
    /// Column sums.
    pub b: Vec<u64>,
    /// Non-zero cells `(row, column, count)`.
    pub cells: Vec<(usize, usize, u64)>,
    /// Number of samples.
    pub n: u64,
}

impl Contingency {
    /// Builds the table; rows and columns are the distinct labels in ascending order.
    /// Panics when the labellings differ in length.
    pub fn new(labels_true: &[usize], labels_pred: &[usize]) -> Self {
        assert_eq!(
            labels_true.len(),
            labels_pred.len(),
            "labellings of different lengths"
        );
        let dense = |labels: &[usize]| {
            let mut distinct = labels.to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            let index: Vec<usize> = labels
                .iter()
                .map(|l| distinct.binary_search(l).unwrap())
                .collect();
            (distinct.len(), index)
        };
        let (rows, ti) = dense(labels_true);
        let (cols, pi) = dense(labels_pred);
        let mut pairs: Vec<(usize, usize)> = ti.into_iter().zip(pi).collect();
        pairs.sort_unstable();
        let mut cells: Vec<(usize, usize, u64)> = Vec::new();
        for (r, c) in pairs {
            match cells.last_mut() {
                Some(last) if (last.0, last.1) == (r, c) => last.2 += 1,
                _ => cells.push((r, c, 1)),
            }
        }
        let (mut a, mut b) = (vec![0; rows], vec![0; cols]);
        for &(r, c, v) in &cells {
            a[r] += v;
            b[c] += v;
        }
        Contingency {
            a,
            b,
            cells,
            n: labels_true.len() as u64,
        }
    }
}

/// Entropy (natural log) of a labelling given its class sizes, as scikit-learn's
/// `_entropy` (1.0 for no samples, 0 for one class).
pub fn entropy(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 1.0;
    }
    let counts: Vec<f64> = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64)
        .collect();
    if counts.len() == 1 {
        return 0.0;
    }
    let (sum, ln_sum) = (total as f64, (total as f64).ln());
    -counts
        .iter()
        .map(|&p| (p / sum) * (p.ln() - ln_sum))
        .sum::<f64>()
}

/// Mutual information (natural log) of a contingency table, as scikit-learn's
/// `mutual_info_score` computes it (terms below machine epsilon dropped, result
/// clipped at 0).
pub fn mutual_info(table: &Contingency) -> f64 {
    if table.a.len() == 1 || table.b.len() == 1 {
        return 0.0;
    }
    let n = table.n as f64;
    let ln_n = n.ln();
    let mut mi = 0.0;
    for &(r, c, v) in &table.cells {
        let v = v as f64;
        let share = v / n;
        let log_outer = -((table.a[r] as f64) * (table.b[c] as f64)).ln() + ln_n + ln_n;
        let term = share * (v.ln() - ln_n) + share * log_outer;
        if term.abs() >= f64::EPSILON {
            mi += term;
        }
    }
    mi.max(0.0)
}

/// Expected mutual information of two labellings with the table's class sizes
/// under random permutation — scikit-learn's `expected_mutual_information`,
/// term for term.
pub fn expected_mutual_info(table: &Contingency) -> f64 {
    let (a, b) = (&table.a, &table.b);
    if a.len() == 1 || b.len() == 1 {
        return 0.0;
    }
    let n = table.n;
    let nf = n as f64;
    // ln(m!) for m in 0..=n: every log-gamma the sum needs is at an integer.
    let ln_fact: Vec<f64> = (0..=n).map(|m| ln_gamma(m as f64 + 1.0)).collect();
    let ln_n = nf.ln();
    let mut emi = 0.0;
    for &ai in a {
        for &bj in b {
            let start = (ai + bj).saturating_sub(n).max(1);
            let end = ai.min(bj);
            let (ln_a, ln_b) = ((ai as f64).ln(), (bj as f64).ln());
            for nij in start..=end {
                let term1 = nij as f64 / nf;
                let term2 = (ln_n + (nij as f64).ln()) - ln_a - ln_b;
                // Same grouping as scikit-learn, so the rounding matches closely.
                let gln = ln_fact[ai as usize]
                    + ln_fact[bj as usize]
                    + ln_fact[(n - ai) as usize]
                    + ln_fact[(n - bj) as usize]
                    - (ln_fact[nij as usize] + ln_fact[n as usize])
                    - ln_fact[(ai - nij) as usize]
                    - ln_fact[(bj - nij) as usize]
                    - ln_fact[(n + nij - ai - bj) as usize];
                emi += term1 * term2 * gln.exp();
            }
        }
    }
    emi
}

/// Counts of distinct labels in two labellings.
fn class_counts(labels_true: &[usize], labels_pred: &[usize]) -> (usize, usize) {
    let count = |l: &[usize]| {
        let mut v = l.to_vec();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    (count(labels_true), count(labels_pred))
}

/// scikit-learn's `normalized_mutual_info_score(labels_true, labels_pred)` with
/// `average_method="arithmetic"`. Panics when the lengths differ.
pub fn normalized_mutual_info(labels_true: &[usize], labels_pred: &[usize]) -> f64 {
    let (classes, clusters) = class_counts(labels_true, labels_pred);
    if (classes == 1 && clusters == 1) || (classes == 0 && clusters == 0) {
        return 1.0;
    }
    let table = Contingency::new(labels_true, labels_pred);
    let mi = mutual_info(&table);
    if mi == 0.0 {
        return 0.0;
    }
    mi / ((entropy(&table.a) + entropy(&table.b)) / 2.0)
}

/// scikit-learn's `adjusted_mutual_info_score(labels_true, labels_pred)` with
/// `average_method="arithmetic"` (as of 1.9: numerator and denominator kept at
/// least machine epsilon away from 0, sign preserved). Panics when the lengths
/// differ.
pub fn adjusted_mutual_info(labels_true: &[usize], labels_pred: &[usize]) -> f64 {
    let (classes, clusters) = class_counts(labels_true, labels_pred);
    if (classes == 1 && clusters == 1) || (classes == 0 && clusters == 0) {
        return 1.0;
    }
    if classes == 1 || clusters == 1 {
        return 0.0;
    }
    let table = Contingency::new(labels_true, labels_pred);
    let mi = mutual_info(&table);
    let emi = expected_mutual_info(&table);
    let normalizer = (entropy(&table.a) + entropy(&table.b)) / 2.0;
    let away_from_zero = |x: f64| {
        if x < 0.0 {
            x.min(-f64::EPSILON)
        } else {
            x.max(f64::EPSILON)
        }
    };
    away_from_zero(mi - emi) / away_from_zero(normalizer - emi)
}

/// ln Γ(x) for x > 0: Lanczos approximation (g = 7, 9 terms), relative error
/// about 1e-15 — as close as scipy's `gammaln` for what EMI needs.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin().abs()).ln()
            - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let mut series = COEFFICIENTS[0];
    for (i, &c) in COEFFICIENTS.iter().enumerate().skip(1) {
        series += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol * b.abs().max(1.0), "{a} != {b}");
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        // Reference values from Python's math.lgamma.
        close(ln_gamma(0.5), 0.572_364_942_924_700_4, 1e-14);
        close(ln_gamma(1.0), 0.0, 1e-14);
        close(ln_gamma(2.0), 0.0, 1e-14);
        close(ln_gamma(10.0), 12.801_827_480_081_467, 1e-14);
        close(ln_gamma(101.0), 363.739_375_555_563_47, 1e-14);
        close(ln_gamma(10_001.0), 82_108.927_836_814_34, 1e-14);
    }

    /// NMI, AMI, MI and EMI from scikit-learn 1.9.1 (numpy 2.4.6, scipy 1.17.1):
    /// `normalized_mutual_info_score`, `adjusted_mutual_info_score`,
    /// `mutual_info_score`, `expected_mutual_information(contingency_matrix(..), n)`.
    // Long: one table of scikit-learn reference values, checked case by case.
    #[test]
    fn nmi_ami_match_scikit_learn() {
        let gen =
            |n: usize, t: fn(usize) -> usize, p: fn(usize) -> usize| -> (Vec<usize>, Vec<usize>) {
                ((0..n).map(t).collect(), (0..n).map(p).collect())
            };
        // (name, (labels_true, labels_pred), [NMI, AMI, MI, EMI]); MI = ln 2 where
        // scikit-learn printed 0.6931471805599453.
        type Case = (&'static str, (Vec<usize>, Vec<usize>), [f64; 4]);
        use std::f64::consts::LN_2;
        let cases: Vec<Case> = vec![
            (
                "same",
                (vec![0, 0, 1, 1], vec![0, 0, 1, 1]),
                [1.0, 1.0, LN_2, 0.23104906018664825],
            ),
            (
                "renamed",
                (vec![0, 0, 1, 1], vec![1, 1, 0, 0]),
                [1.0, 1.0, LN_2, 0.23104906018664825],
            ),
            (
                "split",
                (vec![0, 0, 0, 1, 1, 1], vec![0, 0, 1, 1, 2, 2]),
                [
                    0.5158037429793889,
                    0.2987924581708901,
                    0.4620981203732969,
                    0.27725887222397816,
                ],
            ),
            (
                "mixed",
                (
                    vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 1],
                    vec![0, 0, 1, 1, 2, 2, 0, 1, 2, 2],
                ),
                [
                    0.26733692039994567,
                    -0.0027124345987860144,
                    0.29110316603236885,
                    0.2932612839470501,
                ],
            ),
            (
                "independent",
                (vec![0, 0, 1, 1], vec![0, 1, 0, 1]),
                [0.0, -0.49999999999999944, 0.0, 0.23104906018664825],
            ),
            (
                "one class",
                (vec![0, 0, 0], vec![0, 1, 2]),
                [0.0, 0.0, 0.0, 0.0],
            ),
            (
                "gen60",
                gen(60, |i| i % 4, |i| (i % 4 + i / 7) % 5),
                [
                    0.02475673773021327,
                    -0.05476767744038073,
                    0.03701186168111468,
                    0.11271745796924759,
                ],
            ),
            (
                "gen500",
                gen(500, |i| i % 7, |i| (i * i + 3 * i) % 11),
                [
                    0.0007457398243310444,
                    -0.01602658220039533,
                    0.0013849834502697445,
                    0.03065810938751115,
                ],
            ),
            (
                "skewed",
                gen(
                    200,
                    |i| {
                        if i < 150 {
                            0
                        } else if i < 190 {
                            1
                        } else {
                            2
                        }
                    },
                    |i| if i % 5 != 0 { (i * 13) % 3 } else { 0 },
                ),
                [
                    0.0006501149491318388,
                    -0.011680225811139608,
                    0.0005685064431404374,
                    0.010658032887464015,
                ],
            ),
            (
                "big",
                gen(3000, |i| i % 30, |i| ((i % 30) / 2 + (i * i) % 3) % 20),
                [
                    0.8822313208868343,
                    0.879206426764944,
                    2.6844935939709327,
                    0.07619846969843212,
                ],
            ),
        ];
        for (name, (t, p), [nmi, ami, mi, emi]) in cases {
            let table = Contingency::new(&t, &p);
            let near = |a: f64, b: f64, what: &str| {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{name} {what}: {a} != {b}"
                )
            };
            near(mutual_info(&table), mi, "MI");
            near(expected_mutual_info(&table), emi, "EMI");
            near(normalized_mutual_info(&t, &p), nmi, "NMI");
            near(adjusted_mutual_info(&t, &p), ami, "AMI");
        }
        // scikit-learn's limit cases. Identical singleton labellings: MI = EMI and
        // H = EMI, both differences clamped to machine epsilon; scikit-learn gives 1.0.
        assert_eq!(adjusted_mutual_info(&[0, 1, 2, 3], &[0, 1, 2, 3]), 1.0);
        assert_eq!(normalized_mutual_info(&[], &[]), 1.0);
        assert_eq!(adjusted_mutual_info(&[3, 3], &[1, 1]), 1.0);
        assert_eq!(adjusted_mutual_info(&[0, 1, 2], &[0, 0, 0]), 0.0);
    }

    fn four_blobs(seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let centres = [[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]];
        let mut points = Vec::new();
        let mut labels = Vec::new();
        for (label, c) in centres.iter().enumerate() {
            for _ in 0..15 {
                points.push(vec![
                    c[0] + (rng.next_f64() * 2.0 - 1.0) as f32,
                    c[1] + (rng.next_f64() * 2.0 - 1.0) as f32,
                ]);
                labels.push(label);
            }
        }
        (points, labels)
    }

    #[test]
    fn kmeans_recovers_well_separated_clusters() {
        let (points, labels) = four_blobs(5);
        let result = kmeans(&points, 4, &KMeansConfig::default()).unwrap();
        // Same partition up to renaming: each true group maps to one cluster and back.
        let mut map = [usize::MAX; 4];
        for (&l, &c) in labels.iter().zip(&result.assignments) {
            assert!(map[l] == usize::MAX || map[l] == c, "group {l} split");
            map[l] = c;
        }
        let mut used = map.to_vec();
        used.sort_unstable();
        assert_eq!(used, vec![0, 1, 2, 3]);
        assert_eq!(normalized_mutual_info(&labels, &result.assignments), 1.0);
        assert!(result.inertia < 60.0 * 2.0);
    }

    #[test]
    fn kmeans_is_deterministic_for_a_seed() {
        let mut rng = Rng::new(9);
        let points: Vec<Vec<f32>> = (0..80)
            .map(|_| (0..5).map(|_| rng.next_f64() as f32).collect())
            .collect();
        let config = KMeansConfig {
            seed: 3,
            ..KMeansConfig::default()
        };
        let a = kmeans(&points, 6, &config).unwrap();
        let b = kmeans(&points, 6, &config).unwrap();
        assert_eq!(a, b);
        // More starts can only lower the inertia kept.
        let one = kmeans(
            &points,
            6,
            &KMeansConfig {
                restarts: 1,
                ..config.clone()
            },
        )
        .unwrap();
        assert!(a.inertia <= one.inertia);
    }

    #[test]
    fn kmeans_hand_case_and_edge_cases() {
        let points = vec![vec![0.0], vec![1.0], vec![10.0], vec![11.0]];
        let r = kmeans(&points, 2, &KMeansConfig::default()).unwrap();
        assert_eq!(r.assignments[0], r.assignments[1]);
        assert_eq!(r.assignments[2], r.assignments[3]);
        assert_ne!(r.assignments[0], r.assignments[2]);
        close(r.inertia, 1.0, 1e-12);
        let mut centres: Vec<f32> = r.centroids.iter().map(|c| c[0]).collect();
        centres.sort_by(f32::total_cmp);
        assert_eq!(centres, vec![0.5, 10.5]);
        // As many clusters as points: each its own.
        let r = kmeans(&points, 4, &KMeansConfig::default()).unwrap();
        assert_eq!((r.assignments, r.inertia), (vec![0, 1, 2, 3], 0.0));
        // Identical points do not loop or panic.
        let same = vec![vec![1.0, 1.0]; 5];
        assert_eq!(
            kmeans(&same, 2, &KMeansConfig::default()).unwrap().inertia,
            0.0
        );
        assert!(kmeans(&points, 0, &KMeansConfig::default()).is_err());
        assert!(kmeans(&points, 5, &KMeansConfig::default()).is_err());
        assert!(kmeans(&[vec![0.0], vec![0.0, 1.0]], 1, &KMeansConfig::default()).is_err());
        assert!(kmeans(&[vec![f32::NAN], vec![0.0]], 1, &KMeansConfig::default()).is_err());
    }

    #[test]
    fn clustering_metrics_flags_one_query_per_label() {
        let (points, labels) = four_blobs(1);
        let m = clustering_metrics(&points, &labels, &KMeansConfig::default()).unwrap();
        assert_eq!(
            (m.queries, m.clusters, m.nmi, m.note.clone()),
            (60, 4, Some(1.0), None)
        );
        close(m.ami.unwrap(), 1.0, 1e-12);
        let m = clustering_metrics(&points[..3], &[0, 1, 2], &KMeansConfig::default()).unwrap();
        assert_eq!((m.nmi, m.ami), (None, None));
        assert!(m.note.unwrap().contains("not meaningful"));
        assert!(clustering_metrics(&points[..3], &[0, 1], &KMeansConfig::default()).is_err());
        let m = clustering_metrics(&points[..3], &[4, 4, 4], &KMeansConfig::default()).unwrap();
        assert_eq!((m.clusters, m.nmi), (1, None));
    }
}
