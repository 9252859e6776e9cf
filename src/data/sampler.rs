//! Batch composition: class-balanced P×K batches (P classes, K images each, as
//! triplet mining needs), shuffled batches and sequential batches for evaluation.

use super::rng::Rng;
use anyhow::{bail, Result};

/// P×K sampler. Classes are drawn from a shuffled queue (each class once before any
/// repeats), images of a class from a shuffled per-class queue (each image once
/// before any repeats); a class with fewer than K images repeats some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkSampler {
    pub p: usize,
    pub k: usize,
}

/// Draws from a list in shuffled order, reshuffling each time it runs out.
struct Cycle {
    items: Vec<usize>,
    next: usize,
}

impl Cycle {
    fn new(items: Vec<usize>) -> Self {
        let next = items.len();
        Cycle { items, next }
    }

    fn draw(&mut self, rng: &mut Rng) -> usize {
        if self.next == self.items.len() {
            rng.shuffle(&mut self.items);
            self.next = 0;
        }
        self.next += 1;
        self.items[self.next - 1]
    }
}

impl PkSampler {
    /// A sampler of `p` classes × `k` images per batch.
    pub fn new(p: usize, k: usize) -> Result<Self> {
        if p < 2 || k < 2 {
            bail!("P×K sampling needs P ≥ 2 classes and K ≥ 2 images per class, got {p}×{k}");
        }
        Ok(PkSampler { p, k })
    }

    /// Batch size P·K.
    pub fn batch_size(&self) -> usize {
        self.p * self.k
    }

    /// The batches of one epoch over `indices` (sample indices, labelled by `label_of`):
    /// as many batches as fit the number of samples (at least one). Only classes with
    /// two or more images take part (a lone image has no positive).
    pub fn epoch(
        &self,
        indices: &[usize],
        label_of: impl Fn(usize) -> usize,
        seed: u64,
        epoch: u64,
    ) -> Result<Vec<Vec<usize>>> {
        let mut by_class = std::collections::BTreeMap::<usize, Vec<usize>>::new();
        for &i in indices {
            by_class.entry(label_of(i)).or_default().push(i);
        }
        let mut images: Vec<Cycle> = by_class
            .into_values()
            .filter(|v| v.len() >= 2)
            .map(Cycle::new)
            .collect();
        if images.len() < self.p {
            bail!(
                "P×K sampling needs {} classes with at least 2 training images, the training set has {}",
                self.p,
                images.len()
            );
        }
        let mut rng = Rng::derive(seed, &[0x5A4D_504C, epoch]);
        let mut classes = Cycle::new((0..images.len()).collect());
        let n_batches = (indices.len() / self.batch_size()).max(1);
        let mut batches = Vec::with_capacity(n_batches);
        for _ in 0..n_batches {
            let mut chosen: Vec<usize> = Vec::with_capacity(self.p);
            while chosen.len() < self.p {
                let c = classes.draw(&mut rng);
                // A class drawn twice across a reshuffle boundary is skipped for this batch.
                if !chosen.contains(&c) {
                    chosen.push(c);
                }
            }
            let mut batch = Vec::with_capacity(self.batch_size());
            for c in chosen {
                for _ in 0..self.k {
                    batch.push(images[c].draw(&mut rng));
                }
            }
            batches.push(batch);
        }
        Ok(batches)
    }
}

/// Consecutive batches of at most `batch_size`, in the given order (evaluation).
pub fn sequential_batches(indices: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    indices
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// A fresh random order each epoch, cut into batches; the last partial batch is
/// dropped when `drop_last` (BatchNorm dislikes a batch of one).
pub fn shuffled_batches(
    indices: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: u64,
    drop_last: bool,
) -> Vec<Vec<usize>> {
    let mut order = indices.to_vec();
    Rng::derive(seed, &[0x5348_5546, epoch]).shuffle(&mut order);
    let mut batches = sequential_batches(&order, batch_size);
    if drop_last && batches.len() > 1 && batches.last().is_some_and(|b| b.len() < batch_size) {
        batches.pop();
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// 10 classes; class c has c + 1 images (class 0 has a lone image).
    fn labels() -> Vec<usize> {
        (0..10)
            .flat_map(|c| std::iter::repeat_n(c, c + 1))
            .collect()
    }

    #[test]
    fn every_batch_has_p_distinct_classes_with_k_images_each() {
        let labels = labels();
        let indices: Vec<usize> = (0..labels.len()).collect();
        let sampler = PkSampler::new(4, 3).unwrap();
        let batches = sampler.epoch(&indices, |i| labels[i], 42, 0).unwrap();
        assert_eq!(batches.len(), labels.len() / 12);
        for batch in &batches {
            assert_eq!(batch.len(), 12);
            let mut per_class: HashMap<usize, usize> = HashMap::new();
            for &i in batch {
                *per_class.entry(labels[i]).or_default() += 1;
            }
            assert_eq!(per_class.len(), 4, "{per_class:?}");
            assert!(per_class.values().all(|&n| n == 3));
            assert!(
                !per_class.contains_key(&0),
                "a lone-image class was sampled"
            );
            // A class with at least K images gives K distinct images.
            for (&c, _) in per_class.iter().filter(|(&c, _)| c + 1 >= 3) {
                let mut imgs: Vec<usize> =
                    batch.iter().copied().filter(|&i| labels[i] == c).collect();
                imgs.dedup();
                assert_eq!(imgs.len(), 3, "class {c} repeated an image");
            }
        }
    }

    #[test]
    fn epochs_differ_but_are_reproducible() {
        let labels = labels();
        let indices: Vec<usize> = (0..labels.len()).collect();
        let s = PkSampler::new(3, 2).unwrap();
        let a = s.epoch(&indices, |i| labels[i], 7, 0).unwrap();
        assert_eq!(a, s.epoch(&indices, |i| labels[i], 7, 0).unwrap());
        assert_ne!(a, s.epoch(&indices, |i| labels[i], 7, 1).unwrap());
    }

    #[test]
    fn too_few_classes_is_a_clear_error() {
        let labels = [0, 0, 1, 1, 2];
        let err = PkSampler::new(3, 2)
            .unwrap()
            .epoch(&[0, 1, 2, 3, 4], |i| labels[i], 1, 0)
            .unwrap_err();
        assert!(err.to_string().contains("needs 3 classes"), "{err}");
        assert!(PkSampler::new(1, 4).is_err());
    }

    #[test]
    fn shuffled_batches_cover_every_index_once() {
        let idx: Vec<usize> = (0..23).collect();
        let b = shuffled_batches(&idx, 5, 1, 0, false);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, idx);
        assert_eq!(shuffled_batches(&idx, 5, 1, 0, true).concat().len(), 20);
        assert_eq!(sequential_batches(&idx, 10).len(), 3);
    }
}
