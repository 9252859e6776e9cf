//! `dmlviz import model`: a PyTorch embedding network's `state_dict` becomes a run
//! directory that eval, explain, project, predict, index and report read like a trained
//! run: `config.toml` describing the network, `phase-all/checkpoint.safetensors` with the
//! weights under dmlviz's names, and `provenance.json` saying where they came from
//! (docs/DESIGN.md, "Imported runs").

use super::keys::{dmlviz_name, Rewrite};
use super::{imported_config, new_run_dir};
use crate::config::{DataConfig, ExperimentConfig, Init, ModelConfig, Phase, SplitKind};
use crate::data::Dataset;
use crate::eval::run_eval::evaluate_run;
use crate::model::import::{load_into, read_pth, ImportOptions, ImportReport};
use crate::model::Arch;
use crate::run::lock::RunLock;
use crate::run::metrics::PhaseMetrics;
use crate::run::provenance::{now_unix, Provenance, KIND_MODEL};
use crate::run::record::SCHEMA_VERSION;
use crate::run::RunDir;
use crate::search::Distance;
use crate::train::model::{Model, ModelSpec};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The embedding head of `--head`: `linear:D`, then optionally `,bn` (a 1-D BatchNorm
/// on the embedding) and `,l2` (L2 normalisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadSpec {
    /// Embedding dimension D.
    pub embedding_dim: i64,
    /// A 1-D BatchNorm after the linear layer.
    pub batch_norm: bool,
    /// L2 normalisation of the embedding.
    pub l2: bool,
}

impl std::str::FromStr for HeadSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<HeadSpec> {
        let mut parts = s.split(',').map(str::trim);
        let usage = "expected linear:D[,bn][,l2], e.g. linear:512 or linear:128,bn,l2";
        let dim = parts
            .next()
            .and_then(|p| p.strip_prefix("linear:"))
            .and_then(|d| d.parse::<i64>().ok())
            .with_context(|| format!("--head {s:?}: {usage}"))?;
        let mut head = HeadSpec {
            embedding_dim: dim,
            batch_norm: false,
            l2: false,
        };
        for p in parts {
            match p {
                "bn" => head.batch_norm = true,
                "l2" => head.l2 = true,
                other => bail!("--head {s:?}: unknown part {other:?}; {usage}"),
            }
        }
        Ok(head)
    }
}

impl std::fmt::Display for HeadSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "linear:{}", self.embedding_dim)?;
        if self.batch_norm {
            write!(f, ",bn")?;
        }
        if self.l2 {
            write!(f, ",l2")?;
        }
        Ok(())
    }
}

/// What `dmlviz import model` was asked to do.
#[derive(Debug, Clone)]
pub struct ModelImport {
    /// The state_dict: `.pth`/`.pt` (zip or legacy `torch.save`) or `.safetensors`.
    pub weights: PathBuf,
    /// The backbone.
    pub arch: Arch,
    /// The head.
    pub head: HeadSpec,
    /// The distance the embeddings are compared with.
    pub distance: Distance,
    /// The dataset (one folder per class, or CUB layout), split as training splits it.
    pub data: PathBuf,
    /// Network input side in pixels (resize and centre crop).
    pub image_size: u32,
    /// Share of each class held out as test images.
    pub test_ratio: f64,
    /// The dataset's own split (CUB's `train_test_split.txt`) instead of a stratified one.
    pub official_split: bool,
    /// Seed of the stratified split.
    pub seed: u64,
    /// `--map OLD=NEW` rules, tried in order.
    pub rewrites: Vec<Rewrite>,
    /// Load what fits and record the rest instead of refusing.
    pub partial: bool,
    /// The new run directory.
    pub out: PathBuf,
    /// Evaluate the run at once (metrics, tables, stored embeddings), as training does.
    pub evaluate: bool,
}

/// What an import did.
#[derive(Debug)]
pub struct ImportedModel {
    /// The run written.
    pub run: RunDir,
    /// What was loaded, missing, unexpected and mis-shaped (the last three only with
    /// `--partial`), by dmlviz name.
    pub report: ImportReport,
    /// The record written as `provenance.json`.
    pub provenance: Provenance,
    /// The evaluation, when asked for.
    pub metrics: Vec<PhaseMetrics>,
}

/// The named tensors of a state_dict file, by its extension.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let safetensors = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if safetensors {
        crate::tensor_io::read_safetensors(path)
    } else {
        read_pth(path)
    }
}

/// The experiment config that describes the imported network: the model section is the
/// network, the data section how eval splits `--data`; the loss (parameter-free) and
/// the training section are never used, training being refused on it.
fn import_config(opts: &ModelImport, name: &str) -> Result<ExperimentConfig> {
    // dmlviz L2-normalises exactly when the distance is cosine (`ModelSpec::from_config`):
    // a cosine model without L2 gets it (its cosine neighbours do not change), a
    // Euclidean model with L2 cannot be described.
    if opts.head.l2 && !opts.distance.normalizes() {
        bail!(
            "--head {} with --distance euclidean: dmlviz L2-normalises embeddings exactly when              the distance is cosine; use --distance cosine for an L2-normalised model",
            opts.head
        );
    }
    let description = format!("weights imported from {}", opts.weights.display());
    let data = DataConfig {
        path: opts.data.clone(),
        fetch: None,
        split: if opts.official_split {
            SplitKind::Official
        } else {
            SplitKind::Stratified
        },
        test_ratio: opts.test_ratio,
        held_out_classes: 0,
        image_size: opts.image_size,
        resize: None,
        augment: false,
        cache_images: true,
    };
    let model = ModelConfig {
        backbone: opts.arch,
        init: Init::Scratch,
        weights: None,
        distance: opts.distance,
        embedding_dim: opts.head.embedding_dim,
        batch_norm: opts.head.batch_norm,
        skip_connection: false,
        frozen_bn: false,
    };
    imported_config(name, description, data, model, opts.seed)
}

/// `cosine` or `euclidean`, as the command line spells it.
pub fn distance_name(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "cosine",
        Distance::Euclidean => "euclidean",
    }
}

/// Loads the file's tensors, renamed, into `model`. Refuses (naming every problem, each
/// file entry by its own name and the name it was mapped to) unless `partial`.
/// Long: the refusal message lists five kinds of problem, each in its own words.
fn load_renamed(
    model: &mut Model,
    tensors: Vec<(String, Tensor)>,
    opts: &ModelImport,
) -> Result<ImportReport> {
    let mut original: HashMap<String, String> = HashMap::new();
    let mut renamed = Vec::with_capacity(tensors.len());
    let mut clashes = Vec::new();
    for (name, tensor) in tensors {
        let target = dmlviz_name(&name, opts.arch, &opts.rewrites);
        if let Some(first) = original.get(&target) {
            clashes.push(format!("{first} and {name} (both {target})"));
            continue;
        }
        original.insert(target.clone(), name);
        renamed.push((target, tensor));
    }
    if !clashes.is_empty() {
        bail!(
            "{}: entries map onto the same variable: {}; drop one with --map",
            opts.weights.display(),
            clashes.join(", ")
        );
    }
    let load = ImportOptions {
        partial: true,
        ignore_prefixes: Vec::new(),
        add_prefix: String::new(),
    };
    let as_named = |n: &String| match original.get(n) {
        Some(o) if o != n => format!("{o} (as {n})"),
        _ => n.clone(),
    };
    let report = load_into(&mut model.vs, &renamed, &load)
        .with_context(|| format!("importing {}", opts.weights.display()))?;
    if !opts.partial {
        let mut problems = Vec::new();
        if !report.missing.is_empty() {
            problems.push(format!(
                "missing from the file: {}",
                report.missing.join(", ")
            ));
        }
        if !report.unexpected.is_empty() {
            let names: Vec<String> = report.unexpected.iter().map(as_named).collect();
            problems.push(format!(
                "not in a {} network: {}",
                opts.arch,
                names.join(", ")
            ));
        }
        if !report.mismatched.is_empty() {
            let names: Vec<String> = report
                .mismatched
                .iter()
                .map(|(n, file, model)| format!("{} (file {file:?}, model {model:?})", as_named(n)))
                .collect();
            problems.push(format!("shape mismatch: {}", names.join(", ")));
        }
        if !problems.is_empty() {
            bail!(
                "{} does not fit a {} network with head {} (nothing written; --partial \
                 imports what fits, --map OLD=NEW renames):\n  {}",
                opts.weights.display(),
                opts.arch,
                opts.head,
                problems.join("\n  ")
            );
        }
    }
    Ok(report)
}

/// Imports the network: checks everything (file, names, shapes, dataset) before
/// writing, then writes the run under its writer lock, and evaluates it when asked.
pub fn import_model(opts: &ModelImport) -> Result<ImportedModel> {
    let run = new_run_dir(&opts.out)?;
    let name = run_name(&opts.out);
    let cfg = import_config(opts, &name)?;
    let tensors = read_state_dict(&opts.weights)?;
    let dataset = Dataset::open(&opts.data)
        .with_context(|| format!("opening the dataset {}", opts.data.display()))?;
    let spec = ModelSpec::from_config(&cfg, dataset.classes.len() as i64);
    let mut model = Model::new(&spec, &cfg.loss, tch::Device::Cpu, cfg.training.seed)?;
    let report = load_renamed(&mut model, tensors, opts)?;

    let provenance = Provenance {
        schema_version: SCHEMA_VERSION,
        kind: KIND_MODEL.into(),
        sources: vec![opts.weights.clone()],
        imported_at_unix: now_unix(),
        dmlviz: env!("CARGO_PKG_VERSION").into(),
        settings: {
            let mut s = vec![
                format!("arch = {}", opts.arch),
                format!("head = {}", opts.head),
                format!("distance = {}", distance_name(opts.distance)),
                format!("partial = {}", opts.partial),
            ];
            s.extend(opts.rewrites.iter().map(|r| format!("map = {r}")));
            s
        },
        loaded: report.loaded.len(),
        missing: report.missing.clone(),
        unexpected: report.unexpected.clone(),
        mismatched: report
            .mismatched
            .iter()
            .map(|(n, file, model)| format!("{n} (file {file:?}, model {model:?})"))
            .collect(),
    };
    let _lock = RunLock::acquire(&run.root, "import model")?;
    run.write_config(&cfg)?;
    crate::atomic::write_json(&run.provenance(), &provenance)?;
    model.save_checkpoint(&run.phase(Phase::All).checkpoint())?;
    let metrics = if opts.evaluate {
        evaluate_run(&run, tch::Device::Cpu)
            .with_context(|| {
                format!(
                    "the weights were imported into {}, but evaluating them failed",
                    run.root.display()
                )
            })?
            .0
    } else {
        Vec::new()
    };
    Ok(ImportedModel {
        run,
        report,
        provenance,
        metrics,
    })
}

/// The run's name: its folder name.
pub(crate) fn run_name(out: &Path) -> String {
    out.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "imported".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_specs_parse_and_print() {
        let h: HeadSpec = "linear:512".parse().unwrap();
        assert_eq!((h.embedding_dim, h.batch_norm, h.l2), (512, false, false));
        let h: HeadSpec = "linear:128,bn,l2".parse().unwrap();
        assert_eq!((h.embedding_dim, h.batch_norm, h.l2), (128, true, true));
        assert_eq!(h.to_string(), "linear:128,bn,l2");
        for bad in ["mlp:3", "linear:", "linear:x", "linear:8,relu"] {
            let err = bad.parse::<HeadSpec>().unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("linear:D"), "{err}");
        }
    }
}
