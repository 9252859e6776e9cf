//! The per-epoch evaluation's input tensors, transformed once per experiment.
//!
//! Every epoch embeds the same test and reference images with the same deterministic
//! test transform (resize, centre crop, normalise), so the loader's output does not
//! change between epochs; only the network does. Keeping the normalised batches saves
//! the transform (and, without the decoded-image cache, the decoding) of every image on
//! every epoch. The tensors take `4 · 3 · crop²` bytes per image, so they are kept only
//! up to a budget ([`EVAL_INPUTS_BUDGET`]); beyond it the evaluation streams as before.

use super::embed::{embed_batches, evaluation_loader, EmbedOptions, Embedded};
use crate::data::loader::Batch;
use crate::data::Sample;
use crate::model::EmbeddingNet;
use crate::progress::Progress;
use anyhow::Result;
use std::sync::Arc;

/// Largest total size of the cached evaluation tensors, in bytes (the emoji demo's
/// 628 images at 64² take 31 MB; CUB's 11 788 at 224² would take 7 GB and stream).
pub const EVAL_INPUTS_BUDGET: usize = 1 << 30;

/// The prepared batches of one image set, in the loader's order.
pub struct EvalInputs {
    batches: Vec<Batch>,
    requested: usize,
}

impl EvalInputs {
    /// Bytes the tensors of `images` images would take under `opts`' transform.
    pub fn bytes_for(images: usize, opts: &EmbedOptions) -> usize {
        images * opts.transform.output_len() * std::mem::size_of::<f32>()
    }

    /// Runs the evaluation loader over `indices` once and keeps what it yields
    /// (unreadable images are left out, as a streaming evaluation leaves them out).
    pub fn load(
        samples: &Arc<Vec<Sample>>,
        indices: &[usize],
        opts: &EmbedOptions,
    ) -> Result<EvalInputs> {
        Ok(EvalInputs {
            batches: evaluation_loader(samples, indices, opts)?.collect(),
            requested: indices.len(),
        })
    }

    /// New handles to the same tensors, for another thread: a libtorch tensor handle is
    /// sent between threads, not shared (phases trained side by side each take theirs).
    pub fn shallow_clone(&self) -> EvalInputs {
        EvalInputs {
            batches: self
                .batches
                .iter()
                .map(|b| Batch {
                    images: b.images.shallow_clone(),
                    labels: b.labels.shallow_clone(),
                    indices: b.indices.clone(),
                })
                .collect(),
            requested: self.requested,
        }
    }

    /// The kept batches.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// Embeds the kept batches with `net` (evaluation mode, no autograd) on `opts.device`.
    pub fn embed(&self, net: &EmbeddingNet, opts: &EmbedOptions) -> Result<Embedded> {
        embed_batches(
            net,
            &self.batches,
            opts.device,
            self.requested,
            &Progress::hidden(),
        )
    }
}

/// The reference (training) and query (test) images of an experiment's evaluation.
pub struct EvalSets {
    /// The training split: the gallery searched.
    pub references: EvalInputs,
    /// The test split: the queries.
    pub queries: EvalInputs,
}

impl EvalSets {
    /// [`EvalInputs::shallow_clone`] of both.
    pub fn shallow_clone(&self) -> EvalSets {
        EvalSets {
            references: self.references.shallow_clone(),
            queries: self.queries.shallow_clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::loader::DecodedCache;
    use crate::data::transform::Transform;
    use crate::model::{Arch, EmbeddingNet, HeadConfig};
    use crate::train::embed::embed;
    use image::{Rgb, RgbImage};
    use tch::{nn::VarStore, Device, Kind};

    /// `n` small random PNGs of two classes, plus one unreadable file at the end.
    fn samples(dir: &std::path::Path, n: usize) -> Arc<Vec<Sample>> {
        let mut out = Vec::new();
        for i in 0..n {
            let img = RgbImage::from_fn(20 + i as u32, 17, |x, y| {
                Rgb([
                    (x * 13 + i as u32 * 7) as u8,
                    (y * 29) as u8,
                    ((x ^ y) * 5) as u8,
                ])
            });
            let path = dir.join(format!("{i}.png"));
            img.save(&path).unwrap();
            out.push(Sample {
                path,
                label: i % 2,
                official_train: None,
            });
        }
        let broken = dir.join("broken.png");
        std::fs::write(&broken, b"not a png").unwrap();
        out.push(Sample {
            path: broken,
            label: 0,
            official_train: None,
        });
        Arc::new(out)
    }

    #[test]
    fn cached_tensors_equal_freshly_transformed_ones() {
        tch::set_num_threads(1);
        tch::manual_seed(11);
        let dir = tempfile::tempdir().unwrap();
        let samples = samples(dir.path(), 9);
        let indices: Vec<usize> = (0..samples.len()).rev().collect();
        let opts = EmbedOptions {
            transform: Transform::test(36, 32),
            batch_size: 4,
            threads: 2,
            device: Device::Cpu,
            cache: Some(DecodedCache::new()),
            progress: None,
        };
        let cached = EvalInputs::load(&samples, &indices, &opts).unwrap();
        assert_eq!(
            EvalInputs::bytes_for(10, &opts),
            10 * 3 * 32 * 32 * 4,
            "bytes per image"
        );
        // A second pass through the loader (decoded-image cache now warm, as in later
        // epochs) and one without any cache give exactly the same tensors.
        for cache in [opts.cache.clone(), None] {
            let fresh: Vec<Batch> = evaluation_loader(
                &samples,
                &indices,
                &EmbedOptions {
                    cache,
                    ..opts.clone()
                },
            )
            .unwrap()
            .collect();
            assert_eq!(fresh.len(), cached.batches().len());
            for (a, b) in fresh.iter().zip(cached.batches()) {
                assert_eq!(a.indices, b.indices);
                assert!(a.labels.equal(&b.labels));
                assert!(a.images.equal(&b.images), "bit-identical images");
            }
        }
        let kept: Vec<usize> = cached
            .batches()
            .iter()
            .flat_map(|b| b.indices.clone())
            .collect();
        assert_eq!(
            kept,
            (0..9).rev().collect::<Vec<_>>(),
            "unreadable left out"
        );

        // Embedding the cache equals embedding through the loader.
        let vs = VarStore::new(Device::Cpu);
        let net = EmbeddingNet::new(&vs.root(), Arch::MobileNetV2, &HeadConfig::default());
        let a = cached.embed(&net, &opts).unwrap();
        let b = embed(&net, &samples, &indices, &opts).unwrap();
        assert_eq!(a.indices, b.indices);
        assert!(a.labels.equal(&b.labels));
        assert_eq!(a.embeddings.kind(), Kind::Float);
        assert!(a.embeddings.equal(&b.embeddings), "same embeddings");
    }
}
