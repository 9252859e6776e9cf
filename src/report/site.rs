//! The whole site: every run's page (rebuilt only when its inputs changed) with its
//! maps, galleries and explanations copied beside it, and the comparison page —
//! the table of experiments, the test-accuracy curves of every run on one chart and
//! the precision-drop bar plot of the reference README.

use super::assets::{copy_tree, fingerprint, write_if_changed, WriteStats};
use super::bars::{DropBars, PrecisionDropPlot};
use super::check::{check_site, BrokenLink};
use super::config_diff::diff_against_baseline;
use super::curves::{LineChart, Series};
use super::read::{list_runs, read_run, RunSummary};
use super::run_page::{chart_html, duration, render_run_page, RunPageOptions};
use super::tables::{html_table, Cell};
use crate::config::Phase;
use crate::html::{page, url};
use crate::run::{RunDir, EXPLANATIONS_DIR, GALLERIES_DIR, PROJECTIONS_DIR};
use anyhow::{Context, Result};
use maud::html;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Sub-folders of a phase directory copied into the site.
pub const COPIED_FOLDERS: [&str; 3] = [PROJECTIONS_DIR, GALLERIES_DIR, EXPLANATIONS_DIR];
/// Folders never copied (large, and not part of any page).
const SKIPPED_FOLDERS: [&str; 1] = ["tensorboard"];
/// Marker file of a run folder in the site: the fingerprint of its inputs.
const INPUTS_FILE: &str = ".inputs";

/// Options of [`write_site_with`].
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// Presets directory for the baseline comparisons.
    pub presets_dir: PathBuf,
    /// Render every run page even when its inputs did not change.
    pub force: bool,
}

impl Default for SiteOptions {
    fn default() -> Self {
        SiteOptions {
            presets_dir: PathBuf::from("experiments"),
            force: false,
        }
    }
}

/// What [`write_site`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SiteSummary {
    /// The comparison page.
    pub index: PathBuf,
    /// Runs on the site.
    pub runs: Vec<String>,
    /// Runs whose page was rendered this time.
    pub rendered: Vec<String>,
    /// Files written or copied.
    pub files_written: usize,
    /// Files left as they were.
    pub files_unchanged: usize,
    /// Bytes written or copied.
    pub bytes_written: u64,
    /// Files or folders not copied (TensorBoard, oversized files).
    pub left_out: Vec<PathBuf>,
    /// Links or images of the site that do not resolve (should be empty).
    pub broken_links: Vec<String>,
    /// Seconds the build took.
    pub seconds: f64,
}

/// Writes the site for every run under `runs_dir` into `out_dir`, comparing configs
/// with the presets under `experiments/`.
pub fn write_site(runs_dir: &Path, out_dir: &Path) -> Result<SiteSummary> {
    write_site_with(runs_dir, out_dir, &SiteOptions::default())
}

/// The input files of a run page, for its fingerprint.
fn page_inputs(run: &RunSummary, presets_dir: &Path) -> Vec<PathBuf> {
    let dir = RunDir::new(&run.root);
    let mut inputs = vec![
        dir.config_path(),
        dir.deductions(),
        dir.hardware(),
        dir.comparison_dir(),
        presets_dir.to_path_buf(),
    ];
    for phase in [Phase::All, Phase::Seen] {
        inputs.extend(dir.phase(phase).report_inputs());
    }
    if let Some(cfg) = &run.config {
        inputs.push(cfg.data.path.join("dataset.json"));
    }
    inputs
}

/// Copies a run's maps, galleries and explanations beside its page; removes copies
/// whose source is gone.
fn copy_run_assets(
    run: &RunSummary,
    site_dir: &Path,
    left_out: &mut Vec<PathBuf>,
) -> Result<WriteStats> {
    let mut stats = WriteStats::default();
    for phase in [Phase::All, Phase::Seen] {
        for folder in COPIED_FOLDERS {
            let from = run.root.join(phase.dir_name()).join(folder);
            let to = site_dir.join(phase.dir_name()).join(folder);
            if from.is_dir() {
                stats.add(copy_tree(&from, &to, &SKIPPED_FOLDERS, left_out)?);
            } else if to.is_dir() {
                std::fs::remove_dir_all(&to)
                    .with_context(|| format!("removing stale {}", to.display()))?;
            }
        }
    }
    Ok(stats)
}

/// The comparison table's rows.
fn comparison_rows(runs: &[RunSummary], presets_dir: &Path) -> Vec<Vec<Cell>> {
    runs.iter()
        .map(|run| {
            let href = format!("runs/{}/index.html", site_folder(&run.name));
            let name = html! {
                a href=(url(&href)) { (run.name) }
                @if let Some(cfg) = run.config.as_ref().filter(|c| c.name != run.name) {
                    br;
                    small.muted { (cfg.name) }
                }
            };
            let differs = match &run.config {
                Some(cfg) => html! {
                    (cfg.description)
                    br;
                    @match diff_against_baseline(cfg, presets_dir) {
                        Ok(d) => small { (d.summary(4)) },
                        Err(_) => small.muted { "no baseline preset to compare with" },
                    }
                },
                None => html! { span.bad { "config unreadable" } },
            };
            let status = if run.is_complete() {
                html! { span.ok { "finished" } }
            } else {
                html! { span.bad { (run.status_line()) } }
            };
            let deductions = run
                .deductions
                .as_deref()
                .map(super::deductions::to_html)
                .unwrap_or_default();
            let drop = run.comparison.as_ref();
            vec![
                Cell::html(name, &run.name),
                Cell::html(
                    differs,
                    &run.config
                        .as_ref()
                        .map(|c| c.description.clone())
                        .unwrap_or_default(),
                ),
                Cell::percent(run.phase(Phase::All).and_then(|p| p.precision_at_1())),
                Cell::percent(drop.map(|d| d.precision_drop_unseen_classes)),
                Cell::percent(drop.map(|d| d.precision_drop_all_classes)),
                Cell {
                    numeric: true,
                    ..Cell::html(
                        html! { (duration(run.training_seconds())) },
                        &format!("{}", run.training_seconds()),
                    )
                },
                Cell::html(status, if run.is_complete() { "0" } else { "1" }),
                Cell::html(deductions, ""),
            ]
        })
        .collect()
}

/// Test-accuracy curves of every run for one phase.
fn accuracy_chart(runs: &[RunSummary], phase: Phase) -> LineChart {
    let (title, label) = match phase {
        Phase::All => (
            "test_accuracy: precision@1 of the all-classes model, every run",
            "test_accuracy",
        ),
        Phase::Seen => (
            "test_accuracy2: precision@1 of the model trained without the held-out classes",
            "test_accuracy2",
        ),
    };
    let mut chart = LineChart::new(title, "epoch", label);
    chart.width = 1000;
    for run in runs {
        if let Some(p) = run.phase(phase).filter(|p| !p.history.is_empty()) {
            let mut points: Vec<(f64, f64)> = p
                .history
                .iter()
                .map(|h| (h.epoch as f64, h.test_accuracy))
                .collect();
            if let Some(initial) = p.state.as_ref().and_then(|s| s.initial_test_accuracy) {
                points.insert(0, (0.0, initial));
            }
            chart.series.push(Series {
                label: run.name.clone(),
                points,
                dashed: false,
            });
        }
    }
    chart
}

/// The comparison page.
fn write_index(
    runs: &[RunSummary],
    out_dir: &Path,
    opts: &SiteOptions,
    stats: &mut WriteStats,
) -> Result<PathBuf> {
    let complete = runs.iter().filter(|r| r.is_complete()).count();
    let headers = [
        "experiment",
        "what differs from the baseline",
        "precision@1 (all classes)",
        "precision drop (unseen)",
        "precision drop (all)",
        "training time",
        "status",
        "deductions",
    ];
    let table = html_table(&headers, &comparison_rows(runs, &opts.presets_dir), "wide");
    let mut curves = Vec::new();
    for phase in [Phase::All, Phase::Seen] {
        let chart = accuracy_chart(runs, phase);
        if !chart.is_empty() {
            let stem = if phase == Phase::All {
                "test-accuracy"
            } else {
                "test-accuracy2"
            };
            curves.push(chart_html(out_dir, stem, &chart, stats)?);
        }
    }
    let bars: Vec<DropBars> = runs
        .iter()
        .filter_map(|r| {
            r.comparison.as_ref().map(|c| DropBars {
                name: r.name.clone(),
                unseen: Some(c.precision_drop_unseen_classes).filter(|v| v.is_finite()),
                all: Some(c.precision_drop_all_classes).filter(|v| v.is_finite()),
            })
        })
        .collect();
    let drop = if bars.is_empty() {
        html! { p.muted { "No run has both phases evaluated yet." } }
    } else {
        let plot = PrecisionDropPlot { experiments: bars };
        chart_html(out_dir, "precision-drop", &plot, stats)?
    };
    let body = html! {
        h1 { "Experiments" }
        @if runs.is_empty() {
            p.note {
                "No run found. Train one with " code { "dmlviz train --config experiments/…" } "."
            }
        }
        p {
            (runs.len()) " run" (if runs.len() == 1 { "" } else { "s" }) " (" (complete)
            " complete). Click a column header to sort; each name opens the run's page. \
             Precision drop: mean over classes of precision@1 of the model trained on all \
             classes minus that of the model trained without the held-out classes. \
             Deductions come from each run's " code { "deductions.md" } "."
        }
        @if out_dir.join("study.html").is_file() {
            // Written by `dmlviz study`: the reference's findings against ours.
            p.note {
                a href="study.html" { "The reference study, re-run here" }
                ": every finding of the reference README with our numbers and a verdict."
            }
        }
        div.scroll.full { (table) }
        h2 #curves { "Test accuracy of every run" }
        @for chart in &curves {
            (chart)
        }
        h2 #drop { "Precision drop for models trained with and without the held-out classes" }
        (drop)
    };
    let html = page("dmlviz experiments", &[], body);
    let index = out_dir.join("index.html");
    stats.add(write_if_changed(&index, html.as_bytes())?);
    Ok(index)
}

/// The name of the run at `path` in the site: its path below `runs_dir`, with `/`
/// separators (grids keep runs in sub-folders: `study/cards/X`).
pub fn run_name(runs_dir: &Path, path: &Path) -> Option<String> {
    Some(
        path.strip_prefix(runs_dir)
            .ok()?
            .to_string_lossy()
            .replace('\\', "/"),
    )
}

/// The site folder of a run: its name with `/` as `--`, so every run page sits at
/// the same depth (`runs/<folder>/index.html`) and its relative links hold.
pub fn site_folder(name: &str) -> String {
    name.replace('/', "--")
}

/// Removes site folders of runs that no longer exist (only folders the site made:
/// those holding its marker file).
fn remove_stale_runs(out_dir: &Path, runs: &[RunSummary]) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(out_dir.join("runs")) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !runs.iter().any(|r| site_folder(&r.name) == name)
            && entry.path().join(INPUTS_FILE).is_file()
        {
            std::fs::remove_dir_all(entry.path()).with_context(|| {
                format!("removing the stale run page {}", entry.path().display())
            })?;
        }
    }
    Ok(())
}

/// [`write_site`] with options.
pub fn write_site_with(runs_dir: &Path, out_dir: &Path, opts: &SiteOptions) -> Result<SiteSummary> {
    let start = Instant::now();
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let runs: Vec<RunSummary> = list_runs(runs_dir)?
        .iter()
        .map(|r| {
            // Runs of a grid (runs/study/cards/X) are named by their path below the runs folder.
            let mut run = read_run(r);
            if let Some(name) = run_name(runs_dir, r) {
                run.name = name;
            }
            run
        })
        .collect();
    let mut stats = WriteStats::default();
    let mut summary = SiteSummary::default();
    for run in &runs {
        let site_dir = out_dir.join("runs").join(site_folder(&run.name));
        stats.add(copy_run_assets(run, &site_dir, &mut summary.left_out)?);
        // The program itself is an input too: a new build may render pages differently.
        let mut inputs = page_inputs(run, &opts.presets_dir);
        inputs.extend(std::env::current_exe().ok());
        let stamp = format!(
            "dmlviz {}\n{}",
            env!("CARGO_PKG_VERSION"),
            fingerprint(&inputs)
        );
        let marker = site_dir.join(INPUTS_FILE);
        let current = std::fs::read_to_string(&marker).ok();
        if opts.force
            || current.as_deref() != Some(stamp.as_str())
            || !site_dir.join("index.html").is_file()
        {
            let page_opts = RunPageOptions {
                presets_dir: opts.presets_dir.clone(),
                assets_base: ".".into(),
                site_index: Some("../../index.html".into()),
            };
            stats.add(
                render_run_page(run, &site_dir, &page_opts)
                    .with_context(|| format!("writing the page of run {}", run.root.display()))?,
            );
            write_if_changed(&marker, stamp.as_bytes())?;
            summary.rendered.push(run.name.clone());
        }
    }
    remove_stale_runs(out_dir, &runs)?;
    summary.index = write_index(&runs, out_dir, opts, &mut stats)?;
    summary.runs = runs.iter().map(|r| r.name.clone()).collect();
    summary.broken_links = check_site(out_dir)
        .iter()
        .map(BrokenLink::to_string)
        .collect();
    summary.files_written = stats.written;
    summary.files_unchanged = stats.unchanged;
    summary.bytes_written = stats.bytes;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}
