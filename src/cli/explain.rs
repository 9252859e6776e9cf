//! `dmlviz explain` and `dmlviz bench explain`.

use super::predict::PhaseArg;
use anyhow::{bail, Result};
use clap::Args;
use dmlviz::bench::explain::{ExplainBenchOptions, ExplainBenchRow};
use dmlviz::eval::phase_model::PhaseModel;
use dmlviz::explain::batch::{default_dir, list_images, write_batch};
use dmlviz::explain::explainer::{write_explanation, ExplainOptions, Explainer, ExplanationRecord};
use dmlviz::explain::faithfulness::FaithOptions;
use dmlviz::explain::registry::{method_help, method_long_help};
use dmlviz::explain::samples::{explain_samples, SampleOptions};
use dmlviz::explain::target::{ContrastChoice, TargetChoice};
use dmlviz::explain::transfer::DEFAULT_TRANSFER_K;
use dmlviz::explain::trust::TrustOptions;
use dmlviz::model::Arch;
use dmlviz::run::RunDir;
use std::path::{Path, PathBuf};

/// Saliency maps of an image (or many) and its nearest training images, as arrays, PNGs and an HTML page.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  dmlviz explain --run runs/demo --image data/emoji-animals/0002.monkey/apple.png --method all\n  \
dmlviz explain --run runs/demo --image cat.jpg --method gradcam --class 0002.monkey\n  \
dmlviz explain --run runs/demo --batch photos/ --method gradcam\n  \
dmlviz explain --run runs/demo --samples 8 --phase seen   # the report's sample (explanations/)"
)]
pub struct ExplainArgs {
    /// The run directory (default: the most recent finished run under runs/).
    #[arg(long)]
    run: Option<PathBuf>,
    /// One image to explain.
    #[arg(long, conflicts_with_all = ["batch", "samples"])]
    image: Option<PathBuf>,
    /// A directory of images, explained in batches (unreadable files are skipped and named).
    #[arg(long, conflicts_with = "samples")]
    batch: Option<PathBuf>,
    /// Explain this many test images (half correctly, half incorrectly classified) into
    /// runs/X/phase-P/explanations/, with the --method methods (all by default; weight
    /// transfer is left out, it needs a pass over every training image).
    #[arg(long)]
    samples: Option<usize>,
    #[arg(long = "method", default_value = "all", help = method_help(), long_help = method_long_help())]
    methods: Vec<String>,
    /// Explain the similarity to this image instead of the nearest training image.
    #[arg(long, conflicts_with = "class")]
    reference: Option<PathBuf>,
    /// Explain the similarity to this class's centroid instead of the nearest training image.
    #[arg(long)]
    class: Option<String>,
    /// Explain cos(f, target) − cos(f, centroid of CLASS): why the image went to its
    /// target and not to CLASS.
    #[arg(long, value_name = "CLASS", conflicts_with = "samples")]
    contrast: Option<String>,
    /// With --samples: steps of the trust table's deletion and insertion curves.
    #[arg(long, default_value_t = FaithOptions::default().steps as u64, value_parser = clap::value_parser!(u64).range(1..=1000))]
    trust_steps: u64,
    /// With --samples: ROAD percentiles of the trust table (comma-separated, each in 1–99).
    #[arg(long, value_delimiter = ',', default_values_t = FaithOptions::default().road_percentiles)]
    road_percentiles: Vec<f64>,
    /// With --samples: skip the trust table's sanity check (re-running every method per block).
    #[arg(long)]
    no_sanity: bool,
    /// With --samples: write no trust table (an older trust.json is removed).
    #[arg(long)]
    no_trust: bool,
    /// Nearest training images listed (with pair maps) and voting.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Stored neighbours whose Grad-CAM weights weight transfer averages.
    #[arg(long, default_value_t = DEFAULT_TRANSFER_K)]
    transfer_k: usize,
    /// Images per forward/backward pass (and masked or ablated copies per pass of
    /// Score-CAM and Ablation-CAM).
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// The CAM family's target layer, as a torchvision module name (`layer3`, `layer4.1`,
    /// `features.14`; default: the last convolution), or `auto`: the deepest layer at
    /// least 7×7 at the run's input size. Repeat it to average the maps of several
    /// layers, each resized to the input first.
    #[arg(long = "layer", value_name = "NAME")]
    layers: Vec<String>,
    /// CAMs averaged over six test-time augmentations (horizontal flip × pixel values
    /// times 0.9, 1, 1.1), as pytorch-grad-cam's aug_smooth.
    #[arg(long)]
    aug_smooth: bool,
    /// CAMs as the first principal component of the weighted activations, as
    /// pytorch-grad-cam's eigen_smooth.
    #[arg(long)]
    eigen_smooth: bool,
    /// Output directory (default: runs/X/phase-P/explain/<parent folder>/<file or folder name>/).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    device: super::DeviceArgs,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Which trained model: all classes, or without the held-out ones.
    #[arg(long, value_enum, default_value = "all")]
    phase: PhaseArg,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

fn print_record(dir: &Path, r: &ExplanationRecord) {
    let verdict = match r.correct {
        Some(true) => " (correct)",
        Some(false) => " (wrong)",
        None => "",
    };
    println!(
        "{}: predicted {}{} by {}/{} votes; true class {}",
        r.image.display(),
        r.predicted,
        verdict,
        r.votes,
        r.neighbours
            .iter()
            .filter(|n| n.role == "neighbour")
            .count(),
        r.true_class.as_deref().unwrap_or("unknown")
    );
    for (name, m) in &r.maps {
        let note = if m.status.name() == "ok" {
            String::new()
        } else {
            format!(" [{}]", m.status.describe())
        };
        println!(
            "  {name:<15} {}{note}",
            m.files
                .iter()
                .map(|f| dir.join(f).display().to_string())
                .collect::<Vec<_>>()
                .join("  ")
        );
    }
    println!("  page: {}", dir.join("index.html").display());
}

pub fn run(args: ExplainArgs) -> Result<()> {
    let device = args.device.resolve()?;
    dmlviz::progress::set_quiet(args.quiet);
    let run = super::predict::resolve_run(args.run.as_deref(), args.phase.into())?;
    if let Some(n) = args.samples {
        return run_samples(&run, &args, n, device);
    }
    let opts = ExplainOptions {
        methods: dmlviz::explain::registry::parse(&args.methods)?,
        target: target(&args)?,
        contrast: args.contrast.clone().map(ContrastChoice::Class),
        k: args.k.max(1),
        transfer_k: args.transfer_k.max(1),
        batch_size: args.batch_size.max(1),
        layers: args.layers.clone(),
        aug_smooth: args.aug_smooth,
        eigen_smooth: args.eigen_smooth,
        ..Default::default()
    };
    let image_file = match (&args.image, &args.batch) {
        (Some(i), None) if !i.is_file() => bail!("{}: no such image file", i.display()),
        (Some(i), None) => Some(i.clone()),
        (None, Some(_)) => None,
        _ => bail!("give --image FILE, --batch DIR or --samples N"),
    };
    let phase = args.phase.into();
    let pm = PhaseModel::load_on(&run, phase, device)?;
    tch::set_num_threads(pm.exp.cfg.training.threads as i32);
    let mut explainer = Explainer::new(&run, &pm)?;
    if opts.methods.iter().any(|m| m.info().weight_store) {
        let (store, computed) = explainer.weight_store()?;
        if computed && !args.json {
            eprintln!(
                "stored Grad-CAM weights of {} training images in {}",
                store.len(),
                run.phase(phase).gradcam_weights().display()
            );
        }
    }
    let base = run.phase(phase).explain_dir();
    match image_file {
        Some(image) => explain_image(&mut explainer, &opts, &args, &image, &base),
        None => explain_folder(&mut explainer, &opts, &args, &base),
    }
}

/// The target of `--reference` or `--class` (the nearest training image otherwise).
fn target(args: &ExplainArgs) -> Result<TargetChoice> {
    Ok(match (&args.reference, &args.class) {
        (Some(p), _) => {
            if !p.is_file() {
                bail!("--reference {}: no such image file", p.display());
            }
            TargetChoice::Reference(p.clone())
        }
        (None, Some(c)) => TargetChoice::Class(c.clone()),
        (None, None) => TargetChoice::Nearest,
    })
}

/// The trust table's options of `--trust-steps`, `--road-percentiles`, `--no-sanity`
/// and `--no-trust`.
fn trust_options(args: &ExplainArgs) -> Result<Option<TrustOptions>> {
    if args.no_trust {
        return Ok(None);
    }
    if let Some(p) = args
        .road_percentiles
        .iter()
        .find(|p| !(1.0..=99.0).contains(*p))
    {
        bail!("--road-percentiles: {p} is not a percentile in 1–99");
    }
    Ok(Some(TrustOptions {
        faith: FaithOptions {
            steps: args.trust_steps as usize,
            road_percentiles: args.road_percentiles.clone(),
            ..FaithOptions::default()
        },
        sanity: !args.no_sanity,
    }))
}

/// `--samples N`: the report's sample.
fn run_samples(run: &RunDir, args: &ExplainArgs, n: usize, device: tch::Device) -> Result<()> {
    if n == 0 {
        bail!("--samples must be at least 1");
    }
    let phase = args.phase.into();
    let cfg = run.read_config()?;
    tch::set_num_threads(cfg.training.threads as i32);
    let opts = SampleOptions {
        count: n,
        k: args.k,
        batch_size: args.batch_size.max(1),
        device,
        trust: trust_options(args)?,
        methods: dmlviz::explain::registry::parse(&args.methods)?,
    };
    let index = explain_samples(run, phase, &opts)?;
    let dir = run.phase(phase).explanations_dir();
    if args.json {
        return super::print_json(&index);
    }
    let good = index.items.iter().filter(|i| i.correct).count();
    println!(
        "explained {} test images ({} correct, {} wrong): {}",
        index.items.len(),
        good,
        index.items.len() - good,
        dir.join("index.html").display()
    );
    println!("data: {}", run.phase(phase).explanations().display());
    if opts.trust.is_some() {
        println!("trust table: {}", run.phase(phase).trust().display());
    }
    Ok(())
}

/// `--image FILE`.
fn explain_image(
    explainer: &mut Explainer<'_>,
    opts: &ExplainOptions,
    args: &ExplainArgs,
    image: &Path,
    base: &Path,
) -> Result<()> {
    let explanations = explainer.explain(&[image.to_path_buf()], opts)?;
    let dir = args.out.clone().unwrap_or_else(|| default_dir(base, image));
    let title = format!("Explanation of {}", image.display());
    let record = write_explanation(&explanations[0], &dir, &title, &[])?;
    if args.json {
        return super::print_json(&serde_json::json!({ "dir": dir, "explanation": record }));
    }
    print_record(&dir, &record);
    Ok(())
}

/// `--batch DIR`: every readable image of the folder; the others are named on stderr.
fn explain_folder(
    explainer: &mut Explainer<'_>,
    opts: &ExplainOptions,
    args: &ExplainArgs,
    base: &Path,
) -> Result<()> {
    let folder = args.batch.as_deref().unwrap_or(Path::new("."));
    let images = list_images(folder)?;
    let (explanations, skipped) = explainer.explain_readable(&images, opts)?;
    for s in &skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    if explanations.is_empty() {
        bail!(
            "{}: none of its {} images could be read",
            folder.display(),
            images.len()
        );
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_dir(base, folder));
    let records = write_batch(&explanations, &skipped, folder, &dir)?;
    if args.json {
        let list: Vec<_> = records
            .iter()
            .map(|(sub, r)| serde_json::json!({ "dir": dir.join(sub), "explanation": r }))
            .collect();
        return super::print_json(&list);
    }
    for (sub, r) in &records {
        print_record(&dir.join(sub), r);
    }
    if !skipped.is_empty() {
        println!("skipped {} unreadable files (named above)", skipped.len());
    }
    println!("index: {}", dir.join("index.html").display());
    Ok(())
}

/// Images explained per second (Grad-CAM, guided backprop, weight transfer) beside a plain forward+backward.
#[derive(Args)]
#[command(
    after_help = "Example:\n  dmlviz bench explain --arch mobilenet_v2 --arch resnet18 --size 224 --batch 1 --batch 16"
)]
pub struct ExplainBenchArgs {
    #[arg(long = "arch", default_values_t = [Arch::MobileNetV2, Arch::ResNet18])]
    archs: Vec<Arch>,
    #[arg(long = "size", default_values_t = [224])]
    sizes: Vec<i64>,
    #[arg(long = "batch", default_values_t = [1, 16])]
    batches: Vec<i64>,
    /// Timed runs per method after one warm-up (the best counts).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Stored training images of the weight-transfer store.
    #[arg(long, default_value_t = 1000)]
    stored: i64,
    #[arg(long = "method", default_value = "all", help = method_help(), long_help = method_long_help())]
    methods: Vec<String>,
    /// Images per pass of the methods (and masked or ablated copies per pass of Score-CAM
    /// and Ablation-CAM).
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long)]
    json: bool,
}

pub fn bench(args: ExplainBenchArgs) -> Result<()> {
    let opts = ExplainBenchOptions {
        archs: args.archs,
        sizes: args.sizes,
        batches: args.batches,
        iterations: args.iterations,
        threads: args.threads,
        stored: args.stored,
        methods: dmlviz::explain::registry::parse(&args.methods)?,
        method_batch_size: args.batch_size.max(1),
    };
    let rows: Vec<ExplainBenchRow> = dmlviz::bench::explain::run(&opts)?;
    if args.json {
        return super::print_json(&rows);
    }
    println!(
        "{:>13} {:>5} {:>6} {:>10} {:>10} {:>12} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}",
        "arch",
        "size",
        "batch",
        "plain/s",
        "gradcam/s",
        "gc-full/s",
        "guided/s",
        "transf/s",
        "gc/pl",
        "full/pl",
        "gd/pl",
        "tr/pl",
        "tr÷gc",
        "tr÷gcfull"
    );
    for r in &rows {
        println!(
            "{:>13} {:>5} {:>6} {:>10.1} {:>10.1} {:>12.1} {:>10.1} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}× {:>9.2}×",
            r.arch,
            r.size,
            r.batch,
            r.plain_images_per_s,
            r.gradcam_images_per_s,
            r.gradcam_full_backward_images_per_s,
            r.guided_images_per_s,
            r.transfer_images_per_s,
            r.gradcam_vs_plain,
            r.gradcam_full_backward_vs_plain,
            r.guided_vs_plain,
            r.transfer_vs_plain,
            r.transfer_over_gradcam,
            r.transfer_over_gradcam_full_backward
        );
    }
    println!(
        "x/pl: plain forward+backward time ÷ method time (> 1: faster than the plain pass); tr÷gc: weight transfer's speed over Grad-CAM's"
    );
    print_method_speeds(&rows);
    Ok(())
}

/// The per-method table of `bench explain`: images per second and the ratio to the plain
/// pass of the same rounds, one line per method and configuration.
fn print_method_speeds(rows: &[ExplainBenchRow]) {
    println!(
        "\n{:>13} {:>5} {:>6} {:>16} {:>10} {:>8}",
        "arch", "size", "batch", "method", "images/s", "pl/x"
    );
    for r in rows {
        for m in &r.methods {
            println!(
                "{:>13} {:>5} {:>6} {:>16} {:>10.2} {:>8.3}",
                r.arch, r.size, r.batch, m.method, m.images_per_s, m.vs_plain
            );
        }
    }
    println!("pl/x: plain forward+backward time ÷ the method's time in the same rounds (through the explain driver)");
}
