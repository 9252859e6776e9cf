//! The batch loader on real fixture images: tensor shapes and values, determinism,
//! skipped images, and one libtorch forward/backward pass on its output.

use dmlviz::data::loader::{BatchLoader, DecodedCache, LoaderOptions};
use dmlviz::data::sampler::{sequential_batches, PkSampler};
use dmlviz::data::transform::Transform;
use dmlviz::data::{Dataset, Split};
use std::path::Path;
use std::sync::Arc;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

fn cards() -> Dataset {
    tch::set_num_threads(1);
    Dataset::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards")).unwrap()
}

fn options(transform: Transform, seed: u64) -> LoaderOptions {
    LoaderOptions {
        transform,
        threads: 2,
        prefetch: 2,
        seed,
        epoch: 0,
        cache: None,
    }
}

#[test]
fn pk_batches_come_out_as_normalised_tensors_with_matching_labels() {
    let d = cards();
    let split = Split::stratified(&d, 0.2, 42).unwrap();
    let batches = PkSampler::new(4, 2)
        .unwrap()
        .epoch(&split.train, |i| d.samples[i].label, 42, 0)
        .unwrap();
    let n = batches.len();
    let loader = BatchLoader::start(
        Arc::new(d.samples.clone()),
        batches,
        options(Transform::train(36, 32, true), 42),
    )
    .unwrap();
    let mut seen = 0;
    for batch in loader {
        assert_eq!(batch.images.size(), vec![8, 3, 32, 32]);
        assert_eq!(batch.images.kind(), Kind::Float);
        let labels = Vec::<i64>::try_from(&batch.labels).unwrap();
        let expected: Vec<i64> = batch
            .indices
            .iter()
            .map(|&i| d.samples[i].label as i64)
            .collect();
        assert_eq!(labels, expected);
        let (lo, hi) = (
            batch.images.min().double_value(&[]),
            batch.images.max().double_value(&[]),
        );
        assert!(
            lo >= -2.2 && hi <= 2.7 && hi > lo,
            "values outside ImageNet-normalised range: {lo}..{hi}"
        );
        seen += 1;
    }
    assert_eq!(seen, n);
}

#[test]
fn same_seed_gives_the_same_augmented_batches() {
    let d = cards();
    let batches = sequential_batches(&(0..16).collect::<Vec<_>>(), 8);
    let run = |seed| -> Vec<Tensor> {
        BatchLoader::start(
            Arc::new(d.samples.clone()),
            batches.clone(),
            options(Transform::train(40, 32, true), seed),
        )
        .unwrap()
        .map(|b| b.images)
        .collect()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.equal(y)),
        "same seed, different batches"
    );
    assert!(
        a.iter().zip(&c).any(|(x, y)| !x.equal(y)),
        "the seed has no effect"
    );
}

#[test]
fn cached_loading_gives_the_same_tensors_as_decoding() {
    let d = cards();
    let batches = sequential_batches(&(0..12).collect::<Vec<_>>(), 6);
    let t = Transform::test(36, 32);
    let plain: Vec<Tensor> =
        BatchLoader::start(Arc::new(d.samples.clone()), batches.clone(), options(t, 1))
            .unwrap()
            .map(|b| b.images)
            .collect();
    let cache = DecodedCache::new();
    for _ in 0..2 {
        let opts = LoaderOptions {
            cache: Some(cache.clone()),
            ..options(t, 1)
        };
        let cached: Vec<Tensor> =
            BatchLoader::start(Arc::new(d.samples.clone()), batches.clone(), opts)
                .unwrap()
                .map(|b| b.images)
                .collect();
        assert!(plain.iter().zip(&cached).all(|(x, y)| x.equal(y)));
    }
    assert_eq!(cache.len(), 12);
}

#[test]
fn a_truncated_image_is_skipped_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = cards();
    // Copy 2 classes × 3 images, then cut one file short after its header.
    let mut samples = Vec::new();
    for s in src.samples.iter().filter(|s| s.label < 2).take(6) {
        let to = dir
            .path()
            .join(s.path.file_name().unwrap())
            .with_extension(format!("{}.png", s.label));
        std::fs::copy(&s.path, &to).unwrap();
        samples.push(dmlviz::data::Sample {
            path: to,
            ..s.clone()
        });
    }
    let bytes = std::fs::read(&samples[1].path).unwrap();
    std::fs::write(&samples[1].path, &bytes[..bytes.len() / 3]).unwrap();
    let mut loader = BatchLoader::start(
        Arc::new(samples.clone()),
        vec![(0..6).collect()],
        options(Transform::test(32, 32), 1),
    )
    .unwrap();
    let batch = loader.next().unwrap();
    assert_eq!(batch.images.size()[0], 5);
    assert_eq!(batch.indices, vec![0, 2, 3, 4, 5]);
    assert!(loader.next().is_none());
    let skipped = loader.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].path, samples[1].path);
    assert!(
        skipped[0].reason.contains("corrupt or truncated"),
        "{}",
        skipped[0].reason
    );
}

#[test]
fn libtorch_trains_on_loader_output() {
    let d = cards();
    let batches = sequential_batches(&(0..16).collect::<Vec<_>>(), 16);
    let batch = BatchLoader::start(
        Arc::new(d.samples.clone()),
        batches,
        options(Transform::test(32, 32), 1),
    )
    .unwrap()
    .next()
    .unwrap();
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let net = nn::seq()
        .add(nn::conv2d(vs.root() / "conv", 3, 8, 3, Default::default()))
        .add_fn(|x| x.relu().adaptive_avg_pool2d([1, 1]).flatten(1, -1))
        .add(nn::linear(
            vs.root() / "fc",
            8,
            d.classes.len() as i64,
            Default::default(),
        ));
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    let loss_of = |net: &nn::Sequential| {
        net.forward(&batch.images)
            .cross_entropy_for_logits(&batch.labels)
    };
    let first = loss_of(&net).double_value(&[]);
    for _ in 0..30 {
        opt.backward_step(&loss_of(&net));
    }
    let last = loss_of(&net).double_value(&[]);
    assert!(
        first.is_finite() && last < first,
        "loss did not fall: {first} → {last}"
    );
}
