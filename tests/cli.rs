//! The `dmlviz` binary end to end: output formats and exit codes.

mod common;

use common::dmlviz;

#[test]
fn summary_as_json_describes_the_fixture() {
    let out = dmlviz(&["data", "summary", "fixtures/emoji-cub", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["layout"], "cub");
    assert_eq!(v["classes"], 6);
    assert_eq!(v["images"], 12);
    assert_eq!(v["unreadable"].as_array().unwrap().len(), 0);
}

#[test]
fn a_missing_dataset_is_a_user_error_with_exit_code_1() {
    let out = dmlviz(&["data", "summary", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no/such/dir") && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn help_shows_examples() {
    let out = dmlviz(&["data", "fetch", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Examples:") && text.contains("Animals & Nature"),
        "{text}"
    );
}

/// Runs `dmlviz` with `args` and the environment variable `var` set to `value`.
fn dmlviz_with_env(args: &[&str], var: &str, value: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dmlviz"))
        .args(args)
        .env(var, value)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn help_and_version_exit_with_0_on_stdout() {
    for args in [&["--help"][..], &["train", "--help"], &["--version"]] {
        let out = dmlviz(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let want = if args == ["--version"] {
            "dmlviz "
        } else {
            "Usage:"
        };
        assert!(text.contains(want), "{args:?}: {text}");
    }
}

#[test]
fn a_mistyped_flag_is_a_user_error_with_exit_code_1_and_clap_s_message() {
    let out = dmlviz(&["data", "summary", "fixtures/emoji-cub", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unexpected argument '--no-such-flag'") && err.contains("Usage:"),
        "{err}"
    );
    // An unknown command and a missing required argument are usage errors too.
    assert_eq!(dmlviz(&["no-such-command"]).status.code(), Some(1));
    assert_eq!(dmlviz(&["eval"]).status.code(), Some(1));
}

#[test]
fn a_missing_config_file_is_a_user_error_naming_it() {
    let out = dmlviz(&["train", "--config", "no/such/experiment.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/experiment.toml"), "{err}");
}

#[test]
fn an_internal_error_exits_with_2() {
    // The documented test hook of src/main.rs: a real panic, caught by main.
    let out = dmlviz_with_env(
        &["data", "summary", "fixtures/emoji-cub"],
        "DMLVIZ_TEST_PANIC",
        "1",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a deliberate panic") && err.contains("internal error: this is a bug"),
        "{err}"
    );
    // Any other value leaves the binary alone.
    let out = dmlviz_with_env(
        &["data", "summary", "fixtures/emoji-cub"],
        "DMLVIZ_TEST_PANIC",
        "0",
    );
    assert_eq!(out.status.code(), Some(0));
}
