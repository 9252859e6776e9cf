//! Reading a run directory defensively into a [`RunSummary`]: every file is optional,
//! a file that cannot be parsed becomes a named problem on the page instead of an
//! error, so a stopped, partial or half-evaluated run still gets its page.
//!
//! The JSON written by `eval`, `project` and `explain` is read through small structs
//! of this module (every field defaulted, unknown fields ignored): the report keeps
//! working while those layers add fields.

use crate::config::{ExperimentConfig, Phase};
use crate::run::{RunDir, TrainState};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One epoch of `history.jsonl`, read leniently: a value written as `null`
/// (a non-finite number) is `None` instead of failing the whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HistoryPoint {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss of the epoch.
    pub train_loss: Option<f64>,
    /// precision@1 on all classes' test images.
    pub test_accuracy: Option<f64>,
    /// precision@1 on the held-out classes' test images (phase-seen).
    pub test_accuracy_unseen: Option<f64>,
    /// Backbone learning rate.
    pub lr: Option<f64>,
    /// Training throughput.
    pub images_per_s: Option<f64>,
    /// Wall-clock seconds of the epoch.
    pub seconds: Option<f64>,
}

/// A value at a cut-off `k` (Recall@k, majority vote of k neighbours).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AtK {
    /// The cut-off.
    pub k: usize,
    /// The value at that cut-off.
    pub value: f64,
}

/// The retrieval part of `metrics.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Retrieval {
    /// Test queries.
    pub queries: usize,
    /// Queries whose class has at least one reference image.
    pub evaluated_queries: usize,
    /// precision@1 (the reference's test accuracy).
    pub precision_at_1: Option<f64>,
    /// Recall@k for several k.
    pub recall_at_k: Vec<AtK>,
    /// R-precision.
    pub r_precision: Option<f64>,
    /// MAP@R.
    pub map_at_r: Option<f64>,
    /// Mean reciprocal rank.
    pub mean_reciprocal_rank: Option<f64>,
    /// Accuracy of the majority vote of the k nearest neighbours.
    pub majority_vote_accuracy: Vec<AtK>,
}

/// The clustering part of `metrics.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Clustering {
    /// Normalised mutual information of k-means clusters and classes.
    pub nmi: Option<f64>,
    /// Adjusted mutual information.
    pub ami: Option<f64>,
    /// Why NMI/AMI are absent or not meaningful.
    pub note: Option<String>,
}

/// One class's row of `metrics.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ClassRow {
    /// Class name.
    pub class: String,
    /// Test images.
    pub test_count: usize,
    /// Training (reference) images.
    pub train_count: usize,
    /// precision@1 of the class's test images.
    pub precision_at_1: f64,
}

/// `metrics.json` of a phase (written by `dmlviz eval`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PhaseMetrics {
    /// Nearest-neighbour metrics.
    pub retrieval: Retrieval,
    /// k-means clustering metrics.
    pub clustering: Clustering,
    /// Accuracy of the loss's own class logits, for losses with class parameters.
    pub logits_accuracy: Option<f64>,
    /// precision@1 over the held-out classes (phase-seen).
    pub unseen_precision_at_1: Option<f64>,
    /// Every class, in class-index order.
    pub classes: Vec<ClassRow>,
}

/// `comparison/precision_drop.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PrecisionDrop {
    /// Mean P@1 drop over the held-out classes.
    pub precision_drop_unseen_classes: Option<f64>,
    /// Mean P@1 drop over every class.
    pub precision_drop_all_classes: Option<f64>,
    /// The held-out classes.
    pub held_out_classes: Vec<String>,
}

/// A projection's `<method>.json` (written by `dmlviz project`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProjectionInfo {
    /// `umap` or `tsne`.
    pub method: String,
    /// Points drawn.
    pub points: Option<usize>,
    /// Seconds the projection took.
    pub seconds: Option<f64>,
    /// Trustworthiness of the 2-D layout.
    pub trustworthiness: Option<f64>,
    /// Share of 2-D neighbours with the same label.
    pub knn_label_agreement: Option<f64>,
}

/// One projection found in `projections/`, with the files present.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    /// File stem (`umap`, `tsne`).
    pub method: String,
    /// Its JSON summary, if readable.
    pub info: Option<ProjectionInfo>,
    /// Which of `png`, `svg`, `html`, `csv`, `thumbnails.png` (`<method>-thumbnails.png`) exist.
    pub files: Vec<String>,
}

/// A neighbour of a gallery query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GalleryNeighbour {
    /// Class of the neighbour.
    pub class: String,
    /// Distance to the query.
    pub distance: Option<f64>,
    /// Same class as the query.
    pub correct: bool,
}

/// One query of `galleries/galleries.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GalleryItem {
    /// Anchor id in `galleries/index.html` (`q<N>`), derived from `query` when absent.
    pub id: Option<String>,
    /// The query: its image path (or, in older files, its index).
    pub query: Option<serde_json::Value>,
    /// True class.
    pub true_class: String,
    /// Class of the nearest neighbour.
    pub predicted: String,
    /// Majority-vote class.
    pub majority: Option<String>,
    /// Nearest neighbour has the true class.
    pub correct: bool,
    /// The query's class was held out from training.
    pub unseen: bool,
    /// Contact sheet image, relative to `galleries/`.
    pub sheet: Option<String>,
    /// Nearest neighbours.
    pub neighbours: Vec<GalleryNeighbour>,
}

/// `galleries/galleries.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Galleries {
    /// The queries shown.
    pub items: Vec<GalleryItem>,
}

/// One explained image of `explanations/explanations.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExplanationItem {
    /// The image explained (its dataset path).
    pub image: String,
    /// True class, when known.
    pub true_class: Option<String>,
    /// Predicted class.
    pub predicted: Option<String>,
    /// Prediction correct.
    pub correct: Option<bool>,
    /// Map name (`gradcam`, `guided`, ...) → image path relative to `explanations/`.
    pub maps: std::collections::BTreeMap<String, String>,
    /// Map name → `ok`, or why the map is flat (`constant`, `zero`, `non_finite`).
    pub status: std::collections::BTreeMap<String, String>,
    /// The image's class was held out of the phase's training.
    pub unseen_class: bool,
    /// The item's own folder (with its page), relative to `explanations/`.
    pub dir: Option<String>,
}

/// `explanations/explanations.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Explanations {
    /// The explained images.
    pub items: Vec<ExplanationItem>,
}

/// Everything the report knows about one phase.
#[derive(Debug, Clone)]
pub struct PhaseSummary {
    /// Which phase.
    pub phase: Phase,
    /// The phase directory.
    pub root: PathBuf,
    /// `train-state.json`.
    pub state: Option<TrainState>,
    /// `history.jsonl`, lines that could not be read left out (and named in `problems`).
    pub history: Vec<HistoryPoint>,
    /// `metrics.json`.
    pub metrics: Option<PhaseMetrics>,
    /// `projections/*`.
    pub projections: Vec<Projection>,
    /// `galleries/galleries.json`.
    pub galleries: Option<Galleries>,
    /// `explanations/explanations.json`.
    pub explanations: Option<Explanations>,
    /// Files that exist but could not be read, each with the reason.
    pub problems: Vec<String>,
}

/// How far a phase got, for labels on the pages.
#[derive(Debug, Clone, PartialEq)]
pub enum PhaseStatus {
    /// Not trained at all.
    Missing,
    /// All epochs trained.
    Finished,
    /// Stopped early, with the reason (interrupted, non-finite loss).
    Stopped(String),
    /// Some epochs trained, not finished (still running or killed).
    Partial {
        /// Epochs completed.
        done: usize,
        /// Epochs planned.
        total: usize,
    },
}

impl PhaseSummary {
    /// The phase's training status.
    pub fn status(&self) -> PhaseStatus {
        match &self.state {
            None if self.history.is_empty() => PhaseStatus::Missing,
            None => PhaseStatus::Partial {
                done: self.history.len(),
                total: 0,
            },
            Some(s) if s.stopped.is_some() => {
                PhaseStatus::Stopped(s.stopped.clone().unwrap_or_default())
            }
            Some(s) if s.finished => PhaseStatus::Finished,
            Some(s) => PhaseStatus::Partial {
                done: s.epochs_done,
                total: s.epochs_total,
            },
        }
    }

    /// Wall-clock training seconds (sum over the epochs recorded).
    pub fn seconds(&self) -> f64 {
        self.history
            .iter()
            .filter_map(|h| h.seconds)
            .filter(|s| s.is_finite())
            .sum()
    }

    /// precision@1 on all classes, from `metrics.json`, else the last epoch.
    pub fn precision_at_1(&self) -> Option<f64> {
        self.metrics
            .as_ref()
            .and_then(|m| m.retrieval.precision_at_1)
            .or_else(|| self.history.last().and_then(|h| h.test_accuracy))
    }
}

/// Everything the report knows about one run directory.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run's name: its directory name.
    pub name: String,
    /// The run directory.
    pub root: PathBuf,
    /// `config.toml`, parsed.
    pub config: Option<ExperimentConfig>,
    /// `config.toml` as written.
    pub config_text: Option<String>,
    /// The phases whose directory exists, `all` first.
    pub phases: Vec<PhaseSummary>,
    /// `comparison/precision_drop.json`.
    pub comparison: Option<PrecisionDrop>,
    /// The user's notes (`deductions.md`), raw.
    pub deductions: Option<String>,
    /// The training machine (`hardware.json`, written by `dmlviz train`).
    pub hardware: Option<crate::report::hardware::Hardware>,
    /// Files that exist but could not be read, each with the reason.
    pub problems: Vec<String>,
}

impl RunSummary {
    /// The phase, if its directory exists.
    pub fn phase(&self, phase: Phase) -> Option<&PhaseSummary> {
        self.phases.iter().find(|p| p.phase == phase)
    }

    /// Total training seconds over the phases.
    pub fn training_seconds(&self) -> f64 {
        self.phases.iter().map(PhaseSummary::seconds).sum()
    }

    /// The phases the config asks for (both when the config is unreadable).
    pub fn planned_phases(&self) -> Vec<Phase> {
        self.config
            .as_ref()
            .map(|c| c.training.phases.clone())
            .unwrap_or_else(|| vec![Phase::All, Phase::Seen])
    }

    /// One line on how complete the run is: `finished`, or what is missing.
    pub fn status_line(&self) -> String {
        let mut parts = Vec::new();
        for phase in self.planned_phases() {
            let name = phase.dir_name();
            match self
                .phase(phase)
                .map(PhaseSummary::status)
                .unwrap_or(PhaseStatus::Missing)
            {
                PhaseStatus::Finished => {
                    if self.phase(phase).is_some_and(|p| p.metrics.is_none()) {
                        parts.push(format!("{name}: not evaluated"));
                    }
                }
                PhaseStatus::Missing => parts.push(format!("{name}: not trained")),
                PhaseStatus::Stopped(why) => parts.push(format!("{name}: stopped ({why})")),
                PhaseStatus::Partial { done, total } if total > 0 => {
                    parts.push(format!("{name}: {done}/{total} epochs"))
                }
                PhaseStatus::Partial { done, .. } => {
                    parts.push(format!("{name}: {done} epochs, no train-state.json"))
                }
            }
        }
        if self.config.is_none() {
            parts.insert(0, "config.toml unreadable".into());
        }
        if parts.is_empty() {
            "finished".into()
        } else {
            parts.join("; ")
        }
    }

    /// True when every planned phase finished and was evaluated.
    pub fn is_complete(&self) -> bool {
        self.status_line() == "finished"
    }
}

/// Reads a file into a value, or `None` when absent; a parse failure is pushed to
/// `problems` with the file's name.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, problems: &mut Vec<String>) -> Option<T> {
    let text = read_text(path, problems)?;
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// Reads a text file, or `None` when absent; read errors go to `problems`.
pub fn read_text(path: &Path, problems: &mut Vec<String>) -> Option<String> {
    if !path.exists() {
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// Reads `history.jsonl` line by line; unreadable lines are named in `problems`.
fn read_history(path: &Path, problems: &mut Vec<String>) -> Vec<HistoryPoint> {
    let Some(text) = read_text(path, problems) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<HistoryPoint>(line) {
            Ok(p) => out.push(p),
            Err(e) => problems.push(format!("{} line {}: {e}", path.display(), i + 1)),
        }
    }
    out
}

/// The projections found in `dir` (one per `<method>.json`, `.png` or `.html`).
fn read_projections(dir: &Path, problems: &mut Vec<String>) -> Vec<Projection> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut by_method: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for entry in entries.flatten() {
        let path = entry.path();
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let ext = ext.to_string_lossy().to_ascii_lowercase();
        if ["json", "png", "svg", "html", "csv"].contains(&ext.as_str()) && path.is_file() {
            let stem = stem.to_string_lossy().into_owned();
            if stem == "sprite" || stem == "index" {
                continue;
            }
            // `umap-thumbnails.png`: the map drawn with the images, an extra of `umap`.
            match stem.strip_suffix("-thumbnails") {
                Some(method) if ext == "png" => by_method
                    .entry(method.to_string())
                    .or_default()
                    .push("thumbnails.png".into()),
                _ => by_method.entry(stem).or_default().push(ext),
            }
        }
    }
    by_method
        .into_iter()
        .filter(|(_, files)| files.iter().any(|f| f != "json" && f != "csv"))
        .map(|(method, mut files)| {
            files.sort();
            let info = files
                .iter()
                .any(|f| f == "json")
                .then(|| read_json(&dir.join(format!("{method}.json")), problems))
                .flatten();
            Projection {
                method,
                info,
                files,
            }
        })
        .collect()
}

/// Reads one phase directory.
pub fn read_phase(run: &RunDir, phase: Phase) -> Option<PhaseSummary> {
    let dir = run.phase(phase);
    if !dir.root.is_dir() {
        return None;
    }
    let mut problems = Vec::new();
    let state = read_json::<TrainState>(&dir.state_path(), &mut problems);
    let history = read_history(&dir.history_path(), &mut problems);
    let metrics = read_json::<PhaseMetrics>(&dir.root.join("metrics.json"), &mut problems);
    let projections = read_projections(&dir.root.join("projections"), &mut problems);
    let galleries =
        read_json::<Galleries>(&dir.root.join("galleries/galleries.json"), &mut problems);
    let explanations = read_json::<Explanations>(
        &dir.root.join("explanations/explanations.json"),
        &mut problems,
    );
    Some(PhaseSummary {
        phase,
        root: dir.root,
        state,
        history,
        metrics,
        projections,
        galleries,
        explanations,
        problems,
    })
}

/// Reads a run directory. Never fails: what cannot be read is listed in `problems`.
pub fn read_run(root: &Path) -> RunSummary {
    let run = RunDir::new(root);
    let mut problems = Vec::new();
    let config_text = read_text(&run.config_path(), &mut problems);
    let config = match &config_text {
        Some(text) => match ExperimentConfig::from_toml(text, &run.config_path()) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        },
        None => {
            problems.push(format!("{}: missing", run.config_path().display()));
            None
        }
    };
    let phases = [Phase::All, Phase::Seen]
        .into_iter()
        .filter_map(|p| read_phase(&run, p))
        .collect();
    let comparison = read_json(&root.join("comparison/precision_drop.json"), &mut problems);
    let deductions = crate::report::deductions::read(root, &mut problems);
    let hardware = read_json(
        &root.join(crate::report::hardware::FILE_NAME),
        &mut problems,
    );
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    RunSummary {
        name,
        root: root.to_path_buf(),
        config,
        config_text,
        phases,
        comparison,
        deductions,
        hardware,
        problems,
    }
}

/// The run directories under `runs_dir`, at most [`MAX_RUN_DEPTH`] levels down (those with a `config.toml` or a
/// phase directory), sorted by name.
pub fn list_runs(runs_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context;
    let mut runs = Vec::new();
    let mut folders = vec![(runs_dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("listing runs in {}", folder.display()))?;
        for p in entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
        {
            if crate::run::is_run_dir(&p)
                || p.join("phase-all").is_dir()
                || p.join("phase-seen").is_dir()
            {
                runs.push(p);
            } else if depth < MAX_RUN_DEPTH {
                // Grids keep their runs in sub-folders (runs/study/<dataset>/<row>).
                folders.push((p, depth + 1));
            }
        }
    }
    runs.sort();
    Ok(runs)
}

/// How many folder levels below the runs directory are searched for runs.
pub const MAX_RUN_DEPTH: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_with_a_null_loss_is_read_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        std::fs::write(
            &path,
            "{\"epoch\":1,\"train_loss\":null,\"test_accuracy\":0.5,\"lr\":0.1,\"seconds\":2.0}\nnot json\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        let h = read_history(&path, &mut problems);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].train_loss, None);
        assert_eq!(h[0].test_accuracy, Some(0.5));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("line 2"), "{problems:?}");
    }

    #[test]
    fn a_run_without_files_reads_with_problems_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("phase-all")).unwrap();
        std::fs::write(dir.path().join("phase-all/metrics.json"), "{broken").unwrap();
        let run = read_run(dir.path());
        assert!(run.config.is_none());
        assert_eq!(run.phases.len(), 1);
        assert_eq!(run.phases[0].status(), PhaseStatus::Missing);
        assert!(run.phases[0].problems[0].contains("metrics.json"));
        assert!(
            run.status_line().contains("config.toml unreadable"),
            "{}",
            run.status_line()
        );
        assert!(!run.is_complete());
    }

    #[test]
    fn reads_the_project_and_explain_outputs_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let phase = dir.path().join("phase-all");
        std::fs::create_dir_all(phase.join("galleries")).unwrap();
        std::fs::create_dir_all(phase.join("explanations")).unwrap();
        std::fs::create_dir_all(phase.join("projections/tensorboard")).unwrap();
        std::fs::write(
            phase.join("galleries/galleries.json"),
            r#"{"items":[{"id":"q12","query":"data/x/a.png","true_class":"a","predicted":"b","majority":"a","correct":false,"unseen":true,
                "sheet":"q12.jpg","neighbours":[{"path":"p","class":"b","distance":0.1,"correct":false}],"top_classes":[{"class":"b","votes":6}]}]}"#,
        )
        .unwrap();
        std::fs::write(
            phase.join("explanations/explanations.json"),
            r#"{"phase":"all","k":10,"method_notes":"n","items":[{"image":"data/x/a.png","true_class":"a","predicted":"b","correct":false,
                "unseen_class":false,"dir":"01-a","maps":{"image":"01-a/image.png","gradcam":"01-a/gradcam-overlay.png"},
                "status":{"gradcam":"constant"},"neighbours":[{"path":"p","class":"b","distance":0.1,"thumbnail":"01-a/neighbour-0.jpg"}]}]}"#,
        )
        .unwrap();
        for f in [
            "umap.json",
            "umap.png",
            "umap.html",
            "umap-thumbnails.png",
            "sprite.jpg",
            "sprite.json",
        ] {
            std::fs::write(
                phase.join("projections").join(f),
                if f.ends_with("json") {
                    "{\"method\":\"umap\",\"trustworthiness\":0.9}"
                } else {
                    ""
                },
            )
            .unwrap();
        }
        let p = read_phase(&RunDir::new(dir.path()), Phase::All).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let g = p.galleries.unwrap();
        assert_eq!(
            (
                g.items[0].id.as_deref(),
                g.items[0].unseen,
                g.items[0].sheet.as_deref()
            ),
            (Some("q12"), true, Some("q12.jpg"))
        );
        let e = p.explanations.unwrap();
        assert_eq!(e.items[0].status["gradcam"], "constant");
        assert_eq!(e.items[0].dir.as_deref(), Some("01-a"));
        assert_eq!(p.projections.len(), 1, "sprite is not a projection");
        assert_eq!(p.projections[0].method, "umap");
        assert!(
            p.projections[0]
                .files
                .contains(&"thumbnails.png".to_string()),
            "{:?}",
            p.projections[0].files
        );
        assert_eq!(
            p.projections[0].info.as_ref().unwrap().trustworthiness,
            Some(0.9)
        );
    }
}
