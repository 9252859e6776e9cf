//! The run directory's records: every record that one command writes and another reads
//! survives the trip through the report's (and the study's) reading path with every
//! field; records of older and newer dmlviz versions still read; and the old run kept
//! in `fixtures/old-run/` still renders.

mod common;

use common::{dmlviz, ok};
use dmlviz::atomic::write_json;
use dmlviz::config::Phase;
use dmlviz::run::comparison::PrecisionDrop;
use dmlviz::run::cost::PhaseCost;
use dmlviz::run::embeddings::EmbeddingsIndex;
use dmlviz::run::explanations::{ExplanationIndex, ExplanationItem, ExplanationNeighbour};
use dmlviz::run::galleries::{
    ClassVotes, Galleries, GalleryItem, GalleryNeighbour, GalleryThumbs, Query,
};
use dmlviz::run::hardware::Hardware;
use dmlviz::run::metrics::{
    AtK, ClassAccuracy, ClassRow, ClusteringMetrics, PerClassAtK, PhaseMetrics, RetrievalMetrics,
};
use dmlviz::run::projections::{ProjectionRecord, SpriteInfo};
use dmlviz::run::record::{read_record, LEGACY_SCHEMA, SCHEMA_VERSION};
use dmlviz::run::tables::ConfusionMatrix;
use dmlviz::run::{EpochRecord, RunDir, TrainState};
use dmlviz::search::Distance;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

fn metrics() -> PhaseMetrics {
    PhaseMetrics {
        schema_version: SCHEMA_VERSION,
        phase: Phase::All,
        retrieval: RetrievalMetrics {
            queries: 9,
            evaluated_queries: 8,
            lone_queries: 1,
            lone_labels: vec![4],
            k: 10,
            precision_at_1: 0.625,
            recall_at_k: vec![AtK { k: 2, value: 0.75 }],
            r_precision: 0.5,
            map_at_r: 0.375,
            mean_reciprocal_rank: 0.7,
            majority_vote_accuracy: vec![AtK { k: 10, value: 0.25 }],
            per_class_precision_at_1: vec![ClassAccuracy {
                label: 1,
                queries: 2,
                accuracy: 0.5,
            }],
            per_class_majority_vote: vec![PerClassAtK {
                k: 5,
                classes: vec![ClassAccuracy {
                    label: 0,
                    queries: 3,
                    accuracy: 1.0,
                }],
            }],
        },
        clustering: ClusteringMetrics {
            queries: 8,
            clusters: 3,
            nmi: Some(0.4),
            ami: Some(0.3),
            inertia: 12.5,
            note: Some("a note".into()),
        },
        logits_accuracy: Some(0.875),
        unseen_precision_at_1: Some(0.125),
        classes: vec![ClassRow {
            class: "a <b>".into(),
            test_count: 2,
            train_count: 5,
            precision_at_1: 0.5,
        }],
    }
}

fn history() -> Vec<EpochRecord> {
    vec![EpochRecord {
        epoch: 1,
        train_loss: 0.75,
        test_accuracy: 0.5,
        test_accuracy_unseen: Some(0.25),
        lr: 0.01,
        images_per_s: 120.0,
        data_wait_share: 0.125,
        seconds: 3.5,
    }]
}

fn state() -> TrainState {
    TrainState {
        epochs_done: 1,
        epochs_total: 2,
        finished: false,
        stopped: Some("interrupted".into()),
        initial_test_accuracy: Some(0.125),
    }
}

fn precision_drop() -> PrecisionDrop {
    PrecisionDrop {
        schema_version: SCHEMA_VERSION,
        precision_drop_unseen_classes: 0.25,
        precision_drop_all_classes: 0.125,
        held_out_classes: vec!["c".into()],
    }
}

fn hardware() -> Hardware {
    Hardware {
        schema_version: SCHEMA_VERSION,
        host: Some("h".into()),
        os: "Linux".into(),
        cpu: Some("cpu".into()),
        logical_cpus: 4,
        memory_gib: Some(7.5),
        cuda_devices: 1,
        dmlviz: "0.1.0".into(),
    }
}

fn projection() -> ProjectionRecord {
    ProjectionRecord {
        schema_version: SCHEMA_VERSION,
        method: "umap".into(),
        points: 48,
        dims: 16,
        params: serde_json::json!({"n_neighbors": 15}),
        seconds: 0.5,
        trustworthiness: 0.875,
        knn_label_agreement: 0.25,
        pca_dims: Some(8),
        distance: Some(Distance::Cosine),
        duplicates: 1,
        aligned_to: None,
    }
}

fn galleries() -> Galleries {
    Galleries {
        schema_version: SCHEMA_VERSION,
        items: vec![GalleryItem {
            id: "q12".into(),
            query: Query::Path("data/x/a.png".into()),
            true_class: "a".into(),
            predicted: "b".into(),
            majority: "a".into(),
            correct: true,
            unseen: true,
            sheet: "q12.jpg".into(),
            cell: Some(12),
            neighbours: vec![GalleryNeighbour {
                path: "data/y/b.png".into(),
                class: "b".into(),
                distance: 0.25,
                correct: true,
                cell: Some(3),
            }],
            top_classes: vec![ClassVotes {
                class: "b".into(),
                votes: 6,
            }],
        }],
        thumbs: Some(GalleryThumbs {
            sprite: SpriteInfo::with_cell("sprite", 20, 64),
            dir: "../projections/".into(),
        }),
    }
}

fn explanations() -> ExplanationIndex {
    ExplanationIndex {
        schema_version: SCHEMA_VERSION,
        phase: Some(Phase::All),
        k: 10,
        method_notes: "notes".into(),
        items: vec![ExplanationItem {
            image: "data/x/a.png".into(),
            true_class: "a".into(),
            predicted: "b".into(),
            correct: true,
            unseen_class: true,
            dir: "01-a-a".into(),
            maps: [(
                "gradcam".to_string(),
                "01-a-a/gradcam-overlay.png".to_string(),
            )]
            .into(),
            status: [("gradcam".to_string(), "constant".to_string())].into(),
            neighbours: vec![ExplanationNeighbour {
                path: "data/y/b.png".into(),
                class: "b".into(),
                distance: 0.25,
                thumbnail: "01-a-a/neighbour-0.jpg".into(),
            }],
        }],
    }
}

fn cost() -> PhaseCost {
    PhaseCost {
        schema_version: SCHEMA_VERSION,
        training_seconds: 10.5,
        training_images_per_s: 100.0,
        embedding_images_per_s: 400.0,
        index_entries: 40,
        embedding_dim: 16,
        index_bytes: 2560,
        knn_predict_seconds: 0.01,
        logits_predict_seconds: Some(0.005),
        latency_images: 2,
    }
}

fn embeddings_index() -> EmbeddingsIndex {
    EmbeddingsIndex {
        schema_version: SCHEMA_VERSION,
        classes: vec!["a".into()],
        train_paths: vec!["data/x/a.png".into()],
        test_paths: vec!["data/x/b.png".into()],
    }
}

/// Fails naming the first null, empty string, empty array or empty object in `v`: the
/// values above must set every field, or the round trip would not test it.
fn assert_populated(v: &Value, at: &str) {
    match v {
        Value::Null => panic!("{at} is null: set it, or the round trip does not cover it"),
        Value::String(s) => assert!(!s.is_empty(), "{at} is empty"),
        Value::Array(a) => {
            assert!(!a.is_empty(), "{at} is empty");
            for (i, x) in a.iter().enumerate() {
                assert_populated(x, &format!("{at}[{i}]"));
            }
        }
        Value::Object(o) => {
            assert!(!o.is_empty(), "{at} is empty");
            for (k, x) in o {
                assert_populated(x, &format!("{at}.{k}"));
            }
        }
        _ => {}
    }
}

/// `read` is `written` read back: the same JSON tree, so no field was dropped or
/// changed on the way; and the file on disk has exactly those keys.
fn assert_round_trip<T: Serialize>(what: &str, written: &T, read: Option<&T>, file: &Path) {
    let want = serde_json::to_value(written).unwrap();
    assert_populated(&want, what);
    let got =
        serde_json::to_value(read.unwrap_or_else(|| panic!("{what}: not read back"))).unwrap();
    assert_eq!(got, want, "{what}: read back differently");
    if file.extension().is_some_and(|e| e == "json") {
        let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(on_disk, want, "{what}: the file holds other keys");
    }
}

#[test]
fn every_record_reads_back_through_the_report_with_every_field() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::new(tmp.path().join("run"));
    let phase = run.phase(Phase::All);
    std::fs::create_dir_all(phase.projections()).unwrap();
    // History and train-state become visible together, through one epoch commit.
    let mut commit = dmlviz::run::epoch_commit::Staging::begin(&phase.root).unwrap();
    phase.stage_history(&mut commit, &history()).unwrap();
    phase.stage_state(&mut commit, &state()).unwrap();
    commit.commit(history().len()).unwrap();
    write_json(&phase.metrics(), &metrics()).unwrap();
    write_json(&phase.cost(), &cost()).unwrap();
    write_json(&phase.embeddings_index(), &embeddings_index()).unwrap();
    write_json(&phase.projection_record("umap"), &projection()).unwrap();
    std::fs::write(phase.projections().join("umap.png"), b"").unwrap();
    write_json(&phase.galleries(), &galleries()).unwrap();
    write_json(&phase.explanations(), &explanations()).unwrap();
    let confusion = ConfusionMatrix::new(vec![0, 1], vec![vec![2, 1], vec![0, 3]]);
    write_json(&phase.confusion_matrix(), &confusion).unwrap();
    write_json(&run.precision_drop(), &precision_drop()).unwrap();
    write_json(&run.hardware(), &hardware()).unwrap();

    // The report's reading path.
    let summary = dmlviz::report::read::read_run(&run.root);
    let p = summary.phase(Phase::All).expect("phase-all read");
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_round_trip(
        "history",
        &history(),
        Some(&p.history),
        &phase.history_path(),
    );
    assert_round_trip(
        "train-state",
        &state(),
        p.state.as_ref(),
        &phase.state_path(),
    );
    assert_round_trip("metrics", &metrics(), p.metrics.as_ref(), &phase.metrics());
    assert_eq!(p.projections.len(), 1, "{:?}", p.projections);
    assert_round_trip(
        "projection",
        &projection(),
        p.projections[0].info.as_ref(),
        &phase.projection_record("umap"),
    );
    assert_round_trip(
        "galleries",
        &galleries(),
        p.galleries.as_ref(),
        &phase.galleries(),
    );
    assert_round_trip(
        "explanations",
        &explanations(),
        p.explanations.as_ref(),
        &phase.explanations(),
    );
    assert_round_trip(
        "precision drop",
        &precision_drop(),
        summary.comparison.as_ref(),
        &run.precision_drop(),
    );
    assert_round_trip(
        "hardware",
        &hardware(),
        summary.hardware.as_ref(),
        &run.hardware(),
    );
    let matrix = ConfusionMatrix::read(&phase.confusion_matrix()).unwrap();
    assert_round_trip(
        "confusion",
        &confusion,
        Some(&matrix),
        &phase.confusion_matrix(),
    );

    // The study's reading path (metrics, precision drop, cost).
    let result = dmlviz::study::results::read_run("d", "r", 1, &run.root)
        .unwrap()
        .unwrap();
    assert_eq!(result.precision_at_1, metrics().retrieval.precision_at_1);
    assert_eq!(result.majority_vote_accuracy, Some(0.25));
    assert_eq!(result.precision_drop_unseen, Some(0.25));
    assert_round_trip("cost", &cost(), result.cost.as_ref(), &phase.cost());

    // The projection's reading path of embeddings.json.
    let index: Option<EmbeddingsIndex> = read_record(&phase.embeddings_index()).unwrap();
    assert_round_trip(
        "embeddings index",
        &embeddings_index(),
        index.as_ref(),
        &phase.embeddings_index(),
    );
}

/// Adds a field no version knows to every object of `v`.
fn add_unknown_fields(v: &mut Value) {
    match v {
        Value::Object(o) => {
            // Free-form maps, not records: a projection's `params`, an explanation's
            // map files and statuses by map name.
            o.iter_mut()
                .filter(|(k, _)| !["params", "maps", "status"].contains(&k.as_str()))
                .for_each(|(_, x)| add_unknown_fields(x));
            o.insert(
                "field_from_a_newer_dmlviz".into(),
                serde_json::json!([1, "x"]),
            );
        }
        Value::Array(a) => a.iter_mut().for_each(add_unknown_fields),
        _ => {}
    }
}

/// `value` with unknown fields everywhere reads back as `value`.
fn assert_newer_file_reads<T: Serialize + DeserializeOwned>(what: &str, value: &T) {
    let mut json = serde_json::to_value(value).unwrap();
    add_unknown_fields(&mut json);
    let read: T = serde_json::from_value(json)
        .unwrap_or_else(|e| panic!("{what}: a newer file does not read: {e}"));
    assert_eq!(
        serde_json::to_value(&read).unwrap(),
        serde_json::to_value(value).unwrap(),
        "{what}"
    );
}

#[test]
fn records_of_a_newer_dmlviz_read_with_their_new_fields_ignored() {
    assert_newer_file_reads("history", &history()[0]);
    assert_newer_file_reads("train-state", &state());
    assert_newer_file_reads("metrics", &metrics());
    assert_newer_file_reads("precision drop", &precision_drop());
    assert_newer_file_reads("hardware", &hardware());
    assert_newer_file_reads("projection", &projection());
    assert_newer_file_reads("galleries", &galleries());
    assert_newer_file_reads("explanations", &explanations());
    assert_newer_file_reads("cost", &cost());
    assert_newer_file_reads("embeddings index", &embeddings_index());
    assert_newer_file_reads("confusion", &ConfusionMatrix::new(vec![0], vec![vec![1]]));
}

#[test]
fn legacy_forms_read_as_version_one_with_defaults() {
    // A gallery entry of the oldest form: the query as its point index, no id, no sheet.
    let g: Galleries = serde_json::from_str(
        r#"{"items":[{"query":12,"true_class":"a","predicted":"b","neighbours":[{"class":"b","distance":null}]}]}"#,
    )
    .unwrap();
    assert_eq!(g.schema_version, LEGACY_SCHEMA);
    assert_eq!(g.items[0].anchor().as_deref(), Some("q12"));
    assert!(g.items[0].sheet.is_empty() && g.items[0].majority.is_empty());
    assert!(g.items[0].neighbours[0].distance.is_nan());
    // A history line with a diverged loss (written as null) and fields missing.
    let h: EpochRecord =
        serde_json::from_str(r#"{"epoch":3,"train_loss":null,"test_accuracy":0.5}"#).unwrap();
    assert!(h.train_loss.is_nan() && h.lr.is_nan() && h.test_accuracy_unseen.is_none());
    assert_eq!(h.test_accuracy, 0.5);
    // Explanations before statuses and folders were recorded.
    let e: ExplanationIndex =
        serde_json::from_str(r#"{"items":[{"image":"a.png","maps":{"gradcam":"g.png"}}]}"#)
            .unwrap();
    assert_eq!((e.schema_version, e.phase), (LEGACY_SCHEMA, None));
    assert_eq!(e.items[0].flat_status("gradcam"), None);
    assert!(e.items[0].dir.is_empty());
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_old_run_fixture_still_renders_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/old-run");
    let run = tmp.path().join("old-run");
    copy_dir(&fixture, &run);

    // Every record of the old run reads, as version 1.
    let summary = dmlviz::report::read::read_run(&run);
    assert!(summary.problems.is_empty(), "{:?}", summary.problems);
    let all = summary.phase(Phase::All).unwrap();
    assert!(all.problems.is_empty(), "{:?}", all.problems);
    assert_eq!(all.history.len(), 2);
    let metrics = all.metrics.as_ref().expect("metrics.json read");
    assert_eq!(metrics.schema_version, LEGACY_SCHEMA);
    assert_eq!(all.projections.len(), 2, "{:?}", all.projections);
    assert!(all.projections.iter().all(|p| p.info.is_some()));
    let galleries = all.galleries.as_ref().expect("galleries.json read");
    assert!(!galleries.items.is_empty());
    let explanations = all.explanations.as_ref().expect("explanations.json read");
    assert_eq!(explanations.items.len(), 2);
    assert_eq!(
        summary.comparison.as_ref().unwrap().schema_version,
        LEGACY_SCHEMA
    );

    ok(dmlviz(&["report", "--run", run.to_str().unwrap()]));
    let page = std::fs::read_to_string(run.join("report/index.html")).unwrap();
    let p1 = format!("{:.1}\u{202f}%", metrics.retrieval.precision_at_1 * 100.0);
    assert!(page.contains(&p1), "precision@1 {p1} not on the page");
    for class in &metrics.classes {
        assert!(
            page.contains(&format!("<td>{}</td>", class.class)),
            "{}",
            class.class
        );
    }
    assert!(
        run.join("report/test-accuracy.png").is_file(),
        "no history chart"
    );
    for phase in ["phase-all", "phase-seen"] {
        let heat_map = run.join(format!("report/confusion-{phase}.png"));
        assert!(heat_map.is_file(), "no confusion matrix of {phase}");
    }
    for map in ["umap.png", "tsne.png"] {
        assert!(
            page.contains(&format!("phase-all/projections/{map}")),
            "{map} not shown"
        );
    }
    let sheet = &galleries.items[0].sheet;
    assert!(
        page.contains(sheet.as_str()),
        "gallery sheet {sheet} not shown"
    );
    // Real maps are shown as images, flat ones by their status.
    let item = &explanations.items[0];
    for key in ["image", "vanilla", "guided"] {
        assert_eq!(item.flat_status(key), None, "{key}");
        assert!(
            page.contains(&item.maps[key]),
            "{} not shown",
            item.maps[key]
        );
    }
    let flat = item
        .flat_status("gradcam")
        .expect("the fixture's Grad-CAM is flat");
    assert!(
        page.contains(&format!("map is {flat}")),
        "Grad-CAM status {flat} not shown"
    );
    // Only phase-seen, which the fixture never projected nor explained, says so.
    assert_eq!(page.matches("not computed yet").count(), 3, "{page}");
}
