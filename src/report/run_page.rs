//! One run's page: headline metrics first, then the training curves, the embedding
//! maps, nearest-neighbour galleries and explanations, the per-class tables and the
//! confusion matrices, and finally the config (with its difference from the
//! baseline), the dataset and the hardware. A stopped, partial or one-phase run
//! gets the same page with what is missing said plainly.

use super::assets::{relative_path, write_if_changed, WriteStats};
use super::bars::{DropBars, PrecisionDropPlot};
use super::config_diff::diff_against_baseline;
use super::confusion::{grouped_order, top_confused, ConfusionMatrix, HeatMap};
use super::curves::{LineChart, Series};
use super::figure::{inline_svg, png};
use super::read::{read_run, PhaseStatus, PhaseSummary, RunSummary};
use super::tables::{csv_table, html_table, percent, Cell};
use crate::config::Phase;
use crate::html::{join, page, url};
use crate::project::gallery_strip::{strip, FIGURE_CELL};
use crate::run::explanations::ExplanationItem;
use crate::run::metrics::PhaseMetrics;
use crate::run::trust::{TrustRow, TrustTable, BASELINE, METRICS};
use crate::run::{projections, tables, PhaseDir, RunDir};
use anyhow::{Context, Result};
use maud::{html, Markup};
use std::path::{Path, PathBuf};

/// How a run page is placed and what it links to.
#[derive(Debug, Clone)]
pub struct RunPageOptions {
    /// Presets directory for the baseline comparison (`experiments`).
    pub presets_dir: PathBuf,
    /// Relative href from the page's directory to the directory holding the run's
    /// `phase-*` folders (their projections, galleries, explanations): `.` when
    /// they are copied beside the page, `..` for `runs/X/report/`.
    pub assets_base: String,
    /// Relative href of the comparison page, when the page is part of a site.
    pub site_index: Option<String>,
}

/// One headline number: its label, value and a line of detail (all text).
fn kpi(label: &str, value: &str, detail: &str) -> Markup {
    html! {
        div.kpi {
            span { (label) }
            b { (value) }
            @if !detail.is_empty() {
                small { (detail) }
            }
        }
    }
}

/// Seconds as `1 h 02 min`, `3 min 05 s` or `12.3 s`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds <= 0.0 {
        return "–".into();
    }
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{seconds:.1} s")
    }
}

/// The label of a phase's status for headings.
fn status_text(p: &PhaseSummary) -> String {
    match p.status() {
        PhaseStatus::Finished => match &p.state {
            Some(s) => format!(
                "finished, {} epoch{}",
                s.epochs_done,
                if s.epochs_done == 1 { "" } else { "s" }
            ),
            None => "finished".into(),
        },
        PhaseStatus::Missing => "not trained".into(),
        PhaseStatus::Stopped(why) => format!(
            "stopped after {} epochs: {why}",
            p.state.as_ref().map_or(0, |s| s.epochs_done)
        ),
        PhaseStatus::Partial { done, total } => format!("incomplete: {done} of {total} epochs"),
    }
}

/// Reference name of a phase's curves (`test_accuracy` / `test_accuracy2`).
fn curve_suffix(phase: Phase) -> &'static str {
    match phase {
        Phase::All => "",
        Phase::Seen => "2",
    }
}

fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::All => "phase-all (all classes)",
        Phase::Seen => "phase-seen (without the held-out classes)",
    }
}

/// A history as chart points; the untrained network's accuracy is epoch 0.
fn history_series(
    p: &PhaseSummary,
    label: &str,
    value: impl Fn(&crate::run::EpochRecord) -> Option<f64>,
    dashed: bool,
) -> Series {
    let points = p
        .history
        .iter()
        .map(|h| (h.epoch as f64, value(h).unwrap_or(f64::NAN)))
        .collect();
    Series {
        label: label.to_string(),
        points,
        dashed,
    }
}

/// The run's three training charts.
fn run_charts(run: &RunSummary) -> Vec<(&'static str, LineChart)> {
    let mut accuracy = LineChart::new("Test accuracy (precision@1)", "epoch", "precision@1");
    let mut loss = LineChart::new("Training loss", "epoch", "loss");
    let mut lr = LineChart::new("Learning rate (backbone)", "epoch", "learning rate");
    for p in &run.phases {
        let sfx = curve_suffix(p.phase);
        let mut acc = history_series(
            p,
            &format!("test_accuracy{sfx} (all classes)"),
            |h| Some(h.test_accuracy),
            false,
        );
        if let Some(initial) = p.state.as_ref().and_then(|s| s.initial_test_accuracy) {
            acc.points.insert(0, (0.0, initial));
        }
        accuracy.series.push(acc);
        if p.history.iter().any(|h| h.test_accuracy_unseen.is_some()) {
            accuracy.series.push(history_series(
                p,
                &format!("test_accuracy{sfx} (held-out classes)"),
                |h| h.test_accuracy_unseen,
                true,
            ));
        }
        loss.series.push(history_series(
            p,
            &format!("train_loss{sfx}"),
            |h| Some(h.train_loss),
            false,
        ));
        lr.series.push(history_series(
            p,
            &format!("lr ({})", p.phase.dir_name()),
            |h| Some(h.lr),
            p.phase == Phase::Seen,
        ));
    }
    vec![
        ("test-accuracy", accuracy),
        ("train-loss", loss),
        ("learning-rate", lr),
    ]
}

/// Writes a chart's PNG beside the page and returns its markup: the inline SVG and a
/// link to the PNG.
pub(crate) fn chart_html<F: super::figure::Figure>(
    out_dir: &Path,
    stem: &str,
    figure: &F,
    stats: &mut WriteStats,
) -> Result<Markup> {
    let file = format!("{stem}.png");
    stats.add(write_if_changed(&out_dir.join(&file), &png(figure)?)?);
    let svg = inline_svg(figure)?;
    Ok(html! {
        div.chart {
            (svg)
            br;
            a href=(url(&file)) { "PNG" }
        }
    })
}

/// The headline numbers.
fn headline(run: &RunSummary) -> Markup {
    let mut kpis = Vec::new();
    let all = run.phase(Phase::All);
    let seen = run.phase(Phase::Seen);
    let all_metrics = all.and_then(|p| p.metrics.as_ref());
    let p1 = all.and_then(PhaseSummary::precision_at_1);
    let initial = all
        .and_then(|p| p.state.as_ref())
        .and_then(|s| s.initial_test_accuracy);
    kpis.push(kpi(
        "precision@1, all classes",
        &percent(p1),
        &initial
            .map(|i| format!("untrained: {:.1} %", i * 100.0))
            .unwrap_or_else(|| {
                if all_metrics.is_none() && p1.is_some() {
                    "last epoch".into()
                } else {
                    String::new()
                }
            }),
    ));
    if let Some(s) = seen {
        let unseen = s
            .metrics
            .as_ref()
            .and_then(|m| m.unseen_precision_at_1)
            .or_else(|| s.history.last().and_then(|h| h.test_accuracy_unseen));
        kpis.push(kpi(
            "precision@1, held-out classes",
            &percent(unseen),
            "model trained without them",
        ));
    }
    if let Some(c) = &run.comparison {
        kpis.push(kpi(
            "precision drop, unseen classes",
            &percent(Some(c.precision_drop_unseen_classes)),
            "all-classes model − limited model",
        ));
        kpis.push(kpi(
            "precision drop, all classes",
            &percent(Some(c.precision_drop_all_classes)),
            "",
        ));
    }
    if let Some(m) = all_metrics {
        kpis.extend(metric_kpis(m));
    }
    kpis.push(kpi(
        "training time",
        &duration(run.training_seconds()),
        "both phases, evaluation included",
    ));
    html! {
        div.kpis {
            @for k in &kpis {
                (k)
            }
        }
    }
}

/// The headline numbers of `metrics.json`: retrieval, clustering, logits.
fn metric_kpis(m: &PhaseMetrics) -> Vec<Markup> {
    let mut kpis = Vec::new();
    let r = &m.retrieval;
    let recalls: Vec<String> = r
        .recall_at_k
        .iter()
        .map(|a| format!("R@{} {:.1}", a.k, a.value * 100.0))
        .collect();
    if let Some(first) = r.recall_at_k.iter().find(|a| a.k > 1) {
        kpis.push(kpi(
            &format!("Recall@{}", first.k),
            &percent(Some(first.value)),
            &recalls.join(" · "),
        ));
    }
    kpis.push(kpi(
        "MAP@R",
        &percent(Some(r.map_at_r)),
        &Some(r.r_precision)
            .filter(|v| v.is_finite())
            .map(|v| format!("R-precision {:.1} %", v * 100.0))
            .unwrap_or_default(),
    ));
    let nmi = match m.clustering.nmi {
        Some(v) => format!("{v:.3}"),
        None => "n/a".into(),
    };
    let nmi_detail = match (m.clustering.ami, &m.clustering.note) {
        (_, Some(note)) => note.clone(),
        (Some(ami), None) => format!("AMI {ami:.3}"),
        _ => String::new(),
    };
    kpis.push(kpi("NMI (k-means)", &nmi, &nmi_detail));
    if let Some(best) = r
        .majority_vote_accuracy
        .iter()
        .max_by(|a, b| a.value.total_cmp(&b.value))
    {
        let all_k: Vec<String> = r
            .majority_vote_accuracy
            .iter()
            .map(|a| format!("k={} {:.1}", a.k, a.value * 100.0))
            .collect();
        kpis.push(kpi(
            &format!("majority vote, best k={}", best.k),
            &percent(Some(best.value)),
            &all_k.join(" · "),
        ));
    }
    if let Some(l) = m.logits_accuracy {
        kpis.push(kpi(
            "accuracy of the loss's logits",
            &percent(Some(l)),
            "class weights / proxies",
        ));
    }
    kpis
}

/// A layout's files the run page links, in order (as `read` lists them).
const MAP_LINKS: [&str; 7] = [
    "html",
    "svg",
    "png",
    "thumbnails.jpg",
    "thumbnails.png",
    "moves.png",
    "csv",
];

/// The embedding maps of one phase.
fn maps_html(p: &PhaseSummary, base: &str, run_root: &str) -> Markup {
    let dir = format!("{base}/{}/projections", p.phase.dir_name());
    if p.projections.is_empty() {
        return html! {
            p.muted {
                "Embedding maps not computed yet — run "
                code { "dmlviz project --run " (run_root) " --method umap" } "."
            }
        };
    }
    let mut figures = Vec::new();
    for proj in &p.projections {
        let has = |ext: &str| proj.files.iter().any(|f| f == ext);
        let mut caption = proj.method.to_uppercase();
        if let Some(info) = &proj.info {
            let finite = |v: f64| Some(v).filter(|v| v.is_finite());
            let facts: Vec<String> = [
                Some(info.points)
                    .filter(|&n| n > 0)
                    .map(|n| format!("{n} points")),
                finite(info.trustworthiness).map(|t| format!("trustworthiness {t:.3}")),
                finite(info.knn_label_agreement).map(|a| format!("kNN label agreement {a:.3}")),
                finite(info.seconds).map(|s| format!("{s:.1} s")),
            ]
            .into_iter()
            .flatten()
            .collect();
            caption.push_str(&format!(": {}", facts.join(", ")));
        }
        let links = MAP_LINKS.iter().filter(|e| has(e)).map(|e| {
            let (label, file) = match *e {
                "html" => (
                    "interactive map (hover: image, click: neighbours)".to_string(),
                    projections::file_name(&proj.method, "html"),
                ),
                "thumbnails.jpg" => (
                    "map with the images".to_string(),
                    projections::thumbnails_name(&proj.method),
                ),
                "moves.png" => (
                    "held-out classes moving from phase-all's map (arrows)".to_string(),
                    projections::moves_name(&proj.method),
                ),
                // Runs made before the thumbnail maps were JPEGs.
                "thumbnails.png" => (
                    "map with the images".to_string(),
                    format!("{}{}.png", proj.method, projections::THUMBNAILS_SUFFIX),
                ),
                e => (e.to_uppercase(), projections::file_name(&proj.method, e)),
            };
            html! { a href=(url(&format!("{dir}/{file}"))) { (label) } }
        });
        let links = join(links, " · ");
        let target = if has("html") { "html" } else { "png" };
        figures.push(html! {
            figure {
                @if has("png") {
                    a href=(url(&format!("{dir}/{}", projections::file_name(&proj.method, target)))) {
                        img src=(url(&format!("{dir}/{}", projections::file_name(&proj.method, "png")))) loading="lazy"
                            width="520" alt={ (proj.method) " map" };
                    }
                    br;
                }
                figcaption { (caption) br; (links) }
            }
        });
    }
    html! {
        div.grid.maps {
            @for f in &figures {
                (f)
            }
        }
    }
}

/// A sample of the phase's galleries: mistakes first, then correct queries.
fn galleries_html(p: &PhaseSummary, base: &str, run_root: &str) -> Markup {
    let dir = format!("{base}/{}/galleries", p.phase.dir_name());
    let Some(g) = p.galleries.as_ref().filter(|g| !g.items.is_empty()) else {
        return html! {
            p.muted {
                "Nearest-neighbour galleries not computed yet — run "
                code { "dmlviz project --run " (run_root) } "."
            }
        };
    };
    const EACH: usize = 4;
    let wrong = g.items.iter().filter(|i| !i.correct).take(EACH);
    let right = g.items.iter().filter(|i| i.correct).take(EACH / 2);
    let mut figures = Vec::new();
    for item in wrong.chain(right) {
        let id = item.anchor().unwrap_or_default();
        let votes: Vec<String> = item
            .neighbours
            .iter()
            .take(10)
            .map(|n| n.class.clone())
            .collect();
        let link = url(&format!("{dir}/index.html"))
            + &if id.is_empty() {
                String::new()
            } else {
                format!("#{}", url(&id))
            };
        figures.push(html! {
            figure {
                a href=(link) {
                    @if let Some(thumbs) = &g.thumbs {
                        (strip(item, thumbs, &format!("{dir}/"), FIGURE_CELL, false))
                    } @else if let Some(sheet) = Some(&item.sheet).filter(|s| !s.is_empty()) {
                        // A contact sheet of an earlier version.
                        img src=(url(&format!("{dir}/{sheet}"))) loading="lazy" width="560"
                            alt={ "query of " (item.true_class) " and its neighbours" }
                            title=(votes.join(", "));
                    }
                }
                figcaption {
                    span class=(if item.correct { "ok" } else { "bad" }) {
                        (if item.correct { "✓" } else { "✗" })
                    }
                    " " (item.true_class) " → " (item.predicted)
                    @if !item.majority.is_empty() {
                        br;
                        "majority: " (item.majority)
                    }
                    @if item.unseen {
                        " " i { "(held-out class)" }
                    }
                }
            }
        });
    }
    html! {
        p {
            (g.items.len()) " queries (" (g.items.iter().filter(|i| !i.correct).count())
            " with a wrong nearest neighbour). "
            a href=(url(&format!("{dir}/index.html"))) { "All galleries" } "."
        }
        div.grid.galleries {
            @for f in &figures {
                (f)
            }
        }
    }
}

/// The explanation panel: saliency maps for a sample of correct and wrong queries.
fn explanations_html(p: &PhaseSummary, base: &str, run_root: &str) -> Markup {
    let dir = format!("{base}/{}/explanations", p.phase.dir_name());
    let Some(e) = p.explanations.as_ref().filter(|e| !e.items.is_empty()) else {
        return html! {
            p.muted {
                "Explanations not computed yet — run "
                code { "dmlviz explain --run " (run_root) " --samples 8" } "."
            }
        };
    };
    let order: Vec<(String, String)> = std::iter::once(("image".into(), "image".into()))
        .chain(crate::explain::registry::sample_columns())
        .collect();
    const EACH: usize = 4;
    let wrong = e.items.iter().filter(|i| !i.correct).take(EACH);
    let right = e.items.iter().filter(|i| i.correct).take(EACH);
    let items: Vec<_> = wrong.chain(right).collect();
    let columns: Vec<(&str, &str)> = order
        .iter()
        .map(|(k, l)| (k.as_str(), l.as_str()))
        .filter(|(k, _)| items.iter().any(|i| i.maps.contains_key(*k)))
        .collect();
    let rows: Vec<Markup> = items
        .iter()
        .map(|item| explanation_row(item, &columns, &dir))
        .collect();
    let trust = p.trust.as_ref();
    let score_of = |key: &str| trust.and_then(|t| t.rows.iter().find(|r| r.method == key));
    html! {
        p {
            a href=(url(&format!("{dir}/index.html"))) { "All explanations" }
            " (" (e.items.len()) " images). Correct queries explain the similarity to their nearest training image; wrong ones are contrast maps, cos(f, predicted class centroid) − cos(f, true class centroid): what pulled the image to the predicted class rather than its own."
        }
        (trust_html(trust, run_root))
        div.scroll {
            table.expl {
                thead {
                    tr {
                        th { "query" }
                        @for (key, label) in &columns {
                            th {
                                (label)
                                @if let Some(r) = score_of(key) {
                                    br;
                                    small.muted {
                                        "ins " (fixed(r.insertion_auc.mean, 2))
                                        " · del " (fixed(r.deletion_auc.mean, 2))
                                        " · ROAD " (fixed(r.road.mean, 3))
                                    }
                                }
                            }
                        }
                    }
                }
                tbody {
                    @for row in &rows {
                        (row)
                    }
                }
            }
        }
    }
}

/// A number with `digits` decimals, or a dash when not finite.
fn fixed(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

/// The trust table (`trust.json`): per method, each metric's mean ± spread over the
/// explained images, the best per metric starred, the sanity verdict.
fn trust_html(trust: Option<&TrustTable>, run_root: &str) -> Markup {
    let Some(t) = trust.filter(|t| !t.rows.is_empty()) else {
        return html! {
            p.muted {
                "No trust table yet — run "
                code { "dmlviz explain --run " (run_root) " --samples 8" } "."
            }
        };
    };
    let most = t.most_faithful().map(|r| r.title.clone());
    let passing: Vec<&str> = t
        .rows
        .iter()
        .filter(|r| r.sanity_pass == Some(true))
        .map(|r| r.title.as_str())
        .collect();
    let failing: Vec<&str> = t
        .rows
        .iter()
        .filter(|r| r.sanity_pass == Some(false))
        .map(|r| r.title.as_str())
        .collect();
    html! {
        h4 { "Which map to trust" }
        p {
            "Scored on the " (t.images) " explained images against the similarity each map explains: deletion and insertion curves of "
            (t.steps) " steps (blurred baseline), ROAD at percentiles "
            (t.road_percentiles.iter().map(|p| format!("{p}")).collect::<Vec<_>>().join(", "))
            " (noisy linear imputation), average drop when only the map is kept, and the sanity check: Spearman correlation with the trained map once the "
            (t.sanity_blocks.len()) " blocks are re-initialised from the head down (passes below "
            (t.sanity_pass_below) "). ★ best per metric (the random baseline excluded); mean ± sd over the images."
        }
        @if let Some(m) = &most {
            p { "Most faithful here: " strong { (m) } "." }
        }
        @if !t.sanity_blocks.is_empty() {
            p {
                "Sanity check — passes: " (if passing.is_empty() { "none".to_string() } else { passing.join(", ") })
                "; fails (the map barely changes when the weights are destroyed, so it shows the image, not the model): "
                (if failing.is_empty() { "none".to_string() } else { failing.join(", ") }) "."
            }
        }
        div.scroll {
            table.sortable {
                thead {
                    tr {
                        th { "method" }
                        @for (_, title, _) in METRICS { th.num { (title) } }
                        th { "sanity" }
                    }
                }
                tbody {
                    @for r in &t.rows { (trust_row(r)) }
                }
            }
        }
    }
}

/// One method's row of the trust table.
fn trust_row(r: &TrustRow) -> Markup {
    let stat = |s: &crate::run::trust::Stat| -> String {
        if s.sd.is_finite() {
            format!("{} ± {}", fixed(s.mean, 3), fixed(s.sd, 3))
        } else {
            fixed(s.mean, 3)
        }
    };
    let cells = [
        stat(&r.deletion_auc),
        stat(&r.insertion_auc),
        stat(&r.road),
        stat(&r.average_drop),
        stat(&r.sanity),
        fixed(r.images_per_second, 1),
    ];
    html! {
        tr {
            td {
                (r.title)
                @if r.method == BASELINE { " " span.muted { "(baseline)" } }
            }
            @for ((key, _, _), cell) in METRICS.iter().zip(cells) {
                @if r.best.iter().any(|b| b == key) {
                    td.num { strong { "★ " (cell) } }
                } @else {
                    td.num { (cell) }
                }
            }
            @match r.sanity_pass {
                Some(true) => td { span.ok { "passes" } },
                Some(false) => td { span.bad { "fails" } },
                None => td.muted { "–" },
            }
        }
    }
}

/// One query of the explanation panel: its verdict and classes, then a cell per
/// method column (the map, why it is blank, or a dash).
fn explanation_row(item: &ExplanationItem, columns: &[(&str, &str)], dir: &str) -> Markup {
    let name = Path::new(&item.image)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    html! {
        tr {
            td.query {
                @if item.correct {
                    span.ok { "✓ correct" }
                } @else {
                    span.bad { "✗ wrong" }
                }
                @if item.unseen_class {
                    " " i { "(held-out class)" }
                }
                br;
                @if item.dir.is_empty() {
                    (name)
                } @else {
                    a href=(url(&format!("{dir}/{}/index.html", item.dir))) { (name) }
                }
                br; "true: " (or_unknown(&item.true_class))
                br; "predicted: " (or_unknown(&item.predicted))
            }
            @for (key, label) in columns {
                @let status = item.flat_status(key);
                @match (item.maps.get(*key), status) {
                    (Some(_), Some(status)) => td.muted { (label) br; "map is " (status) },
                    (Some(path), None) => {
                        @let map = url(&format!("{dir}/{path}"));
                        td { a href=(map) { img src=(map) loading="lazy" alt=(label); } }
                    },
                    (None, _) => td.muted { "–" },
                }
            }
        }
    }
}

/// A class name, or `?` when the record does not know it.
fn or_unknown(name: &str) -> &str {
    if name.is_empty() {
        "?"
    } else {
        name
    }
}

/// A number with four decimals, `–` when it is not finite (not measured).
fn fixed4(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "–".into()
    }
}

/// Class names by class index, from the phase's metrics.
fn class_names(p: &PhaseSummary) -> Vec<String> {
    p.metrics
        .as_ref()
        .map(|m| m.classes.iter().map(|c| c.class.clone()).collect())
        .unwrap_or_default()
}

/// The confusion heat map and the most confused pairs of one phase; `None` when the
/// phase has no confusion matrix.
fn confusion_html(
    p: &PhaseSummary,
    out_dir: &Path,
    stats: &mut WriteStats,
) -> Result<Option<Markup>> {
    let path = PhaseDir {
        root: p.root.clone(),
    }
    .confusion_matrix();
    if !path.exists() {
        return Ok(None);
    }
    let m = match ConfusionMatrix::read(&path) {
        Ok(m) => m,
        Err(e) => return Ok(Some(html! { p.note { (format!("{e:#}")) } })),
    };
    let names = class_names(p);
    let name = |i: usize| {
        m.labels
            .get(i)
            .and_then(|&l| names.get(l))
            .cloned()
            .unwrap_or_else(|| format!("class {i}"))
    };
    let map = HeatMap {
        matrix: &m,
        class_names: &names,
        order: grouped_order(&m),
    };
    let file = format!("confusion-{}.png", p.phase.dir_name());
    stats.add(write_if_changed(&out_dir.join(&file), &png(&map)?)?);
    let rows: Vec<Vec<Cell>> = top_confused(&m, 30)
        .iter()
        .map(|pair| {
            vec![
                Cell::text(&name(pair.true_index)),
                Cell::text(&name(pair.predicted_index)),
                Cell::number(Some(pair.count as f64), 0),
                Cell::percent(Some(pair.share)),
            ]
        })
        .collect();
    let headers = [
        "true class",
        "predicted as",
        "queries",
        "share of the class",
    ];
    let (w, h) = super::figure::Figure::size(&map);
    let href = url(&file);
    Ok(Some(html! {
        h3 { (phase_label(p.phase)) }
        p.muted {
            "Each row is a true class, each column a predicted class; colour: share of the \
             row's test queries (green: correct). Classes are ordered so that classes \
             confused with each other sit side by side."
        }
        div.grid {
            div {
                a href=(href) title="full size" {
                    img.heat src=(href) loading="lazy" width=(w) height=(h)
                        alt="confusion matrix heat map";
                }
                br;
                a href=(href) { "full size" }
            }
            div {
                @if rows.is_empty() {
                    p { "No confusions: every query's nearest neighbour has its class." }
                } @else {
                    h4 { "Most confused pairs" }
                    (html_table(&headers, &rows, ""))
                }
            }
        }
    }))
}

/// Per-class tables of a phase and of the comparison.
fn tables_html(run: &RunSummary) -> Markup {
    let mut out = Vec::new();
    for p in &run.phases {
        let label = tables::table_prefix(p.phase);
        let tables_dir = RunDir::new(&run.root).phase(p.phase).tables();
        if let Some(t) = csv_table(&tables_dir.join(tables::class_metrics_csv(p.phase)), "wide") {
            out.push(html! {
                details open {
                    summary {
                        b { (label) "_metrics" } " — " (phase_label(p.phase)) ": precision@1 per class"
                    }
                    div.scroll { (t) }
                }
            });
        }
        if let Some(t) = csv_table(
            &tables_dir.join(tables::classification_report(p.phase, "csv")),
            "wide",
        ) {
            out.push(html! {
                details {
                    summary {
                        b { (label) "_classification_report" } " — nearest-neighbour predictions"
                    }
                    div.scroll { (t) }
                }
            });
        }
        if let Some(t) = csv_table(&tables_dir.join(tables::SUB_CENTER_OUTLIERS_CSV), "wide") {
            out.push(html! {
                details {
                    summary { b { "sub_center_outliers" } " (" (p.phase.dir_name()) ")" }
                    div.scroll { (t) }
                }
            });
        }
        if p.metrics.is_none() {
            out.push(html! {
                p.muted {
                    (p.phase.dir_name()) ": no metrics yet — run "
                    code { "dmlviz eval --run " (run.root.display()) } "."
                }
            });
        }
    }
    let dir = RunDir::new(&run.root);
    for (classes, label) in [
        (
            "unseen",
            "comparison_unseen_classes_metrics — held-out classes",
        ),
        ("seen", "comparison_seen_classes_metrics — every class"),
    ] {
        if let Some(t) = csv_table(&dir.comparison_table(classes), "wide") {
            out.push(html! {
                details open {
                    summary { b { (label) } ": precision@1 of both models" }
                    div.scroll { (t) }
                }
            });
        }
    }
    html! {
        @for part in &out {
            (part)
        }
    }
}

/// The dataset section, from the run's own records (and the dataset's manifest when
/// the data folder is still there).
fn dataset_html(run: &RunSummary) -> Markup {
    let Some(cfg) = &run.config else {
        return html! { p.muted { "Config unreadable: no dataset information." } };
    };
    let held_out = run
        .comparison
        .as_ref()
        .map(|c| c.held_out_classes.clone())
        .unwrap_or_default();
    html! {
        (dataset_source_html(&cfg.data.path))
        @if let Some(m) = run.phases.iter().filter_map(|p| p.metrics.as_ref()).next() {
            (dataset_counts_html(m, cfg))
        }
        p {
            "Held out from the phase-seen model: the last " (cfg.data.held_out_classes) " classes"
            @if !held_out.is_empty() {
                " (" (held_out.join(", ")) ")"
            }
            "."
        }
    }
}

/// Where the dataset is, and how it was built when its manifest is there.
fn dataset_source_html(path: &Path) -> Markup {
    if !path.is_dir() {
        return html! {
            p {
                "Dataset folder " code { (path.display()) }
                " — " b { "not found here" } ": the figures below come from the run directory alone."
            }
        };
    }
    let manifest = crate::data::fetch::read_manifest(path);
    html! {
        p {
            "Dataset folder " code { (path.display()) } " (present)."
            @match &manifest {
                Ok(Some(m)) => {
                    @let sources: Vec<String> = m
                        .sources
                        .iter()
                        .map(|s| format!("{} {} {}", s.registry, s.name, s.version))
                        .collect();
                    " Built by " code { "dmlviz data fetch " (m.name) } " from " (sources.join(", ")) "."
                },
                Ok(None) => {},
                Err(e) => { " " span.muted { (format!("{e:#}")) } },
            }
        }
        @if let Ok(Some(m)) = &manifest {
            @if !m.licences.is_empty() {
                details {
                    summary { "Licences of the images" }
                    ul {
                        @for l in &m.licences {
                            li { (l) }
                        }
                    }
                }
            }
        }
    }
}

/// Images per class and split, from `metrics.json`, and the data settings.
fn dataset_counts_html(m: &PhaseMetrics, cfg: &crate::config::ExperimentConfig) -> Markup {
    let totals: Vec<usize> = m
        .classes
        .iter()
        .map(|c| c.train_count + c.test_count)
        .collect();
    let mut sorted = totals.clone();
    sorted.sort_unstable();
    let median = if sorted.is_empty() {
        0.0
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2] as f64
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) as f64 / 2.0
    };
    let train: usize = m.classes.iter().map(|c| c.train_count).sum();
    let test: usize = m.classes.iter().map(|c| c.test_count).sum();
    html! {
        p {
            (format!(
                "{} classes, {} images ({train} train, {test} test, split {:?} at test ratio {}); \
                 per class min {} / median {} / max {}. Image size {}² (resize {}), augmentation {}.",
                m.classes.len(),
                train + test,
                cfg.data.split,
                cfg.data.test_ratio,
                sorted.first().unwrap_or(&0),
                median,
                sorted.last().unwrap_or(&0),
                cfg.data.image_size,
                cfg.resize(),
                if cfg.data.augment { "on" } else { "off" },
            ))
        }
    }
}

/// Hardware and timing.
fn hardware_html(run: &RunSummary) -> Markup {
    let mut rows = Vec::new();
    for p in &run.phases {
        let speeds: Vec<f64> = p
            .history
            .iter()
            .map(|h| h.images_per_s)
            .filter(|v| v.is_finite())
            .collect();
        let mean = if speeds.is_empty() {
            None
        } else {
            Some(speeds.iter().sum::<f64>() / speeds.len() as f64)
        };
        rows.push(vec![
            Cell::text(p.phase.dir_name()),
            Cell::text(&status_text(p)),
            Cell::number(Some(p.history.len() as f64), 0),
            Cell::html(html! { (duration(p.seconds())) }, &p.seconds().to_string()),
            Cell::number(mean, 1),
        ]);
    }
    let device = run
        .config
        .as_ref()
        .map(|c| {
            format!(
                "{:?} with {} threads",
                c.training.device, c.training.threads
            )
            .to_lowercase()
        })
        .unwrap_or_default();
    let headers = ["phase", "status", "epochs", "duration", "images/s"];
    html! {
        p {
            @match &run.hardware {
                Some(h) => { "Trained on: " (h.describe()) "." },
                None => {
                    "No " code { (crate::run::HARDWARE_FILE) } " in the run (written when "
                    code { "dmlviz train" } " finishes)."
                },
            }
        }
        p {
            "Device: " (device)
            ". Throughput is training images per second (loader, forward, backward, update)."
        }
        (html_table(&headers, &rows, ""))
    }
}

/// The config section: difference from the baseline, then the whole resolved config.
fn config_html(run: &RunSummary, presets_dir: &Path) -> Markup {
    let diff = run
        .config
        .as_ref()
        .map(|cfg| diff_against_baseline(cfg, presets_dir));
    html! {
        @match &diff {
            Some(Ok(diff)) => {
                p {
                    "Compared with "
                    (if diff.declared { "its baseline preset" } else { "the preset of the same name" })
                    " " code { (diff.baseline) } " (" code { (diff.path.display()) } "):"
                }
                @if diff.differences.is_empty() {
                    p { "No difference." }
                } @else {
                    @let rows: Vec<Vec<Cell>> = diff
                        .differences
                        .iter()
                        .map(|d| {
                            vec![
                                Cell::text(&d.key),
                                Cell::text(d.baseline.as_deref().unwrap_or("–")),
                                Cell::text(d.run.as_deref().unwrap_or("–")),
                            ]
                        })
                        .collect();
                    (html_table(&["key", "baseline", "this run"], &rows, ""))
                }
            },
            Some(Err(why)) => p.muted { "No baseline comparison: " (why) "." },
            None => {},
        }
        @if let Some(text) = &run.config_text {
            details {
                summary { "Resolved config (" code { "config.toml" } ")" }
                pre { (text) }
            }
        }
    }
}

/// The sections of a run page: (element id, label in the line of in-page links).
const SECTIONS: [(&str, &str); 7] = [
    ("headline", "Headline"),
    ("curves", "Curves"),
    ("tables", "Tables"),
    ("confusion", "Confusion"),
    ("config", "Config"),
    ("data", "Dataset"),
    ("hardware", "Hardware"),
];

/// The page's title, what the run is, and what is wrong with it.
fn title_html(run: &RunSummary) -> Markup {
    let problems: Vec<&String> = run
        .problems
        .iter()
        .chain(run.phases.iter().flat_map(|p| &p.problems))
        .collect();
    html! {
        h1 { (run.name) }
        // The line of in-page links, right after the title.
        p {
            (join(SECTIONS.iter().map(|(id, label)| html! { a href={ "#" (id) } { (label) } }), " · "))
        }
        @if let Some(cfg) = &run.config {
            p.muted {
                "experiment " b { (cfg.name) }
                @if !cfg.description.is_empty() {
                    " — " (cfg.description)
                }
                @if let Some(b) = &cfg.baseline {
                    " · baseline " (b)
                }
            }
        }
        @if !run.is_complete() {
            p.note.status { b { "Incomplete run" } ": " (run.status_line()) "." }
        }
        @if !problems.is_empty() {
            div.note.status {
                b { "Files that could not be read" }
                ul {
                    @for p in &problems {
                        li { (p) }
                    }
                }
            }
        }
    }
}

/// The headline numbers and the user's deductions.
fn headline_section(run: &RunSummary) -> Markup {
    html! {
        h2 #headline { "Headline" }
        (headline(run))
        h2 #deductions { "Deductions" }
        @match &run.deductions {
            Some(text) => div.deductions { (super::deductions::to_html(text)) },
            None => p.muted {
                "None yet: write your conclusions in "
                code { (run.root.join(super::deductions::FILE_NAME).display()) }
                " (Markdown: paragraphs, " code { "-" } " lists, " code { "**bold**" } ", "
                code { "`code`" } ")."
            },
        }
    }
}

/// The training curves of both phases and the precision-drop bars (PNGs written
/// beside the page).
fn curves_section(run: &RunSummary, out_dir: &Path, stats: &mut WriteStats) -> Result<Markup> {
    if let Some(p) = &run.provenance {
        return Ok(imported_html(p));
    }
    let no_epoch = run.phases.iter().all(|p| p.history.is_empty());
    let mut charts = Vec::new();
    for (stem, mut chart) in run_charts(run) {
        if !no_epoch && !chart.is_empty() {
            chart.width = 560;
            charts.push(chart_html(out_dir, stem, &chart, stats)?);
        }
    }
    let drop = match &run.comparison {
        Some(c) => {
            let plot = PrecisionDropPlot {
                experiments: vec![DropBars {
                    name: run.name.clone(),
                    unseen: Some(c.precision_drop_unseen_classes).filter(|v| v.is_finite()),
                    all: Some(c.precision_drop_all_classes).filter(|v| v.is_finite()),
                }],
            };
            Some(chart_html(out_dir, "precision-drop", &plot, stats)?)
        }
        None => None,
    };
    Ok(html! {
        h2 #curves { "Training curves" }
        @if no_epoch {
            p.muted { "No epoch recorded yet." }
        } @else {
            @for p in &run.phases {
                p { (phase_label(p.phase)) ": " (status_text(p)) "." }
            }
            div.grid {
                @for chart in &charts {
                    (chart)
                }
            }
        }
        @if let Some(drop) = &drop {
            h3 { "Precision drop" }
            (drop)
        }
    })
}

/// An imported run's origin, where a trained run has its curves: it has none to show.
fn imported_html(p: &crate::run::provenance::Provenance) -> Markup {
    html! {
        h2 #curves { "Origin" }
        p.note { b { "Imported, not trained here" } ": " (p.origin()) "." }
        @if !p.settings.is_empty() {
            p.muted { (p.settings.join(" · ")) }
        }
        @for (what, names) in [("Missing from the file (left as initialised)", &p.missing),
            ("Ignored entries of the file", &p.unexpected),
            ("Shapes that did not fit (left as initialised)", &p.mismatched)] {
            @if !names.is_empty() {
                p { b { (what) } ": " (names.join(", ")) }
            }
        }
        p.muted { "No training curves: dmlviz did not train this run." }
    }
}

/// One phase's maps, galleries and explanations.
fn phase_section(p: &PhaseSummary, base: &str, run_root: &str) -> Markup {
    let phase = p.phase.dir_name();
    html! {
        h2 id={ "maps-" (phase) } { "Embedding maps — " (phase_label(p.phase)) }
        (maps_html(p, base, run_root))
        h3 id={ "galleries-" (phase) } { "Nearest-neighbour galleries" }
        (galleries_html(p, base, run_root))
        h3 id={ "explanations-" (phase) } { "Explanations" }
        (explanations_html(p, base, run_root))
    }
}

/// The two numbers of `comparison/precision_drop.json`, to 4 decimals.
fn drop_line(c: &crate::run::comparison::PrecisionDrop) -> Markup {
    html! {
        p {
            "precision_drop_unseen_classes = " b { (fixed4(c.precision_drop_unseen_classes)) }
            ", precision_drop_all_classes = " b { (fixed4(c.precision_drop_all_classes)) }
            " (mean over classes of P@1 of the all-classes model − P@1 of the limited model)."
        }
    }
}

/// Renders a run's page into `out_dir` (`index.html` and its charts). Returns what
/// was written.
pub fn render_run_page(
    run: &RunSummary,
    out_dir: &Path,
    opts: &RunPageOptions,
) -> Result<WriteStats> {
    let mut stats = WriteStats::default();
    let base = opts.assets_base.trim_end_matches('/');
    let run_root = run.root.display().to_string();
    let curves = curves_section(run, out_dir, &mut stats)?;
    let mut confusion = Vec::new();
    for p in &run.phases {
        confusion.extend(confusion_html(p, out_dir, &mut stats)?);
    }
    let body = html! {
        (title_html(run))
        (headline_section(run))
        (curves)
        @for p in &run.phases {
            (phase_section(p, base, &run_root))
        }
        h2 #tables { "Per-class tables" }
        (tables_html(run))
        @if let Some(c) = &run.comparison {
            (drop_line(c))
        }
        h2 #confusion { "Confusion matrices" }
        @if confusion.is_empty() {
            p.muted { "Not computed yet (" code { "dmlviz eval" } ")." }
        }
        @for c in &confusion {
            (c)
        }
        h2 #config { "Config" }
        (config_html(run, &opts.presets_dir))
        h2 #data { "Dataset" }
        (dataset_html(run))
        h2 #hardware { "Hardware and time" }
        (hardware_html(run))
    };
    let mut nav: Vec<(String, String)> = Vec::new();
    if let Some(index) = &opts.site_index {
        nav.push((index.clone(), "All runs".into()));
    }
    let html = page(&format!("{} — dmlviz", run.name), &nav, body);
    stats.add(write_if_changed(
        &out_dir.join("index.html"),
        html.as_bytes(),
    )?);
    Ok(stats)
}

/// Writes the page of the run at `run_root` into `out_dir` (normally
/// `runs/X/report/`), linking to the run's own maps, galleries and explanations;
/// the baseline comparison uses the presets under `experiments/`. Returns the
/// page's path.
pub fn write_run_page(run_root: &Path, out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let run = read_run(run_root);
    let (from, to) = (
        out_dir.canonicalize()?,
        run_root
            .canonicalize()
            .with_context(|| format!("run directory {}", run_root.display()))?,
    );
    let opts = RunPageOptions {
        presets_dir: PathBuf::from("experiments"),
        assets_base: relative_path(&from, &to),
        site_index: None,
    };
    render_run_page(&run, out_dir, &opts)?;
    Ok(out_dir.join("index.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(duration(f64::NAN), "–");
    }

    #[test]
    fn a_bare_run_directory_gets_a_page_saying_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("r<&>");
        std::fs::create_dir_all(run_dir.join("phase-all")).unwrap();
        std::fs::write(
            run_dir.join("phase-all/history.jsonl"),
            "{\"epoch\":1,\"train_loss\":1.5,\"test_accuracy\":0.25,\"lr\":0.1,\"seconds\":3}\n{\"epoch\":2,\"train_loss\":null,\"test_accuracy\":0.5,\"lr\":0.1,\"seconds\":3}\n",
        )
        .unwrap();
        std::fs::write(
            run_dir.join("phase-all/train-state.json"),
            r#"{"epochs_done":2,"epochs_total":5,"finished":false,"stopped":"non-finite loss NaN at batch 3"}"#,
        )
        .unwrap();
        let out = run_dir.join("report");
        let page = write_run_page(&run_dir, &out).unwrap();
        let html = std::fs::read_to_string(page).unwrap();
        assert!(
            html.contains("<h1>r&lt;&amp;&gt;</h1>"),
            "run name not escaped"
        );
        assert!(
            html.contains("stopped (non-finite loss NaN at batch 3)"),
            "status missing"
        );
        assert!(html.contains("phase-seen: not trained"));
        assert!(html.contains("config.toml"), "missing config not named");
        assert!(
            html.contains("50.0\u{202F}%"),
            "last epoch accuracy not shown"
        );
        assert!(out.join("test-accuracy.png").exists() && out.join("train-loss.png").exists());
        assert!(html.contains("dmlviz project --run"));
    }
}

#[cfg(test)]
mod trust_tests {
    use super::*;
    use crate::run::trust::Stat;

    #[test]
    fn the_trust_table_marks_the_best_and_the_sanity_verdicts() {
        let s = |mean: f64| Stat {
            mean,
            sd: 0.01,
            n: 3,
        };
        let row = |method: &str, title: &str, insertion: f64, pass: Option<bool>| TrustRow {
            method: method.into(),
            title: title.into(),
            deletion_auc: s(0.3),
            insertion_auc: s(insertion),
            road: s(0.1),
            average_drop: s(0.4),
            increase: s(0.0),
            sanity: s(if pass == Some(false) { 0.9 } else { 0.1 }),
            sanity_curve: vec![Some(0.5)],
            sanity_pass: pass,
            images_per_second: f64::NAN,
            best: Vec::new(),
        };
        let mut t = TrustTable {
            schema_version: 2,
            phase: None,
            images: 3,
            steps: 4,
            road_percentiles: vec![30.0, 70.0],
            sanity_blocks: vec!["head".into()],
            sanity_pass_below: 0.5,
            rows: vec![
                row("gradcam", "Grad-<CAM>", 0.7, Some(true)),
                row("guided", "Guided", 0.6, Some(false)),
                row(BASELINE, "Random", 0.9, None),
            ],
        };
        t.mark_best();
        let html = trust_html(Some(&t), "runs/x").into_string();
        assert!(
            html.contains("Most faithful here: <strong>Grad-&lt;CAM&gt;</strong>"),
            "{html}"
        );
        assert!(
            html.contains("<strong>★ 0.700 ± 0.010</strong>"),
            "best insertion starred"
        );
        assert!(!html.contains("★ 0.900"), "the baseline is never best");
        assert!(html.contains("fails (the map barely changes") && html.contains(": Guided."));
        assert!(html.contains("(baseline)") && html.contains("percentiles 30, 70"));
        assert!(trust_html(None, "runs/x")
            .into_string()
            .contains("No trust table yet"));
    }
}
