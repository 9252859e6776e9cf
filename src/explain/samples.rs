//! A sample of explained test images for the report: correctly and incorrectly
//! classified test images (majority vote over the k nearest training images), each
//! explained with every registered method that needs no precomputed store (today
//! Grad-CAM, vanilla backprop, guided backprop, guided Grad-CAM and the pair maps against
//! its nearest neighbour). Correct images explain the similarity to their nearest
//! training image; misclassified ones are contrast maps, predicted class against true
//! class: cos(f, centroid of the predicted class) − cos(f, centroid of the true class).
//! The same images are then scored for the trust table (`trust.json`, [`super::trust`]).
//!
//! Choice (deterministic): up to ⌈n/2⌉ correct and ⌊n/2⌋ incorrect test images (the
//! other list fills in when one is short), spread evenly over each list in dataset order;
//! for phase `seen`, test images of the held-out classes come first in both lists.
//!
//! Output: `runs/X/phase-P/explanations/`: `explanations.json`, `trust.json`,
//! `index.html`, and one directory per image, `NN-<stem>/`, laid out as
//! [`super::explainer`] describes.
//!
//! `explanations.json` (paths relative to `explanations/` unless said otherwise):
//!
//! ```text
//! {
//!   "schema_version": 2,                  // crate::run::record; absent (= 1) in older files
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
//! A map whose status is not `ok` is a flat grey PNG: show the status instead. The map
//! keys are the methods' [`super::method::SaliencyMethod::sample_columns`], in registry
//! order; a one-channel map also has its heat map alone under `<key>_heat`.

use super::batch::safe_name;
use super::explainer::{
    write_explanation, ExplainOptions, Explainer, Explanation, ExplanationRecord, MapRecord,
};
use super::method::SaliencyMethod;
use super::page::{samples_page, SampleSection};
use super::target::{ContrastChoice, TargetChoice};
use super::trust::{trust_table, TrustOptions};
use super::METHODS;
use crate::atomic::{write_atomic, write_json};
use crate::config::Phase;
use crate::eval::phase_model::PhaseModel;
use crate::eval::predict::predict_embeddings;
use crate::run::explanations::{ExplanationIndex, ExplanationItem, ExplanationNeighbour};
use crate::run::lock::RunLock;
use crate::run::record::SCHEMA_VERSION;
use crate::run::{RunDir, EXPLANATIONS_FILE};
use crate::train::embed::embed;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How many images and neighbours.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// Images explained (half correct, half incorrect when possible).
    pub count: usize,
    /// Neighbours of the majority vote (and listed per image).
    pub k: usize,
    /// Images per forward/backward pass.
    pub batch_size: usize,
    /// Compute device (`--device`).
    pub device: tch::Device,
    /// How the trust table is computed; `None`: no table (an older one is removed).
    pub trust: Option<TrustOptions>,
    /// The methods run (and scored); those that need the weight-transfer store are
    /// left out, since it costs a pass over every training image.
    pub methods: Vec<&'static dyn SaliencyMethod>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            count: 8,
            k: 10,
            batch_size: 8,
            device: tch::Device::Cpu,
            trust: Some(TrustOptions::default()),
            methods: METHODS.to_vec(),
        }
    }
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

fn item(record: &ExplanationRecord, dir: &str, unseen: bool) -> ExplanationItem {
    let mut maps = BTreeMap::new();
    let mut status = BTreeMap::new();
    maps.insert("image".to_string(), format!("{dir}/{}", record.input_png));
    let mut add = |key: String, rec: &MapRecord| {
        status.insert(key.clone(), rec.status.name().to_string());
        // One-channel maps have a heat map and an overlay; gradient images one PNG.
        if let (Some(heat), true) = (rec.files.first(), rec.files.len() > 1) {
            maps.insert(format!("{key}_heat"), format!("{dir}/{heat}"));
        }
        if let Some(last) = rec.files.last() {
            maps.insert(key, format!("{dir}/{last}"));
        }
    };
    for m in METHODS {
        for (key, rec) in m.sample_entries(record) {
            add(key, rec);
        }
    }
    ExplanationItem {
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
            .map(|n| ExplanationNeighbour {
                path: n.path.clone(),
                class: n.class.clone(),
                distance: n.distance,
                thumbnail: format!("{dir}/{}", n.thumbnail),
            })
            .collect(),
    }
}

/// Explains a deterministic sample of the phase's test images and writes
/// `explanations/` (see the module documentation for the JSON schema), holding the run's
/// writer lock.
pub fn explain_samples(
    run: &RunDir,
    phase: Phase,
    opts: &SampleOptions,
) -> Result<ExplanationIndex> {
    if !run.root.is_dir() {
        bail!("{}: no such run directory", run.root.display());
    }
    let methods = super::registry::without_weight_store(&opts.methods);
    if methods.is_empty() {
        bail!("--samples cannot run only weight-transfer methods (they need a pass over every training image); choose another --method");
    }
    let _lock = RunLock::acquire(&run.root, "explain --samples")?;
    let pm = PhaseModel::load_on(run, phase, opts.device)?;
    let mut explainer = Explainer::new(run, &pm)?;
    let sample = choose(&explainer, phase, opts)?;
    let eopts = ExplainOptions {
        methods,
        target: TargetChoice::Nearest,
        k: sample.k,
        batch_size: opts.batch_size,
        pair_neighbours: 1,
        // The deepest layer at least 7×7 at the run's input size: the last convolution
        // of a 64 px MobileNetV2 is 2×2, four blobs; it also bounds Score-CAM's and
        // Ablation-CAM's passes (one per channel) to that layer's few channels.
        layers: vec![crate::explain::layers::AUTO_LAYER.to_string()],
        ..Default::default()
    };
    let explanations = explain_sample(&mut explainer, &sample, &eopts)?;
    // The trust table runs the methods directly, so `auto` is resolved for it here
    // (`explain` resolves it itself, with the page's note).
    let mut trust_opts = eopts.clone();
    explainer.resolve_auto_layer(&mut trust_opts.layers)?;
    write_trust(
        run,
        phase,
        &explainer,
        &sample,
        &trust_opts,
        opts.trust.as_ref(),
    )?;
    let out = run.phase(phase).explanations_dir();
    let (items, records) = write_items(&explanations, &sample.unseen, &out)?;
    let index = ExplanationIndex {
        schema_version: SCHEMA_VERSION,
        phase: Some(phase),
        k: sample.k,
        method_notes: super::registry::notes(),
        items,
    };
    let title = format!(
        "Explanations — {} ({})",
        run.root.display(),
        phase.dir_name()
    );
    let summary = format!(
        "{} test images: {} correctly and {} incorrectly classified by a majority vote over the {} nearest training images.",
        index.items.len(),
        index.items.iter().filter(|i| i.correct).count(),
        index.items.iter().filter(|i| !i.correct).count(),
        sample.k,
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
    let nav = vec![("index.html".to_string(), "all explanations".to_string())];
    write_atomic(
        &out.join("index.html"),
        samples_page(&title, &nav, &summary, &sections).as_bytes(),
    )?;
    write_json(&out.join(EXPLANATIONS_FILE), &index)?;
    remove_stale_items(&out, &index)?;
    Ok(index)
}

/// Writes the trust table of the sample (`trust.json`), or removes an older one when
/// none is asked for (it would describe another sample).
fn write_trust(
    run: &RunDir,
    phase: Phase,
    explainer: &Explainer<'_>,
    sample: &Sample,
    eopts: &ExplainOptions,
    trust: Option<&TrustOptions>,
) -> Result<()> {
    let path = run.phase(phase).trust();
    match trust {
        Some(topts) => {
            let table = trust_table(
                explainer,
                &sample.paths,
                &eopts.methods,
                eopts,
                topts,
                phase,
            )?;
            write_json(&path, &table)
        }
        None if path.exists() => std::fs::remove_file(&path)
            .map_err(|e| anyhow::anyhow!("removing stale {}: {e}", path.display())),
        None => Ok(()),
    }
}

/// Explains the sample in its order: correct images as `eopts` says, misclassified ones
/// as contrast maps (predicted class against true class).
fn explain_sample(
    explainer: &mut Explainer<'_>,
    sample: &Sample,
    eopts: &ExplainOptions,
) -> Result<Vec<Explanation>> {
    let contrast = ExplainOptions {
        target: TargetChoice::Predicted,
        contrast: Some(ContrastChoice::TrueClass),
        ..eopts.clone()
    };
    let pick = |want: bool| -> Vec<PathBuf> {
        let rows = sample.paths.iter().zip(&sample.correct);
        rows.filter(|(_, &c)| c == want)
            .map(|(p, _)| p.clone())
            .collect()
    };
    let mut right = explainer.explain(&pick(true), eopts)?.into_iter();
    let mut wrong = explainer.explain(&pick(false), &contrast)?.into_iter();
    let mut out = Vec::with_capacity(sample.paths.len());
    for &c in &sample.correct {
        let next = if c { right.next() } else { wrong.next() };
        out.extend(next);
    }
    Ok(out)
}

/// The chosen test images, whether each one's class was held out and whether it was
/// classified correctly, and the vote's k.
struct Sample {
    paths: Vec<PathBuf>,
    unseen: Vec<bool>,
    correct: Vec<bool>,
    k: usize,
}

/// Embeds the phase's test images, predicts them, and picks the sample as the module says.
fn choose(explainer: &Explainer<'_>, phase: Phase, opts: &SampleOptions) -> Result<Sample> {
    let pm = explainer.pm;
    let exp = &pm.exp;
    if exp.split.test.is_empty() {
        bail!(
            "{}: the run has no test images to explain",
            explainer.run.root.display()
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
    let distance = exp.cfg.model.distance;
    let predictions =
        predict_embeddings(&explainer.gallery, &queries.embeddings, &paths, k, distance)?;
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
    let wrong: std::collections::HashSet<usize> = bad.iter().chain(&bad_pref).copied().collect();
    Ok(Sample {
        paths: chosen.iter().map(|&r| paths[r].clone()).collect(),
        unseen: chosen.iter().map(|&r| unseen(r)).collect(),
        correct: chosen.iter().map(|&r| !wrong.contains(&r)).collect(),
        k,
    })
}

/// Writes each explanation into its directory under `out`; returns the items and the
/// records the index page shows.
fn write_items(
    explanations: &[Explanation],
    unseen: &[bool],
    out: &Path,
) -> Result<(Vec<ExplanationItem>, Vec<ExplanationRecord>)> {
    let mut items = Vec::new();
    let mut records = Vec::new();
    let nav_up = vec![("../index.html".to_string(), "all explanations".to_string())];
    for (i, (e, &unseen)) in explanations.iter().zip(unseen).enumerate() {
        let dir = item_dir(i, e.true_class.as_deref().unwrap_or(""), &e.image);
        let title = format!(
            "{} — {}",
            e.true_class.as_deref().unwrap_or("?"),
            e.image.display()
        );
        let record = write_explanation(e, &out.join(&dir), &title, &nav_up)?;
        items.push(item(&record, &dir, unseen));
        records.push(record);
    }
    Ok((items, records))
}

/// Removes the item directories of an earlier sample that `index` does not list.
fn remove_stale_items(out: &Path, index: &ExplanationIndex) -> Result<()> {
    let keep: std::collections::HashSet<&str> =
        index.items.iter().map(|i| i.dir.as_str()).collect();
    for entry in std::fs::read_dir(out)
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
    Ok(())
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
