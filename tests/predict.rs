//! `predict` and `index add` end to end on a briefly trained fixture run: enrolling a
//! new class without retraining, persistence, and refusal of unreadable images.

mod common;

use common::{dmlviz, ok, tiny_run};
use dmlviz::eval::gallery::Gallery;
use std::path::Path;

#[test]
fn an_enrolled_class_is_recognised_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path(), "epshn", "phases = [\"all\"]\n");
    let run_s = run.to_str().unwrap();
    let new_class = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/emoji-cub/images/005.dog");

    let out = ok(dmlviz(&[
        "index",
        "add",
        "--run",
        run_s,
        "--images",
        new_class.to_str().unwrap(),
        "--class",
        "dog <emoji>",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["added"], 2);
    assert!(
        v["placed"].is_null(),
        "no maps in the run, so nothing placed: {v}"
    );
    assert_eq!(
        v["gallery_size"],
        40 + 2,
        "8 classes × 5 training cards, plus 2 dogs"
    );

    // A fresh process reads the stored gallery: an enrolled image finds itself first.
    let image = new_class.join("twitter.png");
    let out = ok(dmlviz(&[
        "predict",
        "--run",
        run_s,
        "--image",
        image.to_str().unwrap(),
        "--k",
        "3",
        "--json",
    ]));
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p[0]["nearest"], "dog <emoji>");
    assert!(p[0]["neighbours"][0]["distance"].as_f64().unwrap().abs() < 1e-4);
    assert_eq!(p[0]["neighbours"].as_array().unwrap().len(), 3);

    // Unreadable images are refused with the file named, and the gallery is unchanged.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("broken.png"), b"not a png").unwrap();
    let out = dmlviz(&[
        "index",
        "add",
        "--run",
        run_s,
        "--images",
        bad.to_str().unwrap(),
        "--class",
        "broken",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.png"));
    let gallery = Gallery::load(&run.join("phase-all")).unwrap();
    assert_eq!(gallery.manifest.entries.len(), 42);
    assert!(!gallery.manifest.classes.iter().any(|c| c == "broken"));
}
