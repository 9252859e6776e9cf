//! `dmlviz import model` and `dmlviz import embeddings` end to end: the PyTorch parity of
//! an imported pytorch-metric-learning model (fixture made by
//! `scripts/make-import-fixtures.py`), the key mapping's refusals and `--partial`, every
//! named error of an embeddings import, a site made from imported embeddings alone, and
//! `explain`/`predict` without `--run`.

mod common;

use common::ok;
use dmlviz::config::Phase;
use dmlviz::eval::phase_model::PhaseModel;
use dmlviz::eval::predict::embed_readable_files;
use dmlviz::model::import::read_pth;
use dmlviz::run::RunDir;
use dmlviz::tensor_io::{read_safetensors, write_safetensors};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::{Kind, Tensor};

const FIXTURE: &str = "src/import/testdata/pml_resnet18.pth";
const REFERENCE: &str = "src/import/testdata/pml_resnet18_embeddings.safetensors";
/// The images the fixture's embeddings were computed for, in order.
const IMAGES: [&str; 4] = [
    "fixtures/emoji-cub/images/001.monkey_face/google.png",
    "fixtures/emoji-cub/images/002.monkey/twitter.png",
    "fixtures/emoji-cub/images/003.gorilla/google.png",
    "fixtures/emoji-cub/images/005.dog/twitter.png",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `dmlviz` with `args` in `cwd`.
fn dmlviz_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dmlviz"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// The stderr of a command that must fail as a user error (exit 1).
fn user_error(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

/// `import model` of `file` into `out` with the fixture's settings (head `linear:128`
/// unless `extra` gives one) and `extra` flags.
fn import_model(file: &Path, out: &Path, extra: &[&str]) -> Output {
    let data = root().join("fixtures/emoji-cub");
    let mut args = vec![
        "import",
        "model",
        file.to_str().unwrap(),
        "--arch",
        "resnet18",
        "--distance",
        "euclidean",
        "--data",
        data.to_str().unwrap(),
        "--image-size",
        "64",
        "--out",
        out.to_str().unwrap(),
    ];
    if !extra.contains(&"--head") {
        args.extend(["--head", "linear:128"]);
    }
    args.extend_from_slice(extra);
    dmlviz_in(&root(), &args)
}

#[test]
fn a_pml_model_imports_and_reproduces_pytorch_embeddings() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("runs/pml");
    let text = ok(import_model(&root().join(FIXTURE), &run_dir, &[]));
    assert!(text.contains("122 tensors of resnet18 imported"), "{text}");
    let run = RunDir::new(&run_dir);
    assert!(
        run.phase(Phase::All).metrics().is_file(),
        "evaluated at once"
    );

    let pm = PhaseModel::load(&run, Phase::All).unwrap();
    let images: Vec<PathBuf> = IMAGES.iter().map(|p| root().join(p)).collect();
    let ours = embed_readable_files(
        &pm.model.net,
        &images,
        pm.exp.test_transform(),
        tch::Device::Cpu,
    )
    .unwrap();
    assert_eq!(ours.paths.len(), 4);
    let reference = read_safetensors(&root().join(REFERENCE)).unwrap();
    let theirs = &reference.iter().find(|(n, _)| n == "embeddings").unwrap().1;
    assert_eq!(ours.embeddings.size(), theirs.size());
    let diff = (&ours.embeddings - theirs).abs().max().double_value(&[]);
    let scale = theirs.abs().max().double_value(&[]);
    assert!(
        diff < 1e-4,
        "max |dmlviz - PyTorch| = {diff} (values up to {scale})"
    );
    assert!(scale > 0.5, "the reference is not degenerate");

    let provenance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.provenance()).unwrap()).unwrap();
    assert_eq!(provenance["kind"], "model");
    assert_eq!(provenance["loaded"], 122);
    assert!(provenance["sources"][0]
        .as_str()
        .unwrap()
        .ends_with("pml_resnet18.pth"));

    // Its page says where it came from and draws no training curves.
    ok(dmlviz_in(
        &root(),
        &["report", "--run", run_dir.to_str().unwrap()],
    ));
    let page = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    assert!(page.contains("Imported, not trained here"), "{page}");
    assert_eq!(
        page.to_lowercase().matches("not trained here").count(),
        1,
        "said once"
    );
    assert!(page.contains("pml_resnet18.pth") && page.contains("No training curves"));
    assert!(!page.contains("Incomplete run") && !page.contains("No epoch recorded"));
    assert!(!run_dir.join("report/accuracy.png").exists());

    // explain and predict with no --run use the most recent finished run, and say so.
    let image = root().join(IMAGES[0]);
    let out = dmlviz_in(
        tmp.path(),
        &[
            "explain",
            "--image",
            image.to_str().unwrap(),
            "--method",
            "gradcam",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("using run runs/pml"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("gradcam"));
    let out = dmlviz_in(tmp.path(), &["predict", "--image", image.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("using run runs/pml"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nearest"));

    // With no run at all, the message says how to make or import one.
    let empty = tempfile::tempdir().unwrap();
    let err = user_error(dmlviz_in(
        empty.path(),
        &["explain", "--image", image.to_str().unwrap()],
    ));
    assert!(
        err.contains("make demo") && err.contains("dmlviz import model"),
        "{err}"
    );
}

/// The fixture's tensors renamed by `rename` (None drops one), plus `extra` entries.
fn renamed_fixture(
    out: &Path,
    rename: impl Fn(&str) -> Option<String>,
    extra: &[(&str, Tensor)],
) -> PathBuf {
    let mut tensors: Vec<(String, Tensor)> = read_pth(&root().join(FIXTURE))
        .unwrap()
        .into_iter()
        .filter_map(|(n, t)| rename(&n).map(|m| (m, t.contiguous())))
        .collect();
    tensors.extend(
        extra
            .iter()
            .map(|(n, t)| (n.to_string(), t.shallow_clone())),
    );
    write_safetensors(out, &tensors).unwrap();
    out.to_path_buf()
}

#[test]
fn key_mapping_refuses_by_name_unless_partial() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    // DataParallel names, one statistic lost, one foreign entry.
    let file = renamed_fixture(
        &tmp.path().join("dp.safetensors"),
        |n| (n != "trunk.layer4.1.bn2.running_var").then(|| format!("module.{n}")),
        &[(
            "module.trunk.extra.weight",
            Tensor::ones([3], (Kind::Float, tch::Device::Cpu)),
        )],
    );
    let out = tmp.path().join("refused");
    let err = user_error(import_model(&file, &out, &[]));
    assert!(
        err.contains("missing from the file: backbone.layer4.1.bn2.running_var"),
        "{err}"
    );
    assert!(
        err.contains("module.trunk.extra.weight (as backbone.extra.weight)"),
        "{err}"
    );
    assert!(err.contains("--partial"), "{err}");
    assert!(!out.exists(), "nothing written");

    // A head of the wrong width: the mis-shaped entries are named, file and model shapes.
    let err = user_error(import_model(
        &root().join(FIXTURE),
        &out,
        &["--head", "linear:64"],
    ));
    assert!(
        err.contains("embedder.weight (as head.linear.weight) (file [128, 512], model [64, 512])"),
        "{err}"
    );
    assert!(!out.exists());

    // --partial imports what fits and records the rest.
    let text = ok(import_model(&file, &out, &["--partial", "--no-eval"]));
    assert!(
        text.contains("missing backbone.layer4.1.bn2.running_var"),
        "{text}"
    );
    let provenance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(
        provenance["missing"][0],
        "backbone.layer4.1.bn2.running_var"
    );
    assert_eq!(provenance["unexpected"][0], "backbone.extra.weight");
    assert_eq!(provenance["loaded"], 121);
    // An existing run is never written into.
    let err = user_error(import_model(&file, &out, &["--partial", "--no-eval"]));
    assert!(err.contains("already exists"), "{err}");

    // --map renames a layout the rules do not know.
    let file = renamed_fixture(
        &tmp.path().join("enc.safetensors"),
        |n| {
            Some(
                n.replacen("trunk.", "encoder.", 1)
                    .replacen("embedder.", "proj.", 1),
            )
        },
        &[],
    );
    let mapped = tmp.path().join("mapped");
    let err = user_error(import_model(&file, &mapped, &["--no-eval"]));
    assert!(
        err.contains("encoder.conv1.weight (as backbone.encoder.conv1.weight)"),
        "{err}"
    );
    ok(import_model(
        &file,
        &mapped,
        &[
            "--no-eval",
            "--map",
            "encoder.=trunk.",
            "--map",
            "proj.=embedder.",
        ],
    ));
    let err = user_error(import_model(
        &file,
        &tmp.path().join("l2"),
        &["--head", "linear:128,l2", "--no-eval"],
    ));
    assert!(err.contains("--distance cosine"), "{err}");
}

/// A small synthetic set: 3 classes, 7 training and 3 test rows each, 8-D clustered
/// embeddings, a 16×16 PNG of the class's colour per row.
struct Synthetic {
    dir: PathBuf,
    train: Vec<Vec<f32>>,
    test: Vec<Vec<f32>>,
}

const CLASSES: [&str; 3] = ["red", "green", "blue"];

fn synthetic(dir: &Path) -> Synthetic {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let rows = |split: &str, per_class: usize| {
        let mut emb = Vec::new();
        let mut csv = String::from("path,label\n");
        let mut json = Vec::new();
        for (c, class) in CLASSES.iter().enumerate() {
            for i in 0..per_class {
                let mut v = vec![0.0f32; 8];
                v[c] = 1.0;
                v[3 + i % 5] = 0.1 * (i as f32 + 1.0);
                emb.push(v);
                let name = format!("img/{split}-{class}-{i}.png");
                let mut px = [40u8; 3];
                px[c] = 200 + i as u8;
                image::RgbImage::from_pixel(16, 16, image::Rgb(px))
                    .save(dir.join(&name))
                    .unwrap();
                csv.push_str(&format!("{name},{class}\n"));
                json.push(serde_json::json!({"label": class, "path": name}));
            }
        }
        std::fs::write(dir.join(format!("{split}.csv")), csv).unwrap();
        std::fs::write(
            dir.join(format!("{split}.json")),
            serde_json::to_string(&json).unwrap(),
        )
        .unwrap();
        emb
    };
    let train = rows("train", 7);
    let test = rows("test", 3);
    let s = Synthetic {
        dir: dir.to_path_buf(),
        train,
        test,
    };
    s.write_embeddings(&s.test, "test-emb.csv");
    let t = Tensor::from_slice(&s.train.concat()).view([s.train.len() as i64, 8]);
    t.write_npy(dir.join("train.npy")).unwrap();
    s
}

impl Synthetic {
    /// Writes rows as a CSV of numbers named `name`.
    fn write_embeddings(&self, rows: &[Vec<f32>], name: &str) {
        let text: String = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
                    + "\n"
            })
            .collect();
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// `import embeddings` with test embeddings `test` and test labels `labels`.
    fn import(&self, test: &str, labels: &str, out: &Path) -> Output {
        dmlviz_in(
            &root(),
            &[
                "import",
                "embeddings",
                "--train",
                &self.path("train.npy"),
                "--test",
                &self.path(test),
                "--train-labels",
                &self.path("train.csv"),
                "--test-labels",
                &self.path(labels),
                "--out",
                out.to_str().unwrap(),
            ],
        )
    }
}

#[test]
fn embeddings_import_errors_name_the_file_and_row_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = synthetic(tmp.path());
    let out = tmp.path().join("run");

    // Row counts: one label line short.
    let short: String = std::fs::read_to_string(tmp.path().join("test.csv"))
        .unwrap()
        .lines()
        .take(9)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(tmp.path().join("short.csv"), short).unwrap();
    let err = user_error(s.import("test-emb.csv", "short.csv", &out));
    assert!(
        err.contains("test-emb.csv has 9 rows")
            && err.contains("short.csv has 8")
            && err.contains("row 8 (counting from 0) has no partner"),
        "{err}"
    );

    // A NaN row.
    let mut bad = s.test.clone();
    bad[4][2] = f32::NAN;
    s.write_embeddings(&bad, "nan-emb.csv");
    let err = user_error(s.import("nan-emb.csv", "test.csv", &out));
    assert!(
        err.contains("nan-emb.csv: row 4 (counting from 0)") && err.contains("NaN"),
        "{err}"
    );

    // An unknown label (JSON labels file).
    let json = std::fs::read_to_string(tmp.path().join("test.json")).unwrap();
    std::fs::write(
        tmp.path().join("zebra.json"),
        json.replacen("\"blue\"", "\"zebra\"", 1),
    )
    .unwrap();
    let err = user_error(s.import("test-emb.csv", "zebra.json", &out));
    assert!(
        err.contains("zebra.json entry 6 (counting from 0): unknown label \"zebra\""),
        "{err}"
    );

    // A missing image.
    std::fs::remove_file(tmp.path().join("img/test-green-1.png")).unwrap();
    let err = user_error(s.import("test-emb.csv", "test.csv", &out));
    assert!(
        err.contains("test.csv line 6: image") && err.contains("test-green-1.png not found"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written by a refused import");
}

#[test]
fn project_and_report_make_a_site_from_imported_embeddings_alone() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let s = synthetic(tmp.path());
    let run = tmp.path().join("runs/emb");
    let text = ok(s.import("test-emb.csv", "test.json", &run));
    assert!(
        text.contains("21 training and 9 test embeddings (8 dimensions, 3 classes)"),
        "{text}"
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("phase-all/metrics.json")).unwrap())
            .unwrap();
    assert_eq!(
        metrics["retrieval"]["precision_at_1"], 1.0,
        "separable clusters"
    );
    assert!(run.join("phase-all/tables/confusion_matrix.csv").is_file());
    let r = run.to_str().unwrap();
    ok(dmlviz_in(&root(), &["eval", "--run", r]));

    ok(dmlviz_in(
        &root(),
        &["project", "--run", r, "--thumbnails", "--threads", "1"],
    ));
    for f in [
        "projections/umap.png",
        "projections/tsne.html",
        "galleries/galleries.json",
    ] {
        assert!(run.join("phase-all").join(f).is_file(), "{f}");
    }
    ok(dmlviz_in(&root(), &["report", "--run", r]));
    let page = std::fs::read_to_string(run.join("report/index.html")).unwrap();
    assert!(page.contains("Imported, not trained here") && page.contains("embeddings from"));
    assert!(
        page.contains("umap") && !page.contains("Incomplete run"),
        "{page}"
    );

    // Commands that embed an image say the run has no network.
    let image = s.path("img/train-red-0.png");
    for args in [
        vec!["explain", "--run", r, "--image", &image],
        vec!["predict", "--run", r, "--image", &image],
    ] {
        let err = user_error(dmlviz_in(&root(), &args));
        assert!(
            err.contains("no network") && err.contains("needs a model"),
            "{err}"
        );
    }
    // Nor is such a run picked when --run is left out.
    let err = user_error(dmlviz_in(tmp.path(), &["explain", "--image", &image]));
    assert!(err.contains("no finished run"), "{err}");
}
