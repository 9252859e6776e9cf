//! Opening datasets from disk: both layouts on the committed real fixtures, and every
//! kind of bad input a user can hand us.

use dmlviz::data::{ClassProtocol, Dataset, Split};
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn write_png(path: &Path, seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_fn(16, 16, |x, y| Rgb([seed, x as u8 * 8, y as u8 * 8]))
        .save(path)
        .unwrap();
}

#[test]
fn folder_fixture_loads_every_card() {
    let d = Dataset::open(&fixture("cards")).unwrap();
    assert_eq!(d.layout, "folder");
    assert_eq!(d.classes.len(), 8);
    assert_eq!(d.samples.len(), 8 * 6);
    assert!(
        d.unreadable.is_empty() && d.warnings.is_empty(),
        "{:?} {:?}",
        d.unreadable,
        d.warnings
    );
    assert!(
        d.classes.windows(2).all(|w| w[0] < w[1]),
        "classes not in folder order"
    );
    let summary = d.summary();
    assert_eq!(
        (summary.images_per_class_min, summary.images_per_class_max),
        (6, 6)
    );
    let text = summary.to_string();
    assert!(
        text.contains("classes      8") && text.contains("images       48"),
        "{text}"
    );
}

#[test]
fn cub_fixture_loads_with_its_official_split() {
    let d = Dataset::open(&fixture("emoji-cub")).unwrap();
    assert_eq!(d.layout, "cub");
    assert_eq!(d.classes.len(), 6);
    assert_eq!(d.samples.len(), 12);
    assert!(d.samples.iter().all(|s| s.official_train.is_some()));
    let official = Split::official(&d).unwrap();
    assert_eq!((official.train.len(), official.test.len()), (6, 6));
    // Each class has one train (google) and one test (twitter) image.
    for label in 0..6 {
        let train: Vec<_> = official
            .train
            .iter()
            .filter(|&&i| d.samples[i].label == label)
            .collect();
        assert_eq!(train.len(), 1);
    }
}

#[test]
fn stratified_split_of_a_real_fixture_with_held_out_classes() {
    let d = Dataset::open(&fixture("cards")).unwrap();
    let split = Split::stratified(&d, 0.2, 42).unwrap();
    assert_eq!(split.test.len(), 8, "one test image of six per class");
    assert_eq!(split, Split::stratified(&d, 0.2, 42).unwrap());
    let protocol = ClassProtocol::hold_out_last(d.classes.len(), 3).unwrap();
    let seen_train = split.train_for(&d, &protocol);
    assert_eq!(seen_train.len(), 5 * 5);
    assert!(seen_train
        .iter()
        .all(|&i| protocol.is_seen(d.samples[i].label)));
}

#[test]
fn corrupt_missing_and_oversized_files_are_skipped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for c in ["a", "b"] {
        for i in 0..3 {
            write_png(&root.join(c).join(format!("{i}.png")), i);
        }
    }
    std::fs::write(root.join("a/corrupt.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    std::fs::write(
        root.join("b/readme.txt"),
        b"ignored: not an image extension",
    )
    .unwrap();
    // 20000 px wide: over the size limit, refused from its header without decoding.
    image::GrayImage::new(20_000, 2)
        .save(root.join("b/huge.png"))
        .unwrap();
    let d = Dataset::open(root).unwrap();
    assert_eq!(d.samples.len(), 6);
    assert_eq!(d.unreadable.len(), 2);
    let reasons: Vec<String> = d
        .unreadable
        .iter()
        .map(|u| format!("{} {}", u.path.display(), u.reason))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("a/corrupt.png")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("b/huge.png") && r.contains("limit")),
        "{reasons:?}"
    );
    let shown = d.summary().to_string();
    assert!(
        shown.contains("unreadable   2") && shown.contains("corrupt.png"),
        "{shown}"
    );
}

#[test]
fn empty_folders_and_lone_images_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..3 {
        write_png(&root.join("many").join(format!("{i}.png")), i);
        write_png(&root.join("more").join(format!("{i}.png")), i);
    }
    write_png(&root.join("lone/only.png"), 9);
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let d = Dataset::open(root).unwrap();
    assert_eq!(d.classes, vec!["lone", "many", "more"]);
    let warnings = d.warnings.join("\n");
    assert!(
        warnings.contains("empty") && warnings.contains("left out"),
        "{warnings}"
    );
    assert!(
        warnings.contains("only.png") && warnings.contains("single image"),
        "{warnings}"
    );
    // The lone image stays a reference: never a test query.
    let split = Split::stratified(&d, 0.2, 42).unwrap();
    assert!(split.test.iter().all(|&i| d.samples[i].label != 0));
}

#[test]
fn a_dataset_with_nothing_readable_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no class sub-folders"), "{err}");
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    std::fs::write(dir.path().join("x/bad.jpg"), b"no").unwrap();
    let err = Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no readable images"), "{err}");
}

/// A CUB-layout dataset in a temporary directory, with the given extra lines.
fn cub(root: &Path, images: &str, labels: &str, classes: &str) {
    std::fs::write(root.join("images.txt"), images).unwrap();
    std::fs::write(root.join("image_class_labels.txt"), labels).unwrap();
    std::fs::write(root.join("classes.txt"), classes).unwrap();
    for i in 0..4 {
        write_png(&root.join(format!("images/c/{i}.png")), i);
    }
}

#[test]
fn cub_listing_a_missing_file_skips_it_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    cub(
        dir.path(),
        "1 c/0.png\n2 c/1.png\n3 c/gone.png\n4 c/2.png\n5 c/3.png\n",
        "1 1\n2 1\n3 2\n4 2\n5 2\n",
        "1 001.First\n2 002.Second\n",
    );
    let d = Dataset::open(dir.path()).unwrap();
    assert_eq!(d.samples.len(), 4);
    assert_eq!(d.classes, vec!["001.First", "002.Second"]);
    assert_eq!(d.unreadable.len(), 1);
    assert!(
        d.unreadable[0].reason.contains("images.txt line 3"),
        "{:?}",
        d.unreadable
    );
}

#[test]
fn cub_syntax_errors_name_the_file_and_line() {
    let cases = [
        ("1 c/0.png\nbroken\n", "1 1\n", "1 A\n", "images.txt line 2"),
        (
            "1 c/0.png\n",
            "1 7\n",
            "1 A\n",
            "image_class_labels.txt line 1: class id 7 is not in classes.txt",
        ),
        (
            "1 c/0.png\n2 c/1.png\n",
            "1 1\n",
            "1 A\n",
            "images.txt line 2: image id 2 has no entry in image_class_labels.txt",
        ),
        (
            "x c/0.png\n",
            "1 1\n",
            "1 A\n",
            "images.txt line 1: id \"x\" is not a whole number",
        ),
        ("1 c/0.png\n", "1 1\n", "1 A\n1 B\n", "classes.txt line 2"),
    ];
    for (images, labels, classes, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        cub(dir.path(), images, labels, classes);
        let err = format!("{:#}", Dataset::open(dir.path()).unwrap_err());
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    cub(dir.path(), "1 c/0.png\n", "1 1\n", "1 A\n");
    std::fs::write(dir.path().join("train_test_split.txt"), "1 yes\n").unwrap();
    let err = format!("{:#}", Dataset::open(dir.path()).unwrap_err());
    assert!(
        err.contains("train_test_split.txt line 1: expected 0 or 1"),
        "{err}"
    );
}
