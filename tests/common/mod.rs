//! Helpers shared by the end-to-end tests: running the binary and training a tiny run.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `dmlviz` with `args` from the crate root.
pub fn dmlviz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dmlviz")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap()
}

/// The stdout of a command that must succeed (its stderr in the panic otherwise).
pub fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
    ok(dmlviz(&["train", "--quiet", "--config", cfg.to_str().unwrap(), "--out", run.to_str().unwrap()]));
    run
}
