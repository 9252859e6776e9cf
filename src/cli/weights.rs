//! `dmlviz weights import`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use dmlviz::model::import::{load_into, read_pth, write_safetensors, ImportOptions};
use dmlviz::model::{Arch, Backbone};
use std::path::PathBuf;
use tch::nn;

#[derive(Args)]
pub struct WeightsArgs {
    #[command(subcommand)]
    command: WeightsCommand,
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Import a PyTorch state_dict (.pth, zip or legacy format) with torchvision names
    /// into a safetensors file that `init = "imagenet"` loads.
    #[command(
        after_help = "Example:\n  dmlviz weights import .cache/weights/mobilenet_v2-b0353104.pth --arch mobilenet_v2 \\\n      --out weights/mobilenet_v2-imagenet.safetensors"
    )]
    Import {
        file: PathBuf,
        /// Architecture the file is for: resnet18, resnet50, mobilenet_v2.
        #[arg(long)]
        arch: Arch,
        #[arg(long)]
        out: PathBuf,
        /// Load what fits and report the rest instead of refusing a mismatch.
        #[arg(long)]
        partial: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: WeightsArgs) -> Result<()> {
    match args.command {
        WeightsCommand::Import {
            file,
            arch,
            out,
            partial,
            json,
        } => {
            let tensors = read_pth(&file)?;
            let mut vs = nn::VarStore::new(tch::Device::Cpu);
            let _backbone = Backbone::new(&vs.root(), arch);
            let classifier: Vec<String> = arch
                .classifier_prefixes()
                .iter()
                .map(|p| p.to_string())
                .collect();
            let opts = ImportOptions {
                partial,
                ignore_prefixes: classifier.clone(),
                add_prefix: String::new(),
            };
            let report = load_into(&mut vs, &tensors, &opts)
                .with_context(|| format!("importing {} as {arch}", file.display()))?;
            // The backbone as loaded, plus the file's ImageNet classifier as it is (it
            // gives ImageNet predictions; training ignores it).
            let mut named: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
            named.extend(
                tensors
                    .into_iter()
                    .filter(|(n, _)| classifier.iter().any(|p| n.starts_with(p.as_str()))),
            );
            named.sort_by(|a, b| a.0.cmp(&b.0));
            write_safetensors(&out, &named)?;
            if json {
                return super::print_json(&serde_json::json!({
                    "loaded": report.loaded.len(), "missing": report.missing, "unexpected": report.unexpected,
                    "mismatched": report.mismatched, "out": out,
                }));
            }
            println!(
                "{}: {} tensors loaded into {arch}, written to {}",
                file.display(),
                report.loaded.len(),
                out.display()
            );
            for m in &report.missing {
                println!("  missing {m} (left as initialised)");
            }
            for u in &report.unexpected {
                println!("  unexpected {u} (ignored)");
            }
            for (n, f, m) in &report.mismatched {
                println!("  mis-shaped {n}: file {f:?}, model {m:?} (left as initialised)");
            }
            Ok(())
        }
    }
}
