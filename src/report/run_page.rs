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
use super::figure::{inline_svg, png, svg};
use super::read::{read_run, PhaseStatus, PhaseSummary, RunSummary};
use super::tables::{csv_table, html_table, percent, Cell};
use crate::config::Phase;
use crate::html::{escape, page, url};
use crate::run::{projections, tables, PhaseDir, RunDir};
use anyhow::{Context, Result};
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

/// Style added to run and comparison pages.
pub const EXTRA_STYLE: &str = "<style>\
.kpis{display:flex;flex-wrap:wrap}.kpi span{font-size:.85em;color:var(--muted)}.kpi small{display:block;color:var(--muted)}\
.status{border-left:5px solid var(--bad)}.chart{margin:.6em 0 1.2em}.chart a{font-size:.85em}\
.maps img{border:1px solid var(--line);background:#fff}.expl td{text-align:center}.expl img{width:112px;height:112px;object-fit:contain}\
.deductions{background:#eef4ff;border:1px solid #c9d8f5;border-radius:6px;padding:4px 14px}\
table.wide{font-size:.9em}code{background:var(--panel);padding:0 3px}\
</style>";

fn kpi(label: &str, value: &str, detail: &str) -> String {
    format!(
        "<div class=\"kpi\"><span>{}</span><b>{value}</b>{}</div>",
        escape(label),
        if detail.is_empty() {
            String::new()
        } else {
            format!("<small>{}</small>", escape(detail))
        }
    )
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

/// Writes a chart's PNG beside the page and returns its HTML: the inline SVG and a
/// link to the PNG.
pub(crate) fn chart_html<F: super::figure::Figure>(
    out_dir: &Path,
    stem: &str,
    figure: &F,
    stats: &mut WriteStats,
) -> Result<String> {
    let file = format!("{stem}.png");
    stats.add(write_if_changed(&out_dir.join(&file), &png(figure)?)?);
    Ok(format!(
        "<div class=\"chart\">{}<br><a href=\"{}\">PNG</a></div>\n",
        inline_svg(&svg(figure)?),
        url(&file)
    ))
}

/// The headline numbers.
fn headline(run: &RunSummary) -> String {
    let mut out = String::from("<div class=\"kpis\">\n");
    let all = run.phase(Phase::All);
    let seen = run.phase(Phase::Seen);
    let all_metrics = all.and_then(|p| p.metrics.as_ref());
    let p1 = all.and_then(PhaseSummary::precision_at_1);
    let initial = all
        .and_then(|p| p.state.as_ref())
        .and_then(|s| s.initial_test_accuracy);
    out.push_str(&kpi(
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
        out.push_str(&kpi(
            "precision@1, held-out classes",
            &percent(unseen),
            "model trained without them",
        ));
    }
    if let Some(c) = &run.comparison {
        out.push_str(&kpi(
            "precision drop, unseen classes",
            &percent(Some(c.precision_drop_unseen_classes)),
            "all-classes model − limited model",
        ));
        out.push_str(&kpi(
            "precision drop, all classes",
            &percent(Some(c.precision_drop_all_classes)),
            "",
        ));
    }
    if let Some(m) = all_metrics {
        let r = &m.retrieval;
        let recalls: Vec<String> = r
            .recall_at_k
            .iter()
            .map(|a| format!("R@{} {:.1}", a.k, a.value * 100.0))
            .collect();
        if let Some(first) = r.recall_at_k.iter().find(|a| a.k > 1) {
            out.push_str(&kpi(
                &format!("Recall@{}", first.k),
                &percent(Some(first.value)),
                &recalls.join(" · "),
            ));
        }
        out.push_str(&kpi(
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
        out.push_str(&kpi("NMI (k-means)", &escape(&nmi), &nmi_detail));
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
            out.push_str(&kpi(
                &format!("majority vote, best k={}", best.k),
                &percent(Some(best.value)),
                &all_k.join(" · "),
            ));
        }
        if let Some(l) = m.logits_accuracy {
            out.push_str(&kpi(
                "accuracy of the loss's logits",
                &percent(Some(l)),
                "class weights / proxies",
            ));
        }
    }
    out.push_str(&kpi(
        "training time",
        &escape(&duration(run.training_seconds())),
        "both phases, evaluation included",
    ));
    out.push_str("</div>\n");
    out
}

/// The embedding maps of one phase.
fn maps_html(p: &PhaseSummary, base: &str, run_root: &str) -> String {
    let dir = format!("{base}/{}/projections", p.phase.dir_name());
    if p.projections.is_empty() {
        return format!(
            "<p class=\"muted\">Embedding maps not computed yet — run <code>dmlviz project --run {} --method umap</code>.</p>\n",
            escape(run_root)
        );
    }
    let mut out = String::from("<div class=\"grid maps\">\n");
    for proj in &p.projections {
        let has = |ext: &str| proj.files.iter().any(|f| f == ext);
        let mut caption = escape(&proj.method.to_uppercase());
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
            caption.push_str(&format!(": {}", escape(&facts.join(", "))));
        }
        let links: Vec<String> = ["html", "svg", "png", "thumbnails.png", "csv"]
            .iter()
            .filter(|e| has(e))
            .map(|e| {
                let (label, file) = match *e {
                    "html" => (
                        "interactive map (hover: image, click: neighbours)".to_string(),
                        projections::file_name(&proj.method, "html"),
                    ),
                    "thumbnails.png" => (
                        "map with the images".to_string(),
                        projections::thumbnails_name(&proj.method),
                    ),
                    e => (e.to_uppercase(), projections::file_name(&proj.method, e)),
                };
                format!(
                    "<a href=\"{}\">{}</a>",
                    url(&format!("{dir}/{file}")),
                    escape(&label)
                )
            })
            .collect();
        let image = if has("png") {
            let target = if has("html") { "html" } else { "png" };
            format!(
                "<a href=\"{}\"><img src=\"{}\" loading=\"lazy\" width=\"520\" alt=\"{} map\"></a><br>",
                url(&format!("{dir}/{}", projections::file_name(&proj.method, target))),
                url(&format!("{dir}/{}", projections::file_name(&proj.method, "png"))),
                escape(&proj.method)
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "<figure>{image}<figcaption style=\"max-width:520px\">{caption}<br>{}</figcaption></figure>\n",
            links.join(" · ")
        ));
    }
    out.push_str("</div>\n");
    out
}

/// A sample of the phase's galleries: mistakes first, then correct queries.
fn galleries_html(p: &PhaseSummary, base: &str, run_root: &str) -> String {
    let dir = format!("{base}/{}/galleries", p.phase.dir_name());
    let Some(g) = p.galleries.as_ref().filter(|g| !g.items.is_empty()) else {
        return format!(
            "<p class=\"muted\">Nearest-neighbour galleries not computed yet — run <code>dmlviz project --run {}</code>.</p>\n",
            escape(run_root)
        );
    };
    const EACH: usize = 4;
    let wrong = g.items.iter().filter(|i| !i.correct).take(EACH);
    let right = g.items.iter().filter(|i| i.correct).take(EACH / 2);
    let mut out = format!(
        "<p>{} queries ({} with a wrong nearest neighbour). <a href=\"{}\">All galleries</a>.</p>\n<div class=\"grid\">\n",
        g.items.len(),
        g.items.iter().filter(|i| !i.correct).count(),
        url(&format!("{dir}/index.html"))
    );
    for item in wrong.chain(right) {
        let id = item.anchor().unwrap_or_default();
        let votes: Vec<String> = item
            .neighbours
            .iter()
            .take(10)
            .map(|n| n.class.clone())
            .collect();
        let caption = format!(
            "<span class=\"{}\">{}</span> {} → {}{}{}",
            if item.correct { "ok" } else { "bad" },
            if item.correct { "✓" } else { "✗" },
            escape(&item.true_class),
            escape(&item.predicted),
            if item.majority.is_empty() {
                String::new()
            } else {
                format!("<br>majority: {}", escape(&item.majority))
            },
            if item.unseen {
                " <i>(held-out class)</i>"
            } else {
                ""
            },
        );
        let link = url(&format!("{dir}/index.html"))
            + &if id.is_empty() {
                String::new()
            } else {
                format!("#{}", url(&id))
            };
        let image = match Some(&item.sheet).filter(|s| !s.is_empty()) {
            Some(sheet) => format!(
                "<img src=\"{}\" loading=\"lazy\" width=\"560\" alt=\"{}\" title=\"{}\">",
                url(&format!("{dir}/{sheet}")),
                escape(&format!("query of {} and its neighbours", item.true_class)),
                escape(&votes.join(", "))
            ),
            None => String::new(),
        };
        out.push_str(&format!(
            "<figure><a href=\"{link}\">{image}</a><figcaption style=\"max-width:560px\">{caption}</figcaption></figure>\n"
        ));
    }
    out.push_str("</div>\n");
    out
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

/// The explanation panel: saliency maps for a sample of correct and wrong queries.
fn explanations_html(p: &PhaseSummary, base: &str, run_root: &str) -> String {
    let dir = format!("{base}/{}/explanations", p.phase.dir_name());
    let Some(e) = p.explanations.as_ref().filter(|e| !e.items.is_empty()) else {
        return format!(
            "<p class=\"muted\">Explanations not computed yet — run <code>dmlviz explain --run {} --samples 8</code>.</p>\n",
            escape(run_root)
        );
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
    let mut out = format!(
        "<p><a href=\"{}\">All explanations</a> ({} images).</p>\n<div class=\"scroll\"><table class=\"expl\">\n<thead><tr><th>query</th>",
        url(&format!("{dir}/index.html")),
        e.items.len()
    );
    for (_, label) in &columns {
        out.push_str(&format!("<th>{}</th>", escape(label)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for item in items {
        let name = Path::new(&item.image)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let verdict = if item.correct {
            "<span class=\"ok\">✓ correct</span>"
        } else {
            "<span class=\"bad\">✗ wrong</span>"
        };
        let name = match Some(&item.dir).filter(|d| !d.is_empty()) {
            Some(d) => format!(
                "<a href=\"{}\">{}</a>",
                url(&format!("{dir}/{d}/index.html")),
                escape(&name)
            ),
            None => escape(&name),
        };
        out.push_str(&format!(
            "<tr><td style=\"text-align:left\">{verdict}{}<br>{name}<br>true: {}<br>predicted: {}</td>",
            if item.unseen_class { " <i>(held-out class)</i>" } else { "" },
            escape(or_unknown(&item.true_class)),
            escape(or_unknown(&item.predicted))
        ));
        for (key, label) in &columns {
            let status = item.flat_status(key);
            match item.maps.get(*key) {
                Some(_) if status.is_some() => out.push_str(&format!(
                    "<td class=\"muted\">{}<br>map is {}</td>",
                    escape(label),
                    escape(status.unwrap())
                )),
                Some(path) => out.push_str(&format!(
                    "<td><a href=\"{0}\"><img src=\"{0}\" loading=\"lazy\" alt=\"{1}\"></a></td>",
                    url(&format!("{dir}/{path}")),
                    escape(label)
                )),
                None => out.push_str("<td class=\"muted\">–</td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// Class names by class index, from the phase's metrics.
fn class_names(p: &PhaseSummary) -> Vec<String> {
    p.metrics
        .as_ref()
        .map(|m| m.classes.iter().map(|c| c.class.clone()).collect())
        .unwrap_or_default()
}

/// The confusion heat map and the most confused pairs of one phase.
fn confusion_html(p: &PhaseSummary, out_dir: &Path, stats: &mut WriteStats) -> Result<String> {
    let path = PhaseDir {
        root: p.root.clone(),
    }
    .confusion_matrix();
    if !path.exists() {
        return Ok(String::new());
    }
    let m = match ConfusionMatrix::read(&path) {
        Ok(m) => m,
        Err(e) => {
            return Ok(format!(
                "<p class=\"note\">{}</p>\n",
                escape(&format!("{e:#}"))
            ))
        }
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
    let pairs = if rows.is_empty() {
        "<p>No confusions: every query's nearest neighbour has its class.</p>\n".to_string()
    } else {
        format!(
            "<h4>Most confused pairs</h4>\n{}",
            html_table(
                &[
                    "true class",
                    "predicted as",
                    "queries",
                    "share of the class"
                ],
                &rows,
                ""
            )
        )
    };
    let (w, h) = super::figure::Figure::size(&map);
    Ok(format!(
        "<h3>{}</h3>\n<p class=\"muted\">Each row is a true class, each column a predicted class; colour: share of the row's test queries \
         (green: correct). Classes are ordered so that classes confused with each other sit side by side.</p>\n<div class=\"grid\"><div><a href=\"{1}\" title=\"full size\"><img src=\"{1}\" loading=\"lazy\" width=\"{2}\" height=\"{3}\" style=\"max-width:640px\" alt=\"confusion matrix heat map\"></a><br><a href=\"{1}\">full size</a></div><div>{pairs}</div></div>\n",
        escape(phase_label(p.phase)),
        url(&file),
        w,
        h
    ))
}

/// Per-class tables of a phase and of the comparison.
fn tables_html(run: &RunSummary) -> String {
    let mut out = String::new();
    for p in &run.phases {
        let label = tables::table_prefix(p.phase);
        let tables_dir = RunDir::new(&run.root).phase(p.phase).tables();
        if let Some(t) = csv_table(&tables_dir.join(tables::class_metrics_csv(p.phase)), "wide") {
            out.push_str(&format!(
                "<details open><summary><b>{label}_metrics</b> — {}: precision@1 per class</summary><div class=\"scroll\">{t}</div></details>\n",
                escape(phase_label(p.phase))
            ));
        }
        if let Some(t) = csv_table(
            &tables_dir.join(tables::classification_report(p.phase, "csv")),
            "wide",
        ) {
            out.push_str(&format!(
                "<details><summary><b>{label}_classification_report</b> — nearest-neighbour predictions</summary><div class=\"scroll\">{t}</div></details>\n"
            ));
        }
        if let Some(t) = csv_table(&tables_dir.join(tables::SUB_CENTER_OUTLIERS_CSV), "wide") {
            out.push_str(&format!(
                "<details><summary><b>sub_center_outliers</b> ({})</summary><div class=\"scroll\">{t}</div></details>\n",
                p.phase.dir_name()
            ));
        }
        if p.metrics.is_none() {
            out.push_str(&format!(
                "<p class=\"muted\">{}: no metrics yet — run <code>dmlviz eval --run {}</code>.</p>\n",
                escape(p.phase.dir_name()),
                escape(&run.root.display().to_string())
            ));
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
            out.push_str(&format!(
                "<details open><summary><b>{}</b>: precision@1 of both models</summary><div class=\"scroll\">{t}</div></details>\n",
                escape(label)
            ));
        }
    }
    out
}

/// The dataset section, from the run's own records (and the dataset's manifest when
/// the data folder is still there).
fn dataset_html(run: &RunSummary) -> String {
    let mut out = String::new();
    let Some(cfg) = &run.config else {
        return "<p class=\"muted\">Config unreadable: no dataset information.</p>".into();
    };
    let path = &cfg.data.path;
    out.push_str(&format!(
        "<p>Dataset folder <code>{}</code>",
        escape(&path.display().to_string())
    ));
    if path.is_dir() {
        out.push_str(" (present).");
        match crate::data::fetch::read_manifest(path) {
            Ok(Some(m)) => {
                let sources: Vec<String> = m
                    .sources
                    .iter()
                    .map(|s| format!("{} {} {}", s.registry, s.name, s.version))
                    .collect();
                out.push_str(&format!(
                    " Built by <code>dmlviz data fetch {}</code> from {}.",
                    escape(&m.name),
                    escape(&sources.join(", "))
                ));
                if !m.licences.is_empty() {
                    out.push_str(&format!(
                        "</p>\n<details><summary>Licences of the images</summary><ul>{}</ul></details>\n<p>",
                        m.licences.iter().map(|l| format!("<li>{}</li>", escape(l))).collect::<String>()
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => out.push_str(&format!(
                " <span class=\"muted\">{}</span>",
                escape(&format!("{e:#}"))
            )),
        }
    } else {
        out.push_str(
            " — <b>not found here</b>: the figures below come from the run directory alone.",
        );
    }
    out.push_str("</p>\n");
    if let Some(m) = run.phases.iter().filter_map(|p| p.metrics.as_ref()).next() {
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
        out.push_str(&format!(
            "<p>{} classes, {} images ({train} train, {test} test, split {:?} at test ratio {}); per class min {} / median {} / max {}. Image size {}² (resize {}), augmentation {}.</p>\n",
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
        ));
    }
    let held_out = run
        .comparison
        .as_ref()
        .map(|c| c.held_out_classes.clone())
        .unwrap_or_default();
    out.push_str(&format!(
        "<p>Held out from the phase-seen model: the last {} classes",
        cfg.data.held_out_classes
    ));
    if !held_out.is_empty() {
        out.push_str(&format!(" ({})", escape(&held_out.join(", "))));
    }
    out.push_str(".</p>\n");
    out
}

/// Hardware and timing.
fn hardware_html(run: &RunSummary) -> String {
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
            Cell::html(escape(&duration(p.seconds())), &p.seconds().to_string()),
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
    let machine = match &run.hardware {
        Some(h) => format!("Trained on: {}.", escape(&h.describe())),
        None => format!(
            "No <code>{}</code> in the run (written when <code>dmlviz train</code> finishes).",
            crate::run::HARDWARE_FILE
        ),
    };
    format!(
        "<p>{machine}</p>\n<p>Device: {}. Throughput is training images per second (loader, forward, backward, update).</p>\n{}",
        escape(&device),
        html_table(&["phase", "status", "epochs", "duration", "images/s"], &rows, "")
    )
}

/// The config section: difference from the baseline, then the whole resolved config.
fn config_html(run: &RunSummary, presets_dir: &Path) -> String {
    let mut out = String::new();
    if let Some(cfg) = &run.config {
        match diff_against_baseline(cfg, presets_dir) {
            Ok(diff) => {
                let against = if diff.declared {
                    "its baseline preset"
                } else {
                    "the preset of the same name"
                };
                out.push_str(&format!(
                    "<p>Compared with {against} <code>{}</code> (<code>{}</code>):</p>\n",
                    escape(&diff.baseline),
                    escape(&diff.path.display().to_string())
                ));
                if diff.differences.is_empty() {
                    out.push_str("<p>No difference.</p>\n");
                } else {
                    let rows: Vec<Vec<Cell>> = diff
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
                    out.push_str(&html_table(&["key", "baseline", "this run"], &rows, ""));
                }
            }
            Err(why) => out.push_str(&format!(
                "<p class=\"muted\">No baseline comparison: {}.</p>\n",
                escape(&why)
            )),
        }
    }
    if let Some(text) = &run.config_text {
        out.push_str(&format!(
            "<details><summary>Resolved config (<code>config.toml</code>)</summary><pre>{}</pre></details>\n",
            escape(text)
        ));
    }
    out
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
    let mut body = String::new();
    let title = run.name.clone();
    body.push_str(&format!("<h1>{}</h1>\n", escape(&title)));
    if let Some(cfg) = &run.config {
        body.push_str(&format!(
            "<p class=\"muted\">experiment <b>{}</b>{}{}</p>\n",
            escape(&cfg.name),
            if cfg.description.is_empty() {
                String::new()
            } else {
                format!(" — {}", escape(&cfg.description))
            },
            cfg.baseline
                .as_ref()
                .map(|b| format!(" · baseline {}", escape(b)))
                .unwrap_or_default()
        ));
    }
    if !run.is_complete() {
        body.push_str(&format!(
            "<p class=\"note status\"><b>Incomplete run</b>: {}.</p>\n",
            escape(&run.status_line())
        ));
    }
    let problems: Vec<&String> = run
        .problems
        .iter()
        .chain(run.phases.iter().flat_map(|p| &p.problems))
        .collect();
    if !problems.is_empty() {
        body.push_str(&format!(
            "<div class=\"note status\"><b>Files that could not be read</b><ul>{}</ul></div>\n",
            problems
                .iter()
                .map(|p| format!("<li>{}</li>", escape(p)))
                .collect::<String>()
        ));
    }
    body.push_str("<h2 id=\"headline\">Headline</h2>\n");
    body.push_str(&headline(run));
    body.push_str("<h2 id=\"deductions\">Deductions</h2>\n");
    match &run.deductions {
        Some(text) => body.push_str(&format!("<div class=\"deductions\">{}</div>\n", super::deductions::to_html(text))),
        None => body.push_str(&format!(
            "<p class=\"muted\">None yet: write your conclusions in <code>{}</code> (Markdown: paragraphs, <code>-</code> lists, <code>**bold**</code>, <code>`code`</code>).</p>\n",
            escape(&run.root.join(super::deductions::FILE_NAME).display().to_string())
        )),
    }

    body.push_str("<h2 id=\"curves\">Training curves</h2>\n");
    if run.phases.iter().all(|p| p.history.is_empty()) {
        body.push_str("<p class=\"muted\">No epoch recorded yet.</p>\n");
    } else {
        for p in &run.phases {
            body.push_str(&format!(
                "<p>{}: {}.</p>\n",
                escape(phase_label(p.phase)),
                escape(&status_text(p))
            ));
        }
        body.push_str("<div class=\"grid\">\n");
        for (stem, mut chart) in run_charts(run) {
            if !chart.is_empty() {
                chart.width = 560;
                body.push_str(&chart_html(out_dir, stem, &chart, &mut stats)?);
            }
        }
        body.push_str("</div>\n");
    }
    if let Some(c) = &run.comparison {
        let plot = PrecisionDropPlot {
            experiments: vec![DropBars {
                name: run.name.clone(),
                unseen: Some(c.precision_drop_unseen_classes).filter(|v| v.is_finite()),
                all: Some(c.precision_drop_all_classes).filter(|v| v.is_finite()),
            }],
        };
        body.push_str("<h3>Precision drop</h3>\n");
        body.push_str(&chart_html(out_dir, "precision-drop", &plot, &mut stats)?);
    }

    for p in &run.phases {
        body.push_str(&format!(
            "<h2 id=\"maps-{0}\">Embedding maps — {1}</h2>\n",
            p.phase.dir_name(),
            escape(phase_label(p.phase))
        ));
        body.push_str(&maps_html(p, base, &run_root));
        body.push_str(&format!(
            "<h3 id=\"galleries-{}\">Nearest-neighbour galleries</h3>\n",
            p.phase.dir_name()
        ));
        body.push_str(&galleries_html(p, base, &run_root));
        body.push_str(&format!(
            "<h3 id=\"explanations-{}\">Explanations</h3>\n",
            p.phase.dir_name()
        ));
        body.push_str(&explanations_html(p, base, &run_root));
    }

    body.push_str("<h2 id=\"tables\">Per-class tables</h2>\n");
    body.push_str(&tables_html(run));
    if let Some(c) = &run.comparison {
        body.push_str(&format!(
            "<p>precision_drop_unseen_classes = <b>{}</b>, precision_drop_all_classes = <b>{}</b> (mean over classes of P@1 of the all-classes model − P@1 of the limited model).</p>\n",
            fixed4(c.precision_drop_unseen_classes),
            fixed4(c.precision_drop_all_classes)
        ));
    }
    body.push_str("<h2 id=\"confusion\">Confusion matrices</h2>\n");
    let mut confusion = String::new();
    for p in &run.phases {
        confusion.push_str(&confusion_html(p, out_dir, &mut stats)?);
    }
    body.push_str(if confusion.is_empty() {
        "<p class=\"muted\">Not computed yet (<code>dmlviz eval</code>).</p>\n"
    } else {
        &confusion
    });

    body.push_str("<h2 id=\"config\">Config</h2>\n");
    body.push_str(&config_html(run, &opts.presets_dir));
    body.push_str("<h2 id=\"data\">Dataset</h2>\n");
    body.push_str(&dataset_html(run));
    body.push_str("<h2 id=\"hardware\">Hardware and time</h2>\n");
    body.push_str(&hardware_html(run));

    let mut nav: Vec<(String, String)> = Vec::new();
    if let Some(index) = &opts.site_index {
        nav.push((index.clone(), "All runs".into()));
    }
    let html = page(
        &format!("{title} — dmlviz"),
        &nav,
        EXTRA_STYLE,
        &with_section_links(&body),
    );
    stats.add(write_if_changed(
        &out_dir.join("index.html"),
        html.as_bytes(),
    )?);
    Ok(stats)
}

/// Adds a line of in-page links after the title.
fn with_section_links(body: &str) -> String {
    let links = [
        ("headline", "Headline"),
        ("curves", "Curves"),
        ("tables", "Tables"),
        ("confusion", "Confusion"),
        ("config", "Config"),
        ("data", "Dataset"),
        ("hardware", "Hardware"),
    ];
    let bar: Vec<String> = links
        .iter()
        .filter(|(id, _)| body.contains(&format!("id=\"{id}\"")))
        .map(|(id, l)| format!("<a href=\"#{id}\">{l}</a>"))
        .collect();
    match body.find("</h1>\n") {
        Some(at) => format!(
            "{}<p>{}</p>\n{}",
            &body[..at + 6],
            bar.join(" · "),
            &body[at + 6..]
        ),
        None => body.to_string(),
    }
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
            html.contains("50.0&#8239;%"),
            "last epoch accuracy not shown"
        );
        assert!(out.join("test-accuracy.png").exists() && out.join("train-loss.png").exists());
        assert!(html.contains("dmlviz project --run"));
    }
}
