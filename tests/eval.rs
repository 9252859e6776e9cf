//! `dmlviz eval` on a briefly trained two-phase fixture run: every table is written,
//! and the numbers agree with each other and with training's own evaluation.

mod common;

use common::{dmlviz, ok, tiny_run};
use std::path::Path;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `class,a,b` rows of a CSV (header skipped) as (name, numbers).
fn rows(csv: &str) -> Vec<(String, Vec<f64>)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            let name = f.next().unwrap().to_string();
            (name, f.map(|x| x.parse().unwrap()).collect())
        })
        .collect()
}

#[test]
fn eval_writes_consistent_tables_for_both_phases() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path(), "arcface", "");
    let out = ok(dmlviz(&["eval", "--run", run.to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();

    for (phase, prefix) in [
        ("phase-all", "all_classes"),
        ("phase-seen", "limited_classes"),
    ] {
        let p = run.join(phase);
        let table = rows(&read(&p.join(format!("tables/{prefix}_metrics.csv"))));
        assert_eq!(table.len(), 8);
        assert_eq!(
            table.iter().map(|(_, r)| r[0]).sum::<f64>(),
            8.0,
            "one test card per class"
        );
        assert!(
            table.iter().all(|(_, r)| r[1] == 5.0),
            "five training cards per class"
        );
        // The table's mean P@1 is the headline P@1, which is training's last test accuracy.
        let metrics: serde_json::Value =
            serde_json::from_str(&read(&p.join("metrics.json"))).unwrap();
        let p1 = metrics["retrieval"]["precision_at_1"].as_f64().unwrap();
        let mean: f64 = table.iter().map(|(_, r)| r[2]).sum::<f64>() / 8.0;
        assert!((p1 - mean).abs() < 1e-12, "{p1} vs {mean}");
        let history = read(&p.join("history.jsonl"));
        let last: serde_json::Value =
            serde_json::from_str(history.lines().last().unwrap()).unwrap();
        assert!((last["test_accuracy"].as_f64().unwrap() - p1).abs() < 1e-12);
        // ArcFace has class weights: their logits' accuracy is reported beside kNN.
        let logits = metrics["logits_accuracy"]
            .as_f64()
            .expect("ArcFace logits accuracy");
        assert!((0.0..=1.0).contains(&logits));
        let report: serde_json::Value = serde_json::from_str(&read(
            &p.join(format!("tables/{prefix}_classification_report.json")),
        ))
        .unwrap();
        assert!((report["accuracy"].as_f64().unwrap() - p1).abs() < 1e-12);
        assert!(
            p.join("embeddings.safetensors").exists()
                && p.join("tables/confusion_matrix.json").exists()
        );
    }

    // Precision drops are the means of the comparison tables' differences.
    let unseen = rows(&read(
        &run.join("comparison/comparison_unseen_classes_metrics.csv"),
    ));
    let all = rows(&read(
        &run.join("comparison/comparison_seen_classes_metrics.csv"),
    ));
    assert_eq!((unseen.len(), all.len()), (3, 8));
    assert_eq!(
        unseen.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["0041.2_spade", "0042.3_spade", "0043.4_spade"]
    );
    let mean_drop =
        |t: &[(String, Vec<f64>)]| t.iter().map(|(_, r)| r[0] - r[1]).sum::<f64>() / t.len() as f64;
    let c = &v["comparison"];
    assert!(
        (c["precision_drop_unseen_classes"].as_f64().unwrap() - mean_drop(&unseen)).abs() < 1e-12
    );
    assert!((c["precision_drop_all_classes"].as_f64().unwrap() - mean_drop(&all)).abs() < 1e-12);
}

#[test]
fn sub_center_arcface_reports_training_outliers() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path(), "sub_center_arcface", "phases = [\"all\"]\n");
    let csv = read(&run.join("phase-all/tables/sub_center_outliers.csv"));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "class,dominant_sub_center,samples_per_sub_center,outlier,cosine_to_dominant"
    );
    // Every listed outlier lies beyond 75° of its class's dominant sub-centre.
    for line in lines {
        let cos: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!(cos < 75f64.to_radians().cos(), "{line}");
        assert!(line.contains("fixtures/cards/"), "{line}");
    }
}
