//! Running the grid: which runs are needed (every row at its own seed, the baseline
//! at every seed, small-effect rows at every seed once their first seed is known),
//! skipping finished ones, resuming stopped ones, with progress and an estimate of
//! the time left.

use super::grid::{GridExperiment, StudyGrid, StudyMetric};
use super::results::{read_run, StudyResults};
use crate::atomic::write_json;
use crate::config::{ExperimentConfig, Init};
use crate::model::Arch;
use crate::progress::Progress;
use crate::run::RunDir;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Marker written in a run directory once every study step of it has finished.
pub const DONE_FILE: &str = "study-run.json";
/// The collected results, written in the study's runs directory.
pub const RESULTS_FILE: &str = "study-results.json";

/// The marker's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneMarker {
    pub dataset: String,
    pub row: String,
    pub seed: u64,
    /// Wall time of the run's study steps (all sessions together when resumed).
    pub seconds: f64,
}

/// One run the grid needs.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Index into [`StudyGrid::experiments`].
    pub experiment: usize,
    pub seed: u64,
    pub dir: PathBuf,
    /// Relative amount of work, for the time estimate.
    pub units: f64,
}

/// Relative training work of a config: epochs (plus pretraining) × phases × pixels ×
/// backbone cost (MobileNetV2 = 1). The backbone factors are measured training speeds
/// on 2 CPU cores at 64 px, not FLOP ratios: MobileNetV2's depthwise convolutions run
/// far below the CPU's peak, so the ResNets cost much less than their FLOPs suggest.
pub fn work_units(cfg: &ExperimentConfig) -> f64 {
    let arch = match cfg.model.backbone {
        Arch::MobileNetV2 => 1.0,
        Arch::ResNet18 => 2.0,
        Arch::ResNet50 => 5.0,
    };
    let pretrain = match &cfg.model.init {
        Init::Classifier { epochs } | Init::Simclr { epochs } => *epochs as f64,
        _ => 0.0,
    };
    let pixels = (cfg.data.image_size as f64 / 64.0).powi(2);
    (cfg.training.epochs as f64 + pretrain) * cfg.training.phases.len() as f64 * pixels * arch
}

/// The config of an experiment at a seed (the row's own seed keeps its name).
pub fn config_at_seed(grid: &StudyGrid, e: &GridExperiment, seed: u64) -> ExperimentConfig {
    let mut cfg = e.config.clone();
    if grid.settings.is_replica(seed) {
        cfg.training.seed = seed;
        cfg.name = format!("{}-seed{seed}", cfg.name);
    }
    cfg
}

/// Whether a run directory's study steps are all done.
pub fn is_done(dir: &Path) -> bool {
    dir.join(DONE_FILE).exists()
}

/// Reads every finished run of the grid.
pub fn collect_results(grid: &StudyGrid, runs: &Path) -> Result<StudyResults> {
    let mut out = StudyResults::default();
    for e in &grid.experiments {
        for &seed in &grid.settings.seeds {
            let dir = grid.run_dir(runs, e, seed);
            if is_done(&dir) {
                if let Some(r) = read_run(&e.dataset, &e.row, seed, &dir)? {
                    out.runs.push(r);
                }
            }
        }
    }
    Ok(out)
}

/// The runs the grid needs given what has finished: every row at its own seed, the
/// baseline at every seed, and every seed of a row whose first-seed precision@1 is
/// within `small_effect_points` of the baseline's mean. Rows not yet measured are
/// planned at their own seed only (the estimate says more may follow).
pub fn plan(grid: &StudyGrid, runs: &Path, results: &StudyResults) -> Vec<PlannedRun> {
    let s = &grid.settings;
    let mut out = Vec::new();
    for (i, e) in grid.experiments.iter().enumerate() {
        let all_seeds = e.row == s.baseline
            || {
                let base = results.stat(&e.dataset, &s.baseline, StudyMetric::PrecisionAt1);
                let own = results
                    .of_row(&e.dataset, &e.row)
                    .find(|r| r.seed == s.seeds[0])
                    .map(|r| r.precision_at_1);
                matches!((base, own), (Some(b), Some(v)) if ((v - b.mean) * 100.0).abs() < s.small_effect_points)
            };
        let seeds = if all_seeds {
            &s.seeds[..]
        } else {
            &s.seeds[..1]
        };
        for &seed in seeds {
            out.push(PlannedRun {
                experiment: i,
                seed,
                dir: grid.run_dir(runs, e, seed),
                units: work_units(&config_at_seed(grid, e, seed)),
            });
        }
    }
    out
}

/// How the grid is run.
pub struct StudyOptions<'a> {
    /// Where the runs go (`<runs>/<dataset>/<row>[-seed<N>]`).
    pub runs: PathBuf,
    /// Only experiments whose `<dataset>/<row>` contains this.
    pub only: Option<String>,
    /// Set to stop after the current run (Ctrl-C).
    pub stop: &'a AtomicBool,
}

/// What a finished (or stopped) grid run did.
#[derive(Debug, Clone, Serialize)]
pub struct StudyOutcome {
    pub ran: usize,
    pub skipped: usize,
    pub remaining: usize,
    pub seconds: f64,
    pub stopped: bool,
}

fn hms(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Where a grid run stands, for its progress line.
struct GridPosition {
    done: usize,
    planned: usize,
    elapsed: f64,
}

/// The line announcing the next run `todo[0]`, with the time left estimated from the
/// seconds per work unit `measured` so far (per dataset: image counts differ).
fn progress_line(
    grid: &StudyGrid,
    results: &StudyResults,
    todo: &[&PlannedRun],
    measured: &std::collections::HashMap<String, (f64, f64)>,
    progress: &GridPosition,
) -> String {
    let next = todo[0];
    let e = &grid.experiments[next.experiment];
    let overall = measured
        .values()
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let rate = |d: &str| {
        measured
            .get(d)
            .or((overall.1 > 0.0).then_some(&overall))
            .map(|(s, u)| s / u)
    };
    let eta: Option<f64> = todo
        .iter()
        .map(|p| rate(&grid.experiments[p.experiment].dataset).map(|r| r * p.units))
        .sum();
    let open_rows = grid.experiments.len()
        - results
            .runs
            .iter()
            .map(|r| (&r.dataset, &r.row))
            .collect::<std::collections::HashSet<_>>()
            .len();
    let left = eta.map(|s| {
        let seeds = if open_rows > 0 {
            " + seeds for small effects"
        } else {
            ""
        };
        format!(", about {} left{seeds}", hms(s))
    });
    format!(
        "\n[{}/{}] {}/{} seed {} → {}   (elapsed {}{})",
        progress.done + 1,
        progress.planned,
        e.dataset,
        e.row,
        next.seed,
        next.dir.display(),
        hms(progress.elapsed),
        left.unwrap_or_default()
    )
}

/// Runs the grid: `run_one(config, run_dir, replica)` does one experiment's work (train with
/// resume, evaluate, project, explain, measure cost); the runner decides what to run,
/// writes the done marker and the collected results, and reports progress on stderr.
/// Long: the resume and replica decisions read best in one loop.
pub fn run_study(
    grid: &StudyGrid,
    opts: &StudyOptions,
    run_one: &mut dyn FnMut(&ExperimentConfig, &RunDir, bool) -> Result<()>,
) -> Result<StudyOutcome> {
    let start = Instant::now();
    let selected = |p: &PlannedRun| {
        let e = &grid.experiments[p.experiment];
        opts.only
            .as_ref()
            .is_none_or(|o| format!("{}/{}", e.dataset, e.row).contains(o.as_str()))
    };
    let (mut ran, mut skipped) = (0, 0);
    // Seconds per work unit, measured on this machine (per dataset: image counts differ).
    let mut measured: std::collections::HashMap<String, (f64, f64)> = Default::default();
    let bar = Progress::new(0, "study");
    loop {
        let results = collect_results(grid, &opts.runs)?;
        write_json(&opts.runs.join(RESULTS_FILE), &results)?;
        let planned: Vec<PlannedRun> = plan(grid, &opts.runs, &results)
            .into_iter()
            .filter(|p| selected(p))
            .collect();
        let done = planned.iter().filter(|p| is_done(&p.dir)).count();
        if ran == 0 && skipped == 0 {
            skipped = done;
            if done > 0 {
                eprintln!(
                    "study: {done} of {} planned runs already finished, skipped",
                    planned.len()
                );
            }
        }
        let todo: Vec<&PlannedRun> = planned.iter().filter(|p| !is_done(&p.dir)).collect();
        let Some(next) = todo.first().copied() else {
            return Ok(StudyOutcome {
                ran,
                skipped,
                remaining: 0,
                seconds: start.elapsed().as_secs_f64(),
                stopped: false,
            });
        };
        if opts.stop.load(Ordering::SeqCst) {
            return Ok(StudyOutcome {
                ran,
                skipped,
                remaining: todo.len(),
                seconds: start.elapsed().as_secs_f64(),
                stopped: true,
            });
        }
        let e = &grid.experiments[next.experiment];
        let progress = GridPosition {
            done,
            planned: planned.len(),
            elapsed: start.elapsed().as_secs_f64(),
        };
        bar.set_length(planned.len() as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("{}/{} seed {}", e.dataset, e.row, next.seed));
        // The line stays in a log; the bar shows where the grid stands on a terminal.
        bar.note(&progress_line(grid, &results, &todo, &measured, &progress));
        let cfg = config_at_seed(grid, e, next.seed);
        let run = RunDir::new(&next.dir);
        let t = Instant::now();
        // Cleared while the run draws its own bars (embedding, explanations).
        bar.suspend(|| run_one(&cfg, &run, grid.settings.is_replica(next.seed)))
            .with_context(|| format!("study run {}", next.dir.display()))?;
        if opts.stop.load(Ordering::SeqCst) {
            // The run was interrupted inside: not done, resumed next time.
            return Ok(StudyOutcome {
                ran,
                skipped,
                remaining: todo.len(),
                seconds: start.elapsed().as_secs_f64(),
                stopped: true,
            });
        }
        let seconds = t.elapsed().as_secs_f64();
        let entry = measured.entry(e.dataset.clone()).or_default();
        entry.0 += seconds;
        entry.1 += next.units;
        write_json(
            &next.dir.join(DONE_FILE),
            &DoneMarker {
                dataset: e.dataset.clone(),
                row: e.row.clone(),
                seed: next.seed,
                seconds,
            },
        )?;
        ran += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::results::RunResult;

    fn grid() -> StudyGrid {
        StudyGrid::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/study")).unwrap()
    }

    fn result(dataset: &str, row: &str, seed: u64, p: f64) -> RunResult {
        RunResult {
            dataset: dataset.into(),
            row: row.into(),
            seed,
            run: PathBuf::new(),
            precision_at_1: p,
            precision_at_1_seen_model: None,
            unseen_precision_at_1: None,
            precision_drop_unseen: None,
            precision_drop_all: None,
            logits_accuracy: None,
            majority_vote_accuracy: None,
            cost: None,
            most_faithful: None,
        }
    }

    #[test]
    fn plan_adds_seeds_only_for_the_baseline_and_small_effects() {
        let g = grid();
        let runs = Path::new("r");
        let rows = g.experiments.len();
        let seeds = g.settings.seeds.len();
        let datasets = g.datasets().len();
        // Nothing measured: every row once, the baseline at every seed.
        assert_eq!(
            plan(&g, runs, &StudyResults::default()).len(),
            rows + datasets * (seeds - 1)
        );
        // On cards, one row 1 point from the baseline and one 20 points below it.
        let mut r = StudyResults::default();
        r.runs.push(result("cards", &g.settings.baseline, 42, 0.60));
        r.runs.push(result(
            "cards",
            "EPSHN_cosine_mobilenet_v2x512_sgd_aug",
            42,
            0.61,
        ));
        r.runs.push(result(
            "cards",
            "ProxyNCA_cosine_mobilenet_v2_sgd_aug",
            42,
            0.40,
        ));
        let p = plan(&g, runs, &r);
        assert_eq!(p.len(), rows + datasets * (seeds - 1) + (seeds - 1));
        let x512: Vec<u64> = p
            .iter()
            .filter(|p| p.dir.starts_with("r/cards") && p.dir.to_string_lossy().contains("x512"))
            .map(|p| p.seed)
            .collect();
        assert_eq!(x512, g.settings.seeds);
        assert!(p
            .iter()
            .all(|p| !(p.dir.to_string_lossy().contains("ProxyNCA") && p.seed != 42)));
    }

    #[test]
    fn work_units_rank_backbones_and_pretraining() {
        let g = grid();
        let units = |row: &str| {
            work_units(
                &g.experiments
                    .iter()
                    .find(|e| e.dataset == "cards" && e.row == row)
                    .unwrap()
                    .config,
            )
        };
        let base = units(&g.settings.baseline);
        assert!(
            units("EPSHN_cosine_resnet50_scratch_sgd_aug")
                > units("EPSHN_cosine_resnet18_scratch_sgd_aug")
        );
        assert!(units("EPSHN_cosine_resnet18_scratch_sgd_aug") > base);
        assert!(units("EPSHN_cosine_simclr_mobilenet_v2_sgd_aug") > base);
    }

    #[test]
    fn a_grid_run_skips_finished_runs_and_stops_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let g = grid();
        let stop = AtomicBool::new(false);
        let opts = StudyOptions {
            runs: dir.path().to_path_buf(),
            only: Some("cards/EPSHN_cosine_mobilenet_v2_sgd_aug".into()),
            stop: &stop,
        };
        // The baseline filter selects the baseline's 3 seeds; pretend each run trains by
        // writing its metrics, and stop after the second.
        let mut calls = Vec::new();
        let mut fake = |cfg: &ExperimentConfig, run: &RunDir, _replica: bool| -> Result<()> {
            calls.push(cfg.training.seed);
            let metrics = run.phase(crate::config::Phase::All).metrics();
            std::fs::create_dir_all(run.phase(crate::config::Phase::All).root)?;
            std::fs::write(
                metrics,
                "{\"phase\":\"all\",\"retrieval\":{\"precision_at_1\":0.5}}",
            )?;
            if calls.len() == 2 {
                stop.store(true, Ordering::SeqCst);
            }
            Ok(())
        };
        let out = run_study(&g, &opts, &mut fake).unwrap();
        assert!(out.stopped);
        assert_eq!(calls, vec![42, 43]);
        // The second run was interrupted: it is not marked done and runs again.
        stop.store(false, Ordering::SeqCst);
        let mut calls2 = Vec::new();
        let mut fake2 = |cfg: &ExperimentConfig, run: &RunDir, _replica: bool| -> Result<()> {
            calls2.push(cfg.training.seed);
            let metrics = run.phase(crate::config::Phase::All).metrics();
            std::fs::create_dir_all(run.phase(crate::config::Phase::All).root)?;
            std::fs::write(
                metrics,
                "{\"phase\":\"all\",\"retrieval\":{\"precision_at_1\":0.5}}",
            )?;
            Ok(())
        };
        let out = run_study(&g, &opts, &mut fake2).unwrap();
        assert_eq!(calls2, vec![43, 44]);
        assert_eq!(
            (out.ran, out.skipped, out.remaining, out.stopped),
            (2, 1, 0, false)
        );
        let results: StudyResults =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(RESULTS_FILE)).unwrap())
                .unwrap();
        assert_eq!(results.runs.len(), 3);
    }
}
