//! `dmlviz eval`: every metric and table of a run, recomputed from its checkpoints (or,
//! for a run of imported embeddings, from its stored embeddings) —
//! the reference experiments' tables (`all_classes_metrics`, `*_classification_report`,
//! `comparison_*`, precision drops) plus Recall@k, MAP@R, MRR, NMI/AMI, majority vote
//! and, for losses with class weights, the accuracy of their own logits.

use super::clustering::{clustering_metrics, KMeansConfig};
use super::metrics::{
    label_counts, neighbour_labels, required_k, retrieval_metrics, Neighbours, DEFAULT_RECALL_KS,
    DEFAULT_VOTE_KS,
};
use super::phase_model::{PhaseModel, StoredEmbeddings};
use super::report::{
    classification_report, classification_report_csv, classification_report_dict, confusion_matrix,
    confusion_matrix_csv, csv_field, ClassificationReport,
};
use crate::atomic::{write_atomic, write_json};
use crate::config::Phase;
use crate::data::ClassProtocol;
use crate::device::onto;
use crate::run::comparison::PrecisionDrop;
use crate::run::embeddings::{self, EmbeddingsIndex};
use crate::run::lock::RunLock;
use crate::run::metrics::{ClassAccuracy, ClassRow, PhaseMetrics};
use crate::run::provenance;
use crate::run::record::SCHEMA_VERSION;
use crate::run::tables::{self, ConfusionMatrix};
use crate::run::{is_run_dir, PhaseDir, RunDir};
use crate::search::knn::k_nearest;
use crate::search::Distance;
use crate::tensor_io::write_safetensors;
use crate::train::embed::{embed, EmbedOptions, Embedded};
use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

/// Labels of a `[n]` tensor as indices; `what` names them in the error.
fn to_usize(t: &Tensor, what: &str) -> Result<Vec<usize>> {
    let values = Vec::<i64>::try_from(t).with_context(|| format!("reading {what}"))?;
    Ok(values.into_iter().map(|v| v as usize).collect())
}

/// Rows of a `[n, d]` tensor; `what` names them in the error.
fn rows_f32(t: &Tensor, what: &str) -> Result<Vec<Vec<f32>>> {
    Vec::try_from(&t.to_kind(Kind::Float)).with_context(|| format!("reading {what}"))
}

/// Stores train (reference) and test (query) embeddings, labels and sample indices,
/// and the image paths beside them, for projection and explanation.
fn save_embeddings(
    dir: &PhaseDir,
    pm: &PhaseModel,
    refs: &Embedded,
    queries: &Embedded,
) -> Result<()> {
    let idx =
        |e: &Embedded| Tensor::from_slice(&e.indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
    write_safetensors(
        &dir.embeddings(),
        &[
            (
                embeddings::TRAIN_EMBEDDINGS.into(),
                refs.embeddings.shallow_clone(),
            ),
            (embeddings::TRAIN_LABELS.into(), refs.labels.shallow_clone()),
            (embeddings::TRAIN_INDICES.into(), idx(refs)),
            (
                embeddings::TEST_EMBEDDINGS.into(),
                queries.embeddings.shallow_clone(),
            ),
            (
                embeddings::TEST_LABELS.into(),
                queries.labels.shallow_clone(),
            ),
            (embeddings::TEST_INDICES.into(), idx(queries)),
        ],
    )?;
    let paths = |e: &Embedded| {
        e.indices
            .iter()
            .map(|&i| pm.exp.samples[i].path.clone())
            .collect::<Vec<_>>()
    };
    let index = EmbeddingsIndex {
        schema_version: SCHEMA_VERSION,
        classes: pm.exp.dataset.classes.clone(),
        train_paths: paths(refs),
        test_paths: paths(queries),
    };
    write_json(&dir.embeddings_index(), &index)
}

/// What scoring a phase needs: its embeddings, its classes and protocol, and the
/// network when there is one (for the loss's logits and sub-centre outliers).
struct PhaseEmbeddings<'a> {
    refs: Embedded,
    queries: Embedded,
    classes: &'a [String],
    protocol: ClassProtocol,
    distance: Distance,
    model: Option<&'a PhaseModel>,
}

/// Evaluates one trained phase and writes its files.
pub fn evaluate_phase(run: &RunDir, phase: Phase, device: Device) -> Result<PhaseMetrics> {
    let pm = PhaseModel::load_on(run, phase, device)?;
    let dir = run.phase(phase);
    let exp = &pm.exp;
    let opts = EmbedOptions {
        progress: Some("embed"),
        ..exp.embed_options()
    };
    let refs = embed(&pm.model.net, &exp.samples, &exp.split.train, &opts)?;
    let queries = embed(&pm.model.net, &exp.samples, &exp.split.test, &opts)?;
    save_embeddings(&dir, &pm, &refs, &queries)?;
    let input = PhaseEmbeddings {
        refs,
        queries,
        classes: &exp.dataset.classes,
        protocol: exp.protocol(phase)?,
        distance: exp.cfg.model.distance,
        model: Some(&pm),
    };
    score_phase(&dir, phase, &input)
}

/// Evaluates a phase of a run without a network (imported embeddings) from the
/// embeddings stored in it, and writes its files (all but the stored embeddings).
pub fn evaluate_stored_phase(run: &RunDir, phase: Phase) -> Result<PhaseMetrics> {
    let cfg = run.read_config()?;
    let dir = run.phase(phase);
    let stored = StoredEmbeddings::load(&dir)?;
    let n = stored.index.classes.len();
    let protocol = match phase {
        Phase::All => ClassProtocol::all(n),
        Phase::Seen => ClassProtocol::hold_out_last(n, cfg.data.held_out_classes)?,
    };
    let input = PhaseEmbeddings {
        refs: stored.train,
        queries: stored.test,
        classes: &stored.index.classes,
        protocol,
        distance: cfg.model.distance,
        model: None,
    };
    score_phase(&dir, phase, &input)
}

/// Every metric and table of a phase from its embeddings; writes `metrics.json` and
/// `tables/`.
fn score_phase(dir: &PhaseDir, phase: Phase, input: &PhaseEmbeddings) -> Result<PhaseMetrics> {
    let (refs, queries) = (&input.refs, &input.queries);
    let ref_labels = to_usize(&refs.labels, "training labels")?;
    let query_labels = to_usize(&queries.labels, "test labels")?;
    let counts = label_counts(&ref_labels);
    let k = required_k(&query_labels, &counts, &DEFAULT_VOTE_KS);
    let (idx, _) = k_nearest(
        &queries.embeddings,
        &refs.embeddings,
        k as i64,
        input.distance,
    );
    let idx: Vec<Vec<i64>> = Vec::try_from(&idx).context("reading neighbour indices")?;
    let knn = neighbour_labels(&idx, &ref_labels)?;
    let n = Neighbours::new(&query_labels, &knn, &counts)?;
    let retrieval = retrieval_metrics(&n, &DEFAULT_RECALL_KS, &DEFAULT_VOTE_KS)?;
    let clustering = clustering_metrics(
        &rows_f32(&queries.embeddings, "test embeddings")?,
        &query_labels,
        &KMeansConfig::default(),
    )?;

    // Nearest-neighbour predictions: the classification report and confusion matrix.
    let predicted: Vec<usize> = knn.iter().map(|row| row[0]).collect();
    let report = classification_report(&query_labels, &predicted)?;
    let confusion = confusion_matrix(&query_labels, &predicted)?;

    let logits_accuracy = input.model.and_then(|pm| logits_accuracy(pm, queries));
    let (classes, unseen_precision_at_1) = class_rows(
        input.classes,
        &input.protocol,
        &retrieval.per_class_precision_at_1,
        &counts,
    );
    write_tables(dir, phase, input.classes, &classes, &report, &confusion)?;
    if let Some(pm) = input.model {
        write_sub_center_outliers(dir, pm, refs)?;
    }

    let evaluation = PhaseMetrics {
        schema_version: SCHEMA_VERSION,
        phase,
        retrieval,
        clustering,
        logits_accuracy,
        unseen_precision_at_1,
        classes,
    };
    write_json(&dir.metrics(), &evaluation)?;
    Ok(evaluation)
}

/// Accuracy of the loss's own class logits on the test embeddings, for losses with
/// class parameters (ArcFace, SubCenterArcFace, ProxyNCA, classifier).
fn logits_accuracy(pm: &PhaseModel, queries: &Embedded) -> Option<f64> {
    let exp = &pm.exp;
    tch::no_grad(|| pm.model.loss.logits(&onto(&queries.embeddings, exp.device))).map(|logits| {
        let pred = logits.argmax(1, false).to_device(tch::Device::Cpu);
        pred.eq_tensor(&queries.labels)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[])
    })
}

/// One row per class (test and training counts, precision@1), and precision@1 over
/// the held-out classes' test images when the phase holds classes out.
fn class_rows(
    class_names: &[String],
    protocol: &ClassProtocol,
    per_class_precision_at_1: &[ClassAccuracy],
    counts: &[usize],
) -> (Vec<ClassRow>, Option<f64>) {
    let per_class: std::collections::HashMap<usize, (usize, f64)> = per_class_precision_at_1
        .iter()
        .map(|c| (c.label, (c.queries, c.accuracy)))
        .collect();
    let classes: Vec<ClassRow> = (0..class_names.len())
        .map(|c| {
            let (test_count, precision_at_1) = per_class.get(&c).copied().unwrap_or((0, 0.0));
            ClassRow {
                class: class_names[c].clone(),
                test_count,
                train_count: counts.get(c).copied().unwrap_or(0),
                precision_at_1,
            }
        })
        .collect();
    let unseen_precision_at_1 = (!protocol.unseen.is_empty()).then(|| {
        let (hits, total) = protocol.unseen.iter().fold((0.0, 0), |(h, t), &u| {
            (
                h + classes[u].precision_at_1 * classes[u].test_count as f64,
                t + classes[u].test_count,
            )
        });
        if total == 0 {
            0.0
        } else {
            hits / total as f64
        }
    });

    (classes, unseen_precision_at_1)
}

/// The phase's tables: per-class precision@1, the classification report (JSON and
/// CSV) and the confusion matrix (JSON and CSV).
fn write_tables(
    dir: &PhaseDir,
    phase: Phase,
    class_names: &[String],
    classes: &[ClassRow],
    report: &ClassificationReport,
    confusion: &ConfusionMatrix,
) -> Result<()> {
    let tables_dir = dir.tables();
    let mut csv = String::from("class,test_count,train_count,precision_at_1\n");
    for r in classes {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(&r.class),
            r.test_count,
            r.train_count,
            r.precision_at_1
        ));
    }
    write_atomic(
        &tables_dir.join(tables::class_metrics_csv(phase)),
        csv.as_bytes(),
    )?;
    let report_dict = classification_report_dict(report, class_names);
    write_json(
        &tables_dir.join(tables::classification_report(phase, "json")),
        &report_dict,
    )?;
    write_atomic(
        &tables_dir.join(tables::classification_report(phase, "csv")),
        classification_report_csv(report, class_names).as_bytes(),
    )?;
    write_json(&dir.confusion_matrix(), confusion)?;
    write_atomic(
        &tables_dir.join(tables::CONFUSION_CSV),
        confusion_matrix_csv(confusion, class_names).as_bytes(),
    )?;

    Ok(())
}

/// SubCenterArcFace: training images far from their class's dominant sub-centre
/// (label noise or a second mode of the class), as `sub_center_outliers.csv`.
fn write_sub_center_outliers(dir: &PhaseDir, pm: &PhaseModel, refs: &Embedded) -> Result<()> {
    let exp = &pm.exp;
    let tables_dir = dir.tables();
    if let Some(reports) = tch::no_grad(|| {
        pm.model.loss.outliers(
            &onto(&refs.embeddings, exp.device),
            &onto(&refs.labels, exp.device),
        )
    }) {
        let mut csv = String::from(
            "class,dominant_sub_center,samples_per_sub_center,outlier,cosine_to_dominant\n",
        );
        for r in &reports {
            let class = csv_field(&exp.dataset.classes[r.class as usize]);
            let counts = r
                .counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            for (&row, cos) in r.outliers.iter().zip(&r.outlier_cosines) {
                let path = exp.samples[refs.indices[row]].path.display().to_string();
                csv.push_str(&format!(
                    "{class},{},{counts},{},{cos}\n",
                    r.dominant_sub_center,
                    csv_field(&path)
                ));
            }
        }
        write_atomic(
            &tables_dir.join(tables::SUB_CENTER_OUTLIERS_CSV),
            csv.as_bytes(),
        )?;
    }

    Ok(())
}

/// Compares the two phases and writes `comparison/`.
pub fn compare(
    run: &RunDir,
    all: &PhaseMetrics,
    seen: &PhaseMetrics,
    held_out: &[usize],
) -> Result<PrecisionDrop> {
    let drop = |c: usize| all.classes[c].precision_at_1 - seen.classes[c].precision_at_1;
    let mut unseen_csv = String::from(
        "class,precision_at_1_all_classes_model,precision_at_1_limited_classes_model\n",
    );
    for &c in held_out {
        unseen_csv.push_str(&format!(
            "{},{},{}\n",
            csv_field(&all.classes[c].class),
            all.classes[c].precision_at_1,
            seen.classes[c].precision_at_1
        ));
    }
    let mut all_csv = unseen_csv.lines().next().unwrap().to_string() + "\n";
    for (a, s) in all.classes.iter().zip(&seen.classes) {
        all_csv.push_str(&format!(
            "{},{},{}\n",
            csv_field(&a.class),
            a.precision_at_1,
            s.precision_at_1
        ));
    }
    write_atomic(&run.comparison_table("unseen"), unseen_csv.as_bytes())?;
    write_atomic(&run.comparison_table("seen"), all_csv.as_bytes())?;
    let mean = |v: Vec<f64>| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let comparison = PrecisionDrop {
        schema_version: SCHEMA_VERSION,
        precision_drop_unseen_classes: mean(held_out.iter().map(|&c| drop(c)).collect()),
        precision_drop_all_classes: mean((0..all.classes.len()).map(drop).collect()),
        held_out_classes: held_out
            .iter()
            .map(|&c| all.classes[c].class.clone())
            .collect(),
    };
    write_json(&run.precision_drop(), &comparison)?;
    Ok(comparison)
}

/// `dmlviz eval`: takes the run's writer lock, then [`evaluate_run`]. Commands that
/// already hold the lock (train, after training) call [`evaluate_run`] directly.
/// Computes on `device` (`--device`).
pub fn run_eval(
    run: &RunDir,
    device: Device,
) -> Result<(Vec<PhaseMetrics>, Option<PrecisionDrop>)> {
    // The lock would create a missing directory: refuse a non-run before taking it.
    if !is_run_dir(&run.root) {
        bail!(
            "{}: not a run directory (no config.toml)",
            run.root.display()
        );
    }
    let _lock = RunLock::acquire(&run.root, "eval")?;
    evaluate_run(run, device)
}

/// Evaluates every trained phase of a run, and compares them when both exist. The
/// caller holds the run's writer lock.
pub fn evaluate_run(
    run: &RunDir,
    device: Device,
) -> Result<(Vec<PhaseMetrics>, Option<PrecisionDrop>)> {
    // A run of imported embeddings has no network: its stored embeddings are scored.
    let embeddings_only = provenance::read(run)?.is_some_and(|p| p.embeddings_only());
    let mut phases = Vec::new();
    for phase in [Phase::All, Phase::Seen] {
        let dir = run.phase(phase);
        if embeddings_only && dir.embeddings().exists() {
            phases.push(evaluate_stored_phase(run, phase)?);
        } else if !embeddings_only && dir.checkpoint().exists() {
            phases.push(evaluate_phase(run, phase, device)?);
        }
    }
    if phases.is_empty() {
        bail!(
            "{}: no trained phase (no {})",
            run.root.display(),
            if embeddings_only {
                "embeddings.safetensors"
            } else {
                "checkpoint.safetensors"
            }
        );
    }
    let comparison = match (
        phases.iter().find(|p| p.phase == Phase::All),
        phases.iter().find(|p| p.phase == Phase::Seen),
    ) {
        (Some(all), Some(seen)) => {
            let cfg = run.read_config()?;
            let n = all.classes.len();
            let held_out: Vec<usize> = (n.saturating_sub(cfg.data.held_out_classes)..n).collect();
            Some(compare(run, all, seen, &held_out)?)
        }
        _ => None,
    };
    Ok((phases, comparison))
}
