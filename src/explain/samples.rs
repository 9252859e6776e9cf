//! A sample of explained test images for the report: correctly and incorrectly
//! classified test images (majority vote over the k nearest training images), each
//! explained with Grad-CAM, guided backprop, guided Grad-CAM, vanilla backprop and the
//! pair maps against its nearest neighbour.
//!
//! Choice (deterministic): up to ⌈n/2⌉ correct and ⌊n/2⌋ incorrect test images (the
//! other list fills in when one is short), spread evenly over each list in dataset order;
//! for phase `seen`, test images of the held-out classes come first in both lists.
//!
//! Output: `runs/X/phase-P/explanations/`: `explanations.json`, `index.html`, and one
//! directory per image, `NN-<stem>/`, laid out as [`super::explainer`] describes.
//!
//! `explanations.json` (paths relative to `explanations/` unless said otherwise):
//!
//! ```text
//! {
//!   "phase": "all" | "seen",
//!   "k": 10,                              // neighbours of the majority vote
//!   "method_notes": "...",                // one paragraph on what each map shows
//!   "items": [{
//!     "image": "<original path of the test image, as in the dataset>",
//!     "true_class": "...", "predicted": "...", "correct": true | false,
//!     "unseen_class": true | false,       // the class was held out of this phase's training
//!     "dir": "NN-stem",                   // the item's own directory (its index.html, maps.safetensors)
//!     "maps": {                           // PNGs; the overlays for one-channel maps
//!       "image": "NN-stem/image.png",
//!       "gradcam": "NN-stem/gradcam-overlay.png", "gradcam_heat": "NN-stem/gradcam.png",
//!       "vanilla": "NN-stem/vanilla-overlay.png", "vanilla_heat": "NN-stem/vanilla.png",
//!       "guided": "NN-stem/guided.png", "guided_gradcam": "NN-stem/guided_gradcam.png",
//!       "pair_query": "NN-stem/pair-0-query-overlay.png", "pair_query_heat": "...",
//!       "pair_neighbour": "NN-stem/pair-0-neighbour-overlay.png", "pair_neighbour_heat": "..."
//!     },
//!     "status": {"gradcam": "ok" | "constant" | "zero" | "non_finite", "vanilla": ..., "guided": ...,
//!                "guided_gradcam": ..., "pair_query": ..., "pair_neighbour": ...},
//!     "neighbours": [{"path": "<original path>", "class": "...", "distance": 0.12,
//!                     "thumbnail": "NN-stem/neighbour-0.jpg"}]   // k nearest, nearest first
//!   }]
//! }
//! ```
//! A map whose status is not `ok` is a flat grey PNG: show the status instead.

use super::explainer::{write_explanation, ExplainOptions, Explainer, ExplanationRecord, Method};
use super::map::MapStatus;
use super::page::{samples_page, SampleSection, METHOD_NOTES};
use super::target::TargetChoice;
use crate::atomic::{write_atomic, write_json};
use crate::config::Phase;
use crate::eval::phase_model::PhaseModel;
use crate::eval::predict::predict_embeddings;
use crate::run::RunDir;
use crate::train::embed::embed;
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Directory of the sample inside a phase directory.
pub const EXPLANATIONS_DIR: &str = "explanations";

/// How many images and neighbours.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// Images explained (half correct, half incorrect when possible).
    pub count: usize,
    /// Neighbours of the majority vote (and listed per image).
    pub k: usize,
    /// Images per forward/backward pass.
    pub batch_size: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            count: 8,
            k: 10,
            batch_size: 8,
        }
    }
}

/// One item of `explanations.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SampleItem {
    /// The test image's path.
    pub image: PathBuf,
    /// Its class.
    pub true_class: String,
    /// Majority-vote class.
    pub predicted: String,
    /// Whether they agree.
    pub correct: bool,
    /// Whether the phase trained without this class.
    pub unseen_class: bool,
    /// The item's directory, relative to `explanations/`.
    pub dir: String,
    /// PNG paths relative to `explanations/`.
    pub maps: BTreeMap<String, String>,
    /// Map statuses.
    pub status: BTreeMap<String, MapStatus>,
    /// The k nearest training images.
    pub neighbours: Vec<SampleNeighbour>,
}

/// A neighbour of a sample item.
#[derive(Debug, Clone, Serialize)]
pub struct SampleNeighbour {
    /// The training image's path.
    pub path: PathBuf,
    /// Its class.
    pub class: String,
    /// Distance to the test image.
    pub distance: f64,
    /// Thumbnail, relative to `explanations/`.
    pub thumbnail: String,
}

/// `explanations.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SampleIndex {
    /// The phase explained.
    pub phase: Phase,
    /// Neighbours of the majority vote.
    pub k: usize,
    /// What each map shows.
    pub method_notes: String,
    /// The explained images.
    pub items: Vec<SampleItem>,
}

/// Up to `n` positions spread evenly over `0..len`.
fn spread(len: usize, n: usize) -> Vec<usize> {
    let n = n.min(len);
    (0..n).map(|i| i * len / n).collect()
}

/// `n` rows spread over `preferred`, then (when it is short) over `rest`.
fn spread_preferring(preferred: &[usize], rest: &[usize], n: usize) -> Vec<usize> {
    let mut out: Vec<usize> = spread(preferred.len(), n)
        .into_iter()
        .map(|i| preferred[i])
        .collect();
    out.extend(
        spread(rest.len(), n - out.len())
            .into_iter()
            .map(|i| rest[i]),
    );
    out
}

/// Picks `count` rows from (correct, incorrect) candidate lists, each split into
/// (preferred, rest) — held-out classes first for phase `seen` — as the module says.
pub fn pick(
    correct: (&[usize], &[usize]),
    incorrect: (&[usize], &[usize]),
    count: usize,
) -> Vec<usize> {
    let (n_good, n_bad) = (
        correct.0.len() + correct.1.len(),
        incorrect.0.len() + incorrect.1.len(),
    );
    let want_bad = (count / 2).min(n_bad);
    let want_good = (count - want_bad).min(n_good);
    let want_bad = (count - want_good).min(n_bad);
    let mut out = spread_preferring(correct.0, correct.1, want_good);
    out.extend(spread_preferring(incorrect.0, incorrect.1, want_bad));
    out
}

/// `text` with every character but ASCII letters, digits, `-` and `_` as `_`.
fn safe_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn stem(path: &Path) -> String {
    let s = safe_name(
        &path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    if s.is_empty() {
        "image".into()
    } else {
        s
    }
}

/// Directory name of item `i` (`NN-<class>-<stem>`, made of safe characters).
fn item_dir(i: usize, class: &str, path: &Path) -> String {
    format!("{:02}-{}-{}", i + 1, safe_name(class), stem(path))
}

fn item(record: &ExplanationRecord, dir: &str, unseen: bool) -> SampleItem {
    let mut maps = BTreeMap::new();
    let mut status = BTreeMap::new();
    maps.insert("image".to_string(), format!("{dir}/{}", record.input_png));
    let mut add = |key: &str, rec: &super::explainer::MapRecord| {
        status.insert(key.to_string(), rec.status);
        if let Some(heat) = rec.files.first() {
            maps.insert(format!("{key}_heat"), format!("{dir}/{heat}"));
        }
        if let Some(last) = rec.files.last() {
            maps.insert(key.to_string(), format!("{dir}/{last}"));
        }
    };
    for (k, rec) in &record.maps {
        add(k, rec);
    }
    if let Some(p) = record.neighbours.first().and_then(|n| n.pair.as_ref()) {
        add("pair_query", &p.query);
        add("pair_neighbour", &p.neighbour);
    }
    // Gradient images have one PNG: no separate `_heat` entry.
    for key in ["guided", "guided_gradcam"] {
        maps.remove(&format!("{key}_heat"));
    }
    SampleItem {
        image: record.image.clone(),
        true_class: record.true_class.clone().unwrap_or_default(),
        predicted: record.predicted.clone(),
        correct: record.correct.unwrap_or(false),
        unseen_class: unseen,
        dir: dir.to_string(),
        maps,
        status,
        neighbours: record
            .neighbours
            .iter()
            .map(|n| SampleNeighbour {
                path: n.path.clone(),
                class: n.class.clone(),
                distance: n.distance,
                thumbnail: format!("{dir}/{}", n.thumbnail),
            })
            .collect(),
    }
}

/// Explains a deterministic sample of the phase's test images and writes
/// `explanations/` (see the module documentation for the JSON schema).
pub fn explain_samples(run: &RunDir, phase: Phase, opts: &SampleOptions) -> Result<SampleIndex> {
    let pm = PhaseModel::load(run, phase)?;
    let mut explainer = Explainer::new(run, &pm)?;
    let exp = &pm.exp;
    if exp.split.test.is_empty() {
        bail!(
            "{}: the run has no test images to explain",
            run.root.display()
        );
    }
    let queries = embed(
        &pm.model.net,
        &exp.samples,
        &exp.split.test,
        &exp.embed_options(),
    )?;
    let paths: Vec<PathBuf> = queries
        .indices
        .iter()
        .map(|&i| exp.samples[i].path.clone())
        .collect();
    let k = opts
        .k
        .clamp(1, explainer.gallery.manifest.entries.len().max(1));
    let predictions = predict_embeddings(
        &explainer.gallery,
        &queries.embeddings,
        &paths,
        k,
        exp.cfg.model.distance,
    );
    let protocol = exp.protocol(phase)?;
    let unseen = |row: usize| !protocol.is_seen(exp.samples[queries.indices[row]].label);
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (row, p) in predictions.iter().enumerate() {
        let truth = &exp.dataset.classes[exp.samples[queries.indices[row]].label];
        if *truth == p.majority {
            good.push(row)
        } else {
            bad.push(row)
        }
    }
    // Phase seen: test images of the held-out classes are preferred.
    let split = |rows: &mut Vec<usize>| -> Vec<usize> {
        if phase != Phase::Seen {
            return Vec::new();
        }
        let (pref, rest): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&r| unseen(r));
        *rows = rest;
        pref
    };
    let (good_pref, bad_pref) = (split(&mut good), split(&mut bad));
    let chosen = pick((&good_pref, &good), (&bad_pref, &bad), opts.count);
    let chosen_paths: Vec<PathBuf> = chosen.iter().map(|&r| paths[r].clone()).collect();
    let eopts = ExplainOptions {
        methods: vec![
            Method::GradCam,
            Method::Vanilla,
            Method::Guided,
            Method::GuidedGradCam,
            Method::Pair,
        ],
        target: TargetChoice::Nearest,
        k,
        batch_size: opts.batch_size,
        pair_neighbours: 1,
        ..Default::default()
    };
    let explanations = explainer.explain(&chosen_paths, &eopts)?;
    let out = run.phase(phase).root.join(EXPLANATIONS_DIR);
    let nav = vec![("index.html".to_string(), "all explanations".to_string())];
    let mut items = Vec::new();
    let mut records = Vec::new();
    for (i, (e, &row)) in explanations.iter().zip(&chosen).enumerate() {
        let dir = item_dir(i, e.true_class.as_deref().unwrap_or(""), &e.image);
        let nav_up = vec![("../index.html".to_string(), "all explanations".to_string())];
        let title = format!(
            "{} — {}",
            e.true_class.as_deref().unwrap_or("?"),
            e.image.display()
        );
        let record = write_explanation(e, &out.join(&dir), &title, &nav_up)?;
        items.push(item(&record, &dir, unseen(row)));
        records.push(record);
    }
    let index = SampleIndex {
        phase,
        k,
        method_notes: METHOD_NOTES.to_string(),
        items,
    };
    let title = format!(
        "Explanations — {} ({})",
        run.root.display(),
        phase.dir_name()
    );
    let summary = format!(
        "{} test images: {} correctly and {} incorrectly classified by a majority vote over the {k} nearest training images.",
        index.items.len(),
        index.items.iter().filter(|i| i.correct).count(),
        index.items.iter().filter(|i| !i.correct).count(),
    );
    let sections: Vec<SampleSection> = index
        .items
        .iter()
        .zip(&records)
        .map(|(it, record)| SampleSection {
            dir: &it.dir,
            true_class: &it.true_class,
            unseen_class: it.unseen_class,
            record,
        })
        .collect();
    write_atomic(
        &out.join("index.html"),
        samples_page(&title, &nav, &summary, &sections).as_bytes(),
    )?;
    write_json(&out.join("explanations.json"), &index)?;
    // Item directories of an earlier sample that this one does not list are stale.
    let keep: std::collections::HashSet<&str> =
        index.items.iter().map(|i| i.dir.as_str()).collect();
    for entry in std::fs::read_dir(&out)
        .map_err(|e| anyhow::anyhow!("listing {}: {e}", out.display()))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let numbered = name.len() > 3
            && name.as_bytes()[..2].iter().all(u8::is_ascii_digit)
            && name.as_bytes()[2] == b'-';
        if numbered && entry.path().is_dir() && !keep.contains(name.as_str()) {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| anyhow::anyhow!("removing stale {}: {e}", entry.path().display()))?;
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_half_and_half_and_fills_in() {
        assert_eq!(
            pick(
                (&[], &[0, 1, 2, 3, 4, 5, 6, 7]),
                (&[], &[10, 11, 12, 13]),
                4
            ),
            [0, 4, 10, 12]
        );
        assert_eq!(
            pick((&[], &[0, 1, 2, 3, 4, 5]), (&[], &[10]), 4),
            [0, 2, 4, 10]
        );
        assert_eq!(pick((&[0], &[]), (&[], &[10, 11, 12]), 4), [0, 10, 11, 12]);
        assert_eq!(pick((&[], &[]), (&[], &[]), 4), Vec::<usize>::new());
        // Preferred rows first, the rest fills in.
        assert_eq!(
            pick((&[5], &[0, 1, 2]), (&[7, 8, 9], &[3]), 4),
            [5, 0, 7, 8]
        );
        assert_eq!(
            item_dir(2, "0001.monkey face", Path::new("a/b/twit ter.png")),
            "03-0001_monkey_face-twit_ter"
        );
    }
}
