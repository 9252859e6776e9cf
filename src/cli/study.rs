//! `dmlviz study`: the reference study's grid, run resumably.

use anyhow::Result;
use clap::Args;
use dmlviz::config::ExperimentConfig;
use dmlviz::run::RunDir;
use dmlviz::study::grid::StudyGrid;
use dmlviz::study::row::{run_row, RowOutcome};
use dmlviz::study::runner::{collect_results, plan, run_study, StudyOptions};
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
        if let RowOutcome::Evaluated { phases, comparison } =
            run_row(cfg, run, replica, &settings, &stop)?
        {
            super::eval::print_summary(run, &phases, comparison.as_ref());
        }
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
