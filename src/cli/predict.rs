//! `dmlviz predict`, `dmlviz index add` and `dmlviz index export`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use dmlviz::config::Phase;
use dmlviz::data::decode::has_image_extension;
use dmlviz::eval::phase_model::PhaseModel;
use dmlviz::eval::predict::{embed_readable_files, predict_with_store};
use dmlviz::pg_gallery::{export_phase, Search, StoreChoice, DEFAULT_EF_SEARCH, DEFAULT_TABLE};
use dmlviz::project::add::{enrol_and_place, AddOptions};
use dmlviz::run::RunDir;
use std::path::PathBuf;

/// Which gallery a command uses: the run's file (default) or a PostgreSQL table.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// A PostgreSQL database with pgvector (`postgresql://user@host:port/db`) holding a
    /// gallery written by `dmlviz index export`; default: the run's own gallery file.
    #[arg(long)]
    index: Option<String>,
    /// The gallery's table in that database.
    #[arg(long, default_value = DEFAULT_TABLE)]
    table: String,
    /// HNSW search breadth (`hnsw.ef_search`) for a PostgreSQL gallery.
    #[arg(long, default_value_t = DEFAULT_EF_SEARCH)]
    ef_search: u32,
    /// Exact search in PostgreSQL (a scan, no index): the reference the HNSW index is
    /// measured against. The run's gallery file is always searched exactly.
    #[arg(long)]
    exact: bool,
}

impl StoreArgs {
    pub fn choice(&self) -> StoreChoice {
        StoreChoice {
            index: self.index.clone(),
            table: self.table.clone(),
            search: match self.exact {
                true => Search::Exact,
                false => Search::Hnsw {
                    ef_search: self.ef_search,
                },
            },
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PhaseArg {
    All,
    Seen,
}

impl From<PhaseArg> for Phase {
    fn from(p: PhaseArg) -> Phase {
        match p {
            PhaseArg::All => Phase::All,
            PhaseArg::Seen => Phase::Seen,
        }
    }
}

/// Classify images by their nearest neighbours in the run's gallery (no retraining).
#[derive(Args)]
#[command(after_help = "Example:\n  dmlviz predict --run runs/demo --image cat.png --k 10")]
pub struct PredictArgs {
    /// The run directory (default: the most recent finished run under runs/).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Image files (repeat) or directories of images.
    #[arg(long = "image", required = true)]
    images: Vec<PathBuf>,
    /// Neighbours to vote over (at least 1; more than the gallery holds uses them all).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Which trained model: all classes, or without the held-out ones.
    #[arg(long, value_enum, default_value = "all")]
    phase: PhaseArg,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: super::DeviceArgs,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Enrol images of a (new) class into the run's gallery, so `predict` recognises it.
    #[command(
        after_help = "Example:\n  dmlviz index add --run runs/demo --images photos/otter --class otter"
    )]
    Add {
        #[arg(long)]
        run: PathBuf,
        /// A directory of images (or one image).
        #[arg(long)]
        images: PathBuf,
        #[arg(long)]
        class: String,
        #[arg(long, value_enum, default_value = "all")]
        phase: PhaseArg,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        device: super::DeviceArgs,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a phase's gallery into PostgreSQL with pgvector (a `vector(D)` table with an
    /// HNSW index by the run's distance), for `predict`/`index add`/`serve --index`.
    #[command(
        after_help = "Example:\n  dmlviz index export --run runs/demo --to postgresql://me@localhost/dml"
    )]
    Export {
        #[arg(long)]
        run: PathBuf,
        /// The database: `postgresql://user[:password]@host[:port]/dbname`.
        #[arg(long)]
        to: String,
        #[arg(long, default_value = DEFAULT_TABLE)]
        table: String,
        #[arg(long, value_enum, default_value = "all")]
        phase: PhaseArg,
        /// Replace the table when it exists already.
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        json: bool,
    },
}

/// The run of `--run`, else the most recent finished run under `runs/`, named on stderr
/// (stdout stays the command's output, `--json` included).
pub fn resolve_run(given: Option<&std::path::Path>, phase: Phase) -> Result<RunDir> {
    let runs = std::path::Path::new(dmlviz::run::latest::RUNS_DIR);
    let (run, picked) = dmlviz::run::latest::resolve(given, runs, phase)?;
    if picked {
        eprintln!(
            "using run {} (the most recent finished run under {}/; --run picks another)",
            run.root.display(),
            runs.display()
        );
    }
    Ok(run)
}

/// Image files named directly or found (sorted) in the directories given.
fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("listing {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && has_image_extension(p))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!(
                    "{}: no image inside (png, jpg, webp, bmp, tif, gif)",
                    input.display()
                );
            }
            out.extend(found);
        } else if input.is_file() {
            out.push(input.clone());
        } else {
            bail!("{}: no such file or directory", input.display());
        }
    }
    Ok(out)
}

pub fn predict(args: PredictArgs) -> Result<()> {
    if args.k == 0 {
        bail!("--k must be at least 1 (the number of neighbours to vote over)");
    }
    let device = args.device.resolve()?;
    let run = resolve_run(args.run.as_deref(), args.phase.into())?;
    let pm = PhaseModel::load_on(&run, args.phase.into(), device)?;
    let images = collect_images(&args.images)?;
    let embedded = embed_readable_files(
        &pm.model.net,
        &images,
        pm.exp.test_transform(),
        pm.exp.device,
    )?;
    // An unreadable file is skipped and named; the others are still predicted.
    for u in &embedded.unreadable {
        eprintln!("skipped: {}", u.reason);
    }
    if embedded.paths.is_empty() {
        bail!(
            "none of the {} images could be read (each is named above)",
            images.len()
        );
    }
    let mut store = args.store.choice().open(&pm, &run)?;
    let predictions = predict_with_store(
        store.as_mut(),
        &embedded.embeddings,
        &embedded.paths,
        args.k,
    )?;
    if let Some(size) = predictions.first().map(|p| p.neighbours.len()) {
        if args.k > size {
            eprintln!(
                "note: --k {} is more than the gallery's {size} images; using {size}",
                args.k
            );
        }
    }
    if args.json {
        return super::print_json(&predictions);
    }
    for p in predictions {
        println!(
            "{}: nearest {} | majority {} ({}/{} votes)",
            p.image.display(),
            p.nearest,
            p.majority,
            p.votes,
            p.neighbours.len()
        );
        for (i, n) in p.neighbours.iter().enumerate() {
            println!(
                "  {:>2}. {:<40} {:.4}  {}",
                i + 1,
                n.class,
                n.distance,
                n.path.display()
            );
        }
    }
    Ok(())
}

pub fn index(args: IndexArgs) -> Result<()> {
    match args.command {
        IndexCommand::Add {
            run,
            images,
            class,
            phase,
            json,
            device,
            quiet,
            store,
        } => {
            let device = device.resolve()?;
            dmlviz::progress::set_quiet(quiet);
            if class.trim().is_empty() {
                bail!("--class must not be empty");
            }
            let paths = collect_images(std::slice::from_ref(&images))?;
            let run = RunDir::new(run);
            // The images go on the phase's stored maps too, when it has any.
            let pm = PhaseModel::load_on(&run, phase.into(), device)?;
            let opts = AddOptions::default();
            let result = match store.index {
                None => enrol_and_place(&run, &pm, None, &class, &paths, &opts)?,
                Some(_) => {
                    let mut gallery = store.choice().open(&pm, &run)?;
                    enrol_and_place(&run, &pm, Some(gallery.as_mut()), &class, &paths, &opts)?
                }
            };
            if json {
                return super::print_json(&result);
            }
            let done = &result.enrolment;
            println!(
                "enrolled {} images of {class:?}; the gallery now holds {} images of {} classes",
                done.added, done.gallery_size, done.classes
            );
            if let Some(placed) = &result.placed {
                println!(
                    "placed them on the {} map(s) ({} added in all) in {}",
                    placed.methods.join(" and "),
                    placed.total,
                    placed.projections_dir.display()
                );
            }
            Ok(())
        }
        IndexCommand::Export {
            run,
            to,
            table,
            phase,
            replace,
            json,
        } => {
            let done = export_phase(&RunDir::new(run), phase.into(), &to, &table, replace)?;
            if json {
                return super::print_json(&done);
            }
            println!(
                "exported {} images of {} classes ({}-d, {:?}) into table {}; checkpoint {}",
                done.rows, done.classes, done.dim, done.distance, done.table, done.checkpoint
            );
            Ok(())
        }
    }
}
