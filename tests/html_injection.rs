//! Hostile class and file names on every page kind. A copy of the card fixture whose
//! class folders are named `<script>alert(1)`, `"><img src=x onerror=alert(2)>` and
//! `it's & "quoted" <b>`, with image files named like markup too, goes through
//! `train`, `explain --samples`, `explain --batch`, `project` and `report`. Every page
//! written (run page, comparison page, explanation pages and their index, the batch
//! page, maps, galleries) is then read tag by tag: no tag may carry an `on…`
//! attribute or an unquoted value, no `<` may stand in text, each page has exactly its
//! own scripts, and the names show up escaped, as text.

mod common;

use common::{dmlviz, ok};
use dmlviz::report::check::{check_site, html_files};
use std::path::{Path, PathBuf};

const SCRIPT_CLASS: &str = "0027.<script>alert(1)";
const BREAKOUT_CLASS: &str = "0028.\"><img src=x onerror=alert(2)>";
const QUOTES_CLASS: &str = "0029.it's & \"quoted\" <b>";
const BREAKOUT_FILE: &str = "\"><img src=y onerror=alert(3)>.png";
const SCRIPT_FILE: &str = "<script>alert(4).png";

/// The card fixture with three classes and two images renamed to hostile names.
fn hostile_dataset(dir: &Path) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards");
    let data = dir.join("data");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let class = entry.unwrap().path();
        let name = class.file_name().unwrap().to_string_lossy().into_owned();
        let renamed = match name.as_str() {
            "0027.1_heart" => SCRIPT_CLASS.to_string(),
            "0028.2_heart" => BREAKOUT_CLASS.to_string(),
            "0029.3_heart" => QUOTES_CLASS.to_string(),
            _ => name,
        };
        let to = data.join(&renamed);
        std::fs::create_dir_all(&to).unwrap();
        for image in std::fs::read_dir(&class).unwrap() {
            let image = image.unwrap().path();
            let file = image.file_name().unwrap().to_string_lossy().into_owned();
            let file = match (renamed.as_str(), file.as_str()) {
                (SCRIPT_CLASS, "dondorf.png") => BREAKOUT_FILE.to_string(),
                (BREAKOUT_CLASS, "dondorf.png") => SCRIPT_FILE.to_string(),
                _ => file,
            };
            std::fs::copy(&image, to.join(file)).unwrap();
        }
    }
    data
}

/// Trains a one-epoch run on `data` (as `common::tiny_run`, on another dataset).
fn train(dir: &Path, data: &Path) -> PathBuf {
    let cfg = dir.join("hostile.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"hostile\"\n[data]\npath = \"{}\"\nimage_size = 32\nheld_out_classes = 3\n\
             [model]\nbackbone = \"mobilenet_v2\"\ninit = \"scratch\"\ndistance = \"cosine\"\nembedding_dim = 16\n\
             [loss]\nkind = \"epshn\"\n[training]\nepochs = 1\nclasses_per_batch = 4\nimages_per_class = 2\nthreads = 1\n",
            data.display()
        ),
    )
    .unwrap();
    let run = dir.join("runs/run");
    let (cfg, out) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    ok(dmlviz(&["train", "--quiet", "--config", cfg, "--out", out]));
    run
}

/// Reads the attributes of the tag `name` from `i` (just after its name) to its `>`,
/// noting event handlers and unquoted values; returns where the tag ends.
fn skip_attributes(html: &str, mut i: usize, name: &str, problems: &mut Vec<String>) -> usize {
    let b = html.as_bytes();
    loop {
        while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        match b.get(i) {
            None => break,
            Some(b'>') => break,
            Some(b'/') if b.get(i + 1) == Some(&b'>') => break,
            _ => {}
        }
        let start = i;
        while b
            .get(i)
            .is_some_and(|c| !c.is_ascii_whitespace() && !b"=>/".contains(c))
        {
            i += 1;
        }
        let attribute = html[start..i].to_ascii_lowercase();
        if attribute.is_empty() {
            i += 1; // a stray `/`
            continue;
        }
        if attribute.starts_with("on") {
            problems.push(format!(
                "<{name}> has an event handler attribute {attribute}"
            ));
        }
        if b.get(i) == Some(&b'=') {
            i += 1;
            if b.get(i) == Some(&b'"') {
                i += 1 + html[i + 1..].find('"').unwrap_or(0) + 1;
            } else {
                problems.push(format!("<{name}> has an unquoted value for {attribute}"));
            }
        }
    }
    i
}

/// What is wrong with a page's markup: `on…` attributes, unquoted attribute values,
/// raw `<` in text, comments, and a number of `<script>` elements other than `scripts`.
fn markup_problems(html: &str, scripts: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let mut found_scripts = 0;
    let b = html.as_bytes();
    let mut i = 0;
    while let Some(at) = html[i..].find('<') {
        i += at + 1;
        let rest = &html[i..];
        if rest.starts_with('/') {
            i += rest.find('>').unwrap_or(rest.len());
            continue;
        }
        if rest.starts_with("!DOCTYPE html>") {
            continue;
        }
        if !b.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
            let context: String = rest.chars().take(40).collect();
            problems.push(format!("raw `<` in text: <{context}"));
            continue;
        }
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
            .unwrap_or(rest.len());
        let name = rest[..name_len].to_ascii_lowercase();
        i += name_len;
        i = skip_attributes(html, i, &name, &mut problems);
        if name == "script" || name == "style" {
            found_scripts += usize::from(name == "script");
            let end = html[i..]
                .find(&format!("</{name}>"))
                .unwrap_or(html.len() - i);
            let content = &html[i..i + end];
            if content.contains("<script") || content.contains("<!--") {
                problems.push(format!("<{name}> holds markup"));
            }
            i += end;
        }
    }
    if found_scripts != scripts {
        problems.push(format!(
            "{found_scripts} <script> elements, expected {scripts}"
        ));
    }
    problems
}

#[test]
fn the_markup_checks_catch_injections() {
    let page = "<!DOCTYPE html><p class=\"a\">x &lt; y</p><script>var a=1<2;</script>";
    assert_eq!(markup_problems(page, 1), Vec::<String>::new());
    let attack = "<p title=\"\"><img src=x onerror=alert(1)>\">a < b</p><script>x</script>";
    let found = markup_problems(attack, 0).join("\n");
    assert!(found.contains("event handler attribute onerror"), "{found}");
    assert!(found.contains("unquoted value for src"), "{found}");
    assert!(found.contains("raw `<` in text"), "{found}");
    assert!(found.contains("1 <script> elements, expected 0"), "{found}");
}

#[test]
// About 90 lines: one end-to-end scenario (make, render, check), read top to bottom.
fn hostile_class_and_file_names_render_as_text_on_every_page() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hostile_dataset(tmp.path());
    let run = train(tmp.path(), &data);
    let r = run.to_str().unwrap();
    ok(dmlviz(&["explain", "--run", r, "--samples", "4"]));
    let batch = tmp.path().join("batch");
    let folder = data.join(SCRIPT_CLASS);
    ok(dmlviz(&[
        "explain",
        "--run",
        r,
        "--batch",
        folder.to_str().unwrap(),
        "--method",
        "gradcam",
        "--out",
        batch.to_str().unwrap(),
    ]));
    ok(dmlviz(&["project", "--run", r, "--method", "umap"]));
    let site = tmp.path().join("site");
    let runs = tmp.path().join("runs");
    let (runs, out) = (runs.to_str().unwrap(), site.to_str().unwrap());
    ok(dmlviz(&["report", "--runs", runs, "--out", out]));

    let mut pages = html_files(&site);
    pages.extend(html_files(&run));
    pages.extend(html_files(&batch));
    let kinds = [
        "site/index.html",
        "site/runs/run/index.html",
        "report/index.html",
        "explanations/index.html",
        "projections/umap.html",
        "galleries/index.html",
        "batch/index.html",
    ];
    for kind in kinds {
        assert!(
            pages.iter().any(|p| p.ends_with(kind)),
            "no page {kind} among {pages:?}"
        );
    }
    let mut problems = Vec::new();
    for page in &pages {
        let html = std::fs::read_to_string(page).unwrap();
        let is_map = page.parent().is_some_and(|d| d.ends_with("projections"));
        for p in markup_problems(&html, if is_map { 3 } else { 1 }) {
            problems.push(format!("{}: {p}", page.display()));
        }
        for raw in [
            "<script>alert",
            "<img src=x",
            "<img src=y",
            "\"quoted\" <b>",
        ] {
            if html.contains(raw) {
                problems.push(format!("{}: raw {raw:?}", page.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The names are on the pages, as text.
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let run_page = read(&site.join("runs/run/index.html"));
    for escaped in [
        "0027.&lt;script&gt;alert(1)",
        "0028.&quot;&gt;&lt;img src=x onerror=alert(2)&gt;",
        "0029.it's &amp; &quot;quoted&quot; &lt;b&gt;",
    ] {
        assert!(run_page.contains(escaped), "{escaped} not on the run page");
        assert!(
            read(&run.join("phase-all/projections/umap.html")).contains(escaped),
            "{escaped} not in the map's legend"
        );
    }
    let batch_page = read(&batch.join("index.html"));
    assert!(
        batch_page.contains("&quot;&gt;&lt;img src=y onerror=alert(3)&gt;.png"),
        "the hostile file name is not on the batch page"
    );
    assert!(batch_page.contains("<h1>Explanations of "), "{batch_page}");
    let broken = check_site(&site);
    assert!(broken.is_empty(), "{broken:?}");
}
