//! Grad-CAM with weight transfer (Chen et al., WACV 2020): Grad-CAM channel weights are
//! computed once for every training image and stored with its embedding; a new image's
//! weights are the mean of its nearest stored neighbours' weights, so its map needs one
//! forward pass and no backward pass.
//!
//! Store: `runs/X/phase-P/gradcam-weights.safetensors` with `embeddings` `[N, D]` f32,
//! `weights` `[N, C]` f32, `labels` `[N]` i64 and `indices` `[N]` i64 (dataset sample index
//! of each training image, the order of `exp.split.train` minus unreadable images). It is
//! rebuilt when missing, unreadable, or older than the phase's checkpoint.
//!
//! A training image's weights explain the cosine similarity of its embedding to the
//! centroid of the *other* training images of its class (what makes it look like its
//! class); for a class with a single training image, to its nearest other training image.

use super::cam::{cam_maps, CamInput, CamRule, CamWeights};
use super::chunk::Chunk;
use super::gradcam::channel_weights;
use super::map::SaliencyMap;
use super::method::{MethodInfo, Pass};
use super::saliency::{gradients, Explainable};
use super::target::cosine_score;
use crate::data::loader::{BatchLoader, LoaderOptions};
use crate::data::sampler::sequential_batches;
use crate::device::onto;
use crate::eval::phase_model::PhaseModel;
use crate::model::layers::apply_activation;
use crate::model::EmbeddingNet;
use crate::run::RunDir;
use crate::search::knn::k_nearest;
use crate::search::Distance;
use crate::tensor_io::{read_safetensors, write_safetensors};
use crate::train::embed::embed;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Default number of stored neighbours whose weights are averaged.
pub const DEFAULT_TRANSFER_K: usize = 5;

/// Grad-CAM with transferred weights as a [`CamRule`] (registered as `Cam(Transfer)`):
/// the forward pass's activations weighted by the store's weights of the nearest
/// training images.
pub struct Transfer;

const INFO: MethodInfo = MethodInfo {
    name: "transfer",
    aliases: &[],
    title: "Grad-CAM, transferred weights",
    note: "Transferred Grad-CAM (Chen et al.): the weights are the mean of the stored Grad-CAM weights of the nearest training images; no backward pass.",
    passes: &[Pass::Forward],
    weight_store: true,
};

impl CamRule for Transfer {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn follows_layer(&self) -> bool {
        false
    }

    fn weights(&self, chunk: &Chunk<'_>, _input: &CamInput<'_>) -> Result<CamWeights> {
        let b = &chunk.base;
        Ok(transferred(
            chunk.store()?,
            b.embeddings,
            b.activations,
            b.options.transfer_k,
            b.distance,
        ))
    }
}

/// The transferred weights of images with `embeddings` `[B, D]` and `activations`.
fn transferred(
    store: &WeightStore,
    embeddings: &Tensor,
    activations: &Tensor,
    k: usize,
    distance: Distance,
) -> CamWeights {
    let weights = store
        .transfer_weights(embeddings, k, distance)
        .to_device(activations.device());
    CamWeights {
        weights,
        activations: activations.shallow_clone(),
        // A forward pass has no score gradient to be dead.
        dead: vec![false; embeddings.size()[0] as usize],
    }
}

/// Training embeddings and their Grad-CAM channel weights.
pub struct WeightStore {
    /// `[N, D]`.
    pub embeddings: Tensor,
    /// `[N, C]`.
    pub weights: Tensor,
    /// `[N]` class indices.
    pub labels: Tensor,
    /// `[N]` dataset sample indices.
    pub indices: Tensor,
}

/// The target of each training image: the mean of the other (L2-normalised) training
/// embeddings of its class, or its nearest other training embedding when it is alone.
pub fn training_targets(
    embeddings: &Tensor,
    labels: &[usize],
    distance: Distance,
) -> Result<Tensor> {
    let e = crate::model::head::l2_normalize(&embeddings.to_kind(Kind::Float));
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let label_t = Tensor::from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let sums = Tensor::zeros([classes as i64, e.size()[1]], (Kind::Float, Device::Cpu))
        .index_add(0, &label_t, &e);
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[l] += 1;
    }
    let mut rows = Vec::with_capacity(labels.len());
    let alone: Vec<i64> = (0..labels.len())
        .filter(|&i| counts[labels[i]] < 2)
        .map(|i| i as i64)
        .collect();
    let nearest_other = if alone.is_empty() || labels.len() < 2 {
        Vec::new()
    } else {
        let q = e.index_select(0, &Tensor::from_slice(&alone));
        let (idx, _) = k_nearest(&q, &e, 2, distance);
        Vec::<Vec<i64>>::try_from(&idx).context("reading the nearest other training images")?
    };
    let mut next_alone = 0;
    for (i, &l) in labels.iter().enumerate() {
        let own = e.get(i as i64);
        if counts[l] >= 2 {
            rows.push((sums.get(l as i64) - &own) / (counts[l] - 1) as f64);
        } else {
            let pick = nearest_other
                .get(next_alone)
                .and_then(|r| r.iter().copied().find(|&j| j != i as i64));
            next_alone += 1;
            rows.push(pick.map_or(own.shallow_clone(), |j| e.get(j)));
        }
    }
    Ok(Tensor::stack(&rows, 0))
}

impl WeightStore {
    /// Computes the store for the phase's training images, batched: one pass for the
    /// embeddings (the targets need them all), one forward + head backward per batch.
    pub fn compute(pm: &PhaseModel) -> Result<WeightStore> {
        let exp = &pm.exp;
        let net: &EmbeddingNet = &pm.model.net;
        let opts = exp.embed_options();
        let refs = embed(net, &exp.samples, &exp.split.train, &opts)?;
        let labels: Vec<usize> = Vec::<i64>::try_from(&refs.labels)?
            .into_iter()
            .map(|l| l as usize)
            .collect();
        let targets = training_targets(&refs.embeddings, &labels, exp.cfg.model.distance)?;
        let loader = BatchLoader::start(
            exp.samples.clone(),
            sequential_batches(&refs.indices, opts.batch_size.min(32)),
            LoaderOptions {
                transform: opts.transform,
                threads: opts.threads,
                prefetch: 2,
                seed: 0,
                epoch: 0,
                cache: opts.cache.clone(),
            },
        )?;
        let mut weights = Vec::new();
        let mut row = 0i64;
        for batch in loader {
            let n = batch.indices.len() as i64;
            if batch.indices.as_slice() != &refs.indices[row as usize..(row + n) as usize] {
                bail!(
                    "training images changed between the two passes (an image became unreadable?)"
                );
            }
            let t = onto(&targets.narrow(0, row, n), exp.device);
            let score = |e: &Tensor| cosine_score(e, &t);
            let g = gradients(net, &onto(&batch.images, exp.device), &score, false)?;
            weights.push(channel_weights(&g.activation_grads).to_device(Device::Cpu));
            row += n;
        }
        let idx: Vec<i64> = refs.indices.iter().map(|&i| i as i64).collect();
        Ok(WeightStore {
            embeddings: refs.embeddings.to_kind(Kind::Float),
            weights: Tensor::cat(&weights, 0).to_kind(Kind::Float),
            labels: refs.labels,
            indices: Tensor::from_slice(&idx),
        })
    }

    /// Path of the store of a phase.
    pub fn path(run: &RunDir, pm: &PhaseModel) -> PathBuf {
        run.phase(pm.phase).gradcam_weights()
    }

    /// Writes the store atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_safetensors(
            path,
            &[
                ("embeddings".into(), self.embeddings.shallow_clone()),
                ("weights".into(), self.weights.shallow_clone()),
                ("labels".into(), self.labels.shallow_clone()),
                ("indices".into(), self.indices.shallow_clone()),
            ],
        )
    }

    /// Reads a store and checks its tensors agree.
    pub fn load(path: &Path) -> Result<WeightStore> {
        let mut map: std::collections::HashMap<String, Tensor> =
            read_safetensors(path)?.into_iter().collect();
        let mut take = |k: &str| {
            map.remove(k)
                .with_context(|| format!("{}: no `{k}` tensor", path.display()))
        };
        let store = WeightStore {
            embeddings: take("embeddings")?,
            weights: take("weights")?,
            labels: take("labels")?,
            indices: take("indices")?,
        };
        let n = store.embeddings.size()[0];
        if store.weights.size()[0] != n
            || store.labels.size()[0] != n
            || store.indices.size()[0] != n
        {
            bail!(
                "{}: row counts of embeddings, weights, labels and indices differ",
                path.display()
            );
        }
        Ok(store)
    }

    /// The phase's store: read when present and not older than the checkpoint (and of the
    /// network's width), otherwise computed and saved. The flag says whether it was computed.
    pub fn load_or_compute(run: &RunDir, pm: &PhaseModel) -> Result<(WeightStore, bool)> {
        let path = WeightStore::path(run, pm);
        let checkpoint = run.phase(pm.phase).checkpoint();
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let fresh =
            matches!((modified(&path), modified(&checkpoint)), (Some(s), Some(c)) if s >= c);
        if fresh {
            if let Ok(store) = WeightStore::load(&path) {
                if store.weights.size()[1] == pm.model.net.arch().out_dim()
                    && store.embeddings.size()[1] == pm.model.net.embedding_dim()
                {
                    return Ok((store, false));
                }
            }
        }
        let store = WeightStore::compute(pm)?;
        store.save(&path)?;
        Ok((store, true))
    }

    /// Number of stored images.
    pub fn len(&self) -> usize {
        self.embeddings.size()[0] as usize
    }

    /// True when no image is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transferred weights `[B, C]`: the mean weights of each query's `k` nearest stored
    /// embeddings.
    pub fn transfer_weights(&self, queries: &Tensor, k: usize, distance: Distance) -> Tensor {
        let q = queries.to_device(Device::Cpu).to_kind(Kind::Float);
        let k = k.clamp(1, self.len().max(1)) as i64;
        let (idx, _) = k_nearest(&q, &self.embeddings, k, distance);
        let (b, c) = (idx.size()[0], self.weights.size()[1]);
        self.weights
            .index_select(0, &idx.flatten(0, -1))
            .view([b, k, c])
            .mean_dim([1i64].as_slice(), false, None)
    }
}

/// Weight-transfer Grad-CAM of images `x` `[B, 3, H, W]`: one forward pass without
/// gradients, the transferred weights, the maps. Returns the maps, weights `[B, C]` and
/// embeddings `[B, D]`.
pub fn transfer_gradcam(
    net: &dyn Explainable,
    x: &Tensor,
    store: &WeightStore,
    k: usize,
    distance: Distance,
) -> Result<(Vec<SaliencyMap>, Tensor, Tensor)> {
    let (_, _, h, w) = x.size4().context("images must be [B, 3, H, W]")?;
    let (e, a) = tch::no_grad(|| net.forward_explained(x, &mut apply_activation));
    let cw = transferred(store, &e, &a, k, distance);
    Ok((cam_maps(&cw, h, w)?, cw.weights, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::GRADCAM_WEIGHTS_FILE;

    #[test]
    fn targets_are_leave_one_out_centroids_or_the_nearest_other() {
        // Class 0: three unit vectors; class 1: one image (its nearest other is row 0).
        let e = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 0.6, 0.8, 0.9, -0.1]).view([4, 2]);
        let t = training_targets(&e, &[0, 0, 0, 1], Distance::Cosine).unwrap();
        let rows: Vec<Vec<f32>> = Vec::try_from(&t).unwrap();
        let expect = [
            [(0.0 + 0.6) / 2.0, (1.0 + 0.8) / 2.0],
            [(1.0 + 0.6) / 2.0, (0.0 + 0.8) / 2.0],
            [0.5, 0.5],
            [1.0, 0.0],
        ];
        for (r, x) in rows.iter().zip(expect) {
            assert!(
                (r[0] - x[0]).abs() < 1e-6 && (r[1] - x[1]).abs() < 1e-6,
                "{rows:?}"
            );
        }
    }

    #[test]
    fn transferred_weights_are_the_mean_of_the_nearest_and_the_store_round_trips() {
        let store = WeightStore {
            embeddings: Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, -1.0, 0.0]).view([3, 2]),
            weights: Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 100.0, 100.0]).view([3, 2]),
            labels: Tensor::from_slice(&[0i64, 1, 2]),
            indices: Tensor::from_slice(&[5i64, 6, 7]),
        };
        let q = Tensor::from_slice(&[0.9f32, 0.8]).view([1, 2]);
        let w: Vec<f32> = Vec::try_from(
            store
                .transfer_weights(&q, 2, Distance::Cosine)
                .flatten(0, -1),
        )
        .unwrap();
        assert_eq!(w, [2.0, 3.0]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(GRADCAM_WEIGHTS_FILE);
        store.save(&path).unwrap();
        let back = WeightStore::load(&path).unwrap();
        assert!(back.weights.equal(&store.weights) && back.indices.equal(&store.indices));
        std::fs::write(&path, b"junk").unwrap();
        assert!(format!("{:#}", WeightStore::load(&path).err().unwrap()).contains(GRADCAM_WEIGHTS_FILE));
    }
}
