//! The study page (`<site>/study.html`): the reference's findings side by side with
//! our measurements and a verdict for each, every experiment's numbers and costs,
//! and the kNN-versus-logits trade-off table. Also `study.json` with the same data.
//!
//! The page's wording (title, notes, questions and the rows that answer them) comes
//! from the grid's `page.toml` ([`super::page_text`]); the HTML is built with maud, so
//! every string is escaped by type.

use super::findings::{judge_all, Judgement, Verdict};
use super::grid::{Expectation, Finding, GridExperiment, StudyGrid, StudyMetric};
use super::page_text::{PageText, Question, QuestionValue};
use super::results::{RunResult, Stat, StudyResults};
use crate::atomic::{write_atomic, write_json};
use crate::html::{page, url};
use crate::report::site::{run_name, site_folder};
use anyhow::Result;
use maud::{html, Markup};
use std::path::{Path, PathBuf};

/// A cell for mean ± spread over seeds, sortable by the mean.
fn stat_cell(s: Option<Stat>) -> Markup {
    match s {
        Some(s) => html! { td.num data-sort=(format!("{:.6}", s.mean)) { (s.display()) } },
        None => empty_cell(),
    }
}

/// A cell for a value times `scale`, with `digits` decimals.
fn opt_cell(v: Option<f64>, scale: f64, digits: usize) -> Markup {
    match v {
        Some(v) if v.is_finite() => {
            html! { td.num data-sort=(v) { (format!("{:.*}", digits, v * scale)) } }
        }
        _ => empty_cell(),
    }
}

fn empty_cell() -> Markup {
    html! { td.num.muted data-sort="-1" { "—" } }
}

fn verdict_cell(j: &Judgement) -> Markup {
    let class = match j.verdict {
        Verdict::Holds => "ok",
        Verdict::DoesNotHold => "bad",
        _ => "muted",
    };
    let reason = match &j.verdict {
        Verdict::NotTestable(r) => r,
        _ => &j.explanation,
    };
    html! { td { b class=(class) { (j.verdict.label()) } br; span.muted { (reason) } } }
}

/// Plain text with spans between backticks set as code.
fn prose(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

fn mean(
    results: &StudyResults,
    dataset: &str,
    row: &str,
    f: impl Fn(&RunResult) -> Option<f64>,
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

/// The heading, the intro with the grid's facts, and the note.
fn intro(text: &PageText, grid: &StudyGrid, results: &StudyResults, runs: &Path) -> Markup {
    let measured_rows = results
        .runs
        .iter()
        .map(|r| (&r.dataset, &r.row))
        .collect::<std::collections::HashSet<_>>()
        .len();
    let facts = format!("(datasets: {}). Runs: ", grid.datasets().join(", "));
    let counts = format!(
        ". {} of {} experiments measured; {} runs in all (baseline and small-effect rows over seeds {:?}).",
        measured_rows,
        grid.experiments.len(),
        results.runs.len(),
        grid.settings.seeds
    );
    html! {
        h1 { (text.title) }
        p { (prose(&text.intro)) " " (facts) code { (runs.display()) } (counts) }
        @if let Some(note) = &text.note { p.note { (prose(note)) } }
    }
}

/// One question's cell on one dataset.
fn question_cell(q: &Question, base: &str, results: &StudyResults, d: &str) -> Markup {
    let row = q.row.as_deref().unwrap_or(base);
    match q.value {
        QuestionValue::PrecisionAt1 => stat_cell(results.stat(d, row, StudyMetric::PrecisionAt1)),
        QuestionValue::MajorityVote => {
            opt_cell(mean(results, d, row, |r| r.majority_vote_accuracy), 1.0, 3)
        }
        QuestionValue::UnseenPrecisionAt1 => {
            opt_cell(mean(results, d, row, |r| r.unseen_precision_at_1), 1.0, 3)
        }
        QuestionValue::PrecisionDropUnseen => {
            stat_cell(results.stat(d, row, StudyMetric::PrecisionDropUnseen))
        }
        QuestionValue::LogitsVsKnn => match (
            mean(results, d, row, |r| r.logits_accuracy),
            results.stat(d, row, StudyMetric::PrecisionAt1),
        ) {
            (Some(l), Some(k)) => html! { td.num { (format!("{l:.3} vs {:.3}", k.mean)) } },
            _ => html! { td.muted { "—" } },
        },
    }
}

/// The questions of `page.toml`, answered per dataset (nothing when it asks none).
fn questions(grid: &StudyGrid, results: &StudyResults, datasets: &[String]) -> Markup {
    let base = &grid.settings.baseline;
    html! {
        @if !grid.page.questions.is_empty() {
            h2 { (grid.page.questions_title) }
            table {
                thead { tr { th { "question" } @for d in datasets { th { (d) } } } }
                tbody {
                    @for q in &grid.page.questions {
                        tr {
                            td { (prose(&q.label)) }
                            @for d in datasets { (question_cell(q, base, results, d)) }
                        }
                    }
                }
            }
        }
    }
}

/// The first cells of a finding's row: what it claims and what it compares.
fn finding_cells(f: &Finding, base: &str) -> Markup {
    let against = match f.expect {
        Expectation::Positive | Expectation::Qualitative => None,
        _ => Some(f.against.as_deref().unwrap_or(base)),
    };
    html! {
        td {
            code { (f.reference_row) } br;
            span.muted {
                "study row " code { (f.row) }
                @if let Some(a) = against { " vs " code { (a) } }
            }
        }
        td {
            (f.deduction)
            @if let Some(p) = f.reference_points {
                " " span.muted { (format!("(reference: {p:+.0} points)")) }
            }
            @if let Some(c) = &f.caveat { br; i.muted { (c) } }
        }
        td { (f.metric.label()) }
    }
}

/// Our numbers and the verdict on one dataset (dashes while not judged).
fn judged_cells(j: Option<&Judgement>) -> Markup {
    let Some(j) = j else {
        return html! { td { "—" } td { "—" } };
    };
    let ours = match (j.value, j.against_value) {
        (Some(v), Some(a)) => format!("{} vs {}", v.display(), a.display()),
        (Some(v), None) => v.display(),
        _ => "—".into(),
    };
    html! { td { (ours) } (verdict_cell(j)) }
}

/// The reference's deductions against our measurements.
fn findings(grid: &StudyGrid, judgements: &[(usize, Judgement)], datasets: &[String]) -> Markup {
    let judged = |i: usize, d: &String| {
        judgements
            .iter()
            .find(|(k, j)| *k == i && &j.dataset == d)
            .map(|(_, j)| j)
    };
    html! {
        h2 { "Findings: the reference's deductions against our measurements" }
        table.sortable {
            thead { tr {
                th { "reference row" } th { "deduction" } th { "metric" }
                @for d in datasets { th { (d) " — ours" } th { (d) " — verdict" } }
            } }
            tbody {
                @for (i, f) in grid.findings.iter().enumerate() {
                    tr {
                        (finding_cells(f, &grid.settings.baseline))
                        @for d in datasets { (judged_cells(judged(i, d))) }
                    }
                }
            }
        }
    }
}

/// The row's name, linked to its run page when the site has it.
fn row_name(e: &GridExperiment, results: &StudyResults, site_runs: Option<&Path>) -> Markup {
    let href = results
        .of_row(&e.dataset, &e.row)
        .next()
        .and_then(|r| run_link(&r.run, site_runs));
    html! {
        @if let Some(href) = href {
            a href=(url(&href)) { code { (e.row) } }
        } @else {
            code { (e.row) }
        }
    }
}

const EXPERIMENT_HEADERS: [&str; 13] = [
    "dataset",
    "row",
    "precision@1 (all classes)",
    "P@1, model without held-out",
    "P@1 held-out classes (unseen)",
    "drop unseen",
    "drop all",
    "training s",
    "train img/s",
    "embed img/s",
    "index KiB",
    "kNN predict ms",
    "logits predict ms",
];

/// One experiment's numbers and costs.
fn experiment_row(e: &GridExperiment, results: &StudyResults, site_runs: Option<&Path>) -> Markup {
    let m = |f: &dyn Fn(&RunResult) -> Option<f64>| mean(results, &e.dataset, &e.row, f);
    let stat = |metric| stat_cell(results.stat(&e.dataset, &e.row, metric));
    html! {
        tr {
            td { (e.dataset) }
            td { (row_name(e, results, site_runs)) }
            (stat(StudyMetric::PrecisionAt1))
            (opt_cell(m(&|r| r.precision_at_1_seen_model), 1.0, 3))
            (opt_cell(m(&|r| r.unseen_precision_at_1), 1.0, 3))
            (stat(StudyMetric::PrecisionDropUnseen))
            (stat(StudyMetric::PrecisionDropAll))
            (opt_cell(m(&|r| r.cost.as_ref().map(|c| c.training_seconds)), 1.0, 0))
            (opt_cell(m(&|r| r.cost.as_ref().map(|c| c.training_images_per_s)), 1.0, 0))
            (opt_cell(m(&|r| r.cost.as_ref().map(|c| c.embedding_images_per_s)), 1.0, 0))
            (opt_cell(m(&|r| r.cost.as_ref().map(|c| c.index_bytes as f64)), 1.0 / 1024.0, 0))
            (opt_cell(m(&|r| r.cost.as_ref().map(|c| c.knn_predict_seconds)), 1000.0, 1))
            (opt_cell(m(&|r| r.cost.as_ref().and_then(|c| c.logits_predict_seconds)), 1000.0, 1))
        }
    }
}

fn experiments(grid: &StudyGrid, results: &StudyResults, site_runs: Option<&Path>) -> Markup {
    html! {
        h2 { "Every experiment" }
        div.scroll { table.sortable {
            thead { tr { @for h in EXPERIMENT_HEADERS { th { (h) } } } }
            tbody { @for e in &grid.experiments { (experiment_row(e, results, site_runs)) } }
        } }
    }
}

const TRADEOFF_HEADERS: [&str; 11] = [
    "dataset",
    "row",
    "seen-class accuracy: logits",
    "kNN P@1",
    "kNN majority@10",
    "unseen classes: logits",
    "unseen: kNN",
    "adding a class: kNN (embed 10 images, s)",
    "adding a class: logits (retrain, s)",
    "latency logits ms",
    "latency kNN ms",
];

/// One row with class logits: logits against kNN, in accuracy and cost.
fn tradeoff_row(e: &GridExperiment, results: &StudyResults) -> Markup {
    let m = |f: &dyn Fn(&RunResult) -> Option<f64>| mean(results, &e.dataset, &e.row, f);
    let embed_ten = |r: &RunResult| {
        r.cost
            .as_ref()
            .map(|c| 10.0 / c.embedding_images_per_s.max(1e-9))
    };
    html! {
        tr {
            td { (e.dataset) }
            td { code { (e.row) } }
            (opt_cell(m(&|r| r.logits_accuracy), 1.0, 3))
            (opt_cell(m(&|r| Some(r.precision_at_1)), 1.0, 3))
            (opt_cell(m(&|r| r.majority_vote_accuracy), 1.0, 3))
            td.num { "0 (by construction)" }
            (opt_cell(m(&|r| r.unseen_precision_at_1), 1.0, 3))
            (opt_cell(m(&embed_ten), 1.0, 3))
            (opt_cell(m(&|r| r.cost.as_ref().map(|c| c.training_seconds)), 1.0, 0))
            (opt_cell(m(&|r| r.cost.as_ref().and_then(|c| c.logits_predict_seconds)), 1000.0, 1))
            (opt_cell(m(&|r| r.cost.as_ref().map(|c| c.knn_predict_seconds)), 1000.0, 1))
        }
    }
}

/// The kNN-versus-logits table, over the rows whose loss has class logits.
fn tradeoff(grid: &StudyGrid, results: &StudyResults) -> Markup {
    let with_logits = grid.experiments.iter().filter(|e| {
        results
            .of_row(&e.dataset, &e.row)
            .any(|r| r.logits_accuracy.is_some())
    });
    let default_title = "nearest neighbours over embeddings vs the classifier's own logits";
    html! {
        @match &grid.page.tradeoff {
            Some(t) => { h2 { (t.title) } p { (prose(&t.text)) } }
            None => { h2 { (default_title) } }
        }
        table {
            thead { tr { @for h in TRADEOFF_HEADERS { th { (h) } } } }
            tbody { @for e in with_logits { (tradeoff_row(e, results)) } }
        }
    }
}

/// Writes `study.html` and `study.json` into `out` and returns the page's path.
/// One line per row: the most faithful saliency method of its phase-all model, per seed
/// (from each run's trust table, `explain --samples`).
fn trust_lines(grid: &StudyGrid, results: &StudyResults) -> Markup {
    html! {
        h2 { "Which explanation to trust" }
        p.muted {
            "Per row: the saliency method with the best mean rank over deletion AUC, insertion AUC and ROAD among those passing the sanity check, on the run's explained sample."
        }
        ul {
            @for e in &grid.experiments {
                @let found: Vec<(u64, String)> = results
                    .of_row(&e.dataset, &e.row)
                    .filter_map(|r| r.most_faithful.clone().map(|m| (r.seed, m)))
                    .collect();
                li {
                    (e.dataset) " " code { (e.row) } ": "
                    @if found.is_empty() {
                        span.muted { "no trust table yet" }
                    } @else {
                        @for (i, (seed, method)) in found.iter().enumerate() {
                            @if i > 0 { "; " }
                            strong { (method) } " (seed " (seed) ")"
                        }
                    }
                }
            }
        }
    }
}

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
    let body = html! {
        (intro(&grid.page, grid, results, runs))
        (questions(grid, results, &datasets))
        (findings(grid, &judgements, &datasets))
        (experiments(grid, results, site_runs))
        (tradeoff(grid, results))
        (trust_lines(grid, results))
    };
    let html = page(
        &format!("dmlviz — {}", grid.page.title),
        &[("index.html".into(), "all runs".into())],
        body,
    );
    let path = out.join("study.html");
    write_atomic(&path, html.as_bytes())?;
    let json: Vec<_> = judgements
        .iter()
        .map(|(i, j)| {
            let f = &grid.findings[*i];
            serde_json::json!({ "reference_row": f.reference_row, "deduction": f.deduction,
                                "metric": f.metric, "judgement": j })
        })
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
            most_faithful: (seed == 42).then(|| "Grad-<CAM>".to_string()),
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
        // One trust line per row, escaped.
        assert!(
            html.contains("<strong>Grad-&lt;CAM&gt;</strong> (seed 42)"),
            "trust line"
        );
        assert!(html.contains("no trust table yet"));
        // The wording is page.toml's: its title, and a backtick span set as code.
        assert!(html.contains("<h1>The reference study, re-run here</h1>"));
        assert!(html.contains("re-run with <code>dmlviz study</code> on real data"));
        assert!(html.contains("Substitutions: the ImageNet ResNet18/50"));
        assert!(
            html.contains("href=\"runs/study--cards--%3Cx%3E/index.html\""),
            "rows link to their run pages"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("study.json")).unwrap())
                .unwrap();
        assert_eq!(json["results"]["runs"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn prose_sets_backticks_as_code_and_escapes_the_rest() {
        assert_eq!(
            prose("run `dmlviz study` <now> & `a<b`").into_string(),
            "run <code>dmlviz study</code> &lt;now&gt; &amp; <code>a&lt;b</code>"
        );
    }

    #[test]
    fn without_page_toml_the_page_asks_no_questions() {
        let mut grid =
            StudyGrid::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/study"))
                .unwrap();
        grid.page = PageText::default();
        let dir = tempfile::tempdir().unwrap();
        let path = write_study_page(
            &grid,
            &StudyResults::default(),
            Path::new("r"),
            None,
            dir.path(),
        )
        .unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(html.contains("<h1>The study</h1>"));
        assert!(!html.contains("The questions") && !html.contains("Substitutions"));
        assert!(html.contains("Every experiment") && html.contains("<td>—</td>"));
    }
}
