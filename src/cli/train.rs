//! `dmlviz train`.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dmlviz::config::{DeviceKind, ExperimentConfig, Phase};
use dmlviz::data::fetch;
use dmlviz::device::DeviceSpec;
use dmlviz::run::lock::RunLock;
use dmlviz::run::RunDir;
use dmlviz::train::preflight::Unsatisfiable;
use dmlviz::train::trainer::{train_locked, TrainOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, ValueEnum)]
enum PhaseArg {
    All,
    Seen,
}

/// Train an experiment's phases (all classes; without the held-out classes), evaluating every epoch.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  dmlviz train --config experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml\n  dmlviz train --config experiments/reference/EPSHN_cosine_resnet18_sgd_aug.toml --device cuda\n  dmlviz train --config X.toml --resume   # continue a stopped run"
)]
pub struct TrainArgs {
    /// Experiment config (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Run directory (default runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in the run directory from its last checkpoints.
    #[arg(long)]
    resume: bool,
    /// Log one line per epoch instead of progress bars.
    #[arg(long)]
    quiet: bool,
    /// Compute device: cpu, cuda or cuda:N (default: the config's training.device).
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// Mixed precision (sets training.mixed_precision): the forward pass in bfloat16 on
    /// the CPU, in float16 with a dynamic loss scale on CUDA.
    #[arg(long)]
    amp: bool,
    /// Override training.epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override training.threads.
    #[arg(long)]
    threads: Option<usize>,
    /// Override training.seed (the split, the initial head, the sampler's batches).
    #[arg(long)]
    seed: Option<u64>,
    /// Train only this phase.
    #[arg(long, value_enum)]
    phase: Option<PhaseArg>,
}

/// Keys a resumed run may be given differently from the stored config: how far it
/// goes (`--epochs`, `--phase`); the stored values hold unless those options say otherwise.
const RESUMABLE_DIFFERENCES: [&str; 2] = ["training.epochs", "training.phases"];

impl TrainArgs {
    /// `cfg` with the command line's overrides applied.
    fn overridden(&self, mut cfg: ExperimentConfig) -> ExperimentConfig {
        if let Some(d) = self.device {
            cfg.training.device = match d {
                DeviceSpec::Cpu => DeviceKind::Cpu,
                DeviceSpec::Cuda(_) => DeviceKind::Cuda,
            };
        }
        if let Some(e) = self.epochs {
            cfg.training.epochs = e;
        }
        if let Some(t) = self.threads {
            cfg.training.threads = t;
        }
        if let Some(s) = self.seed {
            cfg.training.seed = s;
        }
        if self.amp {
            cfg.training.mixed_precision = true;
        }
        if let Some(p) = self.phase {
            cfg.training.phases = vec![match p {
                PhaseArg::All => Phase::All,
                PhaseArg::Seen => Phase::Seen,
            }];
        }
        cfg
    }
}

/// The config a resumed run continues with: the one it started with, which must
/// agree with `--config` (both with the command line's overrides) but for how far it goes.
fn resumed_config(
    args: &TrainArgs,
    given: &ExperimentConfig,
    run: &RunDir,
) -> Result<ExperimentConfig> {
    let stored_config = run.read_config()?;
    let stored_seed = stored_config.training.seed;
    let mut stored = args.overridden(stored_config);
    // The seed makes the run what it is: a resume under another --seed is refused below,
    // not applied to the stored config.
    stored.training.seed = stored_seed;
    let differing: Vec<String> = dmlviz::report::config_diff::differences(&stored, given)
        .into_iter()
        .filter(|d| !RESUMABLE_DIFFERENCES.contains(&d.key.as_str()))
        .map(|d| {
            let shown = |v: Option<String>| v.unwrap_or_else(|| "(unset)".into());
            format!(
                "{} = {} in the run, {} in {}",
                d.key,
                shown(d.baseline),
                shown(d.run),
                args.config.display()
            )
        })
        .collect();
    if !differing.is_empty() {
        bail!(
            "--resume: {} differs from the config {} started with:\n  {}\nresume with the run's own \
             config ({}), or train the changed config into another --out",
            args.config.display(),
            run.root.display(),
            differing.join("\n  "),
            run.config_path().display()
        );
    }
    Ok(stored)
}

pub fn run(args: TrainArgs) -> Result<()> {
    // A device that cannot be used fails before anything is read.
    let device = match args.device {
        Some(spec) => Some(spec.resolve()?),
        None => None,
    };
    dmlviz::progress::set_quiet(args.quiet);
    let given = args.overridden(ExperimentConfig::load(&args.config)?);
    let run_dir = RunDir::new(
        args.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&given.name)),
    );
    let cfg = if args.resume && run_dir.config_path().exists() {
        resumed_config(&args, &given, &run_dir)?
    } else {
        given
    };
    cfg.validate().with_context(|| {
        format!(
            "{} (with the command line's options)",
            args.config.display()
        )
    })?;
    let device = match device {
        Some(device) => device,
        None => cfg.training.device.device()?,
    };
    ensure_dataset(&cfg)?;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // First Ctrl-C: finish the batch, keep the last checkpoint, exit cleanly. Second: exit now.
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this batch (Ctrl-C again to quit at once)…");
    })?;
    let opts = TrainOptions {
        resume: args.resume,
        quiet: args.quiet,
        stop,
        device: Some(device),
    };
    // One writer for the whole run: training, then the evaluation and report below.
    let lock = RunLock::acquire(&run_dir.root, "train")?;
    let outcomes = train_locked(&cfg, &run_dir, &opts, &lock)
        .map_err(|e| name_config_file(e, &args.config))?;
    for o in outcomes {
        if let Some(last) = o.history.last() {
            let best = o
                .history
                .iter()
                .map(|r| r.test_accuracy)
                .fold(0.0, f64::max);
            println!(
                "{}: {} epochs, test accuracy (precision@1, all classes) {} → {:.4} (best {:.4}){}",
                o.phase.dir_name(),
                last.epoch,
                o.initial_test_accuracy
                    .map(|a| format!("{a:.4}"))
                    .unwrap_or_else(|| "?".into()),
                last.test_accuracy,
                best,
                last.test_accuracy_unseen
                    .map(|u| format!(", held-out classes {u:.4}"))
                    .unwrap_or_default()
            );
        }
    }
    // Every table and metric of the run, as `dmlviz eval` would write them.
    let (phases, comparison) = dmlviz::eval::run_eval::evaluate_run(&run_dir, device)?;
    super::eval::print_summary(&run_dir, &phases, comparison.as_ref());
    // The machine and the run's own report page; a failure here must not fail a finished training.
    if let Err(e) = dmlviz::run::hardware::record(&run_dir) {
        eprintln!("warning: hardware.json was not written: {e:#}");
    }
    match dmlviz::report::write_run_page(&run_dir.root, &run_dir.root.join("report")) {
        Ok(page) => println!("report: {}", page.display()),
        Err(e) => eprintln!("warning: the run's report page was not written: {e:#}"),
    }
    println!("run directory: {}", run_dir.root.display());
    drop(lock);
    Ok(())
}

/// Puts the config file in front of an error about one of its values.
fn name_config_file(e: anyhow::Error, config: &Path) -> anyhow::Error {
    if e.is::<Unsatisfiable>() {
        e.context(config.display().to_string())
    } else {
        e
    }
}

/// Builds the config's dataset from its `data.fetch` when the folder is missing.
fn ensure_dataset(cfg: &ExperimentConfig) -> Result<()> {
    let built = fetch::ensure_dataset(
        &cfg.data.path,
        cfg.data.fetch.as_ref(),
        Path::new(fetch::spec::DEFAULT_CACHE),
    )
    .with_context(|| format!("the dataset of experiment {}", cfg.name))?;
    if let Some(report) = built {
        eprintln!(
            "{}: {} classes, {} images written",
            cfg.data.path.display(),
            report.classes,
            report.images
        );
    }
    Ok(())
}
