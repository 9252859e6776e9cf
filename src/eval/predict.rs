//! Classifying an image by its nearest gallery neighbours: nearest-neighbour class
//! and majority vote over k (ties: the nearest of the tied classes wins).

use super::gallery::Gallery;
use super::gallery_store::{gallery_neighbours, GalleryStore};
use super::metrics::majority_vote;
use crate::data::decode::decode_rgb;
use crate::data::path_text;
use crate::data::rng::Rng;
use crate::data::transform::{normalise_into, Transform};
use crate::data::Unreadable;
use crate::device::onto;
use crate::model::fold::with_folded_batch_norms;
use crate::model::EmbeddingNet;
use crate::progress::Progress;
use crate::search::Distance;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// One neighbour of a query.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    pub class: String,
    pub distance: f64,
    #[serde(serialize_with = "path_text::serialize")]
    pub path: PathBuf,
}

/// A prediction for one image.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    #[serde(serialize_with = "path_text::serialize")]
    pub image: PathBuf,
    /// Class of the nearest neighbour.
    pub nearest: String,
    /// Most frequent class among the k nearest (ties: nearest wins).
    pub majority: String,
    /// Votes for the majority class.
    pub votes: usize,
    pub neighbours: Vec<Neighbour>,
}

/// Image files embedded by [`embed_readable_files`]: those that decoded, and those that did not.
pub struct EmbeddedFiles {
    /// The files that decoded, in the order given.
    pub paths: Vec<PathBuf>,
    /// `[paths.len(), D]` on the CPU (`[0, 0]` when no file decoded).
    pub embeddings: Tensor,
    /// The files that did not decode, each with the reason (which names the file).
    pub unreadable: Vec<Unreadable>,
}

/// Images decoded and embedded at once (memory stays bounded for large folders).
const BATCH: usize = 32;

/// Embeds image files with the test transform, in batches; returns `[N, D]` on the CPU,
/// or an error naming the first file that does not decode.
pub fn embed_files(
    net: &EmbeddingNet,
    paths: &[PathBuf],
    transform: Transform,
    device: Device,
) -> Result<Tensor> {
    let embedded = embed_readable_files(net, paths, transform, device)?;
    match embedded.unreadable.into_iter().next() {
        Some(u) => bail!("{}", u.reason),
        None => Ok(embedded.embeddings),
    }
}

/// Embeds image files with the test transform, in batches. A file that does not decode
/// is not embedded but listed in [`EmbeddedFiles::unreadable`]: callers decide whether
/// that skips it (`predict`) or refuses everything (`index add`).
pub fn embed_readable_files(
    net: &EmbeddingNet,
    paths: &[PathBuf],
    transform: Transform,
    device: Device,
) -> Result<EmbeddedFiles> {
    let len = transform.output_len();
    let crop = transform.crop as i64;
    let mut out = EmbeddedFiles {
        paths: Vec::new(),
        embeddings: Tensor::zeros([0, 0], (Kind::Float, Device::Cpu)),
        unreadable: Vec::new(),
    };
    let mut rows = Vec::new();
    let bar = Progress::new(paths.len() as u64, "embed");
    for chunk in paths.chunks(BATCH) {
        bar.inc(chunk.len() as u64);
        let mut data = Vec::with_capacity(chunk.len() * len);
        for path in chunk {
            match decode_rgb(path) {
                Ok(rgb) => {
                    let image = transform.apply(&rgb, &mut Rng::new(0));
                    let start = data.len();
                    data.resize(start + len, 0f32);
                    normalise_into(&image, &mut data[start..]);
                    out.paths.push(path.clone());
                }
                Err(e) => out.unreadable.push(Unreadable {
                    path: path.clone(),
                    reason: format!("{e:#}"),
                }),
            }
        }
        let n = (data.len() / len) as i64;
        if n == 0 {
            continue;
        }
        let x = onto(&Tensor::from_slice(&data).view([n, 3, crop, crop]), device);
        // Folded as `embed` folds the gallery, so both sides run the same operations.
        let e = tch::no_grad(|| with_folded_batch_norms(|| net.forward_t(&x, false)));
        rows.push(e.to_device(Device::Cpu));
    }
    bar.finish();
    if !rows.is_empty() {
        out.embeddings = Tensor::cat(&rows, 0);
    }
    Ok(out)
}

/// Predicts the class of each embedding row from the `k` nearest gallery entries
/// (`k` larger than the gallery is clamped to its size; `k` = 0 is refused).
pub fn predict_embeddings(
    gallery: &Gallery,
    queries: &Tensor,
    images: &[PathBuf],
    k: usize,
    distance: Distance,
) -> Result<Vec<Prediction>> {
    check_k(k)?;
    predictions_from_neighbours(images, gallery_neighbours(gallery, queries, k, distance)?)
}

/// [`predict_embeddings`] against any store: the run's file or a PostgreSQL table.
pub fn predict_with_store(
    store: &mut dyn GalleryStore,
    queries: &Tensor,
    images: &[PathBuf],
    k: usize,
) -> Result<Vec<Prediction>> {
    check_k(k)?;
    predictions_from_neighbours(images, store.nearest(queries, k)?)
}

fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        bail!("k (the number of neighbours) must be at least 1");
    }
    Ok(())
}

/// The nearest class and the majority vote (ties: the nearest of the tied classes) of
/// each image from its neighbours, nearest first.
pub fn predictions_from_neighbours(
    images: &[PathBuf],
    neighbours: Vec<Vec<Neighbour>>,
) -> Result<Vec<Prediction>> {
    images
        .iter()
        .zip(neighbours)
        .map(|(image, neighbours)| {
            if neighbours.is_empty() {
                bail!("the gallery is empty: enrol images with `dmlviz index add` first");
            }
            // Labels local to this query, numbered by first appearance.
            let mut names: Vec<&str> = Vec::new();
            let labels: Vec<usize> = neighbours
                .iter()
                .map(|n| match names.iter().position(|c| *c == n.class) {
                    Some(i) => i,
                    None => {
                        names.push(&n.class);
                        names.len() - 1
                    }
                })
                .collect();
            let majority = majority_vote(&labels, labels.len()).unwrap_or(0);
            let votes = labels.iter().filter(|&&l| l == majority).count();
            Ok(Prediction {
                image: image.clone(),
                nearest: names[0].to_string(),
                majority: names[majority].to_string(),
                votes,
                neighbours,
            })
        })
        .collect()
}
