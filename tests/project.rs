//! `dmlviz project` end to end on a tiny trained run of the card fixture: maps, exports
//! and galleries land where the report expects them; bad embeddings are a clear error.

mod common;

use common::{dmlviz, ok, tiny_run};
use std::path::Path;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// Over 80 lines: one scenario on one trained run (training it is the expensive part):
// every output of both phases and engines, then a corrupted input.
#[test]
fn project_writes_maps_exports_and_galleries() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path(), "epshn", "");
    let out = ok(dmlviz(&[
        "project",
        "--run",
        run.to_str().unwrap(),
        "--thumbnails",
        "--threads",
        "1",
        "--json",
    ]));
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let points = summary["points"].as_u64().unwrap() as usize;
    assert!(points > 15, "{points} points");

    let proj = run.join("phase-all/projections");
    for method in ["umap", "tsne"] {
        for ext in ["png", "svg", "html", "csv", "json"] {
            assert!(
                proj.join(format!("{method}.{ext}")).is_file(),
                "{method}.{ext} missing"
            );
        }
        assert!(proj.join(format!("{method}-thumbnails.jpg")).is_file());
        let record: serde_json::Value =
            serde_json::from_str(&read(&proj.join(format!("{method}.json")))).unwrap();
        assert_eq!(record["method"], method);
        assert_eq!(record["points"].as_u64().unwrap() as usize, points);
        for key in ["trustworthiness", "knn_label_agreement"] {
            let v = record[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{method} {key} = {v}");
        }
        assert!(record["params"].is_object() && record["seconds"].as_f64().unwrap() > 0.0);
        let csv = read(&proj.join(format!("{method}.csv")));
        assert_eq!(
            csv.lines().next().unwrap(),
            "index,split,label,class,unseen,x,y,path"
        );
        assert_eq!(csv.lines().count(), points + 1);
        assert!(
            csv.contains(",test,") && csv.contains(",train,") && csv.contains(",true,"),
            "splits and held-out classes in the CSV"
        );
        let html = read(&proj.join(format!("{method}.html")));
        assert!(html.contains("<canvas") && !html.contains("data-i=\""));
        assert_eq!(
            html.matches("\"stem\":\"sprite\"").count(),
            1,
            "the page names its sprite sheets"
        );
        for remote in ["src=\"http", "href=\"http", "src=\"//", "url(http"] {
            assert!(
                !html.contains(remote),
                "{method}.html loads {remote}…: not self-contained"
            );
        }
    }
    // t-SNE lowered its perplexity to what so few points allow.
    let tsne: serde_json::Value = serde_json::from_str(&read(&proj.join("tsne.json"))).unwrap();
    assert!(
        (tsne["params"]["perplexity"].as_f64().unwrap() - (points - 1) as f64 / 3.0).abs() < 1e-9
    );
    assert_eq!(tsne["params"]["engine"], "ours", "our t-SNE is the default");

    let sprite: serde_json::Value = serde_json::from_str(&read(&proj.join("sprite.json"))).unwrap();
    assert_eq!(sprite["count"].as_u64().unwrap() as usize, points);
    assert!(sprite["cell"].as_u64().unwrap() <= 64);
    assert_eq!(sprite["sheets"], 1);
    assert!(proj.join("sprite-0.jpg").is_file());
    let tb = proj.join("tensorboard");
    assert_eq!(read(&tb.join("vectors.tsv")).lines().count(), points);
    assert_eq!(
        read(&tb.join("metadata.tsv")).lines().next().unwrap(),
        "class\tsplit\tunseen"
    );
    assert!(
        tb.join("sprite.jpg").is_file()
            && read(&tb.join("projector_config.pbtxt")).contains("sprite.jpg")
    );

    let galleries = run.join("phase-all/galleries");
    let json: serde_json::Value =
        serde_json::from_str(&read(&galleries.join("galleries.json"))).unwrap();
    let items = json["items"].as_array().unwrap();
    assert!(!items.is_empty(), "held-out classes give gallery queries");
    let index = read(&galleries.join("index.html"));
    // Thumbnails: cells of the map's hover sheets (these maps have few points).
    let thumbs = &json["thumbs"];
    assert_eq!(thumbs["dir"], "../projections/");
    let sheet = galleries
        .join(thumbs["dir"].as_str().unwrap())
        .join("sprite-0.jpg");
    assert!(sheet.is_file() && index.contains("url(../projections/sprite-0.jpg)"));
    let count = thumbs["sprite"]["count"].as_u64().unwrap();
    for item in items {
        let id = item["id"].as_str().unwrap();
        assert!(item["cell"].as_u64().unwrap() < count);
        assert!(item["neighbours"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["cell"].as_u64().unwrap() < count));
        assert!(index.contains(&format!("id=\"{id}\"")));
        let neighbours = item["neighbours"].as_array().unwrap();
        assert_eq!(neighbours.len(), 10);
        let votes: u64 = item["top_classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["votes"].as_u64().unwrap())
            .sum();
        assert_eq!(votes, 10);
        assert_eq!(
            item["correct"].as_bool().unwrap(),
            item["predicted"] == item["true_class"]
        );
    }
    assert!(items.iter().any(|i| i["unseen"].as_bool().unwrap()));

    // The other phase, one method, by linfa-tsne.
    ok(dmlviz(&[
        "project",
        "--run",
        run.to_str().unwrap(),
        "--phase",
        "seen",
        "--method",
        "tsne",
        "--tsne-engine",
        "linfa",
        "--threads",
        "1",
    ]));
    assert!(run.join("phase-seen/projections/tsne.png").is_file());
    assert!(!run.join("phase-seen/projections/umap.png").exists());
    let linfa: serde_json::Value =
        serde_json::from_str(&read(&run.join("phase-seen/projections/tsne.json"))).unwrap();
    assert_eq!(linfa["params"]["engine"], "linfa");
    let trust = linfa["trustworthiness"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&trust),
        "linfa trustworthiness {trust}"
    );
    // Phase-seen's t-SNE is turned onto phase-all's: the same images, one frame.
    let aligned = &linfa["aligned_to"];
    assert_eq!(aligned["reference"], "phase-all", "{linfa}");
    assert_eq!(
        aligned["shared"], linfa["points"],
        "every image is on both maps"
    );
    assert!(
        aligned["residual_share"].as_f64().unwrap() < 1.0,
        "{aligned}"
    );

    // --add: copies of one class's images are placed beside their originals.
    let class = "0043.4_spade";
    let new = dir.path().join("new");
    std::fs::create_dir_all(new.join("copies")).unwrap();
    let originals: Vec<std::path::PathBuf> = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cards")
            .join(class),
    )
    .unwrap()
    .map(|e| e.unwrap().path())
    .collect();
    for o in &originals {
        std::fs::copy(o, new.join("copies").join(o.file_name().unwrap())).unwrap();
    }
    let out = ok(dmlviz(&[
        "project",
        "--run",
        run.to_str().unwrap(),
        "--add",
        new.to_str().unwrap(),
        "--json",
    ]));
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        summary["added"].as_u64().unwrap() as usize,
        originals.len(),
        "{summary}"
    );
    let added: serde_json::Value = serde_json::from_str(&read(&proj.join("added.json"))).unwrap();
    assert_eq!(added["schema_version"], dmlviz::run::record::SCHEMA_VERSION);
    let csv = read(&proj.join("umap.csv"));
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let (xs, ys): (Vec<f64>, Vec<f64>) = rows
        .iter()
        .map(|r| (r[5].parse::<f64>().unwrap(), r[6].parse::<f64>().unwrap()))
        .unzip();
    for p in added["points"].as_array().unwrap() {
        assert_eq!(p["class"], "copies");
        let name = Path::new(p["path"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let nearest = p["neighbours"][0][0].as_u64().unwrap() as usize;
        assert!(
            rows[nearest]
                .last()
                .unwrap()
                .ends_with(&format!("{class}/{name}")),
            "{p}"
        );
        let (x, y) = (
            p["positions"]["umap"][0].as_f64().unwrap(),
            p["positions"]["umap"][1].as_f64().unwrap(),
        );
        // Placed locally: nearer its original than half of the stored points are.
        let d = (x - xs[nearest]).hypot(y - ys[nearest]);
        let mut others: Vec<f64> = (0..xs.len())
            .map(|j| (xs[j] - xs[nearest]).hypot(ys[j] - ys[nearest]))
            .collect();
        others.sort_by(f64::total_cmp);
        let median = others[others.len() / 2];
        assert!(
            d < median,
            "{name} placed {d:.2} from its original; median distance {median:.2}"
        );
    }
    let html = read(&proj.join("umap.html"));
    assert!(html.contains("images added later") && html.contains("\"stem\":\"added-sprite\""));
    assert!(proj.join("added-sprite-0.jpg").is_file());

    // `index add` enrols into the gallery and places the images on both maps, under one
    // acquisition of the run's lock (a second one in the same process would be refused).
    let dogs = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/emoji-cub/images/005.dog");
    let out = ok(dmlviz(&[
        "index",
        "add",
        "--run",
        run.to_str().unwrap(),
        "--images",
        dogs.to_str().unwrap(),
        "--class",
        "dog",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["added"], 2, "{v}");
    assert_eq!(v["placed"]["added"], 2, "{v}");
    assert_eq!(v["placed"]["methods"], serde_json::json!(["umap", "tsne"]));
    assert_eq!(
        v["placed"]["total"].as_u64().unwrap() as usize,
        originals.len() + 2
    );
    let added: serde_json::Value = serde_json::from_str(&read(&proj.join("added.json"))).unwrap();
    let dog_points: Vec<&serde_json::Value> = added["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["class"] == "dog")
        .collect();
    assert_eq!(dog_points.len(), 2);
    for p in dog_points {
        for method in ["umap", "tsne"] {
            let xy = &p["positions"][method];
            assert!(xy[0].as_f64().unwrap().is_finite() && xy[1].as_f64().unwrap().is_finite());
        }
    }
    for method in ["umap", "tsne"] {
        let html = read(&proj.join(format!("{method}.html")));
        assert!(
            html.contains(&format!("{} images added later", originals.len() + 2)),
            "{method}.html draws the enrolled images among the added ones"
        );
    }
    let err = dmlviz(&[
        "project",
        "--run",
        run.to_str().unwrap(),
        "--add",
        "no/such/dir",
    ]);
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("no/such/dir"));

    let out = dmlviz(&[
        "project",
        "--run",
        run.to_str().unwrap(),
        "--tsne-engine",
        "umap",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ours") && err.contains("linfa"),
        "an unknown engine is refused, naming the engines: {err}"
    );

    // A NaN in the embeddings: exit code 1 and a message naming the file and row.
    let file = run.join("phase-all/embeddings.safetensors");
    let mut tensors = dmlviz::tensor_io::read_safetensors(&file).unwrap();
    for (name, t) in tensors.iter_mut() {
        if name == "test_embeddings" {
            let _ = t.get(0).get(0).fill_(f64::NAN);
        }
    }
    dmlviz::tensor_io::write_safetensors(&file, &tensors).unwrap();
    let out = dmlviz(&["project", "--run", run.to_str().unwrap(), "--threads", "1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("embeddings.safetensors") && err.contains("non-finite"),
        "{err}"
    );
}

#[test]
fn project_of_a_missing_run_is_a_user_error() {
    let out = dmlviz(&["project", "--run", "no/such/run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.toml"));
}
