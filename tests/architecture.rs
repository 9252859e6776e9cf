//! The layering of `src/` holds by test: the layer table is read from `docs/DESIGN.md`
//! ("Layers"), every file under `src/` is mapped to one layer, and every import
//! (`use` lines, grouped or not, and inline `crate::x::y` paths) must point to the
//! same layer or a lower level. Run with `--nocapture` to see the layer import graph.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// One row of the layer table.
#[derive(Debug)]
struct Layer {
    level: u32,
    name: String,
    /// `src/x/` (a folder and everything below it) or `src/x.rs` (one file).
    paths: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The rows of the first table after the `## Layers` heading of `design`.
fn read_layers(design: &str) -> Result<Vec<Layer>, String> {
    let mut lines = design.lines().enumerate();
    lines
        .by_ref()
        .find(|(_, l)| l.trim() == "## Layers")
        .ok_or("docs/DESIGN.md: no \"## Layers\" section")?;
    let rows = lines
        .skip_while(|(_, l)| !l.trim_start().starts_with('|'))
        .take_while(|(_, l)| l.trim_start().starts_with('|'));
    let mut layers = Vec::new();
    for (n, line) in rows {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() != 3 {
            return Err(format!("docs/DESIGN.md:{}: want 3 cells: {line}", n + 1));
        }
        if cells[0] == "level" || cells[0].starts_with("--") {
            continue;
        }
        let level = cells[0].parse().map_err(|_| {
            format!(
                "docs/DESIGN.md:{}: level {:?} is not a number",
                n + 1,
                cells[0]
            )
        })?;
        let paths = cells[2]
            .split(',')
            .map(|p| p.trim().trim_matches('`').to_string())
            .collect();
        layers.push(Layer {
            level,
            name: cells[1].trim_matches('`').to_string(),
            paths,
        });
    }
    if layers.is_empty() {
        return Err("docs/DESIGN.md: the Layers section has no table".into());
    }
    Ok(layers)
}

/// The layer that holds `file` (relative to the crate root, `/`-separated), or why
/// none or several do.
fn layer_of<'a>(layers: &'a [Layer], file: &str) -> Result<&'a Layer, String> {
    let holds = |p: &String| {
        if p.ends_with('/') {
            file.starts_with(p.as_str())
        } else {
            file == p
        }
    };
    let found: Vec<&Layer> = layers
        .iter()
        .filter(|l| l.paths.iter().any(holds))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("{file} is in no layer of docs/DESIGN.md")),
        many => Err(format!(
            "{file} is in several layers: {:?}",
            many.iter().map(|l| &l.name).collect::<Vec<_>>()
        )),
    }
}

/// Every file under `dir`, relative to the crate root, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root()).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

/// A token of Rust source with comments, strings and character literals removed:
/// an identifier, `::`, or one punctuation character; with its 1-based line.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

/// Skips a (possibly nested) block comment starting at `chars[i] == '/'`, returning
/// the index after it and the newlines it held.
fn skip_block_comment(chars: &[char], mut i: usize) -> (usize, usize) {
    let (mut depth, mut lines) = (0, 0);
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('/', Some('*')) => (depth, i) = (depth + 1, i + 2),
            ('*', Some('/')) => {
                (depth, i) = (depth - 1, i + 2);
                if depth == 0 {
                    break;
                }
            }
            (c, _) => {
                lines += (c == '\n') as usize;
                i += 1;
            }
        }
    }
    (i, lines)
}

/// Skips a string literal whose opening quote is at `chars[i]`; `hashes` > 0 (or
/// `raw`) for `r#"…"#`. Returns the index after it and the newlines it held.
fn skip_string(chars: &[char], mut i: usize, raw: bool, hashes: usize) -> (usize, usize) {
    let mut lines = 0;
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if !raw => i += 1,
            '"' if (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) => {
                return (i + 1 + hashes, lines)
            }
            '\n' => lines += 1,
            _ => {}
        }
        i += 1;
    }
    (i, lines)
}

/// The tokens of `source` (see [`Token`]).
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    let push = |out: &mut Vec<Token>, text: String, line| out.push(Token { text, line });
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let (end, lines) = skip_block_comment(&chars, i);
            (i, line) = (end, line + lines);
        } else if c == '"' {
            let (end, lines) = skip_string(&chars, i, false, 0);
            (i, line) = (end, line + lines);
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let hashes = chars[i..].iter().take_while(|&&h| h == '#').count();
            if (word == "r" || word == "br") && chars.get(i + hashes) == Some(&'"') {
                let (end, lines) = skip_string(&chars, i + hashes, true, hashes);
                (i, line) = (end, line + lines);
            } else if !c.is_ascii_digit() {
                push(&mut out, word, line);
            }
        } else if c == ':' && next == Some(':') {
            push(&mut out, "::".into(), line);
            i += 2;
        } else {
            push(&mut out, c.to_string(), line);
            i += 1;
        }
    }
    out
}

/// A path named by the source (its segments, as written) and the line it is on.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    segments: Vec<String>,
    line: usize,
    /// The inline modules (`mod tests { … }`) the path sits in.
    nested: Vec<String>,
}

/// Reads one use tree at `toks[*i]` with `prefix` already read, pushing each leaf
/// path (a group `{a, b::c}` gives one per member; `self` in a group is the prefix).
fn use_tree(
    toks: &[Token],
    i: &mut usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let mut path = prefix;
    while *i < toks.len() {
        let t = &toks[*i];
        match t.text.as_str() {
            "{" => {
                *i += 1;
                while *i < toks.len() && toks[*i].text != "}" {
                    use_tree(toks, i, path.clone(), out);
                    if toks.get(*i).is_some_and(|t| t.text == ",") {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            "*" => {
                out.push((path, t.line));
                *i += 1;
                return;
            }
            "::" => *i += 1,
            word => {
                if word != "self" || path.is_empty() {
                    path.push(word.to_string());
                }
                *i += 1;
                if toks.get(*i).is_some_and(|t| t.text == "::") {
                    continue;
                }
                if toks.get(*i).is_some_and(|t| t.text == "as") {
                    *i += 2;
                }
                out.push((path, t.line));
                return;
            }
        }
    }
}

/// Every path a source file names that may point into the crate: the leaves of its
/// `use` trees, and inline paths starting with one of `starts` (`crate`, `super`,
/// `self`, `dmlviz`, the file's own child modules) followed by `::`.
fn named_paths(source: &str, starts: &HashSet<String>) -> Vec<Named> {
    let toks = tokens(source);
    let (mut out, mut i, mut depth) = (Vec::new(), 0, 0usize);
    let mut nested: Vec<(String, usize)> = Vec::new();
    let inside = |n: &[(String, usize)]| n.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>();
    while i < toks.len() {
        let text = toks[i].text.as_str();
        let next = toks.get(i + 1).map(|t| t.text.as_str());
        let previous = i.checked_sub(1).map(|p| toks[p].text.as_str());
        if text == "{" {
            depth += 1;
        } else if text == "}" {
            depth = depth.saturating_sub(1);
            if nested.last().is_some_and(|(_, d)| *d == depth) {
                nested.pop();
            }
        } else if text == "mod" && toks.get(i + 2).is_some_and(|t| t.text == "{") {
            nested.push((next.unwrap_or_default().to_string(), depth));
        } else if text == "use" {
            let mut leaves = Vec::new();
            i += 1;
            use_tree(&toks, &mut i, Vec::new(), &mut leaves);
            for (segments, line) in leaves {
                out.push(Named {
                    segments,
                    line,
                    nested: inside(&nested),
                });
            }
            continue;
        } else if starts.contains(text) && next == Some("::") && previous != Some("::") {
            let (line, mut segments) = (toks[i].line, vec![text.to_string()]);
            i += 1;
            while toks.get(i).is_some_and(|t| t.text == "::")
                && toks.get(i + 1).is_some_and(|t| is_ident(&t.text))
            {
                segments.push(toks[i + 1].text.clone());
                i += 2;
            }
            out.push(Named {
                segments,
                line,
                nested: inside(&nested),
            });
            continue;
        }
        i += 1;
    }
    out
}

fn is_ident(text: &str) -> bool {
    text.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Which crate a path lands in, and the module path inside it.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Library(Vec<String>),
    Binary,
}

/// A source file as the resolver needs it.
struct SourceFile {
    /// True for the binary's files (`src/main.rs`, `src/cli/`): their `crate` is the
    /// binary, and the library is `dmlviz`.
    binary: bool,
    /// The file's module path in its crate (`src/eval/knn.rs`: `eval::knn`).
    module: Vec<String>,
    /// Modules the file declares (`mod x;`, `mod x { … }`).
    children: HashSet<String>,
}

impl SourceFile {
    fn new(path: &str, source: &str) -> SourceFile {
        let binary = path == "src/main.rs" || path.starts_with("src/cli/");
        let inner = path.trim_start_matches("src/").trim_end_matches(".rs");
        let mut module: Vec<String> = inner.split('/').map(String::from).collect();
        if matches!(
            module.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            module.pop();
        }
        let toks = tokens(source);
        let children = toks
            .windows(2)
            .filter(|w| w[0].text == "mod")
            .map(|w| w[1].text.clone())
            .collect();
        SourceFile {
            binary,
            module,
            children,
        }
    }

    /// Where `named` points, or `None` for paths outside the crate (std, tch, …).
    fn resolve(&self, named: &Named) -> Option<Target> {
        let segs = &named.segments;
        let here = || [self.module.clone(), named.nested.clone()].concat();
        let in_own_crate = |module: Vec<String>| match self.binary {
            true => Target::Binary,
            false => Target::Library(module),
        };
        match segs.first()?.as_str() {
            "crate" => Some(in_own_crate(segs[1..].to_vec())),
            "dmlviz" if self.binary => Some(Target::Library(segs[1..].to_vec())),
            "self" => Some(in_own_crate([here(), segs[1..].to_vec()].concat())),
            "super" => {
                let mut module = here();
                let ups = segs.iter().take_while(|s| *s == "super").count();
                module.truncate(module.len().saturating_sub(ups));
                Some(in_own_crate([module, segs[ups..].to_vec()].concat()))
            }
            first if named.nested.is_empty() && self.children.contains(first) => {
                Some(in_own_crate([self.module.clone(), segs.clone()].concat()))
            }
            _ => None,
        }
    }
}

/// The layer a target lands in: the binary is the layer of `src/main.rs`; a library
/// module path is the layer of the file or folder of its first segment.
fn target_layer<'a>(layers: &'a [Layer], target: &Target) -> Result<&'a Layer, String> {
    let file = match target {
        Target::Binary => "src/main.rs".to_string(),
        Target::Library(module) => match module.first() {
            None => "src/lib.rs".to_string(),
            Some(top) if root().join("src").join(top).is_dir() => format!("src/{top}/mod.rs"),
            Some(top) if root().join(format!("src/{top}.rs")).is_file() => format!("src/{top}.rs"),
            Some(top) => return Err(format!("crate::{top} is no module under src/")),
        },
    };
    layer_of(layers, &file)
}

/// The imports of every `.rs` file under `src/`: (importing file, line, what it names,
/// its layer, the target's layer).
struct Arrow<'a> {
    file: String,
    line: usize,
    named: String,
    from: &'a Layer,
    to: &'a Layer,
}

fn arrows(layers: &[Layer]) -> (Vec<Arrow<'_>>, Vec<String>) {
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for path in files_under(&root().join("src")) {
        if !path.ends_with(".rs") {
            continue;
        }
        let source = std::fs::read_to_string(root().join(&path)).unwrap();
        let file = SourceFile::new(&path, &source);
        let mut starts: HashSet<String> = ["crate", "super", "self"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        starts.extend(file.children.iter().cloned());
        if file.binary {
            starts.insert("dmlviz".into());
        }
        let from = match layer_of(layers, &path) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for named in named_paths(&source, &starts) {
            let Some(target) = file.resolve(&named) else {
                continue;
            };
            match target_layer(layers, &target) {
                Ok(to) => out.push(Arrow {
                    file: path.clone(),
                    line: named.line,
                    named: named.segments.join("::"),
                    from,
                    to,
                }),
                Err(e) => errors.push(format!("{path}:{}: {e}", named.line)),
            }
        }
    }
    (out, errors)
}

/// An arrow between two layers, sorting upper layers first: (from level, from, to
/// level, to).
type Edge<'a> = (Reverse<u32>, &'a str, Reverse<u32>, &'a str);

/// True when a file of layer `from` may import layer `to`.
fn allowed(from: &Layer, to: &Layer) -> bool {
    from.name == to.name || to.level < from.level
}

fn design() -> String {
    std::fs::read_to_string(root().join("docs/DESIGN.md")).expect("reading docs/DESIGN.md")
}

#[test]
fn every_file_under_src_is_in_exactly_one_layer() {
    let layers = read_layers(&design()).unwrap();
    let problems: Vec<String> = files_under(&root().join("src"))
        .iter()
        .filter_map(|f| layer_of(&layers, f).err())
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every row names something that exists: a stale row would hide nothing but
    // would mislead a reader of docs/DESIGN.md.
    for layer in &layers {
        for p in &layer.paths {
            assert!(
                root().join(p).exists(),
                "docs/DESIGN.md layer {}: {p} does not exist",
                layer.name
            );
        }
    }
}

#[test]
fn imports_run_down_the_layers() {
    let layers = read_layers(&design()).unwrap();
    let (arrows, errors) = arrows(&layers);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The layer graph: distinct (file, named path) pairs per arrow between layers,
    // upper layers first.
    let mut graph: BTreeMap<Edge, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for a in arrows.iter().filter(|a| a.from.name != a.to.name) {
        let (from, to) = (a.from, a.to);
        graph
            .entry((Reverse(from.level), &from.name, Reverse(to.level), &to.name))
            .or_default()
            .insert((&a.file, &a.named));
    }
    println!("layer import graph (imports counted once per file and path):");
    for ((Reverse(from_level), from, Reverse(to_level), to), uses) in &graph {
        let mark = match to_level.cmp(from_level) {
            std::cmp::Ordering::Less => "",
            std::cmp::Ordering::Equal => "   SIDEWAYS",
            std::cmp::Ordering::Greater => "   UP",
        };
        println!("  {from:>8} -> {to:<8} {:>4}{mark}", uses.len());
    }
    let wrong: Vec<String> = arrows
        .iter()
        .filter(|a| !allowed(a.from, a.to))
        .map(|a| {
            format!(
                "{}:{}: {} (level {}) -> {} (level {}) by {}",
                a.file, a.line, a.from.name, a.from.level, a.to.name, a.to.level, a.named
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} imports run up or sideways (docs/DESIGN.md, \"Layers\"):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_inline_paths_but_not_comments_or_strings() {
    let source = r##"
use crate::{a, b::{c, self}, d::e as f};
use super::g::*;
// crate::in_comment
/* crate::in /* nested */ block */
pub(crate) fn x() -> &'static str {
    let _ = crate::h::i(1, '"');
    let _ = child::j;
    r#"crate::in_raw "string"#;
    "crate::in_string"
}
#[cfg(test)]
mod tests {
    use super::*;
}
"##;
    let starts: HashSet<String> = ["crate", "super", "self", "child"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let named = named_paths(source, &starts);
    let paths: Vec<(String, usize)> = named
        .iter()
        .map(|n| (n.segments.join("::"), n.line))
        .collect();
    let want = [
        ("crate::a", 2),
        ("crate::b::c", 2),
        ("crate::b", 2),
        ("crate::d::e", 2),
        ("super::g", 3),
        ("crate::h::i", 7),
        ("child::j", 8),
        ("super", 14),
    ];
    let want: Vec<(String, usize)> = want.iter().map(|(p, l)| (p.to_string(), *l)).collect();
    assert_eq!(paths, want);
    // `super` inside `mod tests` of src/eval/knn.rs is src/eval/knn.rs itself; at the
    // file's top it is src/eval/.
    let file = SourceFile::new("src/eval/knn.rs", source);
    assert_eq!(
        file.resolve(&named[7]),
        Some(Target::Library(vec!["eval".into(), "knn".into()]))
    );
    assert_eq!(
        file.resolve(&named[4]),
        Some(Target::Library(vec!["eval".into(), "g".into()]))
    );
    let bin = SourceFile::new("src/cli/eval.rs", "use dmlviz::eval::x;");
    let n = named_paths(
        "use dmlviz::eval::x;",
        &["dmlviz".to_string()].into_iter().collect(),
    );
    assert_eq!(
        bin.resolve(&n[0]),
        Some(Target::Library(vec!["eval".into(), "x".into()]))
    );
}

#[test]
fn the_layer_table_rules() {
    let layers = read_layers(&design()).unwrap();
    let get = |name: &str| layers.iter().find(|l| l.name == name).unwrap();
    assert!(allowed(get("train"), get("search")));
    assert!(
        !allowed(get("train"), get("eval")),
        "train must not import eval"
    );
    assert!(!allowed(get("explain"), get("project")) && !allowed(get("project"), get("explain")));
    assert!(
        !allowed(get("base"), get("data")),
        "imaging (base) must not import data"
    );
    assert_eq!(layer_of(&layers, "src/eval/knn.rs").unwrap().name, "eval");
    assert_eq!(layer_of(&layers, "src/config.rs").unwrap().name, "run");
}

/// The headings (`#`, `##`, `###`, ...) of a markdown text, without the hashes.
fn headings(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim().to_string())
        .collect()
}

/// A section name quoted right after a document's name (`docs/X.md, "Section"`),
/// joined across comment lines (`//!`, `///`, `//` markers dropped).
fn quoted_section(after: &str) -> Option<String> {
    let rest = after
        .strip_prefix(',')
        .unwrap_or(after)
        .trim_start_matches(' ');
    let rest = rest.strip_prefix('"')?;
    let name = &rest[..rest.find('"')?];
    let words: Vec<&str> = name
        .split_whitespace()
        .filter(|w| !matches!(*w, "//" | "///" | "//!"))
        .collect();
    Some(words.join(" "))
}

#[test]
fn comments_that_name_a_document_name_one_in_docs_and_a_section_it_has() {
    let mut problems = Vec::new();
    for dir in ["src", "tests"] {
        for path in files_under(&root().join(dir))
            .iter()
            .filter(|p| p.ends_with(".rs"))
        {
            let source = std::fs::read_to_string(root().join(path)).unwrap();
            for doc in ["DESIGN.md", "REFERENCE.md"] {
                for (at, _) in source.match_indices(doc) {
                    let line = source[..at].lines().count().max(1);
                    let line_start = source[..at].rfind('\n').map_or(0, |n| n + 1);
                    if !source[line_start..].trim_start().starts_with("//") {
                        continue; // code, not a comment (this file's own messages)
                    }
                    if !source[..at].ends_with("docs/") {
                        problems.push(format!("{path}:{line}: {doc} is not docs/{doc}"));
                        continue;
                    }
                    let text = std::fs::read_to_string(root().join("docs").join(doc)).unwrap();
                    if let Some(section) = quoted_section(&source[at + doc.len()..]) {
                        if !headings(&text).contains(&section) {
                            problems.push(format!(
                                "{path}:{line}: docs/{doc} has no section {section:?}"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
