//! Faults a demanding user meets, scripted (issue 15): a kill at every write of a
//! training run, two trainings into one run directory, values that cannot work,
//! leftovers of killed writers, a resume with another config, unreadable images.

mod common;

use dmlviz::atomic::{FAULT_ENV, TEMP_PREFIX};
use dmlviz::config::Phase;
use dmlviz::run::epoch_commit::{MANIFEST, STAGING};
use dmlviz::run::{EpochRecord, RunDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards")
}

/// The smallest run that still has everything a resume must restore: 16², two
/// epochs, SGD with momentum (optimiser state), a multi-step schedule, augmentation
/// (random draws per epoch), phase-all only. `set` replaces `key = value` lines.
fn config_text(data: &Path, set: &[(&str, &str)]) -> String {
    let mut text = format!(
        "name = \"faults\"\n[data]\npath = \"{}\"\nimage_size = 16\nresize = 18\naugment = true\n\
         held_out_classes = 3\n[model]\nbackbone = \"mobilenet_v2\"\ninit = \"scratch\"\n\
         distance = \"cosine\"\nembedding_dim = 8\n[loss]\nkind = \"epshn\"\n[optimizer]\n\
         kind = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n[schedule]\nkind = \"multi_step\"\n\
         milestones = [0.5]\ngamma = 0.1\n[training]\nepochs = 2\nclasses_per_batch = 4\n\
         images_per_class = 2\nthreads = 1\nphases = [\"all\"]\nseed = 7\n",
        data.display()
    );
    for (key, value) in set {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .map(str::to_string);
        match line {
            Some(line) => text = text.replace(&line, &format!("{key} = {value}")),
            None => panic!("no key {key} in the test config"),
        }
    }
    text
}

fn write_config(dir: &Path, name: &str, set: &[(&str, &str)]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, config_text(&cards(), set)).unwrap();
    path
}

/// `dmlviz train --quiet --config CONFIG --out OUT EXTRA...`, with `env` set.
fn train(config: &Path, out: &Path, extra: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dmlviz"));
    cmd.args(["train", "--quiet", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove(FAULT_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// Epoch, train loss, test accuracy and learning rate of each epoch.
type Curve = Vec<(usize, f64, f64, f64)>;

/// The parts of a history that repeat exactly (timings never do).
fn curve(h: &[EpochRecord]) -> Curve {
    h.iter()
        .map(|r| (r.epoch, r.train_loss, r.test_accuracy, r.lr))
        .collect()
}

/// What a finished run must reproduce: checkpoint bytes and the learning curve.
fn outcome(run: &Path) -> (Vec<u8>, Curve) {
    let phase = RunDir::new(run).phase(Phase::All);
    let checkpoint = std::fs::read(phase.checkpoint()).unwrap();
    (checkpoint, curve(&phase.read_history().unwrap()))
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// One rename of the uninterrupted run, as the fault hook logs it.
struct Rename {
    index: usize,
    path: String,
}

/// Its kind: the file, and whether it was staged for a commit or published.
fn kind(r: &Rename) -> String {
    let name = Path::new(&r.path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let staged = r.path.contains(&format!("/{STAGING}/"));
    format!("{}{name}", if staged { "staged " } else { "" })
}

/// Kills a training run at each of its writes in turn (the fault hook aborts the
/// process right after its N-th rename), resumes it, and compares with the
/// uninterrupted run: the same checkpoint bytes and learning curve, or a refusal
/// with a message; never a silently different run.
#[test]
fn a_kill_at_any_write_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "faults.toml", &[]);
    let straight = dir.path().join("straight");
    let out = train(
        &config,
        &straight,
        &[],
        &[(FAULT_ENV, usize::MAX.to_string())],
    );
    assert_ok(&out);
    let expected = outcome(&straight);
    let renames: Vec<Rename> = stderr(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("dmlviz fault hook: rename "))
        .map(|l| {
            let (n, path) = l.split_once(' ').unwrap();
            Rename {
                index: n.parse().unwrap(),
                path: path.to_string(),
            }
        })
        .collect();
    assert!(
        renames.len() > 20,
        "too few writes logged: {}",
        stderr(&out)
    );
    // The training's writes: the config, then per epoch its four files staged, the
    // commit, the four published (then come the evaluation's and the report's).
    let training_files = [
        "config.toml",
        MANIFEST,
        "checkpoint.safetensors",
        "optimizer.safetensors",
        "history.jsonl",
        "train-state.json",
    ];
    let training: Vec<&Rename> = renames
        .iter()
        .filter(|r| {
            training_files
                .iter()
                .any(|f| r.path.ends_with(&format!("/{f}")))
        })
        .collect();
    assert_eq!(
        training.len(),
        1 + 2 * 9,
        "{:?}",
        training.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert_eq!(
        training
            .iter()
            .filter(|r| r.path.ends_with(MANIFEST))
            .count(),
        2
    );

    // Every kind of training write once, at its last occurrence (epoch 2, where the
    // optimiser state matters); the first commit; the first, a middle and the last
    // write of the evaluation and report.
    let mut chosen: Vec<usize> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in training.iter().rev() {
        if seen.insert(kind(r)) {
            chosen.push(r.index);
        }
    }
    assert_eq!(seen.len(), 10, "write kinds: {seen:?}");
    let last_training = training.last().unwrap().index;
    let last = renames.last().unwrap().index;
    chosen.push(
        training
            .iter()
            .find(|r| r.path.ends_with(MANIFEST))
            .unwrap()
            .index,
    );
    chosen.extend([last_training + 1, (last_training + last) / 2, last]);
    chosen.sort();
    chosen.dedup();

    for n in chosen {
        let run = dir.path().join(format!("killed-at-{n}"));
        let killed = train(&config, &run, &[], &[(FAULT_ENV, n.to_string())]);
        assert!(
            !killed.status.success() && killed.status.code().is_none(),
            "write {n} did not kill the run: {}",
            stderr(&killed)
        );
        let resumed = train(&config, &run, &["--resume"], &[]);
        match resumed.status.code() {
            Some(0) => assert_eq!(
                outcome(&run),
                expected,
                "killed at write {n}: resumed to another run"
            ),
            Some(1) => assert!(
                stderr(&resumed).contains("error:"),
                "refused without a reason"
            ),
            other => panic!(
                "killed at write {n}: resume ended with {other:?}: {}",
                stderr(&resumed)
            ),
        }
        let leftovers: Vec<String> = files_under(&run)
            .into_iter()
            .filter(|f| f.contains(TEMP_PREFIX) || f.contains(STAGING))
            .collect();
        assert!(
            leftovers.is_empty(),
            "killed at write {n}: left {leftovers:?}"
        );
    }
}

#[test]
fn a_second_train_into_the_same_run_is_refused_and_never_mixes() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_config(dir.path(), "a.toml", &[("epochs", "3")]);
    let b = write_config(dir.path(), "b.toml", &[("seed", "8")]);
    let run = dir.path().join("run");
    let mut first = Command::new(env!("CARGO_BIN_EXE_dmlviz"))
        .args(["train", "--quiet", "--config"])
        .arg(&a)
        .arg("--out")
        .arg(&run)
        .env_remove(FAULT_ENV)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first holds the run's lock (it writes its PID there).
    let lock = run.join(dmlviz::run::lock::LOCK_FILE);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("dmlviz train")) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = train(&b, &run, &[], &[]);
    assert!(first.wait().unwrap().success());
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let err = stderr(&second);
    // Refused by the lock while the first runs, by the guard if it had ended already.
    assert!(
        err.contains(&format!("pid {} (dmlviz train)", first.id()))
            || err.contains("already holds a run"),
        "{err}"
    );
    let stored = RunDir::new(&run).read_config().unwrap();
    assert_eq!((stored.training.seed, stored.training.epochs), (7, 3));
    assert_eq!(
        RunDir::new(&run)
            .phase(Phase::All)
            .read_history()
            .unwrap()
            .len(),
        3
    );

    // Once it has ended, a second run of another phase does not replace it either.
    let again = train(&b, &run, &["--phase", "seen"], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already holds a run (config.toml)"),
        "{}",
        stderr(&again)
    );
    assert!(!run.join("phase-seen").exists());
}

#[test]
fn values_that_cannot_work_exit_1_naming_the_key_before_any_training() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 8] = [
        ("lr", "nan", "optimizer.lr"),
        ("lr", "inf", "optimizer.lr"),
        ("lr", "1e30", "optimizer.lr"),
        ("momentum", "-inf", "optimizer.momentum"),
        ("embedding_dim", "100000000000", "model.embedding_dim"),
        ("image_size", "100000", "data.image_size"),
        // Known only from the dataset: 8 classes, 6 images each (4 or 5 for training).
        ("held_out_classes", "8", "data.held_out_classes"),
        ("images_per_class", "1000", "training.images_per_class"),
    ];
    for (i, (key, value, named)) in cases.iter().enumerate() {
        let mut set = vec![(*key, *value)];
        if *key == "image_size" {
            set.push(("resize", "100000"));
        }
        if *key == "held_out_classes" {
            set.push(("phases", "[\"all\", \"seen\"]"));
        }
        let config = write_config(dir.path(), &format!("bad{i}.toml"), &set);
        let run = dir.path().join(format!("bad{i}"));
        let out = train(&config, &run, &[], &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{key} = {value}: {err}");
        assert!(
            err.contains(named) && err.contains(&format!("bad{i}.toml")),
            "{key} = {value}: {err}"
        );
        assert!(
            !run.join("phase-all").exists(),
            "{key} = {value}: trained anyway"
        );
        assert!(
            !run.join("config.toml").exists(),
            "{key} = {value}: the run was started"
        );
    }
    // The weights file of an ImageNet init is checked before training too.
    let config = dir.path().join("weights.toml");
    let text = config_text(&cards(), &[]).replace(
        "init = \"scratch\"",
        "init = \"imagenet\"\nweights = \"no/such/weights.safetensors\"",
    );
    std::fs::write(&config, text).unwrap();
    let run = dir.path().join("weights");
    let out = train(&config, &run, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("model.init") && stderr(&out).contains("no/such/weights"));
    assert!(!run.join("config.toml").exists());
}

/// Leftovers of killed writers (temporary files, staged files of a commit that never
/// happened) are removed when the next writer starts; the committed run resumes.
#[test]
fn leftovers_of_a_killed_writer_are_removed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", &[("epochs", "1")]);
    let run = dir.path().join("run");
    assert_ok(&train(&config, &run, &[], &[]));
    let phase = run.join("phase-all");
    let planted = [
        phase.join(format!("{TEMP_PREFIX}checkpoint.safetensors.Ab12Cd")),
        run.join(format!("{TEMP_PREFIX}config.toml.Zz99Yy")),
        phase.join(".checkpoint.safetensors.tmp.4242"),
        phase.join(STAGING).join("commit-9/checkpoint.safetensors"),
    ];
    for p in &planted {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![0u8; 1000]).unwrap();
    }
    assert_ok(&train(&config, &run, &["--resume", "--epochs", "2"], &[]));
    for p in &planted {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    assert!(!phase.join(STAGING).exists());
    assert_eq!(
        RunDir::new(&run)
            .phase(Phase::All)
            .read_history()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn resuming_with_a_different_config_is_refused_naming_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", &[("epochs", "1")]);
    let run = dir.path().join("run");
    assert_ok(&train(&config, &run, &[], &[]));
    let changed = write_config(
        dir.path(),
        "changed.toml",
        &[("epochs", "1"), ("embedding_dim", "12")],
    );
    let out = train(&changed, &run, &["--resume"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("model.embedding_dim = 8 in the run, 12 in"),
        "{err}"
    );
    // Going further is what resuming is for: more epochs are not a difference.
    assert_ok(&train(&config, &run, &["--resume", "--epochs", "2"], &[]));
}

/// A run directory written before commits existed (no commit.json) resumes when it
/// is consistent, and is refused when a kill left it half-written.
#[test]
fn runs_from_before_commits_resume_when_consistent_and_are_refused_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", &[("epochs", "1")]);
    let old = dir.path().join("old");
    assert_ok(&train(&config, &old, &[], &[]));
    let broken = dir.path().join("broken");
    copy_dir(&old, &broken);
    std::fs::remove_file(old.join("phase-all").join(MANIFEST)).unwrap();
    assert_ok(&train(&config, &old, &["--resume", "--epochs", "2"], &[]));
    assert_eq!(
        RunDir::new(&old)
            .phase(Phase::All)
            .read_history()
            .unwrap()
            .len(),
        2
    );

    // The train-state of epoch 1, the history of none: what a kill left before commits.
    std::fs::remove_file(broken.join("phase-all").join(MANIFEST)).unwrap();
    std::fs::write(broken.join("phase-all/history.jsonl"), "").unwrap();
    let out = train(&config, &broken, &["--resume", "--epochs", "2"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("inconsistent"), "{}", stderr(&out));
}

fn copy_dir(from: &Path, to: &Path) {
    for f in files_under(from) {
        let target = to.join(&f);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), target).unwrap();
    }
}

/// Images that pass the header check but cannot be decoded are named on stderr,
/// even with --quiet and redirected output.
#[test]
fn unreadable_training_images_are_named_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cards");
    copy_dir(&cards(), &data);
    let class = data.join("0027.1_heart");
    let whole = std::fs::read(class.join("oxygen.png")).unwrap();
    for deck in ["oxygen", "dondorf"] {
        std::fs::write(class.join(format!("{deck}.png")), &whole[..whole.len() / 3]).unwrap();
    }
    let config = dir.path().join("c.toml");
    std::fs::write(&config, config_text(&data, &[("epochs", "1")])).unwrap();
    let out = train(&config, &dir.path().join("run"), &[], &[]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("could not be read"), "{err}");
    let named = ["oxygen.png", "dondorf.png"]
        .iter()
        .filter(|f| err.contains(*f))
        .count();
    // The split decides which of the two are training images; at least one is.
    assert!(named >= 1, "{err}");
}

/// `--seed` overrides training.seed for a new run; a resume under another seed is
/// refused (applying it would silently continue someone else's run).
#[test]
fn seed_override_is_stored_and_a_resume_under_another_seed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", &[("epochs", "1")]);
    let run = dir.path().join("run");
    assert_ok(&train(&config, &run, &["--seed", "7"], &[]));
    assert_eq!(RunDir::new(&run).read_config().unwrap().training.seed, 7);
    let out = train(&config, &run, &["--resume", "--seed", "8"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("training.seed = 7 in the run, 8 in"), "{err}");
    assert_ok(&train(
        &config,
        &run,
        &["--resume", "--seed", "7", "--epochs", "2"],
        &[],
    ));
}
