//! Projection benchmark: our UMAP and t-SNE, and linfa-tsne's t-SNE (`tsne-linfa`), on
//! clustered synthetic embeddings, time and trustworthiness (k = 15), beside the figures
//! umap-learn and openTSNE reach on this machine kind for 2 000 × 128 points (measured
//! once with their defaults; Python is not available to CI, so they are constants here).
//!
//! Data: [`crate::project::clustered_points`] — `clusters` standard-normal centres in
//! `dim` dimensions, noise 0.5 — one set per size, the same for both methods; or, with
//! `data`, real embeddings from a file ([`super::embeddings`]), an evenly spread subset
//! per size, the same rows `scripts/bench-projection.py` lays out with umap-learn and
//! openTSNE (`make bench-projection` runs both sides back to back).

use super::embeddings::{read_embeddings, spread_subset};
use crate::progress::Progress;
use crate::project::clustered_points;
use crate::project::quality::{knn_label_agreement, trustworthiness, QUALITY_K};
use crate::project::tsne::{TsneEngine, TsneMethod, TsneParams};
use crate::project::umap::{umap_on, UmapParams, UmapSgd};
use crate::search::Distance;
use anyhow::{ensure, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tch::Device;

/// umap-learn (defaults) on 2 000 × 128 here: seconds and trustworthiness.
pub const UMAP_LEARN_2000: (f64, f64) = (2.9, 0.984);
/// openTSNE (defaults) on 2 000 × 128 here: seconds and trustworthiness.
pub const OPENTSNE_2000: (f64, f64) = (2.2, 0.989);

/// What to measure.
#[derive(Debug, Clone)]
pub struct ProjectBenchOptions {
    /// Point counts, one measurement each.
    pub sizes: Vec<usize>,
    /// Embedding dimension.
    pub dim: usize,
    /// Gaussian clusters the points are drawn around.
    pub clusters: usize,
    /// Threads (rayon and libtorch).
    pub threads: usize,
    /// Which methods: "umap" (ours), "umap-rs" (umap-rs's optimiser), "tsne" (ours,
    /// repulsion by the number of points), "tsne-bh" / "tsne-fft" (ours, Barnes–Hut /
    /// FFT interpolation forced), "tsne-linfa".
    pub methods: Vec<String>,
    /// Seed of the data and the layouts.
    pub seed: u64,
    /// Real embeddings to lay out instead of clustered points (`dim` and `clusters`
    /// are then the file's).
    pub data: Option<PathBuf>,
    /// Trustworthiness and label agreement per row (minutes at 70 000 points: off when
    /// only the time is wanted, as when profiling).
    pub quality: bool,
}

impl Default for ProjectBenchOptions {
    fn default() -> Self {
        ProjectBenchOptions {
            sizes: vec![2000, 10_000],
            dim: 128,
            clusters: 20,
            threads: 2,
            methods: vec!["umap".into(), "tsne".into()],
            seed: 0,
            data: None,
            quality: true,
        }
    }
}

/// One method on one data set.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectBenchRow {
    /// "umap", "umap-rs", "tsne", "tsne-bh", "tsne-fft" or "tsne-linfa".
    pub method: String,
    /// "clustered", or the embeddings file's name.
    pub data: String,
    /// Number of points.
    pub points: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Wall-clock seconds of the layout (neighbour search included).
    pub seconds: f64,
    /// Trustworthiness at k = 15 (unless `quality` is off).
    pub trustworthiness: Option<f64>,
    /// Share of 15 nearest 2-D neighbours with the same cluster (unless `quality` is off).
    pub knn_label_agreement: Option<f64>,
    /// Seconds of each stage, where the method names them (UMAP: kNN graph, fuzzy
    /// graph, initial layout, optimisation).
    pub stages: Vec<(String, f64)>,
    /// The Python reference's seconds, where measured (2 000 points).
    pub reference_seconds: Option<f64>,
    /// The Python reference's trustworthiness, where measured.
    pub reference_trustworthiness: Option<f64>,
}

/// Runs every method on every size.
pub fn run(opts: &ProjectBenchOptions) -> Result<Vec<ProjectBenchRow>> {
    ensure!(
        opts.dim > 0 && opts.threads > 0,
        "dimension and threads must be positive"
    );
    tch::set_num_threads(opts.threads as i32);
    // Rayon's global pool can be sized once per process; a second call is harmless.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build_global();
    let file = opts.data.as_ref().map(|p| read_embeddings(p)).transpose()?;
    let mut rows = Vec::new();
    for &n in &opts.sizes {
        let (points, labels) = match (&file, &opts.data) {
            (Some((points, labels)), Some(path)) => spread_subset(points, labels, n, path)?,
            _ => clustered_points(n, opts.dim, opts.clusters, 0.5, opts.seed),
        };
        for method in &opts.methods {
            let stages = Progress::hidden();
            let start = Instant::now();
            let umap_with = |sgd| {
                let params = UmapParams {
                    seed: opts.seed,
                    sgd,
                    ..Default::default()
                };
                umap_on(&points, Distance::Euclidean, &params, Device::Cpu, &stages)
            };
            let ours_with = |method| {
                let params = TsneParams {
                    method,
                    ..Default::default()
                };
                TsneEngine::Ours.layout(&points, &params)
            };
            let (layout, reference) = match method.as_str() {
                "umap" => (umap_with(UmapSgd::Ours)?, UMAP_LEARN_2000),
                "umap-rs" => (umap_with(UmapSgd::UmapRs)?, UMAP_LEARN_2000),
                "tsne" => (ours_with(TsneMethod::Auto)?.layout, OPENTSNE_2000),
                "tsne-bh" => (ours_with(TsneMethod::Bh)?.layout, OPENTSNE_2000),
                "tsne-fft" => (ours_with(TsneMethod::Fft)?.layout, OPENTSNE_2000),
                "tsne-linfa" => (
                    TsneEngine::Linfa
                        .layout(&points, &TsneParams::default())?
                        .layout,
                    OPENTSNE_2000,
                ),
                other => {
                    anyhow::bail!(
                        "unknown method {other:?} (umap, umap-rs, tsne, tsne-bh, tsne-fft or \
                         tsne-linfa)"
                    )
                }
            };
            let seconds = start.elapsed().as_secs_f64();
            // Before the quality measures, which would count into the last stage.
            let stage_times = stages.stage_seconds();
            let measured = n == 2000 && opts.dim == 128 && opts.data.is_none();
            rows.push(ProjectBenchRow {
                method: method.clone(),
                data: opts.data.as_ref().map_or("clustered".into(), |p| {
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                }),
                points: n,
                dim: points.cols,
                seconds,
                trustworthiness: opts
                    .quality
                    .then(|| trustworthiness(&points, &layout, QUALITY_K, Distance::Euclidean))
                    .transpose()?,
                knn_label_agreement: opts
                    .quality
                    .then(|| knn_label_agreement(&layout, &labels, QUALITY_K))
                    .transpose()?,
                stages: stage_times,
                reference_seconds: measured.then_some(reference.0),
                reference_trustworthiness: measured.then_some(reference.1),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_measures_every_method() {
        let opts = ProjectBenchOptions {
            sizes: vec![200],
            dim: 8,
            clusters: 4,
            threads: 1,
            ..Default::default()
        };
        let opts = ProjectBenchOptions {
            methods: ["umap", "tsne", "tsne-bh", "tsne-fft", "tsne-linfa"]
                .map(String::from)
                .to_vec(),
            ..opts
        };
        let rows = run(&opts).unwrap();
        assert_eq!(rows.len(), 5);
        for r in rows {
            assert!(r.seconds > 0.0 && r.trustworthiness > Some(0.9), "{r:?}");
            assert!(r.reference_seconds.is_none());
            // UMAP names its four stages, and they fit in its time.
            let staged: f64 = r.stages.iter().map(|s| s.1).sum();
            assert_eq!(
                r.stages.len(),
                if r.method == "umap" { 4 } else { 0 },
                "{r:?}"
            );
            assert!(staged <= r.seconds, "{r:?}");
        }
    }

    #[test]
    fn data_file_is_laid_out_instead_of_clusters() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("real.safetensors");
        let (points, labels) = clustered_points(400, 6, 4, 0.5, 3);
        let emb = tch::Tensor::from_slice(&points.data).view([400, 6]);
        let labels = tch::Tensor::from_slice(&labels);
        crate::tensor_io::write_safetensors(
            &path,
            &[("embeddings".into(), emb), ("labels".into(), labels)],
        )
        .unwrap();
        let opts = ProjectBenchOptions {
            sizes: vec![200],
            dim: 99,
            threads: 1,
            methods: vec!["umap".into()],
            data: Some(path.clone()),
            ..Default::default()
        };
        let rows = run(&opts).unwrap();
        assert_eq!(
            (rows[0].dim, rows[0].data.as_str()),
            (6, "real.safetensors")
        );
        assert!(rows[0].knn_label_agreement > Some(0.9), "{:?}", rows[0]);
        let too_many = ProjectBenchOptions {
            sizes: vec![401],
            ..opts
        };
        let err = run(&too_many).unwrap_err().to_string();
        assert!(
            err.contains("real.safetensors") && err.contains("401"),
            "{err}"
        );
    }
}
