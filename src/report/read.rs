//! Reading a run directory defensively into a [`RunSummary`]: every file is optional,
//! a file that cannot be parsed becomes a named problem on the page instead of an
//! error, so a stopped, partial or half-evaluated run still gets its page.
//!
//! Every JSON file is read through its record type in [`crate::run`] (the one its
//! writer serialises), whose reading rules ([`crate::run::record`]) let an older or a
//! newer run open: missing optional fields take defaults, unknown fields are ignored.

use crate::config::{ExperimentConfig, Phase};
use crate::run::comparison::PrecisionDrop;
use crate::run::explanations::ExplanationIndex;
use crate::run::galleries::Galleries;
use crate::run::hardware::Hardware;
use crate::run::metrics::PhaseMetrics;
use crate::run::projections::{ProjectionRecord, MOVES_SUFFIX, SPRITE_STEM, THUMBNAILS_SUFFIX};
use crate::run::record::{read_lines, read_record};
use crate::run::trust::TrustTable;
use crate::run::{EpochRecord, PhaseDir, RunDir, TrainState};
use std::path::{Path, PathBuf};

/// One projection found in `projections/`, with the files present.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    /// File stem (`umap`, `tsne`).
    pub method: String,
    /// Its record (`<method>.json`), if readable.
    pub info: Option<ProjectionRecord>,
    /// Which of `png`, `svg`, `html`, `csv`, `thumbnails.jpg` (`<method>-thumbnails.jpg`)
    /// or, in older runs, `thumbnails.png` exist.
    pub files: Vec<String>,
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
    pub history: Vec<EpochRecord>,
    /// `metrics.json`.
    pub metrics: Option<PhaseMetrics>,
    /// `projections/*`.
    pub projections: Vec<Projection>,
    /// `galleries/galleries.json`.
    pub galleries: Option<Galleries>,
    /// `explanations/explanations.json`.
    pub explanations: Option<ExplanationIndex>,
    /// `explanations/trust.json`: the per-method trust table of the explained sample.
    pub trust: Option<TrustTable>,
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
            .map(|h| h.seconds)
            .filter(|s| s.is_finite())
            .sum()
    }

    /// precision@1 on all classes, from `metrics.json`, else the last epoch.
    pub fn precision_at_1(&self) -> Option<f64> {
        self.metrics
            .as_ref()
            .map(|m| m.retrieval.precision_at_1)
            .or_else(|| self.history.last().map(|h| h.test_accuracy))
            .filter(|p| p.is_finite())
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
    pub hardware: Option<Hardware>,
    /// Where an imported run came from (`provenance.json`); `None` for a run trained here.
    pub provenance: Option<crate::run::provenance::Provenance>,
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
            let status = match self.phase(phase) {
                // An imported phase has no training records: it is complete as imported.
                Some(_) if self.provenance.is_some() => PhaseStatus::Finished,
                Some(p) => p.status(),
                None => PhaseStatus::Missing,
            };
            match status {
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

/// Reads a record, or `None` when absent; a read or parse failure is pushed to
/// `problems` (the message names the file).
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, problems: &mut Vec<String>) -> Option<T> {
    read_record(path).unwrap_or_else(|e| {
        problems.push(format!("{e:#}"));
        None
    })
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
fn read_history(path: &Path, problems: &mut Vec<String>) -> Vec<EpochRecord> {
    let lines = read_lines::<EpochRecord>(path).unwrap_or_else(|e| {
        problems.push(format!("{e:#}"));
        None
    });
    let mut out = Vec::new();
    for line in lines.unwrap_or_default() {
        match line {
            Ok(p) => out.push(p),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    out
}

/// The projections found in the phase's `projections/` (one per `<method>.json`, `.png`
/// or `.html`).
fn read_projections(phase: &PhaseDir, problems: &mut Vec<String>) -> Vec<Projection> {
    let Ok(entries) = std::fs::read_dir(phase.projections()) else {
        return Vec::new();
    };
    let mut by_method: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for entry in entries.flatten() {
        let path = entry.path();
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let ext = ext.to_string_lossy().to_ascii_lowercase();
        if ["json", "png", "svg", "html", "csv", "jpg"].contains(&ext.as_str()) && path.is_file() {
            let stem = stem.to_string_lossy().into_owned();
            // JPEGs are sprite sheets, except a layout's thumbnail map.
            let sheet = ext == "jpg" && !stem.ends_with(THUMBNAILS_SUFFIX);
            if sheet || stem == SPRITE_STEM || stem == "index" {
                continue;
            }
            // `umap-thumbnails.png`: the map drawn with the images, an extra of `umap`.
            if let Some(method) = stem.strip_suffix(MOVES_SUFFIX).filter(|_| ext == "png") {
                let files = by_method.entry(method.to_string()).or_default();
                files.push("moves.png".into());
                continue;
            }
            match stem.strip_suffix(THUMBNAILS_SUFFIX) {
                Some(method) if ext == "png" || ext == "jpg" => by_method
                    .entry(method.to_string())
                    .or_default()
                    .push(format!("thumbnails.{ext}")),
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
                .then(|| read_json(&phase.projection_record(&method), problems))
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
    let metrics = read_json::<PhaseMetrics>(&dir.metrics(), &mut problems);
    let projections = read_projections(&dir, &mut problems);
    let galleries = read_json::<Galleries>(&dir.galleries(), &mut problems);
    let explanations = read_json::<ExplanationIndex>(&dir.explanations(), &mut problems);
    let trust = read_json::<TrustTable>(&dir.trust(), &mut problems);
    Some(PhaseSummary {
        phase,
        root: dir.root,
        state,
        history,
        metrics,
        projections,
        galleries,
        explanations,
        trust,
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
    let comparison = read_json::<PrecisionDrop>(&run.precision_drop(), &mut problems);
    let deductions = crate::report::deductions::read(root, &mut problems);
    let hardware = read_json::<Hardware>(&run.hardware(), &mut problems);
    let provenance = read_json(&run.provenance(), &mut problems);
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
        provenance,
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
                || [Phase::All, Phase::Seen]
                    .iter()
                    .any(|&phase| RunDir::new(&p).phase(phase).root.is_dir())
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
        assert!(h[0].train_loss.is_nan());
        assert_eq!(h[0].test_accuracy, 0.5);
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
            "umap-thumbnails.jpg",
            "umap-moves.png",
            "sprite.jpg",
            "sprite-0.jpg",
            "sprite.json",
            "added.json",
            "added-sprite-0.jpg",
            "added-sprite.json",
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
                g.items[0].id.as_str(),
                g.items[0].unseen,
                g.items[0].sheet.as_str()
            ),
            ("q12", true, "q12.jpg")
        );
        let e = p.explanations.unwrap();
        assert_eq!(e.items[0].status["gradcam"], "constant");
        assert_eq!(e.items[0].dir, "01-a");
        assert_eq!(p.projections.len(), 1, "sprite is not a projection");
        assert_eq!(p.projections[0].method, "umap");
        assert!(
            ["thumbnails.png", "thumbnails.jpg", "moves.png"]
                .iter()
                .all(|t| p.projections[0].files.contains(&t.to_string())),
            "{:?}",
            p.projections[0].files
        );
        assert_eq!(p.projections[0].info.as_ref().unwrap().trustworthiness, 0.9);
    }
}
