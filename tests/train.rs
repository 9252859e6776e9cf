//! Training end to end on the committed card fixture: the run directory, two-phase
//! protocol, reproducibility, resume after an interruption, NaN handling, and the
//! shipped presets.

use dmlviz::config::{ExperimentConfig, Phase};
use dmlviz::run::{EpochRecord, RunDir};
use dmlviz::train::trainer::{train, Stopped, TrainOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny experiment: 8 card classes × 6 decks, 32², MobileNetV2 from scratch, 4×2 batches.
fn tiny(epochs: usize) -> ExperimentConfig {
    let text = format!(
        r#"
name = "tiny"
[data]
path = "{}"
image_size = 32
resize = 36
held_out_classes = 3
augment = true
[model]
backbone = "mobilenet_v2"
init = "scratch"
distance = "cosine"
embedding_dim = 16
[loss]
kind = "epshn"
[optimizer]
kind = "sgd"
lr = 0.05
momentum = 0.9
[training]
epochs = {epochs}
classes_per_batch = 4
images_per_class = 2
threads = 1
"#,
        root().join("fixtures/cards").display()
    );
    ExperimentConfig::from_toml(&text, Path::new("tiny.toml")).unwrap()
}

/// The parts of a history that must repeat exactly (timings never do).
fn learning_curve(h: &[EpochRecord]) -> Vec<(usize, f64, f64, Option<f64>, f64)> {
    h.iter()
        .map(|r| {
            (
                r.epoch,
                r.train_loss,
                r.test_accuracy,
                r.test_accuracy_unseen,
                r.lr,
            )
        })
        .collect()
}

fn checkpoint_bytes(run: &RunDir, phase: Phase) -> Vec<u8> {
    std::fs::read(run.phase(phase).checkpoint()).unwrap()
}

#[test]
fn two_phases_write_the_run_directory_and_repeat_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let a = RunDir::new(dir.path().join("a"));
    let outcomes = train(&tiny(2), &a, &TrainOptions::default()).unwrap();
    assert_eq!(outcomes.len(), 2);
    for phase in [Phase::All, Phase::Seen] {
        let p = a.phase(phase);
        let history = p.read_history().unwrap();
        assert_eq!(history.len(), 2);
        for r in &history {
            assert!(r.train_loss.is_finite() && r.train_loss > 0.0);
            assert!((0.0..=1.0).contains(&r.test_accuracy));
            assert!(r.images_per_s > 0.0 && (0.0..=1.0).contains(&r.data_wait_share));
        }
        // Only phase-seen holds classes out, and reports their accuracy apart.
        assert_eq!(
            history[0].test_accuracy_unseen.is_some(),
            phase == Phase::Seen
        );
        let state = p.read_state().unwrap().unwrap();
        assert!(state.finished && state.epochs_done == 2);
        let initial = state
            .initial_test_accuracy
            .expect("accuracy before training is recorded");
        assert!((0.0..=1.0).contains(&initial));
        let tensors = tch::Tensor::read_safetensors(p.checkpoint()).unwrap();
        assert!(
            tensors
                .iter()
                .any(|(n, _)| n == "backbone.features.0.0.weight"),
            "torchvision names expected"
        );
        assert!(tensors.iter().any(|(n, _)| n.starts_with("head.")));
    }
    assert_eq!(a.read_config().unwrap(), tiny(2));

    // Same config and seed on CPU: the same history and weights.
    let b = RunDir::new(dir.path().join("b"));
    train(&tiny(2), &b, &TrainOptions::default()).unwrap();
    for phase in [Phase::All, Phase::Seen] {
        assert_eq!(
            learning_curve(&a.phase(phase).read_history().unwrap()),
            learning_curve(&b.phase(phase).read_history().unwrap())
        );
        assert_eq!(checkpoint_bytes(&a, phase), checkpoint_bytes(&b, phase));
    }
    // A second train into the same directory without --resume is refused.
    let err = train(&tiny(2), &a, &TrainOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--resume"), "{err}");
}

#[test]
fn phases_side_by_side_equal_each_phase_trained_alone_on_one_thread() {
    // Two threads for two phases: each trains on its own thread with one libtorch thread,
    // sharing the experiment's decoded images and evaluation tensors. Nothing of one
    // phase (its random draws, its allocator, its evaluation) may leak into the other.
    let dir = tempfile::tempdir().unwrap();
    let mut both = tiny(2);
    both.training.threads = 2;
    let side = RunDir::new(dir.path().join("side"));
    let outcomes = train(&both, &side, &TrainOptions::default()).unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.phase).collect::<Vec<_>>(),
        [Phase::All, Phase::Seen],
        "outcomes in the config's order"
    );
    for phase in [Phase::All, Phase::Seen] {
        let mut alone = tiny(2);
        alone.training.phases = vec![phase];
        let run = RunDir::new(dir.path().join(phase.dir_name()));
        train(&alone, &run, &TrainOptions::default()).unwrap();
        assert_eq!(
            learning_curve(&side.phase(phase).read_history().unwrap()),
            learning_curve(&run.phase(phase).read_history().unwrap()),
            "{phase:?}: history"
        );
        assert_eq!(
            checkpoint_bytes(&side, phase),
            checkpoint_bytes(&run, phase),
            "{phase:?}: weights"
        );
    }
}

#[test]
fn an_interrupted_run_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny(2);
    cfg.training.phases = vec![Phase::All];
    let straight = RunDir::new(dir.path().join("straight"));
    train(&cfg, &straight, &TrainOptions::default()).unwrap();

    // Stop flag already raised (as Ctrl-C would): stops at the first batch, cleanly.
    let resumed = RunDir::new(dir.path().join("resumed"));
    let stopped = TrainOptions {
        stop: Arc::new(AtomicBool::new(true)),
        ..TrainOptions::default()
    };
    let err = train(&cfg, &resumed, &stopped).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<Stopped>(),
            Some(Stopped::Interrupted { .. })
        ),
        "{err:#}"
    );
    // Then one epoch and a stop (a shorter run), then resume to the end.
    let mut one = cfg.clone();
    one.training.epochs = 1;
    train(
        &one,
        &resumed,
        &TrainOptions {
            resume: true,
            ..TrainOptions::default()
        },
    )
    .unwrap();
    assert_eq!(resumed.phase(Phase::All).read_history().unwrap().len(), 1);
    train(
        &cfg,
        &resumed,
        &TrainOptions {
            resume: true,
            ..TrainOptions::default()
        },
    )
    .unwrap();

    let a = straight.phase(Phase::All).read_history().unwrap();
    let b = resumed.phase(Phase::All).read_history().unwrap();
    assert_eq!(learning_curve(&a), learning_curve(&b));
    assert_eq!(
        checkpoint_bytes(&straight, Phase::All),
        checkpoint_bytes(&resumed, Phase::All)
    );
}

/// Every tensor of a checkpoint is finite.
fn all_finite(path: &Path) -> bool {
    tch::Tensor::read_safetensors(path)
        .unwrap()
        .iter()
        .all(|(_, t)| t.isfinite().all().int64_value(&[]) != 0)
}

#[test]
fn diverging_weights_stop_training_and_keep_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("nan"));
    let mut cfg = tiny(1);
    cfg.training.phases = vec![Phase::All];
    train(&cfg, &run, &TrainOptions::default()).unwrap();
    // Then the largest learning rate and weight decay validation admits: the weights
    // grow ×9 per step until activations and BatchNorm statistics overflow, while the
    // EPSHN loss stays finite (0: its mining finds no pair among NaN distances), so
    // only the check of the weights sees it.
    cfg.training.epochs = 40;
    cfg.optimizer.lr = dmlviz::config::MAX_LR;
    cfg.optimizer.weight_decay = dmlviz::config::MAX_WEIGHT_DECAY;
    cfg.validate().unwrap();
    let err = train(
        &cfg,
        &run,
        &TrainOptions {
            resume: true,
            ..TrainOptions::default()
        },
    )
    .unwrap_err();
    let kept = match err.downcast_ref::<Stopped>() {
        Some(Stopped::NonFinite {
            epoch, kept, what, ..
        }) => {
            assert_eq!(*epoch, kept + 1);
            assert_eq!(what, "weights", "{err}");
            *kept
        }
        other => panic!("expected a non-finite stop, got {other:?}: {err:#}"),
    };
    assert!((1..40).contains(&kept), "{err}");
    assert!(err.to_string().contains("non-finite weights"), "{err}");
    let phase = run.phase(Phase::All);
    assert!(
        all_finite(&phase.checkpoint()),
        "the kept checkpoint is not the last good one"
    );
    let state = phase.read_state().unwrap().unwrap();
    assert_eq!(state.epochs_done, kept);
    assert!(!state.finished);
    assert!(state.stopped.unwrap().contains("non-finite weights"));
    assert_eq!(phase.read_history().unwrap().len(), kept);
}

#[test]
fn unknown_config_keys_are_rejected_by_name() {
    let text = std::fs::read_to_string(
        root().join("experiments/small/emoji_animals_EPSHN_cosine_mobilenet_v2_sgd.toml"),
    )
    .unwrap();
    let typo = text.replace("classes_per_batch", "clases_per_batch");
    let err = ExperimentConfig::from_toml(&typo, Path::new("typo.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("typo.toml") && err.contains("clases_per_batch"),
        "{err}"
    );
    let bad_loss = text.replace("sigma = 0.1", "sigma = 0.1\ntemperature = 2");
    let err = ExperimentConfig::from_toml(&bad_loss, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("temperature"), "{err}");
}

/// Every shipped preset parses, builds its network and loss, and either finds its
/// ImageNet weights or says where they come from and which preset runs instead.
#[test]
fn every_preset_parses_and_builds_its_model() {
    use dmlviz::config::Init;
    use dmlviz::model::Arch;
    use dmlviz::train::model::{Model, ModelSpec};
    tch::set_num_threads(1);
    let mut count = 0;
    for group in ["reference", "reference-mobilenet_v2", "small"] {
        for entry in std::fs::read_dir(root().join("experiments").join(group)).unwrap() {
            let path = entry.unwrap().path();
            let cfg = ExperimentConfig::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(
                path.file_stem().unwrap().to_string_lossy(),
                cfg.name,
                "file name and preset name differ"
            );
            if group == "reference" {
                assert_eq!(
                    (cfg.training.epochs, cfg.training.seed, cfg.data.image_size),
                    (100, 42, 224)
                );
                assert_eq!(
                    cfg.training.classes_per_batch * cfg.training.images_per_class,
                    128
                );
                assert_eq!((cfg.data.test_ratio, cfg.data.held_out_classes), (0.2, 20));
            }
            let spec = ModelSpec::from_config(&cfg, 200);
            let mut model = Model::new(&spec, &cfg.loss, tch::Device::Cpu, 42).unwrap();
            if cfg.model.init == Init::Imagenet {
                match (cfg.model.backbone, model.load_imagenet(None)) {
                    (Arch::MobileNetV2, result) => result
                        .unwrap_or_else(|e| panic!("{}: {e:#} (run `make weights`)", cfg.name)),
                    (_, Ok(())) => {}
                    (_, Err(e)) => {
                        let msg = format!("{e:#}");
                        assert!(
                            msg.contains("dmlviz weights import") && msg.contains("mobilenet_v2"),
                            "{msg}"
                        );
                    }
                }
            }
            count += 1;
        }
    }
    assert_eq!(count, 15 + 13 + 2);
}

/// The pretraining initialisations run their own resumable stage first; a checkpoint
/// init starts from another run's network.
#[test]
fn classifier_simclr_and_checkpoint_initialisations() {
    use dmlviz::config::Init;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny(1);
    cfg.training.phases = vec![Phase::All];
    let first_weights = |run: &RunDir| -> Vec<f32> {
        let t = tch::Tensor::read_safetensors(run.phase(Phase::All).checkpoint()).unwrap();
        let w = &t
            .iter()
            .find(|(n, _)| n == "backbone.features.0.0.weight")
            .unwrap()
            .1;
        Vec::try_from(&w.flatten(0, -1)).unwrap()
    };
    let scratch = RunDir::new(dir.path().join("scratch"));
    train(&cfg, &scratch, &TrainOptions::default()).unwrap();

    for (init, stage) in [
        (Init::Classifier { epochs: 2 }, "pretrain-classifier"),
        (Init::Simclr { epochs: 2 }, "pretrain-simclr"),
    ] {
        let mut c = cfg.clone();
        c.model.init = init;
        let run = RunDir::new(dir.path().join(stage));
        train(&c, &run, &TrainOptions::default()).unwrap();
        let stage_dir = dmlviz::run::PhaseDir {
            root: run.phase(Phase::All).root.join(stage),
        };
        let h = stage_dir.read_history().unwrap();
        assert_eq!(h.len(), 2, "{stage}");
        assert!(h
            .iter()
            .all(|r| r.train_loss.is_finite() && r.train_loss > 0.0));
        assert!(stage_dir.checkpoint().exists());
        // Same seed, same scratch init: only the pretraining can make the weights differ.
        assert_ne!(
            first_weights(&run),
            first_weights(&scratch),
            "{stage} left no trace"
        );
    }

    let mut c = cfg.clone();
    c.model.init = Init::Checkpoint {
        path: scratch.phase(Phase::All).root,
    };
    c.training.epochs = 1;
    let from = RunDir::new(dir.path().join("from-checkpoint"));
    train(&c, &from, &TrainOptions::default()).unwrap();
    let before = from
        .phase(Phase::All)
        .read_state()
        .unwrap()
        .unwrap()
        .initial_test_accuracy
        .unwrap();
    let scratch_last = scratch
        .phase(Phase::All)
        .read_history()
        .unwrap()
        .last()
        .unwrap()
        .test_accuracy;
    assert_eq!(
        before, scratch_last,
        "the checkpoint init must start where the other run ended"
    );
}
