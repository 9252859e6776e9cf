//! `dmlviz report`: the static report site.

use anyhow::{bail, Result};
use clap::Args;
use dmlviz::report::site::{write_site_with, SiteOptions};
use std::path::PathBuf;

/// Write the static report site: one page per run and the comparison page (from the run directories alone).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  dmlviz report --runs runs/ --out reports/      # then open reports/index.html\n  \
                        dmlviz report --run runs/demo                   # only runs/demo/report/index.html\n\n\
                        Deductions: write your conclusions for a run in runs/<run>/deductions.md; they appear on\n\
                        the run's page and in the comparison table. Rebuilding is incremental."
)]
pub struct ReportArgs {
    /// Folder of run directories.
    #[arg(long, default_value = "runs")]
    runs: PathBuf,
    /// Site folder to write.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Write only this run's own page, into <RUN>/report/.
    #[arg(long, conflicts_with_all = ["runs", "out"])]
    run: Option<PathBuf>,
    /// Presets the configs are compared with (baseline = "..." names a preset there).
    #[arg(long, default_value = "experiments")]
    presets: PathBuf,
    /// Render every page, even those whose inputs did not change.
    #[arg(long)]
    force: bool,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ReportArgs) -> Result<()> {
    if let Some(run) = &args.run {
        // Only a run gets a report/ folder: never write into an arbitrary directory.
        if !dmlviz::run::is_run_dir(run) {
            bail!(
                "{}: not a run directory (no config.toml; train one with dmlviz train --config ...)",
                run.display()
            );
        }
        let page = dmlviz::report::write_run_page(run, &run.join("report"))?;
        println!("{}", page.display());
        return Ok(());
    }
    if !args.runs.is_dir() {
        bail!(
            "{}: no such folder of runs (train one with dmlviz train --config ...)",
            args.runs.display()
        );
    }
    let opts = SiteOptions {
        presets_dir: args.presets.clone(),
        force: args.force,
    };
    let summary = write_site_with(&args.runs, &args.out, &opts)?;
    for broken in &summary.broken_links {
        eprintln!("warning: broken link {broken}");
    }
    if args.json {
        return super::print_json(&summary);
    }
    println!(
        "{} runs ({} pages rendered, the others unchanged), {} files written, {} unchanged, {:.1} MB, {:.2} s",
        summary.runs.len(),
        summary.rendered.len(),
        summary.files_written,
        summary.files_unchanged,
        summary.bytes_written as f64 / 1e6,
        summary.seconds
    );
    if !summary.left_out.is_empty() {
        let shown: Vec<String> = summary
            .left_out
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect();
        let more = summary.left_out.len().saturating_sub(shown.len());
        println!(
            "not copied into the site (tensors, TensorBoard files; they stay in the run directories): {}{}",
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
    }
    println!("open {}", summary.index.display());
    Ok(())
}
