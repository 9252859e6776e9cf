//! Classification tables from true and predicted labels (e.g. majority-vote
//! predictions): the confusion matrix and the classification report exactly as
//! scikit-learn's `confusion_matrix` and `classification_report(output_dict=True)`
//! compute them with their defaults (labels = the sorted union of true and
//! predicted labels; `zero_division="warn"`, which yields 0), plus CSV writers.
//!
//! CSV follows RFC 4180 quoting (fields holding a comma, a quote or a line break
//! are quoted, quotes doubled) but ends lines with `\n`, not CRLF.

use crate::atomic::write_atomic;
use crate::eval::metrics::ClassAccuracy;
pub use crate::run::tables::ConfusionMatrix;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;

/// Sorted distinct labels found in either labelling (scikit-learn's `unique_labels`).
pub fn labels_present(y_true: &[usize], y_pred: &[usize]) -> Vec<usize> {
    let mut labels: Vec<usize> = y_true.iter().chain(y_pred).copied().collect();
    labels.sort_unstable();
    labels.dedup();
    labels
}

fn check_lengths(y_true: &[usize], y_pred: &[usize]) -> Result<()> {
    if y_true.len() != y_pred.len() {
        bail!(
            "{} true labels but {} predictions",
            y_true.len(),
            y_pred.len()
        );
    }
    if y_true.is_empty() {
        bail!("no samples to report on");
    }
    Ok(())
}

/// Builds the confusion matrix of `y_true` against `y_pred`.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize]) -> Result<ConfusionMatrix> {
    check_lengths(y_true, y_pred)?;
    let labels = labels_present(y_true, y_pred);
    let index = |l: &usize| labels.binary_search(l).expect("label present");
    let mut counts = vec![vec![0; labels.len()]; labels.len()];
    for (t, p) in y_true.iter().zip(y_pred) {
        counts[index(t)][index(p)] += 1;
    }
    Ok(ConfusionMatrix::new(labels, counts))
}

/// Precision, recall, F1 and support of one class, or an average of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// tp / (tp + fp); 0 when the class is never predicted.
    pub precision: f64,
    /// tp / (tp + fn); 0 when the class has no true sample.
    pub recall: f64,
    /// 2·tp / (2·tp + fp + fn), scikit-learn's form; 0 when that is 0/0.
    pub f1: f64,
    /// True samples of the class (for an average: all samples).
    pub support: usize,
}

/// One row of the classification report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// The class label.
    pub label: usize,
    /// Its scores.
    #[serde(flatten)]
    pub scores: Scores,
}

/// scikit-learn's classification report: per-class scores, accuracy, macro and
/// support-weighted averages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// One row per label present in the true or predicted labels, ascending.
    pub classes: Vec<ClassScores>,
    /// Share of samples predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean over the classes (classes never seen count as 0).
    pub macro_avg: Scores,
    /// Mean over the classes weighted by support.
    pub weighted_avg: Scores,
}

/// `a / b`, or 0 when `b` is 0 (scikit-learn's default zero-division result).
fn divide(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Computes the report of `y_true` against `y_pred`.
pub fn classification_report(y_true: &[usize], y_pred: &[usize]) -> Result<ClassificationReport> {
    let matrix = confusion_matrix(y_true, y_pred)?;
    let k = matrix.labels.len();
    let tp: Vec<usize> = (0..k).map(|i| matrix.counts[i][i]).collect();
    let true_sum: Vec<usize> = matrix.counts.iter().map(|row| row.iter().sum()).collect();
    let pred_sum: Vec<usize> = (0..k)
        .map(|j| matrix.counts.iter().map(|row| row[j]).sum())
        .collect();
    let classes: Vec<ClassScores> = (0..k)
        .map(|i| {
            let (tp, t, p) = (tp[i] as f64, true_sum[i] as f64, pred_sum[i] as f64);
            ClassScores {
                label: matrix.labels[i],
                scores: Scores {
                    precision: divide(tp, p),
                    recall: divide(tp, t),
                    f1: divide(2.0 * tp, t + p),
                    support: true_sum[i],
                },
            }
        })
        .collect();
    let total = y_true.len();
    // Sequential sums, in class order, as numpy sums arrays this short.
    let average = |weight: &dyn Fn(usize) -> f64| {
        let norm: f64 = (0..k).map(weight).sum();
        let mean = |f: fn(&Scores) -> f64| {
            divide(
                (0..k).map(|i| f(&classes[i].scores) * weight(i)).sum(),
                norm,
            )
        };
        Scores {
            precision: mean(|s| s.precision),
            recall: mean(|s| s.recall),
            f1: mean(|s| s.f1),
            support: total,
        }
    };
    let macro_avg = {
        let mean =
            |f: fn(&Scores) -> f64| classes.iter().map(|c| f(&c.scores)).sum::<f64>() / k as f64;
        Scores {
            precision: mean(|s| s.precision),
            recall: mean(|s| s.recall),
            f1: mean(|s| s.f1),
            support: total,
        }
    };
    let weighted_avg = average(&|i| true_sum[i] as f64);
    Ok(ClassificationReport {
        accuracy: tp.iter().sum::<usize>() as f64 / total as f64,
        classes,
        macro_avg,
        weighted_avg,
    })
}

/// The report in scikit-learn's `output_dict=True` layout: class name →
/// {precision, recall, f1-score, support}, `"accuracy"` → value, `"macro avg"`,
/// `"weighted avg"` (support as a float, as scikit-learn gives it).
pub fn classification_report_dict(
    report: &ClassificationReport,
    class_names: &[String],
) -> serde_json::Value {
    let entry = |s: &Scores| serde_json::json!({"precision": s.precision, "recall": s.recall, "f1-score": s.f1, "support": s.support as f64});
    let mut map = serde_json::Map::new();
    for c in &report.classes {
        map.insert(class_name(c.label, class_names), entry(&c.scores));
    }
    map.insert("accuracy".into(), serde_json::json!(report.accuracy));
    map.insert("macro avg".into(), entry(&report.macro_avg));
    map.insert("weighted avg".into(), entry(&report.weighted_avg));
    serde_json::Value::Object(map)
}

/// Name of a label: `class_names[label]`, or the number when there is no name.
pub fn class_name(label: usize, class_names: &[String]) -> String {
    class_names
        .get(label)
        .cloned()
        .unwrap_or_else(|| label.to_string())
}

/// One CSV field, quoted as RFC 4180 requires.
pub fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Parses CSV as the eval layer writes it (RFC 4180 quoting, `\n` or `\r\n` line ends).
pub fn parse_csv(text: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c)
                }
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                line += 1;
            }
            c => field.push(c),
        }
    }
    if quoted {
        anyhow::bail!("unterminated quoted field at line {line}");
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

fn csv_row(out: &mut String, fields: &[String]) {
    let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&row.join(","));
    out.push('\n');
}

/// The classification report as CSV, laid out like scikit-learn's text report:
/// `label,class,precision,recall,f1-score,support`, one row per class, then
/// `accuracy` (value in the f1-score column, total support), `macro avg` and
/// `weighted avg` (empty label). Numbers are written in full precision.
pub fn classification_report_csv(report: &ClassificationReport, class_names: &[String]) -> String {
    let mut out = String::new();
    csv_row(
        &mut out,
        &[
            "label",
            "class",
            "precision",
            "recall",
            "f1-score",
            "support",
        ]
        .map(String::from),
    );
    let scores = |label: String, name: String, s: &Scores| {
        vec![
            label,
            name,
            s.precision.to_string(),
            s.recall.to_string(),
            s.f1.to_string(),
            s.support.to_string(),
        ]
    };
    for c in &report.classes {
        csv_row(
            &mut out,
            &scores(
                c.label.to_string(),
                class_name(c.label, class_names),
                &c.scores,
            ),
        );
    }
    csv_row(
        &mut out,
        &[
            String::new(),
            "accuracy".into(),
            String::new(),
            String::new(),
            report.accuracy.to_string(),
            report.macro_avg.support.to_string(),
        ],
    );
    csv_row(
        &mut out,
        &scores(String::new(), "macro avg".into(), &report.macro_avg),
    );
    csv_row(
        &mut out,
        &scores(String::new(), "weighted avg".into(), &report.weighted_avg),
    );
    out
}

/// The confusion matrix as CSV: a header of predicted class names, then one row
/// per true class (its name, then its counts).
pub fn confusion_matrix_csv(matrix: &ConfusionMatrix, class_names: &[String]) -> String {
    let mut out = String::new();
    let names: Vec<String> = matrix
        .labels
        .iter()
        .map(|&l| class_name(l, class_names))
        .collect();
    csv_row(
        &mut out,
        &std::iter::once("true \\ predicted".to_string())
            .chain(names.iter().cloned())
            .collect::<Vec<_>>(),
    );
    for (name, row) in names.iter().zip(&matrix.counts) {
        csv_row(
            &mut out,
            &std::iter::once(name.clone())
                .chain(row.iter().map(usize::to_string))
                .collect::<Vec<_>>(),
        );
    }
    out
}

/// Per-class accuracies (precision@1 or majority vote) as CSV:
/// `label,class,queries,accuracy`.
pub fn per_class_csv(classes: &[ClassAccuracy], class_names: &[String]) -> String {
    let mut out = String::new();
    csv_row(
        &mut out,
        &["label", "class", "queries", "accuracy"].map(String::from),
    );
    for c in classes {
        csv_row(
            &mut out,
            &[
                c.label.to_string(),
                class_name(c.label, class_names),
                c.queries.to_string(),
                c.accuracy.to_string(),
            ],
        );
    }
    out
}

/// Writes CSV text atomically.
pub fn write_csv(path: &Path, csv: &str) -> Result<()> {
    write_atomic(path, csv.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-15, "{a} != {b}");
    }

    fn scores_near(s: &Scores, [p, r, f, support]: [f64; 4]) {
        near(s.precision, p);
        near(s.recall, r);
        near(s.f1, f);
        assert_eq!(s.support as f64, support);
    }

    /// Expected values from scikit-learn 1.9.1 `classification_report(yt, yp,
    /// output_dict=True)` and `confusion_matrix(yt, yp)`. Class 3 is never
    /// predicted (precision 0/0 → 0); class 4 is predicted but never true
    /// (recall 0/0 → 0, support 0).
    #[test]
    fn matches_scikit_learn_with_zero_division() {
        let yt = [0, 0, 1, 1, 2, 2, 2, 3, 3, 0];
        let yp = [0, 1, 1, 1, 0, 2, 4, 0, 2, 0];
        let m = confusion_matrix(&yt, &yp).unwrap();
        assert_eq!(m.labels, vec![0, 1, 2, 3, 4]);
        assert_eq!(
            m.counts,
            vec![
                vec![2, 1, 0, 0, 0],
                vec![0, 2, 0, 0, 0],
                vec![1, 0, 1, 0, 1],
                vec![1, 0, 1, 0, 0],
                vec![0, 0, 0, 0, 0]
            ]
        );
        let r = classification_report(&yt, &yp).unwrap();
        let expected = [
            [0.5, 0.6666666666666666, 0.5714285714285714, 3.0],
            [0.6666666666666666, 1.0, 0.8, 2.0],
            [0.5, 0.3333333333333333, 0.4, 3.0],
            [0.0, 0.0, 0.0, 2.0],
            [0.0, 0.0, 0.0, 0.0],
        ];
        assert_eq!(r.classes.len(), 5);
        for (c, e) in r.classes.iter().zip(expected) {
            scores_near(&c.scores, e);
        }
        near(r.accuracy, 0.5);
        scores_near(
            &r.macro_avg,
            [
                0.3333333333333333,
                0.39999999999999997,
                0.35428571428571426,
                10.0,
            ],
        );
        scores_near(
            &r.weighted_avg,
            [0.4333333333333333, 0.5, 0.4514285714285714, 10.0],
        );

        let dict = classification_report_dict(&r, &[]);
        assert_eq!(dict["accuracy"], 0.5);
        assert_eq!(dict["1"]["f1-score"], 0.8);
        assert_eq!(dict["weighted avg"]["support"], 10.0);
    }

    #[test]
    fn binary_case_matches_scikit_learn() {
        // scikit-learn 1.9.1: classification_report([5, 5, 7], [5, 5, 5], output_dict=True).
        let r = classification_report(&[5, 5, 7], &[5, 5, 5]).unwrap();
        assert_eq!(
            r.classes.iter().map(|c| c.label).collect::<Vec<_>>(),
            vec![5, 7]
        );
        scores_near(&r.classes[0].scores, [0.6666666666666666, 1.0, 0.8, 2.0]);
        scores_near(&r.classes[1].scores, [0.0, 0.0, 0.0, 1.0]);
        near(r.accuracy, 0.6666666666666666);
        scores_near(&r.macro_avg, [0.3333333333333333, 0.5, 0.4, 3.0]);
        scores_near(
            &r.weighted_avg,
            [
                0.4444444444444444,
                0.6666666666666666,
                0.5333333333333333,
                3.0,
            ],
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(classification_report(&[0, 1], &[0]).is_err());
        assert!(classification_report(&[], &[]).is_err());
        assert!(confusion_matrix(&[1], &[]).is_err());
    }

    #[test]
    fn csv_quotes_fields_and_lays_out_tables() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");

        let names = vec!["cat".to_string(), "dog, large".to_string()];
        let r = classification_report(&[0, 0, 1, 2], &[0, 1, 1, 2]).unwrap();
        let csv = classification_report_csv(&r, &names);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "label,class,precision,recall,f1-score,support");
        assert_eq!(lines[1], "0,cat,1,0.5,0.6666666666666666,2");
        assert_eq!(lines[2], "1,\"dog, large\",0.5,1,0.6666666666666666,1");
        // A label without a name is shown as its number.
        assert_eq!(lines[3], "2,2,1,1,1,1");
        assert_eq!(lines[4], ",accuracy,,,0.75,4");
        assert!(lines[5].starts_with(",macro avg,"));
        assert!(lines[6].starts_with(",weighted avg,"));

        let m = confusion_matrix(&[0, 0, 1, 2], &[0, 1, 1, 2]).unwrap();
        assert_eq!(
            confusion_matrix_csv(&m, &names),
            "true \\ predicted,cat,\"dog, large\",2\ncat,1,1,0\n\"dog, large\",0,1,0\n2,0,0,1\n"
        );

        let per_class = vec![ClassAccuracy {
            label: 1,
            queries: 4,
            accuracy: 0.25,
        }];
        assert_eq!(
            per_class_csv(&per_class, &names),
            "label,class,queries,accuracy\n1,\"dog, large\",4,0.25\n"
        );
    }

    #[test]
    fn writes_csv_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tables/report.csv");
        write_csv(&path, "a,b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n");
    }
}
