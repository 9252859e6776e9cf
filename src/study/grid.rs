//! The study grid on disk: `study.toml` (settings), `findings.toml` (the reference's
//! claims) and one folder per dataset holding one experiment TOML per reference row.

use super::page_text::PageText;
use crate::config::ExperimentConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `study.toml`: how the grid is run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySettings {
    /// File stem of the baseline row (present in every dataset folder).
    pub baseline: String,
    /// Seeds of the baseline and of rows whose effect is small; the first is each
    /// row's own seed.
    pub seeds: Vec<u64>,
    /// Rows whose precision@1 differs from the baseline by less than this many points
    /// after their first seed also run the other seeds.
    pub small_effect_points: f64,
    /// Single-image predictions timed per experiment.
    #[serde(default = "default_latency_images")]
    pub latency_images: usize,
    /// Correct and incorrect test images explained per experiment.
    #[serde(default = "default_explain_samples")]
    pub explain_samples: usize,
    /// Nearest-neighbour galleries per phase: held-out test images, and misclassified
    /// ones at most (fewer than `dmlviz project`'s defaults: the site holds every row).
    #[serde(default = "default_gallery_unseen")]
    pub gallery_unseen: usize,
    #[serde(default = "default_gallery_misclassified")]
    pub gallery_misclassified: usize,
}

impl StudySettings {
    /// Whether a run at `seed` is a replica (for the spread) rather than the row's own run.
    pub fn is_replica(&self, seed: u64) -> bool {
        seed != self.seeds[0]
    }
}

fn default_gallery_unseen() -> usize {
    8
}

fn default_gallery_misclassified() -> usize {
    12
}

fn default_latency_images() -> usize {
    20
}

fn default_explain_samples() -> usize {
    4
}

/// What a finding expects of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    Increase,
    Decrease,
    NoEffect,
    /// The row's own value is above zero (e.g. a precision drop exists).
    Positive,
    /// The claim has no number to test.
    Qualitative,
}

/// The metric a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StudyMetric {
    /// precision@1 over all classes of the model trained on all classes.
    #[serde(rename = "precision_at_1")]
    PrecisionAt1,
    /// Mean over the held-out classes of P@1(all-classes model) − P@1(limited model).
    PrecisionDropUnseen,
    /// The same mean over every class.
    PrecisionDropAll,
}

impl StudyMetric {
    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            StudyMetric::PrecisionAt1 => "precision@1",
            StudyMetric::PrecisionDropUnseen => "precision drop, unseen classes",
            StudyMetric::PrecisionDropAll => "precision drop, all classes",
        }
    }
}

/// One deduction of the reference README, as a claim measurable here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// Study row (file stem) the claim is about.
    pub row: String,
    /// The reference row it mirrors.
    pub reference_row: String,
    /// The reference's deduction, in its words (shortened).
    pub deduction: String,
    pub metric: StudyMetric,
    pub expect: Expectation,
    /// Row compared with (default: the baseline).
    #[serde(default)]
    pub against: Option<String>,
    /// The change the reference reports, in points.
    #[serde(default)]
    pub reference_points: Option<f64>,
    /// Why our test differs from the reference's (a substitution).
    #[serde(default)]
    pub caveat: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsFile {
    finding: Vec<Finding>,
}

/// One experiment of the grid: a dataset folder and a row.
#[derive(Debug, Clone)]
pub struct GridExperiment {
    /// Dataset folder name (e.g. `emoji`).
    pub dataset: String,
    /// Row name: the TOML's file stem.
    pub row: String,
    pub config_path: PathBuf,
    pub config: ExperimentConfig,
}

/// The whole grid.
#[derive(Debug, Clone)]
pub struct StudyGrid {
    pub root: PathBuf,
    pub settings: StudySettings,
    pub findings: Vec<Finding>,
    pub experiments: Vec<GridExperiment>,
    /// The study page's wording (`page.toml`).
    pub page: PageText,
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The experiments of one dataset folder: every TOML in it, parsed and validated, in
/// file-name order.
fn load_folder(folder: &Path, dataset: &str) -> Result<Vec<GridExperiment>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("listing {}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut experiments = Vec::new();
    for path in files {
        let config = ExperimentConfig::load(&path)?;
        config
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        let row = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        experiments.push(GridExperiment {
            dataset: dataset.to_string(),
            row,
            config_path: path,
            config,
        });
    }
    Ok(experiments)
}

impl StudyGrid {
    /// Reads a grid directory; every config is parsed and validated, every finding's
    /// rows must exist, and every dataset folder must have the baseline row.
    pub fn load(root: &Path) -> Result<StudyGrid> {
        let settings: StudySettings = read_toml(&root.join("study.toml"))?;
        if settings.seeds.is_empty() {
            bail!(
                "{}: seeds must list at least one seed",
                root.join("study.toml").display()
            );
        }
        let findings = read_toml::<FindingsFile>(&root.join("findings.toml"))?.finding;
        let mut folders: Vec<PathBuf> = std::fs::read_dir(root)
            .with_context(|| format!("listing {}", root.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        folders.sort();
        let mut experiments = Vec::new();
        for folder in folders {
            let dataset = folder
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            experiments.extend(load_folder(&folder, &dataset)?);
            if !experiments
                .iter()
                .any(|e| e.dataset == dataset && e.row == settings.baseline)
            {
                bail!(
                    "{}: no baseline row {}.toml (study.toml baseline)",
                    folder.display(),
                    settings.baseline
                );
            }
        }
        if experiments.is_empty() {
            bail!(
                "{}: no dataset folders with experiment TOMLs",
                root.display()
            );
        }
        let rows: std::collections::HashSet<&str> =
            experiments.iter().map(|e| e.row.as_str()).collect();
        for f in &findings {
            for name in std::iter::once(&f.row).chain(f.against.as_ref()) {
                if !rows.contains(name.as_str()) {
                    bail!(
                        "{}: finding about {:?} names row {name:?}, which no dataset folder has",
                        root.join("findings.toml").display(),
                        f.deduction
                    );
                }
            }
        }
        let page = PageText::load(root, &rows.iter().copied().collect::<Vec<_>>())?;
        Ok(StudyGrid {
            root: root.to_path_buf(),
            settings,
            findings,
            experiments,
            page,
        })
    }

    /// Dataset folder names, in order.
    pub fn datasets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.experiments {
            if !out.contains(&e.dataset) {
                out.push(e.dataset.clone());
            }
        }
        out
    }

    /// The run directory of an experiment at a seed: `<runs>/<dataset>/<row>` for the
    /// row's own (first) seed, `<row>-seed<N>` for the others.
    pub fn run_dir(&self, runs: &Path, e: &GridExperiment, seed: u64) -> PathBuf {
        let name = if !self.settings.is_replica(seed) {
            e.row.clone()
        } else {
            format!("{}-seed{seed}", e.row)
        };
        runs.join(&e.dataset).join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_grid_loads_and_every_finding_names_real_rows() {
        let grid =
            StudyGrid::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/study"))
                .unwrap();
        assert_eq!(
            grid.datasets(),
            vec!["cards".to_string(), "emoji".to_string()]
        );
        // Every reference row has a study row in each dataset.
        for d in grid.datasets() {
            assert_eq!(
                grid.experiments.iter().filter(|e| e.dataset == d).count(),
                16,
                "{d}"
            );
        }
        assert!(grid.findings.len() >= 15);
        assert_eq!(grid.page.questions.len(), 7, "page.toml's questions");
        let e = &grid.experiments[0];
        assert!(grid
            .run_dir(Path::new("r"), e, 43)
            .ends_with(format!("{}-seed43", e.row)));
        assert!(grid.run_dir(Path::new("r"), e, 42).ends_with(&e.row));
    }

    #[test]
    fn unknown_keys_and_missing_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("study.toml"),
            "baseline = \"b\"\nseeds = [1]\nsmall_effect_points = 5\ncolour = 1\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("findings.toml"), "finding = []\n").unwrap();
        let err = format!("{:#}", StudyGrid::load(dir.path()).unwrap_err());
        assert!(
            err.contains("study.toml") && err.contains("colour"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("study.toml"),
            "baseline = \"b\"\nseeds = [1]\nsmall_effect_points = 5\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("cards")).unwrap();
        let err = format!("{:#}", StudyGrid::load(dir.path()).unwrap_err());
        assert!(err.contains("no baseline row b.toml"), "{err}");
    }
}
