//! `dmlviz data fetch|summary`.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use dmlviz::data::fetch::spec::DEFAULT_CACHE;
use dmlviz::data::fetch::FetchSpec;
use dmlviz::data::Dataset;
use std::path::PathBuf;

#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum Source {
    /// npm emoji-datasource-{google,twitter,facebook,apple}: one class per emoji, one image per vendor.
    Emoji,
    /// Debian kdegames-card-data-kf5: 52 card classes × 16 deck styles.
    Cards,
    /// Debian dataset-fashion-mnist: 70 000 grey 28×28 images, 10 classes.
    FashionMnist,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Build a real dataset from its registry package into the image-folder layout.
    #[command(
        after_help = "Examples:\n  dmlviz data fetch emoji --category \"Animals & Nature\"\n  dmlviz data fetch cards --out data/cards\n  dmlviz data fetch fashion-mnist --per-class 200"
    )]
    Fetch {
        source: Source,
        /// Output directory (default data/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where downloaded packages are kept between runs.
        #[arg(long, default_value = DEFAULT_CACHE)]
        cache: PathBuf,
        /// emoji: vendors whose images form the classes (an emoji must exist in all;
        /// default google,twitter,facebook,apple).
        #[arg(long, value_delimiter = ',')]
        vendors: Option<Vec<String>>,
        /// emoji: keep one category only, e.g. "Animals & Nature".
        #[arg(long)]
        category: Option<String>,
        /// cards: image height in pixels.
        #[arg(long, default_value_t = 128)]
        height: u32,
        /// cards: deck names to render (default: all freely licensed decks).
        #[arg(long, value_delimiter = ',')]
        decks: Option<Vec<String>>,
        /// fashion-mnist: keep the first N images of each class.
        #[arg(long)]
        per_class: Option<usize>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Open a dataset (image-folder or CUB-200-2011 layout) and print its summary.
    #[command(after_help = "Example:\n  dmlviz data summary data/emoji")]
    Summary {
        dir: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Fetch {
            source,
            out,
            cache,
            vendors,
            category,
            height,
            decks,
            per_class,
            json,
        } => {
            let spec = match source {
                Source::Emoji => FetchSpec::Emoji { vendors, category },
                Source::Cards => FetchSpec::Cards { height, decks },
                Source::FashionMnist => FetchSpec::FashionMnist { per_class },
            };
            let out = out.unwrap_or_else(|| spec.default_dir());
            let report = spec.fetch(&out, &cache)?;
            if json {
                return super::print_json(&report);
            }
            println!(
                "{}: {} classes, {} images written",
                spec.name(),
                report.classes,
                report.images
            );
            for s in &report.skipped {
                println!("  skipped {s}");
            }
            Ok(())
        }
        DataCommand::Summary { dir, json } => {
            let summary = Dataset::open(&dir)?.summary();
            if json {
                super::print_json(&summary)
            } else {
                print!("{summary}");
                Ok(())
            }
        }
    }
}
