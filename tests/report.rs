//! End to end: a real (tiny) training run, the page `dmlviz train` writes for it,
//! then `dmlviz report` over a folder holding it and a broken run — content,
//! escaping, links, and incremental rebuilds.

mod common;

use common::{dmlviz, ok, tiny_run};
use dmlviz::report::check::check_site;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Modification time of every file under `dir`.
fn mtimes(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.clone(),
                    std::fs::metadata(&p).unwrap().modified().unwrap(),
                );
            }
        }
    }
    out
}

fn report_json(runs: &Path, site: &Path) -> serde_json::Value {
    let out = ok(dmlviz(&[
        "report",
        "--runs",
        runs.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
        "--json",
    ]));
    serde_json::from_str(&out).unwrap()
}

/// A run that stopped on a non-finite loss after two epochs of phase-all, with no
/// metrics, a dataset folder that is gone and deductions holding markup.
fn broken_run(runs: &Path, config_from: &Path) {
    let dir = runs.join("stopped <run> & co");
    std::fs::create_dir_all(dir.join("phase-all")).unwrap();
    let config = std::fs::read_to_string(config_from.join("config.toml")).unwrap();
    let config = config
        .lines()
        .map(|l| {
            if l.starts_with("path = ") {
                "path = \"gone/data\""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("config.toml"), config).unwrap();
    std::fs::write(
        dir.join("phase-all/history.jsonl"),
        "{\"epoch\":1,\"train_loss\":0.9,\"test_accuracy\":0.25,\"lr\":0.03,\"images_per_s\":10,\"data_wait_share\":0,\"seconds\":4}\n\
         {\"epoch\":2,\"train_loss\":null,\"test_accuracy\":0.375,\"lr\":0.03,\"images_per_s\":10,\"data_wait_share\":0,\"seconds\":4}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("phase-all/train-state.json"),
        r#"{"epochs_done":2,"epochs_total":9,"finished":false,"stopped":"non-finite loss NaN at batch 3"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("deductions.md"),
        "- lr too high: <script>alert(1)</script> & **diverged**\n",
    )
    .unwrap();
}

#[test]
fn site_of_a_trained_and_a_broken_run() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let run = tiny_run(&runs, "epshn", "");

    // `dmlviz train` wrote the run's own page, whose links stay inside the run.
    let own = run.join("report/index.html");
    assert!(own.is_file(), "train did not write {}", own.display());
    let broken = check_site(&run);
    assert!(broken.is_empty(), "{broken:?}");

    broken_run(&runs, &run);
    let site = tmp.path().join("site");
    let summary = report_json(&runs, &site);
    assert_eq!(summary["runs"].as_array().unwrap().len(), 2, "{summary}");
    assert_eq!(
        summary["broken_links"].as_array().unwrap().len(),
        0,
        "{summary}"
    );
    assert!(check_site(&site).is_empty());

    // Headline numbers match metrics.json, on both pages.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("phase-all/metrics.json")).unwrap())
            .unwrap();
    let p1 = metrics["retrieval"]["precision_at_1"].as_f64().unwrap();
    let shown = format!("{:.1}\u{202F}%", p1 * 100.0);
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    let page = std::fs::read_to_string(site.join("runs/run/index.html")).unwrap();
    assert!(
        index.contains(&shown) && page.contains(&shown),
        "precision@1 {shown} not shown"
    );
    let drop: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("comparison/precision_drop.json")).unwrap(),
    )
    .unwrap();
    let unseen = format!(
        "{:.1}\u{202F}%",
        drop["precision_drop_unseen_classes"].as_f64().unwrap() * 100.0
    );
    assert!(
        index.contains(&unseen),
        "precision drop {unseen} not in the comparison table"
    );
    for class in metrics["classes"].as_array().unwrap() {
        assert!(
            page.contains(&format!("<td>{}</td>", class["class"].as_str().unwrap())),
            "class {} missing",
            class["class"]
        );
    }
    for file in [
        "test-accuracy.png",
        "train-loss.png",
        "learning-rate.png",
        "confusion-phase-all.png",
        "confusion-phase-seen.png",
    ] {
        assert!(site.join("runs/run").join(file).is_file(), "{file} missing");
    }
    assert!(page.contains("<svg") && page.contains("href=\"../../index.html\""));
    assert!(
        page.contains("dmlviz project --run"),
        "absent maps are not explained"
    );
    assert!(
        run.join("hardware.json").is_file() && page.contains("logical CPUs"),
        "the training machine is not shown"
    );
    for file in [
        "test-accuracy.png",
        "test-accuracy2.png",
        "precision-drop.png",
    ] {
        assert!(site.join(file).is_file(), "{file} missing");
    }

    // The broken run: listed, labelled, escaped everywhere.
    let name_in_url = "runs/stopped%20%3Crun%3E%20%26%20co/index.html";
    assert!(index.contains(name_in_url), "no link to the broken run");
    assert!(index.contains("stopped &lt;run&gt; &amp; co"));
    let bad = std::fs::read_to_string(site.join("runs/stopped <run> & co/index.html")).unwrap();
    for html in [&index, &bad] {
        assert!(!html.contains("<script>alert"), "deductions not escaped");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; <b>diverged</b>"),
            "deductions not rendered"
        );
    }
    assert!(bad.contains("stopped (non-finite loss NaN at batch 3)"));
    assert!(bad.contains("phase-seen: not trained"));
    assert!(
        bad.contains("not found here"),
        "the missing dataset folder is not said"
    );
    assert!(
        bad.contains("37.5\u{202F}%"),
        "the last epoch's accuracy is not shown"
    );

    // Rebuilding with nothing changed renders nothing and rewrites no file.
    let before = mtimes(&site);
    std::thread::sleep(std::time::Duration::from_millis(30));
    let again = report_json(&runs, &site);
    assert_eq!(again["rendered"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["files_written"].as_u64(), Some(0), "{again}");
    assert_eq!(before, mtimes(&site), "an unchanged rebuild rewrote files");

    // Editing one run's deductions re-renders that run only.
    std::fs::write(run.join("deductions.md"), "converges in **one** epoch\n").unwrap();
    let third = report_json(&runs, &site);
    assert_eq!(third["rendered"], serde_json::json!(["run"]), "{third}");
    let after = mtimes(&site);
    let changed: Vec<&PathBuf> = after
        .keys()
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(
        changed.iter().all(|p| p.ends_with("runs/run/index.html")
            || p.ends_with("runs/run/.inputs")
            || p.ends_with("index.html")),
        "{changed:?}"
    );
    assert!(std::fs::read_to_string(site.join("index.html"))
        .unwrap()
        .contains("converges in <b>one</b> epoch"));

    // A run removed from runs/ leaves the site.
    std::fs::remove_dir_all(runs.join("stopped <run> & co")).unwrap();
    report_json(&runs, &site);
    assert!(!site.join("runs/stopped <run> & co").exists());
}

#[test]
fn report_of_a_missing_runs_folder_is_a_user_error() {
    let out = dmlviz(&[
        "report",
        "--runs",
        "/nonexistent/runs",
        "--out",
        "/tmp/never",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/runs"));
}
