//! Train/test splits and the seen/unseen class protocol of the reference experiments.

use super::dataset::Dataset;
use super::rng::Rng;
use anyhow::{bail, Result};
use serde::Serialize;

/// Sample indices (into [`Dataset::samples`]) of the training and test sets, each sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Number of test images a class of `n` images gives at `ratio`: rounded, but at least
/// one and at most `n − 1` when the class has two or more images (so every class is
/// both queried and referenced); a lone image stays in training.
pub fn test_count(n: usize, ratio: f64) -> usize {
    if n < 2 {
        return 0;
    }
    ((n as f64 * ratio).round() as usize).clamp(1, n - 1)
}

impl Split {
    /// Per-class stratified split: each class's images are shuffled with a generator
    /// derived from `seed` and the class index, and the first [`test_count`] go to test.
    /// Same dataset and seed → same split on any machine.
    pub fn stratified(dataset: &Dataset, test_ratio: f64, seed: u64) -> Result<Split> {
        if !(0.0..1.0).contains(&test_ratio) || test_ratio == 0.0 {
            bail!("test ratio must be in (0, 1), got {test_ratio}");
        }
        let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); dataset.classes.len()];
        for (i, s) in dataset.samples.iter().enumerate() {
            per_class[s.label].push(i);
        }
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (class, mut members) in per_class.into_iter().enumerate() {
            Rng::derive(seed, &[class as u64]).shuffle(&mut members);
            let n_test = test_count(members.len(), test_ratio);
            test.extend_from_slice(&members[..n_test]);
            train.extend_from_slice(&members[n_test..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        Ok(Split { train, test })
    }

    /// The dataset's own split (CUB's `train_test_split.txt`).
    pub fn official(dataset: &Dataset) -> Result<Split> {
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, s) in dataset.samples.iter().enumerate() {
            match s.official_train {
                Some(true) => train.push(i),
                Some(false) => test.push(i),
                None => bail!(
                    "{}: the dataset has no official train/test split (train_test_split.txt); use a stratified split",
                    dataset.root.display()
                ),
            }
        }
        Ok(Split { train, test })
    }

    /// The training samples a phase may learn from: those of the classes `protocol` lets it see.
    pub fn train_for(&self, dataset: &Dataset, protocol: &ClassProtocol) -> Vec<usize> {
        self.train
            .iter()
            .copied()
            .filter(|&i| protocol.is_seen(dataset.samples[i].label))
            .collect()
    }
}

/// Which classes a model may train on. The reference protocol trains once on all
/// classes and once without the last N ("unseen") classes; both models are evaluated
/// on every class, with the unseen classes' training images kept as references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassProtocol {
    pub seen: Vec<usize>,
    pub unseen: Vec<usize>,
}

impl ClassProtocol {
    /// Every class seen (the "phase-all" model).
    pub fn all(num_classes: usize) -> Self {
        ClassProtocol {
            seen: (0..num_classes).collect(),
            unseen: Vec::new(),
        }
    }

    /// The last `held_out` classes unseen (the "phase-seen" model).
    pub fn hold_out_last(num_classes: usize, held_out: usize) -> Result<Self> {
        if held_out + 2 > num_classes {
            bail!(
                "cannot hold out {held_out} of {num_classes} classes: at least 2 classes must remain for training"
            );
        }
        let cut = num_classes - held_out;
        Ok(ClassProtocol {
            seen: (0..cut).collect(),
            unseen: (cut..num_classes).collect(),
        })
    }

    /// True when a model under this protocol trains on class `label`.
    pub fn is_seen(&self, label: usize) -> bool {
        self.unseen.binary_search(&label).is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Sample;

    /// In-memory dataset: class c has sizes[c] images (paths are never opened by splits).
    fn dataset(sizes: &[usize]) -> Dataset {
        let mut samples = Vec::new();
        for (label, &n) in sizes.iter().enumerate() {
            for j in 0..n {
                samples.push(Sample {
                    path: format!("c{label}/{j}.png").into(),
                    label,
                    official_train: Some(j % 2 == 0),
                });
            }
        }
        Dataset {
            name: "mem".into(),
            root: "mem".into(),
            layout: "folder",
            classes: (0..sizes.len()).map(|c| format!("class{c}")).collect(),
            samples,
            unreadable: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn test_counts_round_and_keep_both_sides_non_empty() {
        assert_eq!(test_count(1, 0.2), 0);
        assert_eq!(test_count(2, 0.2), 1);
        assert_eq!(test_count(4, 0.2), 1);
        assert_eq!(test_count(10, 0.2), 2);
        assert_eq!(test_count(12, 0.2), 2); // 2.4 rounds down
        assert_eq!(test_count(13, 0.2), 3); // 2.6 rounds up
        assert_eq!(test_count(3, 0.9), 2);
    }

    #[test]
    fn stratified_split_is_per_class_disjoint_and_complete() {
        let d = dataset(&[10, 4, 1, 13, 60]);
        let s = Split::stratified(&d, 0.2, 42).unwrap();
        let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
        all.sort();
        assert_eq!(
            all,
            (0..d.samples.len()).collect::<Vec<_>>(),
            "not a partition"
        );
        for (label, &n) in [10usize, 4, 1, 13, 60].iter().enumerate() {
            let tests = s
                .test
                .iter()
                .filter(|&&i| d.samples[i].label == label)
                .count();
            assert_eq!(tests, test_count(n, 0.2), "class {label}");
        }
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let d = dataset(&[20, 20, 20]);
        let a = Split::stratified(&d, 0.2, 42).unwrap();
        assert_eq!(a, Split::stratified(&d, 0.2, 42).unwrap());
        assert_ne!(a, Split::stratified(&d, 0.2, 43).unwrap());
        // The split is pinned: changing the generator or the algorithm must be deliberate.
        assert_eq!(a.test.len(), 12);
        let first_class_tests: Vec<usize> = a.test.iter().copied().filter(|&i| i < 20).collect();
        assert_eq!(first_class_tests.len(), 4);
        let again = Split::stratified(&dataset(&[20, 20, 20, 5]), 0.2, 42).unwrap();
        assert_eq!(
            &again.test[..12],
            &a.test[..],
            "adding a class changed other classes' split"
        );
    }

    #[test]
    fn official_split_follows_the_file_and_needs_one() {
        let d = dataset(&[4, 2]);
        let s = Split::official(&d).unwrap();
        assert_eq!(s.train, vec![0, 2, 4]);
        assert_eq!(s.test, vec![1, 3, 5]);
        let mut no_split = d.clone();
        no_split.samples[3].official_train = None;
        assert!(Split::official(&no_split)
            .unwrap_err()
            .to_string()
            .contains("no official"));
    }

    #[test]
    fn holding_out_the_last_classes_removes_them_from_training_only() {
        let d = dataset(&[5, 5, 5, 5, 5]);
        let split = Split::stratified(&d, 0.2, 42).unwrap();
        let protocol = ClassProtocol::hold_out_last(5, 2).unwrap();
        assert_eq!(protocol.seen, vec![0, 1, 2]);
        assert_eq!(protocol.unseen, vec![3, 4]);
        let train = split.train_for(&d, &protocol);
        assert!(train.iter().all(|&i| d.samples[i].label < 3));
        assert_eq!(train.len(), 3 * 4);
        // Evaluation keeps every class: the test set is untouched.
        assert!(split.test.iter().any(|&i| d.samples[i].label == 4));
        assert_eq!(split.train_for(&d, &ClassProtocol::all(5)), split.train);
        assert!(ClassProtocol::hold_out_last(5, 4).is_err());
    }
}
