//! What a trained phase costs to use: training time and speed from its history,
//! embedding speed, the size of its nearest-neighbour index, and the latency of
//! classifying one image by kNN (embed + search + vote) beside the loss's own class
//! logits where it has them (ArcFace, ProxyNCA, classifier). Written as `cost.json`
//! in the phase directory; the study's trade-off table reads it.

use super::phase_model::PhaseModel;
use super::predict::{embed_files, predict_embeddings};
use crate::atomic::write_json;
use crate::config::Phase;
use crate::device::onto;
pub use crate::run::cost::PhaseCost;
use crate::run::lock::RunLock;
use crate::run::record::SCHEMA_VERSION;
use crate::run::RunDir;
use crate::train::embed::embed;
use anyhow::Result;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Measures a trained phase's costs (at most `latency_images` single-image
/// predictions) and writes `cost.json` in its directory, holding the run's writer lock
/// (the default gallery may be cached on the way).
pub fn measure_cost(run: &RunDir, phase: Phase, latency_images: usize) -> Result<PhaseCost> {
    let _lock = RunLock::acquire(&run.root, "cost")?;
    let history = run.phase(phase).read_history()?;
    let training_seconds = history.iter().map(|r| r.seconds).sum();
    let training_images_per_s = if history.is_empty() {
        0.0
    } else {
        history.iter().map(|r| r.images_per_s).sum::<f64>() / history.len() as f64
    };

    let pm = PhaseModel::load(run, phase)?;
    let exp = &pm.exp;
    let gallery = pm.gallery(run)?;
    let opts = exp.embed_options();
    let start = Instant::now();
    let queries = embed(&pm.model.net, &exp.samples, &exp.split.test, &opts)?;
    let embedding_images_per_s =
        exp.split.test.len() as f64 / start.elapsed().as_secs_f64().max(1e-9);
    drop(queries);

    let (entries, dim) = gallery.embeddings.size2()?;
    let paths: Vec<_> = exp
        .split
        .test
        .iter()
        .take(latency_images)
        .map(|&i| exp.samples[i].path.clone())
        .collect();
    let distance = exp.cfg.model.distance;
    let (mut knn, mut logits) = (Vec::new(), Vec::new());
    for p in &paths {
        let one = std::slice::from_ref(p);
        let t = Instant::now();
        let e = embed_files(&pm.model.net, one, exp.test_transform(), exp.device)?;
        let _ = predict_embeddings(&gallery, &e, one, 10.min(entries as usize), distance);
        knn.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let e = embed_files(&pm.model.net, one, exp.test_transform(), exp.device)?;
        if let Some(l) = tch::no_grad(|| pm.model.loss.logits(&onto(&e, exp.device))) {
            let _ = l.argmax(1, false).int64_value(&[0]);
            logits.push(t.elapsed().as_secs_f64());
        }
    }
    let cost = PhaseCost {
        schema_version: SCHEMA_VERSION,
        training_seconds,
        training_images_per_s,
        embedding_images_per_s,
        index_entries: entries as usize,
        embedding_dim: dim as usize,
        index_bytes: (entries * dim) as usize * 4,
        knn_predict_seconds: median(knn),
        logits_predict_seconds: (!logits.is_empty()).then(|| median(logits)),
        latency_images: paths.len(),
    };
    write_json(&run.phase(phase).cost(), &cost)?;
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(vec![]).is_nan());
    }
}
