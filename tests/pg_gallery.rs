//! The gallery in PostgreSQL + pgvector against a real server (the `pgserver` wheel's
//! PostgreSQL 16 with pgvector, started in a temporary directory by the test): export,
//! HNSW and exact predictions beside the run's own file, all-or-nothing enrolment, a
//! refused gallery of another checkpoint, and a database restart under one client.

mod common;

use common::{dmlviz, ok, tiny_run};
use dmlviz::config::Phase;
use dmlviz::eval::gallery_store::{GalleryStore, StoreUnavailable};
use dmlviz::eval::phase_model::PhaseModel;
use dmlviz::pg_gallery::local_cluster::LocalCluster;
use dmlviz::pg_gallery::{identity_of, PgGallery, PgTarget, Search};
use dmlviz::run::RunDir;
use std::path::Path;

fn rows(url: &str, sql: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one(sql, &[]).unwrap().get(0)
}

fn json(out: std::process::Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap()
}

#[test]
fn a_postgres_gallery_predicts_enrols_whole_classes_and_refuses_foreign_ones() {
    tch::set_num_threads(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cluster = LocalCluster::start(root).unwrap();
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path(), "epshn", "phases = [\"all\"]\n");
    let run_s = run.to_str().unwrap();

    let exported = json(dmlviz(&[
        "index", "export", "--run", run_s, "--to", &url, "--json",
    ]));
    assert_eq!(exported["rows"], 40, "8 classes × 5 training cards");
    assert_eq!(exported["dim"], 16);
    assert_eq!(rows(&url, "SELECT count(*) FROM dmlviz_gallery"), 40);
    let hnsw = rows(
        &url,
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'dmlviz_gallery' \
         AND indexdef LIKE '%hnsw%vector_cosine_ops%'",
    );
    assert_eq!(hnsw, 1, "an HNSW index with the run's (cosine) distance");
    // A second export into the same table is refused; --replace replaces it.
    let again = dmlviz(&["index", "export", "--run", run_s, "--to", &url]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--replace"));

    // The same neighbours as the run's own file: exactly, and through HNSW on 40 rows.
    let query = root.join("fixtures/cards/0027.1_heart");
    let image = std::fs::read_dir(&query)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let predict = |extra: &[&str]| {
        let mut args = vec![
            "predict",
            "--run",
            run_s,
            "--image",
            image.to_str().unwrap(),
        ];
        args.extend_from_slice(&["--k", "5", "--json"]);
        args.extend_from_slice(extra);
        json(dmlviz(&args))
    };
    let from_file = predict(&[]);
    for extra in [
        vec!["--index", url.as_str(), "--exact"],
        vec!["--index", url.as_str()],
    ] {
        let from_pg = predict(&extra);
        assert_eq!(
            from_pg[0]["majority"], from_file[0]["majority"],
            "{extra:?}"
        );
        for (a, b) in from_pg[0]["neighbours"]
            .as_array()
            .unwrap()
            .iter()
            .zip(from_file[0]["neighbours"].as_array().unwrap())
        {
            assert_eq!(a["path"], b["path"], "{extra:?}");
            let (da, db) = (
                a["distance"].as_f64().unwrap(),
                b["distance"].as_f64().unwrap(),
            );
            assert!((da - db).abs() < 1e-4, "{extra:?}: {da} vs {db}");
        }
    }

    // One unreadable image refuses the whole class: no row of it is stored.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    let dog = root.join("fixtures/emoji-cub/images/005.dog");
    std::fs::copy(dog.join("google.png"), mixed.join("a.png")).unwrap();
    std::fs::write(mixed.join("b.png"), b"not a png").unwrap();
    let add = |images: &Path, class: &str| {
        dmlviz(&[
            "index",
            "add",
            "--run",
            run_s,
            "--index",
            &url,
            "--images",
            images.to_str().unwrap(),
            "--class",
            class,
            "--json",
        ])
    };
    let refused = add(&mixed, "mixed");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("b.png"));
    assert_eq!(
        rows(
            &url,
            "SELECT count(*) FROM dmlviz_gallery WHERE class = 'mixed'"
        ),
        0
    );

    let done = json(add(&dog, "dog"));
    assert_eq!(
        (done["added"].clone(), done["gallery_size"].clone()),
        (2.into(), 42.into())
    );
    let p = json(dmlviz(&[
        "predict",
        "--run",
        run_s,
        "--image",
        dog.join("twitter.png").to_str().unwrap(),
        "--index",
        &url,
        "--k",
        "1",
        "--json",
    ]));
    assert_eq!(p[0]["nearest"], "dog");
    // The file gallery is untouched by the database's enrolment.
    assert_eq!(predict(&[])[0]["neighbours"], from_file[0]["neighbours"]);

    // A gallery made by another checkpoint is refused, naming it.
    ok(dmlviz(&[
        "index", "export", "--run", run_s, "--to", &url, "--table", "other",
    ]));
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.execute(
        "UPDATE dmlviz_galleries SET checkpoint = $1, source = 'runs/elsewhere phase-all' \
         WHERE name = 'other'",
        &[&"ab".repeat(32)],
    )
    .unwrap();
    let foreign = dmlviz(&[
        "predict",
        "--run",
        run_s,
        "--image",
        image.to_str().unwrap(),
        "--index",
        &url,
        "--table",
        "other",
    ]);
    assert_eq!(foreign.status.code(), Some(1));
    let err = String::from_utf8_lossy(&foreign.stderr);
    assert!(
        err.contains("another checkpoint") && err.contains("runs/elsewhere"),
        "{err}"
    );
    assert!(err.contains("abababababab"), "{err}");
    drop(c);

    // One client across a database restart: unavailable while it is down, then it
    // reconnects by itself.
    let rd = RunDir::new(&run);
    let pm = PhaseModel::load(&rd, Phase::All).unwrap();
    let target = PgTarget::parse(&url, "dmlviz_gallery").unwrap();
    let mut store = PgGallery::open(target, identity_of(&pm, &rd).unwrap(), Search::Exact).unwrap();
    let q = tch::Tensor::ones([1, 16], (tch::Kind::Float, tch::Device::Cpu));
    assert_eq!(store.nearest(&q, 3).unwrap()[0].len(), 3);
    cluster.kill().unwrap();
    let down = store.nearest(&q, 3).unwrap_err();
    assert!(
        down.downcast_ref::<StoreUnavailable>().is_some(),
        "{down:#}"
    );
    cluster.resume().unwrap();
    assert_eq!(store.nearest(&q, 3).unwrap()[0].len(), 3);
    assert_eq!(store.classes().unwrap().len(), 9);
}
