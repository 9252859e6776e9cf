//! `dmlviz project` and `dmlviz bench project`.

use anyhow::{bail, Result};
use clap::Args;
use dmlviz::bench::project::{run as bench_run, ProjectBenchOptions};

#[derive(Args)]
pub struct ProjectArgs {}

pub fn run(_args: ProjectArgs) -> Result<()> {
    bail!("dmlviz project is not implemented yet")
}

/// UMAP and t-SNE time and trustworthiness on clustered embeddings.
#[derive(Args)]
#[command(after_help = "Example:\n  dmlviz bench project --points 2000 --points 10000 --dim 128 --threads 2")]
pub struct ProjectBenchArgs {
    /// Point counts to measure (same clustered data for both methods).
    #[arg(long = "points", default_values_t = [2000, 10_000])]
    points: Vec<usize>,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Gaussian clusters.
    #[arg(long, default_value_t = 20)]
    clusters: usize,
    /// Methods to measure: umap, tsne.
    #[arg(long = "method", default_values_t = ["umap".to_string(), "tsne".to_string()])]
    methods: Vec<String>,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// JSON rows instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn bench(args: ProjectBenchArgs) -> Result<()> {
    let opts = ProjectBenchOptions { sizes: args.points, dim: args.dim, clusters: args.clusters, threads: args.threads, methods: args.methods, seed: 0 };
    let rows = bench_run(&opts)?;
    if args.json {
        return super::print_json(&rows);
    }
    println!("{:>6} {:>7} {:>5} {:>9} {:>8} {:>11} {:>9} {:>8}", "method", "points", "dim", "ours s", "trust", "label agr.", "ref s", "ref trust");
    for r in rows {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:>6} {:>7} {:>5} {:>9.2} {:>8.4} {:>11.4} {:>9} {:>8}",
            r.method, r.points, r.dim, r.seconds, r.trustworthiness, r.knn_label_agreement, opt(r.reference_seconds, 1), opt(r.reference_trustworthiness, 3)
        );
    }
    Ok(())
}
