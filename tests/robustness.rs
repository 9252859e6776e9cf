//! Robustness end to end (issue 15): concurrent enrolments lose nothing, every writer of
//! a run takes its lock, non-UTF-8 file names survive training and eval, bad `--k`,
//! corrupt and truncated images in folders, `report` on a non-run, and a seeded fuzz of
//! configs and image bytes that must always end in exit 0 or 1 with a message, never in
//! a panic (exit 2) or a signal.

mod common;

use common::{dmlviz, ok};
use dmlviz::data::rng::Rng;
use dmlviz::eval::gallery::Gallery;
use dmlviz::run::lock::RunLock;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A user error: exit code 1 and a message on stderr.
fn assert_user_error(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(err.contains("error:"), "{what}: no message: {err}");
    err
}

/// A tiny one-epoch, one-phase config of the card images at `data` (32², MobileNetV2
/// from scratch, 4 × 2 batches).
fn tiny_config(data: &Path) -> String {
    format!(
        "name = \"tiny\"\n[data]\npath = \"{}\"\nimage_size = 32\nheld_out_classes = 3\n\
         [model]\nbackbone = \"mobilenet_v2\"\ninit = \"scratch\"\ndistance = \"cosine\"\n\
         embedding_dim = 16\n[loss]\nkind = \"epshn\"\n[training]\nepochs = 1\n\
         classes_per_batch = 4\nimages_per_class = 2\nthreads = 1\nphases = [\"all\"]\n",
        data.display()
    )
}

fn train(config_text: &str, dir: &Path) -> (Output, PathBuf) {
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config_text).unwrap();
    let run = dir.join("run");
    let out = dmlviz(&[
        "train",
        "--quiet",
        "--config",
        text(&cfg),
        "--out",
        text(&run),
    ]);
    (out, run)
}

/// One trained run of the card fixture, with its default gallery stored, shared by the
/// tests (each copies it before writing into it).
fn trained_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("robustness-shared");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (out, run) = train(&tiny_config(&root().join("fixtures/cards")), &dir);
        ok(out);
        let card = root().join("fixtures/cards/0027.1_heart/oxygen.png");
        ok(dmlviz(&[
            "predict",
            "--run",
            text(&run),
            "--image",
            text(&card),
            "--json",
        ]));
        assert!(Gallery::exists(&run.join("phase-all")));
        run
    })
}

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

/// A private copy of the shared run.
fn run_copy(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    copy_dir(trained_run(), &run);
    run
}

fn emoji_class(name: &str) -> PathBuf {
    root().join("fixtures/emoji-cub/images").join(name)
}

const EMOJI: [&str; 6] = [
    "001.monkey_face",
    "002.monkey",
    "003.gorilla",
    "004.orangutan",
    "005.dog",
    "006.dog2",
];

#[test]
fn concurrent_index_adds_lose_no_enrolment() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_copy(dir.path());
    let children: Vec<_> = EMOJI
        .iter()
        .map(|folder| {
            Command::new(env!("CARGO_BIN_EXE_dmlviz"))
                .args([
                    "index",
                    "add",
                    "--run",
                    text(&run),
                    "--class",
                    folder,
                    "--images",
                ])
                .arg(emoji_class(folder))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut enrolled = Vec::new();
    for (folder, child) in EMOJI.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled"));
            enrolled.push(*folder);
        } else {
            // Refusal is allowed (after waiting), but only naming the holder.
            let err = assert_user_error(&out, folder);
            assert!(err.contains("is being written by pid"), "{err}");
        }
    }
    assert!(!enrolled.is_empty());

    // Rows and manifest agree (Gallery::load checks) and hold every enrolment.
    let phase = run.join("phase-all");
    assert!(
        !phase.join("gallery.json").exists(),
        "the manifest lives in the tensor file"
    );
    let gallery = Gallery::load(&phase).unwrap();
    let m = &gallery.manifest;
    assert_eq!(
        m.entries.len(),
        40 + 2 * enrolled.len(),
        "8 classes × 5 cards + 2 per class"
    );
    for class in &enrolled {
        let label = m.classes.iter().position(|c| c == class).unwrap();
        let rows: Vec<_> = m.entries.iter().filter(|e| e.label == label).collect();
        assert_eq!(rows.len(), 2, "{class}");
        assert!(
            rows.iter().all(|e| e.path.starts_with(emoji_class(class))),
            "{class}"
        );
    }

    // And each enrolled class is predicted for its own image, at distance 0.
    let mut args = vec!["predict", "--run", text(&run), "--k", "1", "--json"];
    let images: Vec<PathBuf> = enrolled
        .iter()
        .map(|c| emoji_class(c).join("google.png"))
        .collect();
    for image in &images {
        args.extend(["--image", text(image)]);
    }
    let predictions: serde_json::Value = serde_json::from_str(&ok(dmlviz(&args))).unwrap();
    for (class, p) in enrolled.iter().zip(predictions.as_array().unwrap()) {
        assert_eq!(p["nearest"], *class);
        assert!(p["neighbours"][0]["distance"].as_f64().unwrap().abs() < 1e-4);
    }
}

#[test]
fn index_add_waits_for_the_writer_holding_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_copy(dir.path());
    let lock = RunLock::acquire(&run, "test holder").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_dmlviz"))
        .args([
            "index",
            "add",
            "--run",
            text(&run),
            "--class",
            "dog",
            "--images",
        ])
        .arg(emoji_class("005.dog"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    drop(lock);
    let out = ok(child.wait_with_output().unwrap());
    assert!(out.contains("enrolled 2 images of \"dog\""), "{out}");
}

#[test]
fn eval_and_project_are_refused_while_another_command_writes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_copy(dir.path());
    let _lock = RunLock::acquire(&run, "test holder").unwrap();
    let holder = format!("pid {} (dmlviz test holder)", std::process::id());
    for args in [
        vec!["eval", "--run", text(&run)],
        vec!["project", "--run", text(&run), "--method", "umap"],
    ] {
        let err = assert_user_error(&dmlviz(&args), args[0]);
        assert!(err.contains(&holder), "{}: {err}", args[0]);
    }
    // A directory that is not a run is refused before any lock file is created in it.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for args in [
        vec!["eval", "--run", text(&empty)],
        vec!["project", "--run", text(&empty), "--method", "umap"],
    ] {
        let err = assert_user_error(&dmlviz(&args), args[0]);
        assert!(err.contains("not a run directory"), "{err}");
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[cfg(unix)]
#[test]
fn a_non_utf8_file_name_survives_training_eval_and_predict() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cards");
    copy_dir(&root().join("fixtures/cards"), &data);
    let raw = b"dondorf-\xff\xfe.png".to_vec();
    let odd = data
        .join("0027.1_heart")
        .join(std::ffi::OsString::from_vec(raw.clone()));
    std::fs::rename(data.join("0027.1_heart/dondorf.png"), &odd).unwrap();

    let (out, run) = train(&tiny_config(&data), dir.path());
    ok(out);
    // embeddings.json stores the name byte for byte, beside a lossy form.
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("phase-all/embeddings.json")).unwrap(),
    )
    .unwrap();
    let all: Vec<&serde_json::Value> = ["train_paths", "test_paths"]
        .iter()
        .flat_map(|k| stored[k].as_array().unwrap())
        .collect();
    assert_eq!(all.len(), 48);
    let special: Vec<_> = all.iter().filter(|p| p.is_object()).collect();
    assert_eq!(special.len(), 1, "{special:?}");
    let hex = special[0]["bytes_hex"].as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(bytes, odd.as_os_str().as_bytes());
    assert!(special[0]["lossy"]
        .as_str()
        .unwrap()
        .ends_with("dondorf-\u{fffd}\u{fffd}.png"));

    ok(dmlviz(&["eval", "--run", text(&run)]));
    let summary: serde_json::Value =
        serde_json::from_str(&ok(dmlviz(&["data", "summary", text(&data), "--json"]))).unwrap();
    assert_eq!(summary["images"], 48);
    let out = Command::new(env!("CARGO_BIN_EXE_dmlviz"))
        .args([
            "predict",
            "--run",
            text(&run),
            "--k",
            "1",
            "--json",
            "--image",
        ])
        .arg(&odd)
        .output()
        .unwrap();
    let predictions: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(predictions[0]["image"]["bytes_hex"], hex);
    assert!(
        predictions[0]["neighbours"][0]["distance"]
            .as_f64()
            .unwrap()
            .abs()
            < 1e-4
    );
}

#[test]
fn predict_refuses_k_zero_and_clamps_a_k_beyond_the_gallery() {
    let run = trained_run();
    let card = root().join("fixtures/cards/0040.1_spade/oxygen.png");
    let zero = dmlviz(&[
        "predict",
        "--run",
        text(run),
        "--image",
        text(&card),
        "--k",
        "0",
    ]);
    let err = assert_user_error(&zero, "--k 0");
    assert!(err.contains("--k must be at least 1"), "{err}");
    let out = dmlviz(&[
        "predict",
        "--run",
        text(run),
        "--image",
        text(&card),
        "--k",
        "1000",
        "--json",
    ]);
    assert!(
        stderr(&out).contains("more than the gallery's 40 images"),
        "{}",
        stderr(&out)
    );
    let p: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(p[0]["neighbours"].as_array().unwrap().len(), 40);
}

/// A folder of two good images and three bad ones: random bytes behind a PNG header, an
/// empty file, and the truncated JPEG (the first 6 000 of chelsea.jpg's bytes).
fn mixed_folder(dir: &Path) -> (PathBuf, Vec<&'static str>) {
    let folder = dir.join("mixed");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        root().join("fixtures/photos/chelsea.jpg"),
        folder.join("a-chelsea.jpg"),
    )
    .unwrap();
    std::fs::copy(
        emoji_class("005.dog").join("google.png"),
        folder.join("b-dog.png"),
    )
    .unwrap();
    let chelsea = std::fs::read(root().join("fixtures/photos/chelsea.jpg")).unwrap();
    std::fs::write(folder.join("c-truncated.jpg"), &chelsea[..6_000]).unwrap();
    let mut junk = b"\x89PNG\r\n\x1a\n".to_vec();
    junk.extend((0..500u32).map(|i| (i * 37 % 251) as u8));
    std::fs::write(folder.join("d-junk.png"), junk).unwrap();
    std::fs::write(folder.join("e-empty.png"), b"").unwrap();
    (folder, vec!["c-truncated.jpg", "d-junk.png", "e-empty.png"])
}

#[test]
fn predict_skips_and_names_each_bad_file_and_predicts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, bad) = mixed_folder(dir.path());
    let out = dmlviz(&[
        "predict",
        "--run",
        text(trained_run()),
        "--image",
        text(&folder),
        "--json",
    ]);
    let err = stderr(&out);
    let p: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    let images: Vec<&str> = p
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["image"].as_str().unwrap())
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(images[0].ends_with("a-chelsea.jpg") && images[1].ends_with("b-dog.png"));
    for name in bad {
        assert!(
            err.contains(&format!("skipped: {}", text(&folder.join(name)))),
            "{name}: {err}"
        );
    }
    assert!(err.contains("truncated JPEG"), "{err}");
}

#[test]
fn index_add_refuses_a_folder_with_bad_files_naming_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_copy(dir.path());
    let (folder, bad) = mixed_folder(dir.path());
    let out = dmlviz(&[
        "index",
        "add",
        "--run",
        text(&run),
        "--images",
        text(&folder),
        "--class",
        "mixed",
    ]);
    let err = assert_user_error(&out, "index add");
    assert!(
        err.contains("3 of 5 images cannot be read, so none was enrolled"),
        "{err}"
    );
    for name in bad {
        assert!(err.contains(name), "{name}: {err}");
    }
    let gallery = Gallery::load(&run.join("phase-all")).unwrap();
    assert_eq!(gallery.manifest.entries.len(), 40);
    assert!(!gallery.manifest.classes.iter().any(|c| c == "mixed"));
}

#[test]
fn report_refuses_a_directory_that_is_not_a_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "my notes").unwrap();
    let err = assert_user_error(&dmlviz(&["report", "--run", text(dir.path())]), "report");
    assert!(err.contains("not a run directory"), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("notes.txt")],
        "nothing written"
    );
    let missing = dir.path().join("missing");
    assert_user_error(
        &dmlviz(&["report", "--run", text(&missing)]),
        "report missing",
    );
    assert!(!missing.exists());
}

#[test]
fn a_cub_listing_that_leaves_the_dataset_is_refused_by_data_summary() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    copy_dir(&root().join("fixtures/emoji-cub"), &ds);
    std::fs::copy(
        root().join("fixtures/photos/coffee.jpg"),
        dir.path().join("x.jpg"),
    )
    .unwrap();
    let listing = std::fs::read_to_string(ds.join("images.txt")).unwrap();
    let first = listing
        .lines()
        .next()
        .unwrap()
        .split_once(' ')
        .unwrap()
        .0
        .to_string();
    let rest: Vec<&str> = listing.lines().skip(1).collect();
    std::fs::write(
        ds.join("images.txt"),
        format!("{first} ../../x.jpg\n{}\n", rest.join("\n")),
    )
    .unwrap();
    let err = assert_user_error(&dmlviz(&["data", "summary", text(&ds)]), "data summary");
    assert!(
        err.contains("images.txt line 1") && err.contains("leaves the dataset"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// The fuzz: seeded, bounded, deterministic.

/// Random bytes dressed as images: real headers followed by junk, truncated and
/// corrupted real files, empty files, the real file.
fn random_image(rng: &mut Rng) -> (Vec<u8>, &'static str) {
    let png = std::fs::read(root().join("fixtures/cards/0027.1_heart/oxygen.png")).unwrap();
    let jpg = std::fs::read(root().join("fixtures/photos/chelsea.jpg")).unwrap();
    let junk = |rng: &mut Rng, n: u64| -> Vec<u8> {
        (0..rng.below(n)).map(|_| rng.next_u64() as u8).collect()
    };
    let ext = if rng.chance(0.5) { "png" } else { "jpg" };
    let bytes = match rng.below(8) {
        0 => Vec::new(),
        1 => [b"\x89PNG\r\n\x1a\n".to_vec(), junk(rng, 3000)].concat(),
        2 => [b"\xff\xd8\xff\xe0".to_vec(), junk(rng, 3000)].concat(),
        3 => png[..rng.below(png.len() as u64) as usize].to_vec(),
        4 => jpg[..rng.below(jpg.len() as u64) as usize].to_vec(),
        5 => {
            let (mut b, n) = if rng.chance(0.5) {
                (png.clone(), png.len())
            } else {
                (jpg.clone(), jpg.len())
            };
            for _ in 0..1 + rng.below(8) {
                b[rng.below(n as u64) as usize] = rng.next_u64() as u8;
            }
            b
        }
        6 => junk(rng, 3000),
        _ => {
            return if rng.chance(0.5) {
                (png, "png")
            } else {
                (jpg, "jpg")
            }
        }
    };
    (bytes, ext)
}

/// Exit 0, or exit 1 with a message; never a panic (2) or a signal.
fn check_outcome(out: &Output, case: &str, failures: &mut Vec<String>) {
    // Shown with --nocapture: what the seed tried, and how each case ended.
    eprintln!("fuzz case {case}: {:?}", out.status.code());
    match out.status.code() {
        Some(0) => {}
        Some(1) if stderr(out).contains("error:") => {}
        code => failures.push(format!(
            "{case}: exit {code:?}\n{}",
            stderr(out)
                .lines()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// Values of every kind for a config key, as TOML literals (None: the key is left out).
const VALUES: &[Option<&str>] = &[
    None,
    Some("0"),
    Some("-1"),
    Some("1"),
    Some("100000"),
    Some("100000000000"),
    Some("9223372036854775807"),
    Some("-9223372036854775808"),
    Some("0.0"),
    Some("-1.5"),
    Some("0.5"),
    Some("1e-300"),
    Some("1e30"),
    Some("nan"),
    Some("inf"),
    Some("-inf"),
    Some("\"x\""),
    Some("\"\""),
    Some("true"),
    Some("[1, 2]"),
    Some("{ a = 1 }"),
];

/// The keys the fuzz changes, with the tiny config's values. `training.epochs` and
/// `training.threads` stay out: valid huge values mean hours of work or thousands of
/// threads, not a bug.
const KEYS: &[(&str, &str, Option<&str>)] = &[
    ("data", "image_size", Some("32")),
    ("data", "test_ratio", None),
    ("data", "held_out_classes", Some("3")),
    ("data", "resize", None),
    ("model", "embedding_dim", Some("16")),
    ("model", "distance", Some("\"cosine\"")),
    ("model", "backbone", Some("\"mobilenet_v2\"")),
    ("optimizer", "lr", None),
    ("optimizer", "momentum", None),
    ("optimizer", "weight_decay", None),
    ("loss", "kind", Some("\"epshn\"")),
    ("loss", "sigma", None),
    ("training", "classes_per_batch", Some("4")),
    ("training", "images_per_class", Some("2")),
    ("training", "seed", None),
];

fn fuzz_config(data: &Path, changes: &[(usize, Option<&str>)]) -> String {
    let mut text = String::from("name = \"fuzz\"\n");
    for table in ["data", "model", "optimizer", "loss", "training"] {
        text.push_str(&format!("[{table}]\n"));
        match table {
            "data" => text.push_str(&format!("path = \"{}\"\n", data.display())),
            "model" => text.push_str("init = \"scratch\"\n"),
            "training" => text.push_str("epochs = 1\nthreads = 1\nphases = [\"all\"]\n"),
            _ => {}
        }
        for (i, &(t, key, default)) in KEYS.iter().enumerate() {
            let value = changes
                .iter()
                .rev()
                .find(|(k, _)| *k == i)
                .map_or(default, |c| c.1);
            if let (true, Some(v)) = (t == table, value) {
                text.push_str(&format!("{key} = {v}\n"));
            }
        }
    }
    text
}

/// Runs the binary under a 6 GB address-space limit, so a runaway allocation fails
/// at once instead of swapping the machine.
fn dmlviz_limited(args: &[&str]) -> Output {
    Command::new("sh")
        .args([
            "-c",
            "ulimit -v 6000000 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_dmlviz"),
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn fuzzed_configs_and_image_bytes_end_in_exit_0_or_1_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(15);
    let mut failures = Vec::new();

    // Datasets of random image files, some with a real image among them.
    let mut datasets = Vec::new();
    for d in 0..6 {
        let ds = dir.path().join(format!("ds{d}"));
        for c in 0..3 {
            let class = ds.join(format!("class{c}"));
            std::fs::create_dir_all(&class).unwrap();
            for f in 0..1 + rng.below(3) {
                let (bytes, ext) = random_image(&mut rng);
                std::fs::write(class.join(format!("f{f}.{ext}")), bytes).unwrap();
            }
        }
        let out = dmlviz_limited(&["data", "summary", text(&ds), "--json"]);
        check_outcome(&out, &format!("data summary ds{d}"), &mut failures);
        datasets.push(ds);
    }

    // Configs with one or two keys changed to a value of any sign, size or type.
    let cards = root().join("fixtures/cards");
    for case in 0..10 {
        let data = if case % 5 == 4 {
            &datasets[case % datasets.len()]
        } else {
            &cards
        };
        let changes: Vec<(usize, Option<&str>)> = (0..1 + rng.below(2))
            .map(|_| {
                (
                    rng.below(KEYS.len() as u64) as usize,
                    VALUES[rng.below(VALUES.len() as u64) as usize],
                )
            })
            .collect();
        let config = fuzz_config(data, &changes);
        let case_dir = dir.path().join(format!("train{case}"));
        std::fs::create_dir_all(&case_dir).unwrap();
        std::fs::write(case_dir.join("config.toml"), &config).unwrap();
        let cfg = case_dir.join("config.toml");
        let out = dmlviz_limited(&[
            "train",
            "--quiet",
            "--config",
            text(&cfg),
            "--out",
            text(&case_dir.join("run")),
        ]);
        let changed: Vec<String> = changes
            .iter()
            .map(|&(k, v)| format!("{}.{} = {}", KEYS[k].0, KEYS[k].1, v.unwrap_or("(missing)")))
            .collect();
        check_outcome(
            &out,
            &format!("train with {}", changed.join(", ")),
            &mut failures,
        );
    }

    // Random image files (and k values) given to predict.
    let run = trained_run();
    for case in 0..6 {
        let folder = dir.path().join(format!("predict{case}"));
        std::fs::create_dir_all(&folder).unwrap();
        for f in 0..1 + rng.below(3) {
            let (bytes, ext) = random_image(&mut rng);
            std::fs::write(folder.join(format!("f{f}.{ext}")), bytes).unwrap();
        }
        let k = ["0", "1", "3", "1000000"][rng.below(4) as usize];
        let out = dmlviz_limited(&[
            "predict",
            "--run",
            text(run),
            "--image",
            text(&folder),
            "--k",
            k,
        ]);
        check_outcome(
            &out,
            &format!("predict {} --k {k}", folder.display()),
            &mut failures,
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
