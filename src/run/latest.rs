//! The most recent finished run, for commands whose `--run` may be left out
//! (`dmlviz explain --image x.jpg`, `dmlviz predict --image x.jpg`).
//!
//! A run qualifies when the asked phase has a network to load: its checkpoint exists and
//! either its `train-state.json` says training finished or the run was imported as a
//! model ([`super::provenance`]). Embeddings-only imports hold no network and never
//! qualify. "Most recent" is the newest checkpoint file (its modification time), so a run
//! trained or imported last wins whatever its name.

use super::history::TrainState;
use super::provenance::{self, KIND_MODEL};
use super::record::read_record;
use super::{is_run_dir, RunDir};
use crate::config::Phase;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where runs are looked for when `--run` is left out, relative to the working directory.
pub const RUNS_DIR: &str = "runs";

/// How deep under the runs folder run directories are looked for (`runs/NAME` is 1,
/// `runs/study/NAME` 2).
const MAX_DEPTH: usize = 3;

/// When the phase of the run at `root` got its network, if it has a finished one.
fn finished_at(root: &Path, phase: Phase) -> Option<SystemTime> {
    let run = RunDir::new(root);
    let dir = run.phase(phase);
    let checkpoint = dir.checkpoint();
    let modified = std::fs::metadata(&checkpoint).ok()?.modified().ok()?;
    let trained = read_record::<TrainState>(&dir.state_path())
        .ok()
        .flatten()
        .is_some_and(|s| s.finished);
    let imported = provenance::read(&run)
        .ok()
        .flatten()
        .is_some_and(|p| p.kind == KIND_MODEL);
    (trained || imported).then_some(modified)
}

/// Run directories under `runs_dir` (at most [`MAX_DEPTH`] levels down); a run
/// directory's own sub-folders are not searched.
fn run_dirs(runs_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![(runs_dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            if is_run_dir(&path) {
                found.push(path);
            } else if depth + 1 < MAX_DEPTH {
                folders.push((path, depth + 1));
            }
        }
    }
    found
}

/// The finished run under `runs_dir` whose `phase` network is newest, if any.
pub fn latest_finished(runs_dir: &Path, phase: Phase) -> Option<RunDir> {
    run_dirs(runs_dir)
        .into_iter()
        .filter_map(|root| finished_at(&root, phase).map(|t| (t, root)))
        // Ties (same mtime) go to the later name, so the choice never depends on listing order.
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
        .map(|(_, root)| RunDir::new(root))
}

/// The run a command works on: `given` when there is one (`false`: not picked), else the
/// most recent finished run under `runs_dir` (`true`: picked, the caller names it).
/// With neither, the error says how to make or import a run.
pub fn resolve(given: Option<&Path>, runs_dir: &Path, phase: Phase) -> Result<(RunDir, bool)> {
    if let Some(root) = given {
        return Ok((RunDir::new(root), false));
    }
    match latest_finished(runs_dir, phase) {
        Some(run) => Ok((run, true)),
        None => bail!(
            "no --run given and no finished run with a {} network under {}/: train one \
             (`make demo` trains runs/demo) or import one (`dmlviz import model FILE.pth \
             --arch resnet18 --head linear:512 --data DIR --out runs/NAME`), or pass --run DIR",
            phase.dir_name(),
            runs_dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::{write_atomic, write_json};

    fn fake_run(root: &Path, finished: bool) {
        write_atomic(&root.join("config.toml"), b"name = \"x\"\n").unwrap();
        let dir = RunDir::new(root).phase(Phase::All);
        write_atomic(&dir.checkpoint(), b"weights").unwrap();
        let state = TrainState {
            epochs_done: 1,
            epochs_total: 1,
            finished,
            stopped: None,
            initial_test_accuracy: None,
        };
        write_json(&dir.state_path(), &state).unwrap();
    }

    #[test]
    fn the_newest_finished_run_wins_and_unfinished_ones_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path().join("runs");
        assert!(latest_finished(&runs, Phase::All).is_none());
        let err = resolve(None, &runs, Phase::All).unwrap_err().to_string();
        assert!(
            err.contains("make demo") && err.contains("dmlviz import model"),
            "{err}"
        );

        fake_run(&runs.join("b-old"), true);
        // A later mtime for the second run, whatever the file system's resolution.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fake_run(&runs.join("study/a-new"), true);
        let newest = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        let f = std::fs::File::options()
            .write(true)
            .open(
                RunDir::new(runs.join("study/a-new"))
                    .phase(Phase::All)
                    .checkpoint(),
            )
            .unwrap();
        f.set_modified(newest).unwrap();
        fake_run(&runs.join("c-unfinished"), false);
        let f = std::fs::File::options()
            .write(true)
            .open(
                RunDir::new(runs.join("c-unfinished"))
                    .phase(Phase::All)
                    .checkpoint(),
            )
            .unwrap();
        f.set_modified(newest + std::time::Duration::from_secs(5))
            .unwrap();

        let (run, picked) = resolve(None, &runs, Phase::All).unwrap();
        assert!(picked);
        assert_eq!(run.root, runs.join("study/a-new"));
        assert!(latest_finished(&runs, Phase::Seen).is_none());
        let (given, picked) = resolve(Some(&runs.join("b-old")), &runs, Phase::All).unwrap();
        assert!(!picked);
        assert_eq!(given.root, runs.join("b-old"));
    }
}
