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
