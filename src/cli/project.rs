//! `dmlviz project` and `dmlviz bench project`.

use super::predict::PhaseArg;
use anyhow::Result;
use clap::{Args, ValueEnum};
use dmlviz::bench::project::{run as bench_run, ProjectBenchOptions};
use dmlviz::project::add::{add_images, AddOptions};
use dmlviz::project::tsne::{TsneEngine, TsneMethod};
use dmlviz::project::{project_phase, Method, ProjectOptions};
use dmlviz::run::RunDir;
use std::path::PathBuf;

/// Which t-SNE implementation `--tsne-engine` picks.
#[derive(Clone, Copy, ValueEnum)]
pub enum TsneEngineArg {
    /// Ours: openTSNE's defaults, PCA start, multi-threaded, reproducible.
    Ours,
    /// linfa-tsne 0.8: random start, single-threaded, not reproducible.
    Linfa,
}

impl From<TsneEngineArg> for TsneEngine {
    fn from(arg: TsneEngineArg) -> Self {
        match arg {
            TsneEngineArg::Ours => TsneEngine::Ours,
            TsneEngineArg::Linfa => TsneEngine::Linfa,
        }
    }
}

/// How our t-SNE computes the repulsion (`--tsne-method`).
#[derive(Clone, Copy, ValueEnum)]
pub enum TsneMethodArg {
    /// Barnes–Hut below 5 000 points, FFT interpolation from there on.
    Auto,
    /// Barnes–Hut on a quadtree.
    Bh,
    /// FFT-accelerated interpolation (FIt-SNE).
    Fft,
}

impl From<TsneMethodArg> for TsneMethod {
    fn from(arg: TsneMethodArg) -> Self {
        match arg {
            TsneMethodArg::Auto => TsneMethod::Auto,
            TsneMethodArg::Bh => TsneMethod::Bh,
            TsneMethodArg::Fft => TsneMethod::Fft,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    Umap,
    Tsne,
    Both,
}

/// 2-D maps of a run's embeddings (UMAP, t-SNE: PNG, SVG, interactive HTML, CSV,
/// TensorBoard projector files) and nearest-neighbour galleries, under
/// runs/X/phase-P/projections/ and runs/X/phase-P/galleries/.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  dmlviz project --run runs/demo --phase seen --method both --thumbnails\n  dmlviz project --run runs/demo --method tsne --tsne-engine linfa\n  dmlviz project --run runs/demo --add new-classes/"
)]
pub struct ProjectArgs {
    #[arg(long)]
    run: PathBuf,
    /// Which trained model's embeddings: all classes, or without the held-out ones.
    #[arg(long, value_enum, default_value = "all")]
    phase: PhaseArg,
    #[arg(long, value_enum, default_value = "both")]
    method: MethodArg,
    /// The t-SNE implementation.
    #[arg(long, value_enum, default_value = "ours")]
    tsne_engine: TsneEngineArg,
    /// How our t-SNE computes the repulsion (linfa-tsne is always Barnes–Hut).
    #[arg(long, value_enum, default_value = "auto")]
    tsne_method: TsneMethodArg,
    /// Also draw each image at its point (umap-thumbnails.jpg, tsne-thumbnails.jpg).
    #[arg(long)]
    thumbnails: bool,
    /// Reduce the embeddings to this many dimensions by PCA first (e.g. 50).
    #[arg(long)]
    pca: Option<usize>,
    /// Seed of UMAP's initial layout and sampling, and of the gallery sample.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Held-out classes' test images to put in the galleries.
    #[arg(long, default_value_t = 20)]
    gallery_unseen: usize,
    /// Misclassified test images to put in the galleries, at most.
    #[arg(long, default_value_t = 50)]
    gallery_misclassified: usize,
    /// Threads (libtorch and rayon).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Place the images under this folder (one subfolder per class, or the images of
    /// one class) on the stored maps without recomputing them; drawn ringed in black.
    #[arg(long, value_name = "DIR")]
    add: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: super::DeviceArgs,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: ProjectArgs) -> Result<()> {
    let device = args.device.resolve()?;
    dmlviz::progress::set_quiet(args.quiet);
    tch::set_num_threads(args.threads.max(1) as i32);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.max(1))
        .build_global();
    if let Some(dir) = &args.add {
        let opts = AddOptions {
            seed: args.seed,
            device,
            ..Default::default()
        };
        let summary = add_images(&RunDir::new(&args.run), args.phase.into(), dir, &opts)?;
        if args.json {
            return super::print_json(&summary);
        }
        println!(
            "{} images placed on the {} map(s) ({} added in all) in {}",
            summary.added,
            summary.methods.join(" and "),
            summary.total,
            summary.projections_dir.display()
        );
        return Ok(());
    }
    let mut opts = ProjectOptions {
        methods: match args.method {
            MethodArg::Umap => vec![Method::Umap],
            MethodArg::Tsne => vec![Method::Tsne],
            MethodArg::Both => vec![Method::Umap, Method::Tsne],
        },
        tsne_engine: args.tsne_engine.into(),
        pca_dims: args.pca,
        thumbnails: args.thumbnails,
        device,
        ..Default::default()
    }
    .with_seed(args.seed);
    opts.tsne.method = args.tsne_method.into();
    opts.gallery.unseen_sample = args.gallery_unseen;
    opts.gallery.misclassified_limit = args.gallery_misclassified;
    let summary = project_phase(&RunDir::new(&args.run), args.phase.into(), &opts)?;
    if args.json {
        return super::print_json(&summary);
    }
    for r in &summary.projections {
        println!(
            "{:<5} {} points: trustworthiness {:.3}, kNN label agreement {:.3}, {:.1} s",
            r.method, r.points, r.trustworthiness, r.knn_label_agreement, r.seconds
        );
    }
    println!("maps in {}", summary.projections_dir.display());
    println!(
        "{} gallery queries in {}",
        summary.gallery_items,
        summary.galleries_dir.display()
    );
    if summary.missing_images > 0 {
        eprintln!(
            "warning: {} images could not be read (drawn grey)",
            summary.missing_images
        );
    }
    Ok(())
}

/// UMAP and t-SNE (ours and linfa-tsne) time and trustworthiness on clustered embeddings.
#[derive(Args)]
#[command(
    after_help = "Example:\n  dmlviz bench project --points 2000 --points 10000 --dim 128 --threads 2\n  dmlviz bench project --data .cache/fashion-mnist-mobilenet64.safetensors --points 10000 --method tsne-bh --method tsne-fft"
)]
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
    /// Methods to measure: umap (ours), umap-rs, tsne (ours, auto), tsne-bh, tsne-fft
    /// (ours with that repulsion), tsne-linfa.
    #[arg(long = "method", default_values_t = ["umap".to_string(), "tsne".to_string()])]
    methods: Vec<String>,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Real embeddings instead of clustered points: a safetensors file with `embeddings`
    /// [N, D] and `labels` [N] (e.g. written by `dmlviz bench embed`); each `--points`
    /// takes an evenly spread subset of its rows.
    #[arg(long)]
    data: Option<PathBuf>,
    /// JSON rows instead of a table.
    #[arg(long)]
    json: bool,
    /// Time only: no trustworthiness or label agreement (minutes at 70 000 points).
    #[arg(long)]
    no_quality: bool,
}

pub fn bench(args: ProjectBenchArgs) -> Result<()> {
    let opts = ProjectBenchOptions {
        sizes: args.points,
        dim: args.dim,
        clusters: args.clusters,
        threads: args.threads,
        methods: args.methods,
        seed: 0,
        data: args.data,
        quality: !args.no_quality,
    };
    let rows = bench_run(&opts)?;
    if args.json {
        return super::print_json(&rows);
    }
    println!(
        "{:>10} {:>7} {:>5} {:>9} {:>8} {:>11} {:>9} {:>8}  data",
        "method", "points", "dim", "ours s", "trust", "label agr.", "ref s", "ref trust"
    );
    for r in rows {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:>10} {:>7} {:>5} {:>9.2} {:>8} {:>11} {:>9} {:>8}  {}",
            r.method,
            r.points,
            r.dim,
            r.seconds,
            opt(r.trustworthiness, 4),
            opt(r.knn_label_agreement, 4),
            opt(r.reference_seconds, 1),
            opt(r.reference_trustworthiness, 3),
            r.data
        );
    }
    Ok(())
}
