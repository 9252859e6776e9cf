//! One experiment of the study, start to finish, through library calls: build the
//! dataset if missing, train (resuming), evaluate, project and explain (a row's own
//! seed only), and measure the cost. [`run_row`] is what `dmlviz study` gives
//! [`super::runner::run_study`] for each planned run.
//!
//! Each step takes the run directory's writer lock itself and releases it before the
//! next, so this function holds none.

use super::grid::StudySettings;
use crate::config::{ExperimentConfig, Phase};
use crate::data::fetch::{ensure_dataset, spec::DEFAULT_CACHE};
use crate::eval::cost::measure_cost;
use crate::eval::run_eval::run_eval;
use crate::explain::faithfulness::FaithOptions;
use crate::explain::samples::{explain_samples, SampleOptions};
use crate::explain::trust::TrustOptions;
use crate::project::gallery::GalleryOptions;
use crate::project::{project_phase, Method, ProjectOptions};
use crate::run::comparison::PrecisionDrop;
use crate::run::metrics::PhaseMetrics;
use crate::run::RunDir;
use crate::train::trainer::{train, Stopped, TrainOptions};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Nearest training images voting for each explained sample (`dmlviz explain`'s default).
const EXPLAIN_K: usize = 10;
/// Images per forward/backward pass of the explained sample (`dmlviz explain`'s default).
const EXPLAIN_BATCH: usize = 16;
/// Deletion/insertion steps of a row's trust table: half the CLI default, since every
/// row of the grid computes one (the ranking of methods, not the curve, is the output).
const TRUST_STEPS: usize = 8;
/// ROAD percentiles of a row's trust table.
const TRUST_PERCENTILES: [f64; 4] = [20.0, 40.0, 60.0, 80.0];

/// What one row's run produced.
pub enum RowOutcome {
    /// Training was interrupted (Ctrl-C): nothing after it ran; the next invocation resumes.
    Interrupted,
    /// Trained (or diverged, then its last good checkpoint kept) and evaluated.
    Evaluated {
        phases: Vec<PhaseMetrics>,
        comparison: Option<PrecisionDrop>,
    },
}

/// The projection the study makes of a row: UMAP only, with the grid's gallery caps.
pub fn study_projection(settings: &StudySettings) -> ProjectOptions {
    ProjectOptions {
        methods: vec![Method::Umap],
        gallery: GalleryOptions {
            unseen_sample: settings.gallery_unseen,
            misclassified_limit: settings.gallery_misclassified,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Runs one planned experiment of the grid into `run`. A `replica` (a further seed of a
/// row, for the spread of its numbers) is neither projected nor explained: its maps
/// would repeat the row's.
pub fn run_row(
    cfg: &ExperimentConfig,
    run: &RunDir,
    replica: bool,
    settings: &StudySettings,
    stop: &Arc<AtomicBool>,
) -> Result<RowOutcome> {
    ensure_dataset(
        &cfg.data.path,
        cfg.data.fetch.as_ref(),
        Path::new(DEFAULT_CACHE),
    )
    .with_context(|| format!("the dataset of experiment {}", cfg.name))?;
    let opts = TrainOptions {
        resume: run.config_path().exists(),
        quiet: true,
        stop: stop.clone(),
        ..TrainOptions::default()
    };
    if let Err(e) = train(cfg, run, &opts) {
        match e.downcast_ref::<Stopped>() {
            Some(Stopped::Interrupted { .. }) => return Ok(RowOutcome::Interrupted),
            // A diverged row is a result too: evaluate its last good checkpoint.
            Some(Stopped::NonFinite { .. }) => eprintln!("{e}"),
            None => return Err(e),
        }
    }
    let (phases, comparison) = run_eval(run, cfg.training.device.device()?)?;
    if !replica {
        tch::set_num_threads(cfg.training.threads.max(1) as i32);
        let projection = study_projection(settings);
        for phase in [Phase::All, Phase::Seen] {
            if run.phase(phase).checkpoint().exists() {
                project_phase(run, phase, &projection)
                    .with_context(|| format!("projecting {}", phase.dir_name()))?;
            }
        }
        if settings.explain_samples > 0 {
            let sample = SampleOptions {
                count: settings.explain_samples,
                k: EXPLAIN_K,
                batch_size: EXPLAIN_BATCH,
                trust: Some(TrustOptions {
                    faith: FaithOptions {
                        steps: TRUST_STEPS,
                        road_percentiles: TRUST_PERCENTILES.to_vec(),
                        ..FaithOptions::default()
                    },
                    sanity: true,
                }),
                ..SampleOptions::default()
            };
            explain_samples(run, Phase::All, &sample).context("explaining the sample")?;
        }
    }
    measure_cost(run, Phase::All, settings.latency_images)?;
    Ok(RowOutcome::Evaluated { phases, comparison })
}
