//! Helpers shared by the end-to-end tests: running the binary and training a tiny run.
#![allow(dead_code)] // each test file uses its own subset

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `dmlviz` with `args` from the crate root.
pub fn dmlviz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dmlviz"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// The stdout of a command that must succeed (its stderr in the panic otherwise).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Trains a one-epoch run of the card fixture (32², MobileNetV2 from scratch, 3 classes
/// held out) with loss `loss`; `extra` adds lines to the `[training]` table.
pub fn tiny_run(dir: &Path, loss: &str, extra: &str) -> PathBuf {
    let cfg = dir.join("tiny.toml");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards");
    std::fs::write(
        &cfg,
        format!(
            "name = \"tiny\"\n[data]\npath = \"{}\"\nimage_size = 32\nheld_out_classes = 3\n\
             [model]\nbackbone = \"mobilenet_v2\"\ninit = \"scratch\"\ndistance = \"cosine\"\nembedding_dim = 16\n\
             [loss]\nkind = \"{loss}\"\n[training]\nepochs = 1\nclasses_per_batch = 4\nimages_per_class = 2\nthreads = 1\n{extra}",
            data.display()
        ),
    )
    .unwrap();
    let run = dir.join("run");
    ok(dmlviz(&[
        "train",
        "--quiet",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]));
    run
}

/// Writes a two-row study grid of the card fixture (1 epoch, 32², seeds 7 and 8,
/// one finding) into `dir`, for `dmlviz study` tests.
pub fn write_tiny_grid(dir: &Path) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards");
    std::fs::create_dir_all(dir.join("cards")).unwrap();
    std::fs::write(dir.join("study.toml"), "baseline = \"base\"\nseeds = [7, 8]\nsmall_effect_points = 0.0\nlatency_images = 2\nexplain_samples = 2\ngallery_unseen = 1\ngallery_misclassified = 2\n").unwrap();
    std::fs::write(
        dir.join("findings.toml"),
        "[[finding]]\nrow = \"wide\"\nreference_row = \"EPSHN_cosine_resnet18x512_sgd_aug\"\ndeduction = \"a wider <embedding> has no effect\"\n\
         metric = \"precision_at_1\"\nexpect = \"no_effect\"\n",
    )
    .unwrap();
    for (row, dim) in [("base", 16), ("wide", 32)] {
        std::fs::write(
            dir.join(format!("cards/{row}.toml")),
            format!(
                "name = \"cards_{row}\"\n[data]\npath = \"{}\"\nimage_size = 32\nheld_out_classes = 3\n\
                 [model]\nbackbone = \"mobilenet_v2\"\ninit = \"scratch\"\ndistance = \"cosine\"\nembedding_dim = {dim}\n\
                 [loss]\nkind = \"epshn\"\n[training]\nepochs = 1\nclasses_per_batch = 4\nimages_per_class = 2\nthreads = 1\nseed = 7\n",
                data.display()
            ),
        )
        .unwrap();
    }
}
