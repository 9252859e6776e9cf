//! `dmlviz study`: the reference study's grid, run resumably.

use anyhow::Result;
use clap::Args;
use dmlviz::config::{ExperimentConfig, Phase};
use dmlviz::eval::cost::measure_cost;
use dmlviz::run::RunDir;
use dmlviz::study::grid::StudyGrid;
use dmlviz::study::runner::{collect_results, plan, run_study, StudyOptions};
use dmlviz::train::trainer::{train, Stopped, TrainOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Run the reference study's grid (every reference row on emoji and card decks, both
/// phases, evaluated, projected, explained, costed), then write the study page.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  dmlviz study --grid experiments/study/            # run (or continue) the whole grid\n  dmlviz study --plan                               # what is left, and the estimate\n  dmlviz study --only cards/ --runs runs/study      # one dataset only\nStop with Ctrl-C (the current epoch finishes); run it again to continue."
)]
pub struct StudyArgs {
    /// Grid directory: study.toml, findings.toml and one folder of experiment TOMLs per dataset.
    #[arg(long, default_value = "experiments/study")]
    grid: PathBuf,
    /// Where the runs go: <runs>/<dataset>/<row>[-seed<N>].
    #[arg(long, default_value = "runs/study")]
    runs: PathBuf,
    /// Only experiments whose "<dataset>/<row>" contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Report site to write at the end (the study page is <out>/study.html).
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// The runs folder the report site in --out covers (rebuilt at the end; the study
    /// page links each row to its run page there).
    #[arg(long, default_value = "runs")]
    site_runs: PathBuf,
    /// Print the planned runs and what has finished; run nothing.
    #[arg(long)]
    plan: bool,
}

pub fn run(args: StudyArgs) -> Result<()> {
    let grid = StudyGrid::load(&args.grid)?;
    if args.plan {
        let results = collect_results(&grid, &args.runs)?;
        for p in plan(&grid, &args.runs, &results) {
            let done = dmlviz::study::runner::is_done(&p.dir);
            println!(
                "{} seed {:>3}  {:>6.1} units  {}",
                if done { "done" } else { "todo" },
                p.seed,
                p.units,
                p.dir.display()
            );
        }
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this epoch (Ctrl-C again to quit at once); run the same command to continue…");
    })?;
    let settings = grid.settings.clone();
    let mut run_one = |cfg: &ExperimentConfig, run: &RunDir, replica: bool| -> Result<()> {
        super::train::ensure_dataset(cfg)?;
        let opts = TrainOptions {
            resume: run.config_path().exists(),
            quiet: true,
            stop: stop.clone(),
        };
        if let Err(e) = train(cfg, run, &opts) {
            match e.downcast_ref::<Stopped>() {
                Some(Stopped::Interrupted { .. }) => return Ok(()),
                // A diverged row is a result too: evaluate its last good checkpoint.
                Some(Stopped::NonFinite { .. }) => eprintln!("{e}"),
                None => return Err(e),
            }
        }
        let (phases, comparison) = dmlviz::eval::run_eval::evaluate_run(run)?;
        super::eval::print_summary(run, &phases, comparison.as_ref());
        // Seed replicas exist for the spread of the numbers; their maps would repeat the
        // row's, so only a row's own seed is projected and explained.
        if !replica {
            let dir = run.root.display().to_string();
            for phase in ["all", "seen"] {
                if run
                    .phase(if phase == "all" {
                        Phase::All
                    } else {
                        Phase::Seen
                    })
                    .checkpoint()
                    .exists()
                {
                    let mut args: Vec<String> = [
                        "dmlviz", "project", "--run", &dir, "--phase", phase, "--method", "umap",
                    ]
                    .map(String::from)
                    .to_vec();
                    args.extend([
                        "--gallery-unseen".into(),
                        settings.gallery_unseen.to_string(),
                    ]);
                    args.extend([
                        "--gallery-misclassified".into(),
                        settings.gallery_misclassified.to_string(),
                    ]);
                    super::run_from(args)?;
                }
            }
            super::run_from(vec![
                "dmlviz".into(),
                "explain".into(),
                "--run".into(),
                dir,
                "--samples".into(),
                settings.explain_samples.to_string(),
            ])?;
        }
        measure_cost(run, Phase::All, settings.latency_images)?;
        Ok(())
    };
    let outcome = run_study(
        &grid,
        &StudyOptions {
            runs: args.runs.clone(),
            only: args.only.clone(),
            stop: &stop,
        },
        &mut run_one,
    )?;
    eprintln!(
        "study: {} runs done now, {} were already done, {} left ({:.0} s){}",
        outcome.ran,
        outcome.skipped,
        outcome.remaining,
        outcome.seconds,
        if outcome.stopped {
            "; stopped — run the same command to continue"
        } else {
            ""
        }
    );
    let results = collect_results(&grid, &args.runs)?;
    let page = dmlviz::study::page::write_study_page(
        &grid,
        &results,
        &args.runs,
        Some(&args.site_runs),
        &args.out,
    )?;
    let site = dmlviz::report::write_site(&args.site_runs, &args.out)?;
    for link in &site.broken_links {
        eprintln!("warning: broken link in the site: {link}");
    }
    println!("study page: {}", page.display());
    println!("site: {}", site.index.display());
    Ok(())
}
