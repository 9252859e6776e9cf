//! Raw HTML stays a deliberate, greppable opt-in. Pages are maud templates, which
//! escape every interpolated value; the only ways around that escaping are
//! `maud::PreEscaped`, a hand-made `Markup { 0: … }` and a custom `Render` impl. This
//! test reads every source file under `src/` and fails when one of them appears in a
//! file outside the allow-list, when a `PreEscaped(…)` has no `// Safe:` comment saying
//! why it is safe, or when an allow-listed file no longer needs its entry. It also fails
//! on string literals holding HTML tags outside the allow-list (pages built by `format!`).

use std::path::{Path, PathBuf};

/// Files that may write raw HTML, and why.
const ALLOWED: [(&str, &str); 2] = [
    (
        "src/html.rs",
        "the page frame: our stylesheet and scripts, and JSON from the script encoder",
    ),
    (
        "src/report/figure.rs",
        "charts: SVG written by plotters, which escapes the text it draws",
    ),
];

/// The ways to make markup without escaping.
/// (`Markup { 0: … }` builds one from a string; `-> Markup {` is only a return type.)
const RAW_MARKERS: [&str; 3] = ["PreEscaped", "Markup { 0", "Render for"];

/// Tags whose presence in a string literal means HTML is being built by hand.
const TAGS: [&str; 24] = [
    "p", "div", "td", "tr", "th", "table", "a", "span", "h1", "h2", "h3", "h4", "img", "ul", "li",
    "section", "figure", "html", "body", "script", "style", "br", "code", "svg",
];

/// Every `.rs` file under `dir`, sorted, with its path relative to the crate root.
fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((relative, path));
        }
    }
}

fn crate_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), root, &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    files
        .into_iter()
        .map(|(name, path)| (name, std::fs::read_to_string(path).unwrap()))
        .collect()
}

/// The code of a file before its unit tests (tests may hold HTML to check against).
fn code_part(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// Line numbers (1-based) of `PreEscaped(` constructions with no `// Safe:` comment on
/// the line or in the three lines above it.
fn unexplained_constructions(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    (0..lines.len())
        .filter(|&i| lines[i].contains("PreEscaped(") && !lines[i].trim_start().starts_with("//"))
        .filter(|&i| {
            !lines[i.saturating_sub(3)..=i]
                .iter()
                .any(|l| l.contains("// Safe:"))
        })
        .map(|i| i + 1)
        .collect()
}

/// The HTML tags opened in string literals of `code` (a rough lexer: `"…"` with `\"`
/// escapes; raw strings and chars count as code, which only makes it stricter).
fn tag_literals(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let mut end = 0;
        let bytes = after.as_bytes();
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let literal = &after[..end.min(after.len())];
        for tag in TAGS {
            for close in [" ", ">", "/"] {
                let open = format!("<{tag}{close}");
                if literal.contains(&open) {
                    found.push(open);
                }
            }
        }
        rest = &after[(end + 1).min(after.len())..];
    }
    found
}

#[test]
fn raw_html_appears_only_in_allowed_files_with_a_reason() {
    let mut problems = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    for (name, text) in crate_sources() {
        let markers: Vec<&str> = RAW_MARKERS
            .iter()
            .copied()
            .filter(|m| text.contains(m))
            .collect();
        if markers.is_empty() {
            continue;
        }
        match ALLOWED.iter().position(|(file, _)| *file == name) {
            None => problems.push(format!(
                "{name}: raw HTML ({}) outside the allow-list: build the markup with `html!` \
                 (or add the file to ALLOWED in tests/raw_html.rs with a reason)",
                markers.join(", ")
            )),
            Some(i) => used[i] = true,
        }
        for line in unexplained_constructions(&text) {
            problems.push(format!(
                "{name}:{line}: PreEscaped without a `// Safe:` comment saying why"
            ));
        }
    }
    for ((file, why), used) in ALLOWED.iter().zip(used) {
        if !used {
            problems.push(format!(
                "{file} is allowed raw HTML ({why}) but uses none: remove its entry"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_page_is_built_from_string_literals_of_tags() {
    let allowed: Vec<&str> = ALLOWED.iter().map(|(f, _)| *f).collect();
    let mut problems = Vec::new();
    for (name, text) in crate_sources() {
        if allowed.contains(&name.as_str()) || name.ends_with("/tests.rs") {
            continue;
        }
        let tags = tag_literals(code_part(&text));
        if !tags.is_empty() {
            problems.push(format!(
                "{name}: HTML in string literals: {}",
                tags.join(" ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_catch_what_they_should() {
    let text =
        "let a = 1;\n// Safe: ours\nlet b = PreEscaped(x);\n\n\n\n\nlet c = PreEscaped(y);\n";
    assert_eq!(unexplained_constructions(text), vec![8]);
    assert_eq!(
        tag_literals(r#"let s = format!("<td class=\"x\">{}</td>", v); let t = "a < b";"#),
        vec!["<td ".to_string()]
    );
    assert!(tag_literals(r#"let s = "x \" <p>";"#).contains(&"<p>".to_string()));
    assert_eq!(code_part("a\n#[cfg(test)]\n\"<p>\""), "a\n");
}
