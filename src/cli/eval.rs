//! `dmlviz eval`.

use anyhow::Result;
use clap::Args;
use dmlviz::eval::run_eval::run_eval;
use dmlviz::run::comparison::PrecisionDrop;
use dmlviz::run::metrics::PhaseMetrics;
use dmlviz::run::RunDir;
use std::path::PathBuf;

/// Recompute every metric and table of a run from its checkpoints.
#[derive(Args)]
#[command(after_help = "Example:\n  dmlviz eval --run runs/demo")]
pub struct EvalArgs {
    #[arg(long)]
    run: PathBuf,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: super::DeviceArgs,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let device = args.device.resolve()?;
    dmlviz::progress::set_quiet(args.quiet);
    let run = RunDir::new(&args.run);
    let (phases, comparison) = run_eval(&run, device)?;
    if args.json {
        return super::print_json(
            &serde_json::json!({ "phases": phases, "comparison": comparison }),
        );
    }
    print_summary(&run, &phases, comparison.as_ref());
    Ok(())
}

/// The summary table `eval` (and `train`, after training) prints.
pub fn print_summary(run: &RunDir, phases: &[PhaseMetrics], comparison: Option<&PrecisionDrop>) {
    let fmt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "—".into());
    println!(
        "{:<11} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "phase",
        "P@1",
        "R@2",
        "R@4",
        "R@8",
        "MAP@R",
        "MRR",
        "NMI",
        "AMI",
        "vote@5",
        "logits",
        "unseen"
    );
    for p in phases {
        let r = &p.retrieval;
        let at = |v: &[dmlviz::eval::metrics::AtK], k: usize| {
            v.iter().find(|a| a.k == k).map(|a| a.value)
        };
        println!(
            "{:<11} {:>7.4} {:>7} {:>7} {:>7} {:>7.4} {:>7.4} {:>7} {:>7} {:>7} {:>7} {:>8}",
            p.phase.dir_name(),
            r.precision_at_1,
            fmt(at(&r.recall_at_k, 2)),
            fmt(at(&r.recall_at_k, 4)),
            fmt(at(&r.recall_at_k, 8)),
            r.map_at_r,
            r.mean_reciprocal_rank,
            fmt(p.clustering.nmi),
            fmt(p.clustering.ami),
            fmt(at(&r.majority_vote_accuracy, 5)),
            fmt(p.logits_accuracy),
            fmt(p.unseen_precision_at_1),
        );
        if let Some(note) = &p.clustering.note {
            println!("  NMI/AMI: {note}");
        }
    }
    if let Some(c) = comparison {
        println!(
            "precision drop (all-classes model − limited model): held-out classes {:.4}, all classes {:.4}",
            c.precision_drop_unseen_classes, c.precision_drop_all_classes
        );
    }
    println!("tables written under {}", run.root.display());
}
