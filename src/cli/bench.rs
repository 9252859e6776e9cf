//! `dmlviz bench loader|train|knn|explain|project`.

use anyhow::Result;
use clap::{Args, Subcommand};
use dmlviz::bench::knn::KnnBenchOptions;
use dmlviz::bench::loader::{self, LoaderBenchOptions};
use dmlviz::config::ExperimentConfig;
use dmlviz::data::Dataset;
use dmlviz::model::Arch;
use dmlviz::search::knn::Tile;
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Loader images/s (decode + augment) beside a ResNet18 training step on the same batch.
    #[command(
        after_help = "Example:\n  dmlviz bench loader --data data/cards --size 64 --size 224"
    )]
    Loader(LoaderArgs),
    /// Training-loop images/s and data-wait share beside a bare forward+backward+update.
    #[command(
        after_help = "Example:\n  dmlviz bench train --config experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml \\\n      --arch mobilenet_v2 --arch resnet18 --size 64 --size 224"
    )]
    Train(TrainArgs),
    /// Images explained per second (Grad-CAM, guided backprop, weight transfer) beside a plain forward+backward.
    Explain(super::explain::ExplainBenchArgs),
    /// UMAP and t-SNE time and trustworthiness on clustered embeddings.
    Project(super::project::ProjectBenchArgs),
    /// Exact k-nearest-neighbour search beside a whole-matrix matmul + topk on the same data.
    #[command(
        after_help = "Example:\n  dmlviz bench knn --queries 10000 --references 50000 --dim 128 --k 10 --threads 2"
    )]
    Knn(KnnArgs),
    /// The prediction service under load on loopback, and its fault cases.
    Serve(super::serve::ServeBenchArgs),
    /// pgvector's HNSW (build, latency, recall@k) beside our exact search.
    Pgvector(super::serve::PgvectorBenchArgs),
    /// Embeds a whole dataset once (ImageNet MobileNetV2, untrained head) into a
    /// safetensors file for `bench project --data`.
    #[command(
        after_help = "Example:\n  dmlviz data fetch fashion-mnist --out .cache/fashion-mnist\n  dmlviz bench embed --data .cache/fashion-mnist --size 64 \\\n      --out .cache/fashion-mnist-mobilenet64.safetensors"
    )]
    Embed(EmbedArgs),
}

#[derive(Args)]
struct EmbedArgs {
    /// Dataset directory (image-folder or CUB layout).
    #[arg(long)]
    data: PathBuf,
    /// Embeddings file to write (tensors `embeddings` and `labels`).
    #[arg(long)]
    out: PathBuf,
    /// Image side in px after the test transform's resize.
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Loader and libtorch threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

#[derive(Args)]
struct LoaderArgs {
    /// Dataset directory (image-folder or CUB layout).
    #[arg(long)]
    data: PathBuf,
    /// Image sizes to measure.
    #[arg(long = "size", default_values_t = [64, 224])]
    sizes: Vec<u32>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Batches the loader prepares per measurement.
    #[arg(long, default_value_t = 20)]
    batches: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 3)]
    train_steps: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// Experiment whose data, loss, optimiser and batch shape are measured.
    #[arg(long)]
    config: PathBuf,
    #[arg(long = "arch", default_values_t = [Arch::MobileNetV2, Arch::ResNet18])]
    archs: Vec<Arch>,
    #[arg(long = "size", default_values_t = [64, 224])]
    sizes: Vec<u32>,
    /// Epochs per measurement (the first is a warm-up).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Mixed precision for both sides (sets training.mixed_precision): bfloat16 on the CPU.
    #[arg(long)]
    amp: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: super::DeviceArgs,
}

#[derive(Args)]
struct KnnArgs {
    /// Number of queries (synthetic clustered embeddings, L2-normalised).
    #[arg(long, default_value_t = 10_000)]
    queries: i64,
    /// Number of references (the gallery).
    #[arg(long, default_value_t = 50_000)]
    references: i64,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    dim: i64,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: i64,
    /// libtorch threads.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Timed runs of each method (the best counts).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Tile of our search, QUERIESxREFERENCES: queries per chunk, references per
    /// product (default: its own choice).
    #[arg(long, value_parser = parse_tile)]
    tile: Option<Tile>,
    /// JSON rows instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: super::DeviceArgs,
}

/// Parses `QUERIESxREFERENCES`, e.g. `1024x4096`.
fn parse_tile(s: &str) -> Result<Tile, String> {
    let (q, r) = s
        .split_once('x')
        .ok_or("expected QUERIESxREFERENCES, e.g. 1024x4096")?;
    let parse = |v: &str| {
        v.trim()
            .parse::<i64>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or(format!("not a positive number: {v}"))
    };
    Ok(Tile {
        queries: parse(q)?,
        references: parse(r)?,
    })
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Explain(args) => super::explain::bench(args),
        BenchCommand::Project(args) => super::project::bench(args),
        BenchCommand::Loader(args) => bench_loader(args),
        BenchCommand::Train(args) => bench_train(args),
        BenchCommand::Knn(args) => bench_knn(args),
        BenchCommand::Embed(args) => bench_embed(args),
        BenchCommand::Serve(args) => super::serve::bench_serve(args),
        BenchCommand::Pgvector(args) => super::serve::bench_pgvector(args),
    }
}

fn bench_embed(args: EmbedArgs) -> Result<()> {
    tch::set_num_threads(args.threads as i32);
    let rows =
        dmlviz::bench::embeddings::embed_dataset(&args.data, &args.out, args.size, args.threads)?;
    eprintln!("{rows} embeddings written to {}", args.out.display());
    Ok(())
}

fn bench_loader(args: LoaderArgs) -> Result<()> {
    let dataset = Dataset::open(&args.data)?;
    let rows = loader::run(
        &dataset,
        &LoaderBenchOptions {
            sizes: args.sizes,
            batch_size: args.batch_size,
            batches: args.batches,
            threads: args.threads,
            train_steps: args.train_steps,
        },
    )?;
    if args.json {
        return super::print_json(&rows);
    }
    println!(
        "{:>5} {:>6} {:>14} {:>14} {:>12} {:>14} {:>10} {:>10}",
        "size",
        "batch",
        "loader img/s",
        "cached img/s",
        "r18 step s",
        "r18 img/s",
        "cold/r18",
        "cache/r18"
    );
    for r in rows {
        println!(
            "{:>5} {:>6} {:>14.0} {:>14.0} {:>12.3} {:>14.1} {:>10.1} {:>10.1}",
            r.size,
            r.batch_size,
            r.loader_cold_images_per_s,
            r.loader_cached_images_per_s,
            r.resnet18_step_s,
            r.resnet18_images_per_s,
            r.cold_over_trainer,
            r.cached_over_trainer
        );
    }
    Ok(())
}

fn bench_train(args: TrainArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let mut cfg = ExperimentConfig::load(&args.config)?;
    cfg.training.mixed_precision |= args.amp;
    let mut rows = Vec::new();
    for &arch in &args.archs {
        for &size in &args.sizes {
            eprintln!("measuring {arch} at {size}²…");
            rows.push(dmlviz::bench::train::run(
                &cfg,
                arch,
                size,
                args.epochs,
                device,
            )?);
        }
    }
    if args.json {
        return super::print_json(&rows);
    }
    println!(
        "{:>13} {:>5} {:>6} {:>12} {:>10} {:>12} {:>10}",
        "arch", "size", "batch", "loop img/s", "data wait", "bare img/s", "overhead"
    );
    for r in rows {
        println!(
            "{:>13} {:>5} {:>6} {:>12.1} {:>9.1}% {:>12.1} {:>9.1}%",
            r.arch,
            r.size,
            r.batch_size,
            r.loop_images_per_s,
            100.0 * r.data_wait_share,
            r.bare_images_per_s,
            100.0 * r.loop_overhead
        );
    }
    Ok(())
}

fn bench_knn(args: KnnArgs) -> Result<()> {
    let KnnArgs {
        queries,
        references,
        dim,
        k,
        threads,
        repeats,
        tile,
        json,
        device,
    } = args;
    let opts = KnnBenchOptions {
        queries,
        references,
        dim,
        k,
        threads,
        repeats,
        tile,
        device: device.resolve()?,
        ..Default::default()
    };
    let rows = dmlviz::bench::knn::run(&opts)?;
    if json {
        return super::print_json(&rows);
    }
    println!(
        "{} queries × {} references × {}, k = {}, {} threads, tile {}",
        queries, references, dim, k, threads, rows[0].tile
    );
    println!(
        "{:>10} {:>10} {:>14} {:>9} {:>11} {:>10}",
        "distance", "ours s", "matmul+topk s", "speedup", "same index", "max gap"
    );
    for r in rows {
        println!(
            "{:>10} {:>10.3} {:>14.3} {:>8.2}× {:>10.4}% {:>10.1e}",
            r.distance,
            r.ours_s,
            r.reference_s,
            r.speedup,
            100.0 * r.same_index_share,
            r.max_gap_where_different
        );
    }
    Ok(())
}
