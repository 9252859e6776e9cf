//! The study page (`<site>/study.html`): the reference's findings side by side with
//! our measurements and a verdict for each, every experiment's numbers and costs,
//! and the kNN-versus-logits trade-off table. Also `study.json` with the same data.

use super::findings::{judge_all, Judgement, Verdict};
use super::grid::{Expectation, StudyGrid, StudyMetric};
use super::results::{Stat, StudyResults};
use crate::atomic::{write_atomic, write_json};
use crate::html::{escape, page, url};
use crate::report::site::{run_name, site_folder};
use anyhow::Result;
use maud::PreEscaped;
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn stat_cell(s: Option<Stat>) -> String {
    match s {
        Some(s) => format!(
            "<td class=\"num\" data-sort=\"{:.6}\">{}</td>",
            s.mean,
            escape(&s.display())
        ),
        None => "<td class=\"num muted\" data-sort=\"-1\">—</td>".into(),
    }
}

fn opt_cell(v: Option<f64>, scale: f64, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!(
            "<td class=\"num\" data-sort=\"{v}\">{:.*}</td>",
            digits,
            v * scale
        ),
        _ => "<td class=\"num muted\" data-sort=\"-1\">—</td>".into(),
    }
}

fn verdict_cell(j: &Judgement) -> String {
    let class = match j.verdict {
        Verdict::Holds => "ok",
        Verdict::DoesNotHold => "bad",
        _ => "muted",
    };
    let reason = match &j.verdict {
        Verdict::NotTestable(r) => r.clone(),
        _ => j.explanation.clone(),
    };
    format!(
        "<td><b class=\"{class}\">{}</b><br><span class=\"muted\">{}</span></td>",
        j.verdict.label(),
        escape(&reason)
    )
}

fn mean(
    results: &StudyResults,
    dataset: &str,
    row: &str,
    f: impl Fn(&super::results::RunResult) -> Option<f64>,
) -> Option<f64> {
    let v: Vec<f64> = results.of_row(dataset, row).filter_map(f).collect();
    Stat::of(&v).map(|s| s.mean)
}

/// The link from the study page to a run's page in the site, when the site covers
/// `site_runs` and the run lies below it.
fn run_link(run: &Path, site_runs: Option<&Path>) -> Option<String> {
    Some(format!(
        "runs/{}/index.html",
        site_folder(&run_name(site_runs?, run)?)
    ))
}

/// Writes `study.html` and `study.json` into `out` and returns the page's path.
/// `site_runs` is the runs folder the report site in `out` is built from (rows link
/// to their run pages there).
pub fn write_study_page(
    grid: &StudyGrid,
    results: &StudyResults,
    runs: &Path,
    site_runs: Option<&Path>,
    out: &Path,
) -> Result<PathBuf> {
    let judgements = judge_all(grid, results);
    let datasets = grid.datasets();
    let base = &grid.settings.baseline;
    let mut body = String::new();
    let planned = grid.experiments.len();
    let measured_rows = results
        .runs
        .iter()
        .map(|r| (&r.dataset, &r.row))
        .collect::<std::collections::HashSet<_>>()
        .len();
    let _ = write!(
        body,
        "<h1>The reference study, re-run here</h1>\n<p>Every row of the reference README's experiment table, re-run with <code>dmlviz study</code> on real data that fits 2 CPU cores \
         (datasets: {}). Runs: <code>{}</code>. {} of {} experiments measured; {} runs in all (baseline and small-effect rows over seeds {:?}).</p>\n\
         <p class=\"note\">Substitutions: the ImageNet ResNet18/50 weights of the reference cannot be obtained here, so the ImageNet MobileNetV2 takes their place; \
         ResNet18 and ResNet50 run from scratch. EPSHN is used in its official softmax form (the triplet form does not learn in a few hundred steps). \
         Images are small (48–64 px) and epochs few: absolute numbers are not the reference's; the directions of effects are what is compared.</p>\n",
        escape(&datasets.join(", ")),
        escape(&runs.display().to_string()),
        measured_rows,
        planned,
        results.runs.len(),
        grid.settings.seeds
    );

    // The four questions, answered with the baseline's numbers.
    body.push_str("<h2>The four questions</h2>\n<table><thead><tr><th>question</th>");
    for d in &datasets {
        let _ = write!(body, "<th>{}</th>", escape(d));
    }
    body.push_str("</tr></thead><tbody>\n");
    let q = |label: &str, cell: &dyn Fn(&str) -> String, body: &mut String| {
        let _ = write!(body, "<tr><td>{}</td>", escape(label));
        for d in &datasets {
            body.push_str(&cell(d));
        }
        body.push_str("</tr>\n");
    };
    q(
        "1. Classification by nearest neighbour: precision@1 (baseline, all classes)",
        &|d| stat_cell(results.stat(d, base, StudyMetric::PrecisionAt1)),
        &mut body,
    );
    q(
        "… majority vote of the 10 nearest",
        &|d| opt_cell(mean(results, d, base, |r| r.majority_vote_accuracy), 1.0, 3),
        &mut body,
    );
    q(
        "2. Unseen classes: precision@1 on held-out classes, model that never saw them",
        &|d| opt_cell(mean(results, d, base, |r| r.unseen_precision_at_1), 1.0, 3),
        &mut body,
    );
    q(
        "… precision drop on those classes against the model that saw them",
        &|d| stat_cell(results.stat(d, base, StudyMetric::PrecisionDropUnseen)),
        &mut body,
    );
    q(
        "3. Sensitivity to initialisation: precision@1 from scratch (MobileNetV2)",
        &|d| {
            stat_cell(results.stat(
                d,
                "EPSHN_cosine_mobilenet_v2_scratch_sgd_aug",
                StudyMetric::PrecisionAt1,
            ))
        },
        &mut body,
    );
    q(
        "… with SimCLR pretraining on the same images",
        &|d| {
            stat_cell(results.stat(
                d,
                "EPSHN_cosine_simclr_mobilenet_v2_sgd_aug",
                StudyMetric::PrecisionAt1,
            ))
        },
        &mut body,
    );
    q(
        "4. Trade-off: ArcFace's own logits accuracy (seen classes) vs its kNN precision@1",
        &|d| {
            let row = "ArcFace_cosine_mobilenet_v2_sgd_aug";
            match (
                mean(results, d, row, |r| r.logits_accuracy),
                results.stat(d, row, StudyMetric::PrecisionAt1),
            ) {
                (Some(l), Some(k)) => format!("<td class=\"num\">{l:.3} vs {:.3}</td>", k.mean),
                _ => "<td class=\"muted\">—</td>".into(),
            }
        },
        &mut body,
    );
    body.push_str("</tbody></table>\n");

    // Findings.
    body.push_str("<h2>Findings: the reference's deductions against our measurements</h2>\n<table class=\"sortable\"><thead><tr><th>reference row</th><th>deduction</th><th>metric</th>");
    for d in &datasets {
        let _ = write!(
            body,
            "<th>{} — ours</th><th>{} — verdict</th>",
            escape(d),
            escape(d)
        );
    }
    body.push_str("</tr></thead><tbody>\n");
    for (i, f) in grid.findings.iter().enumerate() {
        let compared = match f.expect {
            Expectation::Positive | Expectation::Qualitative => String::new(),
            _ => format!(
                " vs <code>{}</code>",
                escape(f.against.as_deref().unwrap_or(base))
            ),
        };
        let _ = write!(
            body,
            "<tr><td><code>{}</code><br><span class=\"muted\">study row <code>{}</code>{compared}</span></td><td>{}{}{}</td><td>{}</td>",
            escape(&f.reference_row),
            escape(&f.row),
            escape(&f.deduction),
            f.reference_points.map(|p| format!(" <span class=\"muted\">(reference: {p:+.0} points)</span>")).unwrap_or_default(),
            f.caveat.as_ref().map(|c| format!("<br><i class=\"muted\">{}</i>", escape(c))).unwrap_or_default(),
            f.metric.label()
        );
        for d in &datasets {
            let j = judgements
                .iter()
                .find(|(k, j)| *k == i && &j.dataset == d)
                .map(|(_, j)| j);
            match j {
                Some(j) => {
                    let ours = match (j.value, j.against_value) {
                        (Some(v), Some(a)) => format!("{} vs {}", v.display(), a.display()),
                        (Some(v), None) => v.display(),
                        _ => "—".into(),
                    };
                    let _ = write!(body, "<td>{}</td>{}", escape(&ours), verdict_cell(j));
                }
                None => body.push_str("<td>—</td><td>—</td>"),
            }
        }
        body.push_str("</tr>\n");
    }
    body.push_str("</tbody></table>\n");

    // Every experiment.
    body.push_str(
        "<h2>Every experiment</h2>\n<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>dataset</th><th>row</th><th>precision@1 (all classes)</th>\
         <th>P@1, model without held-out</th><th>P@1 held-out classes (unseen)</th><th>drop unseen</th><th>drop all</th><th>training s</th><th>train img/s</th>\
         <th>embed img/s</th><th>index KiB</th><th>kNN predict ms</th><th>logits predict ms</th></tr></thead><tbody>\n",
    );
    for e in &grid.experiments {
        let m = |f: &dyn Fn(&super::results::RunResult) -> Option<f64>| {
            mean(results, &e.dataset, &e.row, f)
        };
        let name = match results
            .of_row(&e.dataset, &e.row)
            .next()
            .and_then(|r| run_link(&r.run, site_runs))
        {
            Some(href) => format!(
                "<a href=\"{}\"><code>{}</code></a>",
                url(&href),
                escape(&e.row)
            ),
            None => format!("<code>{}</code>", escape(&e.row)),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{name}</td>{}{}{}{}{}{}{}{}{}{}{}</tr>\n",
            escape(&e.dataset),
            stat_cell(results.stat(&e.dataset, &e.row, StudyMetric::PrecisionAt1)),
            opt_cell(m(&|r| r.precision_at_1_seen_model), 1.0, 3),
            opt_cell(m(&|r| r.unseen_precision_at_1), 1.0, 3),
            stat_cell(results.stat(&e.dataset, &e.row, StudyMetric::PrecisionDropUnseen)),
            stat_cell(results.stat(&e.dataset, &e.row, StudyMetric::PrecisionDropAll)),
            opt_cell(m(&|r| r.cost.as_ref().map(|c| c.training_seconds)), 1.0, 0),
            opt_cell(
                m(&|r| r.cost.as_ref().map(|c| c.training_images_per_s)),
                1.0,
                0
            ),
            opt_cell(
                m(&|r| r.cost.as_ref().map(|c| c.embedding_images_per_s)),
                1.0,
                0
            ),
            opt_cell(
                m(&|r| r.cost.as_ref().map(|c| c.index_bytes as f64)),
                1.0 / 1024.0,
                0
            ),
            opt_cell(
                m(&|r| r.cost.as_ref().map(|c| c.knn_predict_seconds)),
                1000.0,
                1
            ),
            opt_cell(
                m(&|r| r.cost.as_ref().and_then(|c| c.logits_predict_seconds)),
                1000.0,
                1
            ),
        );
    }
    body.push_str("</tbody></table></div>\n");

    // Trade-offs: kNN over embeddings vs the loss's own logits.
    body.push_str(
        "<h2>Trade-off: nearest neighbours over embeddings vs the classifier's own logits</h2>\n\
         <p>For the losses with class parameters (ProxyNCA, ArcFace, SubCenterArcFace), the same network classifies either by its logits or by kNN over its embeddings. \
         Logits cannot name a class they have no weights for, so their accuracy on unseen classes is 0 by construction; kNN only needs the new class's images in the index.</p>\n\
         <table><thead><tr><th>dataset</th><th>row</th><th>seen-class accuracy: logits</th><th>kNN P@1</th><th>kNN majority@10</th><th>unseen classes: logits</th><th>unseen: kNN</th>\
         <th>adding a class: kNN (embed 10 images, s)</th><th>adding a class: logits (retrain, s)</th><th>latency logits ms</th><th>latency kNN ms</th></tr></thead><tbody>\n",
    );
    for e in grid.experiments.iter().filter(|e| {
        results
            .of_row(&e.dataset, &e.row)
            .any(|r| r.logits_accuracy.is_some())
    }) {
        let m = |f: &dyn Fn(&super::results::RunResult) -> Option<f64>| {
            mean(results, &e.dataset, &e.row, f)
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td>{}{}{}<td class=\"num\">0 (by construction)</td>{}{}{}{}{}</tr>\n",
            escape(&e.dataset),
            escape(&e.row),
            opt_cell(m(&|r| r.logits_accuracy), 1.0, 3),
            opt_cell(m(&|r| Some(r.precision_at_1)), 1.0, 3),
            opt_cell(m(&|r| r.majority_vote_accuracy), 1.0, 3),
            opt_cell(m(&|r| r.unseen_precision_at_1), 1.0, 3),
            opt_cell(m(&|r| r.cost.as_ref().map(|c| 10.0 / c.embedding_images_per_s.max(1e-9))), 1.0, 3),
            opt_cell(m(&|r| r.cost.as_ref().map(|c| c.training_seconds)), 1.0, 0),
            opt_cell(m(&|r| r.cost.as_ref().and_then(|c| c.logits_predict_seconds)), 1000.0, 1),
            opt_cell(m(&|r| r.cost.as_ref().map(|c| c.knn_predict_seconds)), 1000.0, 1),
        );
    }
    body.push_str("</tbody></table>\n");

    let html = page(
        "dmlviz — the reference study",
        &[("index.html".into(), "all runs".into())],
        // Safe: until the study page is a maud template (study-deps branch), `body` is
        // built with `escape` on every user string, as before.
        PreEscaped(body),
    );
    let path = out.join("study.html");
    write_atomic(&path, html.as_bytes())?;
    let json: Vec<_> = judgements
        .iter()
        .map(|(i, j)| serde_json::json!({ "reference_row": grid.findings[*i].reference_row, "deduction": grid.findings[*i].deduction, "metric": grid.findings[*i].metric, "judgement": j }))
        .collect();
    write_json(
        &out.join("study.json"),
        &serde_json::json!({ "findings": json, "results": results }),
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::results::RunResult;

    #[test]
    fn page_shows_verdicts_numbers_and_escapes_names() {
        let grid =
            StudyGrid::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/study"))
                .unwrap();
        let r = |row: &str, seed: u64, p: f64, drop: f64| RunResult {
            dataset: "cards".into(),
            row: row.into(),
            seed,
            run: PathBuf::from("runs/study/cards/<x>"),
            precision_at_1: p,
            precision_at_1_seen_model: Some(p - 0.05),
            unseen_precision_at_1: Some(p - 0.2),
            precision_drop_unseen: Some(drop),
            precision_drop_all: Some(drop / 2.0),
            logits_accuracy: row.starts_with("ArcFace").then_some(0.9),
            majority_vote_accuracy: Some(p),
            cost: None,
        };
        let mut results = StudyResults::default();
        for (seed, p) in [(42, 0.60), (43, 0.62), (44, 0.61)] {
            results.runs.push(r(&grid.settings.baseline, seed, p, 0.20));
        }
        results
            .runs
            .push(r("ArcFace_cosine_mobilenet_v2_sgd_aug", 42, 0.75, 0.35));
        let dir = tempfile::tempdir().unwrap();
        let path = write_study_page(
            &grid,
            &results,
            Path::new("runs/<study>"),
            Some(Path::new("runs")),
            dir.path(),
        )
        .unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(
            html.contains("0.610 ± 0.010 (3 seeds)"),
            "baseline mean ± std"
        );
        assert!(html.contains("runs/&lt;study&gt;") && !html.contains("runs/<study>"));
        assert!(
            html.contains("+14.0 points"),
            "ArcFace − baseline difference"
        );
        assert!(html.contains(">holds<") && html.contains(">pending<"));
        assert!(html.contains("0.900 vs 0.750"), "ArcFace logits vs kNN");
        assert!(
            html.contains("href=\"runs/study--cards--%3Cx%3E/index.html\""),
            "rows link to their run pages"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("study.json")).unwrap())
                .unwrap();
        assert_eq!(json["results"]["runs"].as_array().unwrap().len(), 4);
    }
}
