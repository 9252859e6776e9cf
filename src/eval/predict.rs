//! Classifying an image by its nearest gallery neighbours: nearest-neighbour class
//! and majority vote over k (ties: the nearest of the tied classes wins).

use super::gallery::Gallery;
use super::metrics::majority_vote;
use crate::data::decode::decode_rgb;
use crate::data::rng::Rng;
use crate::data::transform::{normalise_into, Transform};
use crate::model::EmbeddingNet;
use crate::search::knn::k_nearest;
use crate::search::Distance;
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;
use tch::{Device, Tensor};

/// One neighbour of a query.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    pub class: String,
    pub distance: f64,
    pub path: PathBuf,
}

/// A prediction for one image.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    /// Class of the nearest neighbour.
    pub nearest: String,
    /// Most frequent class among the k nearest (ties: nearest wins).
    pub majority: String,
    /// Votes for the majority class.
    pub votes: usize,
    pub neighbours: Vec<Neighbour>,
}

/// Embeds image files with the test transform, in batches; returns `[N, D]` on the CPU.
pub fn embed_files(
    net: &EmbeddingNet,
    paths: &[PathBuf],
    transform: Transform,
    device: Device,
) -> Result<Tensor> {
    let mut rows = Vec::new();
    for chunk in paths.chunks(32) {
        let mut data = vec![0f32; chunk.len() * transform.output_len()];
        for (i, p) in chunk.iter().enumerate() {
            let image = transform.apply(&decode_rgb(p)?, &mut Rng::new(0));
            normalise_into(
                &image,
                &mut data[i * transform.output_len()..(i + 1) * transform.output_len()],
            );
        }
        let c = transform.crop as i64;
        let x = Tensor::from_slice(&data)
            .view([chunk.len() as i64, 3, c, c])
            .to_device(device);
        rows.push(tch::no_grad(|| net.forward_t(&x, false)).to_device(Device::Cpu));
    }
    Ok(Tensor::cat(&rows, 0))
}

/// Predicts the class of each embedding row from the `k` nearest gallery entries.
pub fn predict_embeddings(
    gallery: &Gallery,
    queries: &Tensor,
    images: &[PathBuf],
    k: usize,
    distance: Distance,
) -> Vec<Prediction> {
    let (idx, dist) = k_nearest(queries, &gallery.embeddings, k as i64, distance);
    let idx: Vec<Vec<i64>> = Vec::try_from(&idx).unwrap_or_default();
    let dist: Vec<Vec<f32>> = Vec::try_from(&dist).unwrap_or_default();
    let m = &gallery.manifest;
    images
        .iter()
        .zip(idx.iter().zip(&dist))
        .map(|(image, (row, drow))| {
            let labels: Vec<usize> = row.iter().map(|&j| m.entries[j as usize].label).collect();
            let majority = majority_vote(&labels, labels.len()).unwrap_or(labels[0]);
            let votes = labels.iter().filter(|&&l| l == majority).count();
            Prediction {
                image: image.clone(),
                nearest: m.classes[labels[0]].clone(),
                majority: m.classes[majority].clone(),
                votes,
                neighbours: row
                    .iter()
                    .zip(drow)
                    .map(|(&j, &d)| {
                        let e = &m.entries[j as usize];
                        Neighbour {
                            class: m.classes[e.label].clone(),
                            distance: d as f64,
                            path: e.path.clone(),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}
