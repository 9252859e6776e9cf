//! `dmlviz study` end to end on a tiny grid of the card fixture: every run is
//! trained (both phases), evaluated, projected, explained and costed, the study page
//! is written, and a second invocation skips what has finished.

mod common;
use common::{dmlviz, ok, write_tiny_grid};

// Over 80 lines: one end-to-end scenario (run, check every output, resume) on one grid,
// trained once because training is the expensive part.
#[test]
fn study_runs_the_grid_writes_its_page_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid");
    write_tiny_grid(&grid);
    let runs = dir.path().join("runs");
    let site = dir.path().join("site");
    let study_runs = runs.join("study");
    let args = [
        "study",
        "--grid",
        grid.to_str().unwrap(),
        "--runs",
        study_runs.to_str().unwrap(),
        "--site-runs",
        runs.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ];
    let out = dmlviz(&args);
    let stdout = ok(out);
    assert!(stdout.contains("study page:"), "{stdout}");

    // base at seeds 7 and 8 (the baseline), wide at its own seed only (small_effect_points = 0).
    for run in ["cards/base", "cards/base-seed8", "cards/wide"] {
        let r = study_runs.join(run);
        assert!(r.join("study-run.json").exists(), "{run} not marked done");
        assert!(
            r.join("comparison/precision_drop.json").exists(),
            "{run}: no comparison"
        );
        let cost: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.join("phase-all/cost.json")).unwrap())
                .unwrap();
        assert!(
            cost["knn_predict_seconds"].as_f64().unwrap() > 0.0,
            "{run}: {cost}"
        );
        assert!(cost["index_bytes"].as_u64().unwrap() > 0);
        // A row's own seed is projected and explained; a seed replica only measured.
        let replica = run.ends_with("-seed8");
        assert_eq!(
            r.join("phase-all/projections/umap.json").exists(),
            !replica,
            "{run}: projected?"
        );
        assert_eq!(
            r.join("phase-all/explanations/explanations.json").exists(),
            !replica,
            "{run}: explained?"
        );
        assert_eq!(
            r.join("phase-all/explanations/trust.json").exists(),
            !replica,
            "{run}: trust table?"
        );
    }
    // Galleries are capped by the grid's settings (1 held-out + 2 misclassified at most).
    let galleries: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(study_runs.join("cards/base/phase-all/galleries/galleries.json"))
            .unwrap(),
    )
    .unwrap();
    let queries = galleries["items"].as_array().unwrap().len();
    assert!((1..=3).contains(&queries), "{queries} gallery queries");
    assert!(
        !study_runs.join("cards/wide-seed8").exists(),
        "a large-effect row ran extra seeds"
    );
    let seed8: toml::Value = toml::from_str(
        &std::fs::read_to_string(study_runs.join("cards/base-seed8/config.toml")).unwrap(),
    )
    .unwrap();
    assert_eq!(seed8["training"]["seed"].as_integer(), Some(8));

    let html = std::fs::read_to_string(site.join("study.html")).unwrap();
    assert!(
        html.contains("a wider &lt;embedding&gt; has no effect"),
        "deduction escaped"
    );
    assert!(html.contains("(2 seeds)"), "baseline spread over its seeds");
    // One line per row on which saliency method is most faithful for its model.
    assert!(html.contains("Which explanation to trust"));
    assert!(
        !html.contains("no trust table yet"),
        "every row's own seed has a trust table"
    );
    // The run page shows the table (the site's copy of the base run).
    let base_page =
        std::fs::read_to_string(site.join("runs/study--cards--base/index.html")).unwrap();
    assert!(
        base_page.contains("Which map to trust"),
        "no trust table on the run page"
    );
    // The site covers the grid's nested runs, links the study page and has no broken link.
    assert!(
        html.contains("href=\"runs/study--cards--base/index.html\""),
        "rows link to their run pages"
    );
    assert!(site.join("runs/study--cards--base/index.html").is_file());
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(
        index.contains("href=\"study.html\""),
        "the index links the study page"
    );
    assert!(
        dmlviz::report::check::check_site(&site).is_empty(),
        "{:?}",
        dmlviz::report::check::check_site(&site)
    );
    let study: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(site.join("study.json")).unwrap()).unwrap();
    let verdict = study["findings"][0]["judgement"]["verdict"]["verdict"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ["holds", "does_not_hold"].contains(&verdict.as_str()),
        "{study}"
    );

    // A second run finds everything done and trains nothing.
    let out = dmlviz(&args);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("3 of 3 planned runs already finished"),
        "{stderr}"
    );
    assert!(stderr.contains("0 runs done now"), "{stderr}");
}
