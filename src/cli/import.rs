//! `dmlviz import model` and `dmlviz import embeddings`.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use dmlviz::import::embeddings::{import_embeddings, EmbeddingsImport};
use dmlviz::import::keys::Rewrite;
use dmlviz::import::model::{import_model, HeadSpec, ModelImport};
use dmlviz::model::Arch;
use dmlviz::search::Distance;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    command: ImportCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum DistanceArg {
    Cosine,
    Euclidean,
}

impl From<DistanceArg> for Distance {
    fn from(d: DistanceArg) -> Distance {
        match d {
            DistanceArg::Cosine => Distance::Cosine,
            DistanceArg::Euclidean => Distance::Euclidean,
        }
    }
}

#[derive(Subcommand)]
enum ImportCommand {
    /// A PyTorch state_dict of a whole embedding network (.pth zip or legacy, or
    /// .safetensors) becomes a run that eval, explain, project, predict and report read.
    #[command(after_help = "Example (pytorch-metric-learning trunk + embedder):\n  \
dmlviz import model trunk_embedder.pth --arch resnet18 --head linear:512 \\\n      \
--distance cosine --data data/emoji-animals --out runs/my-model")]
    Model(ModelArgs),
    /// Training (reference) and test (query) embeddings with labels and image paths
    /// become a run that eval, project and report read (no network: explain and predict
    /// need one).
    #[command(
        after_help = "Example:\n  dmlviz import embeddings --train train.npy --test test.npy \\\n      \
--train-labels train.csv --test-labels test.csv --out runs/my-embeddings\n\
Labels: CSV with `label` and `path` columns (or JSON [{\"label\": .., \"path\": ..}]), one per row,\n\
paths relative to the labels file. Embeddings: .npy, .npz, .safetensors or .csv."
    )]
    Embeddings(EmbeddingsArgs),
}

/// `import model`'s arguments.
#[derive(Args)]
pub struct ModelArgs {
    /// The state_dict file.
    file: PathBuf,
    /// Backbone: resnet18, resnet50, mobilenet_v2.
    #[arg(long)]
    arch: Arch,
    /// Head: linear:D, then optionally ,bn (1-D BatchNorm) and ,l2 (L2 normalisation).
    #[arg(long)]
    head: HeadSpec,
    /// How embeddings are compared (cosine L2-normalises them).
    #[arg(long, value_enum, default_value = "cosine")]
    distance: DistanceArg,
    /// The dataset (one folder per class, or CUB layout) to evaluate and explain on.
    #[arg(long)]
    data: PathBuf,
    /// Network input side in pixels.
    #[arg(long, default_value_t = 224)]
    image_size: u32,
    /// Share of each class used as test images (stratified split).
    #[arg(long, default_value_t = 0.2)]
    test_ratio: f64,
    /// Use the dataset's own split (CUB's train_test_split.txt).
    #[arg(long)]
    official_split: bool,
    /// Seed of the stratified split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rename entries: names starting with OLD get NEW instead (repeat; first match wins).
    #[arg(long = "map", value_name = "OLD=NEW")]
    maps: Vec<Rewrite>,
    /// Import what fits; missing, unexpected and mis-shaped entries are recorded.
    #[arg(long)]
    partial: bool,
    /// The new run directory.
    #[arg(long)]
    out: PathBuf,
    /// Do not evaluate the run after importing (run `dmlviz eval` later).
    #[arg(long)]
    no_eval: bool,
    #[arg(long)]
    json: bool,
}

/// `import embeddings`' arguments.
#[derive(Args)]
pub struct EmbeddingsArgs {
    /// Training (reference) embeddings [rows, D].
    #[arg(long, visible_alias = "reference")]
    train: PathBuf,
    /// Test (query) embeddings [rows, D] (may be the same .npz/.safetensors as --train,
    /// with arrays named train/test or reference/query).
    #[arg(long, visible_alias = "query")]
    test: PathBuf,
    /// Label and image of each training row (CSV or JSON).
    #[arg(long, visible_alias = "reference-labels")]
    train_labels: PathBuf,
    /// Label and image of each test row.
    #[arg(long, visible_alias = "query-labels")]
    test_labels: PathBuf,
    /// Class names in order, one a line (default: the training labels, sorted).
    #[arg(long)]
    classes: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cosine")]
    distance: DistanceArg,
    /// The new run directory.
    #[arg(long)]
    out: PathBuf,
    /// Do not evaluate the run after importing.
    #[arg(long)]
    no_eval: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(args: ImportArgs) -> Result<()> {
    match args.command {
        ImportCommand::Model(args) => run_model(args),
        ImportCommand::Embeddings(args) => run_embeddings(args),
    }
}

/// `import model`.
fn run_model(args: ModelArgs) -> Result<()> {
    tch::set_num_threads(2);
    let opts = ModelImport {
        weights: args.file,
        arch: args.arch,
        head: args.head,
        distance: args.distance.into(),
        data: args.data,
        image_size: args.image_size,
        test_ratio: args.test_ratio,
        official_split: args.official_split,
        seed: args.seed,
        rewrites: args.maps,
        partial: args.partial,
        out: args.out,
        evaluate: !args.no_eval,
    };
    let done = import_model(&opts)?;
    if args.json {
        return super::print_json(&done.provenance);
    }
    println!(
        "{}: {} tensors of {} imported into {}",
        opts.weights.display(),
        done.report.loaded.len(),
        opts.arch,
        done.run.root.display()
    );
    for m in &done.report.missing {
        println!("  missing {m} (left as initialised)");
    }
    for u in &done.report.unexpected {
        println!("  unexpected {u} (ignored)");
    }
    for (n, f, m) in &done.report.mismatched {
        println!("  mis-shaped {n}: file {f:?}, model {m:?} (left as initialised)");
    }
    if !done.metrics.is_empty() {
        super::eval::print_summary(&done.run, &done.metrics, None);
    }
    next_steps(&done.run.root, true);
    Ok(())
}

/// `import embeddings`.
fn run_embeddings(args: EmbeddingsArgs) -> Result<()> {
    let opts = EmbeddingsImport {
        train: args.train,
        test: args.test,
        train_labels: args.train_labels,
        test_labels: args.test_labels,
        classes: args.classes,
        distance: args.distance.into(),
        out: args.out,
        evaluate: !args.no_eval,
    };
    let done = import_embeddings(&opts)?;
    if args.json {
        return super::print_json(&serde_json::json!({
            "run": done.run.root, "train_rows": done.rows.0, "test_rows": done.rows.1,
            "dim": done.dim, "classes": done.classes, "phases": done.metrics,
        }));
    }
    println!(
        "imported {} training and {} test embeddings ({} dimensions, {} classes) into {}",
        done.rows.0,
        done.rows.1,
        done.dim,
        done.classes.len(),
        done.run.root.display()
    );
    if !done.metrics.is_empty() {
        super::eval::print_summary(&done.run, &done.metrics, None);
    }
    next_steps(&done.run.root, false);
    Ok(())
}

/// What to run next on the imported run.
fn next_steps(run: &std::path::Path, model: bool) {
    let r = run.display();
    println!("next: dmlviz project --run {r} && dmlviz report --run {r}");
    if model {
        println!("      dmlviz explain --run {r} --image IMAGE");
    } else {
        println!("      (explain and predict need a network: this run holds embeddings only)");
    }
}
